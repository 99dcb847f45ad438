"""What an operator may change from the page, and the one path each change takes.

Tag writes (parameters, mode, commands) take the path MQTT commands take (runtime/mqtt/commands.py): the value
becomes the Modbus write request a SCADA would send and goes through the Modbus server's request handler, so
the whitelist (a mapped ``rw`` tag), decoding, range check, write authorization (``server.writers``, by the
browser's address) and log lines are the server's own; the page's accepted writes wait in their own write
queue, a scan Port, and land at the next latch like a Modbus write.

Alarms: acknowledge and shelve act on an ``AlarmManager`` (runtime/alarms.py) fed from the ``alarm.*``
condition tags; an operator action is queued and carried out by the scan thread after its next commit, so the
manager only ever changes on the scan thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from operator import itemgetter
from typing import Any

from runtime.alarms import Alarm, AlarmManager, AlarmRefused, AlarmState
from runtime.events import is_alarm
from runtime.mqtt.commands import Commands
from runtime.server.access import WritePolicy
from runtime.tags import TagDB

# How long the page waits for the scan to apply an alarm action before it says so.
ACTION_TIMEOUT = 5.0


class WriteRefused(Exception):
    """A write from the page that changes nothing; the message says why, for the operator."""


class TagWriter:
    """Tag writes from the page through the server's write checks (see the module docstring)."""

    def __init__(self, commands: Commands, policy: WritePolicy) -> None:
        self.commands = commands
        self.policy = policy

    def writable(self, name: str) -> bool:
        return self.commands.writable(name) is not None

    def write(self, name: str, value: Any, host: str) -> str:
        """Queue ``name = value`` from a browser at ``host`` for the next latch; return the value as it will
        land, or raise WriteRefused with the reason."""
        payload = ("1" if value else "0") if isinstance(value, bool) else str(value)
        outcome = self.commands.submit(name, payload, f"web {host}", self.policy.for_client(host, None))
        if not outcome.accepted:
            raise WriteRefused(outcome.reason)
        return outcome.value


class Alarms:
    """The site's alarms for the page: states and journal from an AlarmManager the scan keeps current."""

    def __init__(self, db: TagDB) -> None:
        self.db = db
        names = sorted(name for name, tag in db.defs.items() if is_alarm(tag))
        self.manager = AlarmManager({name.removeprefix("alarm."): Alarm(name.removeprefix("alarm."),
                                                                        description=db.defs[name].description)
                                     for name in names})
        self._keys = tuple(name.removeprefix("alarm.") for name in names)
        # A tuple of the condition values in one C call (itemgetter of one name returns the bare value).
        self._fetch: Callable[[Any], tuple[Any, ...]] = itemgetter(*names) if len(names) > 1 else \
            (lambda values: tuple(values[name] for name in names))
        self._last: tuple[Any, ...] | None = None
        self._shelved = False  # some alarm is shelved: its expiry needs the time every scan
        self._pending: deque[tuple[Callable[[float, str], Any], Future[Any]]] = deque()
        self._lock = threading.Lock()  # the page reads the states while the scan moves them

    def observe(self, scan: Any) -> None:
        """Scan observer: apply queued operator actions, then this scan's conditions (when anything changed or a
        shelve may expire; most scans only compare one tuple)."""
        conditions = self._fetch(self.db.values)
        if conditions == self._last and not self._pending and not self._shelved:
            return
        self._last = conditions
        t, at = scan.ctx.t, scan.ctx.now.isoformat(timespec="seconds")
        with self._lock:
            while self._pending:
                action, done = self._pending.popleft()
                try:
                    done.set_result(action(t, at))
                except AlarmRefused as refused:
                    done.set_exception(refused)
            self.manager.update(dict(zip(self._keys, conditions, strict=True)), t, at)
            self._shelved = any(a.state is AlarmState.SHELVED for a in self.manager.alarms.values())

    def _apply(self, action: Callable[[float, str], Any]) -> Any:
        done: Future[Any] = Future()
        self._pending.append((action, done))
        try:
            done.result(ACTION_TIMEOUT)
        except AlarmRefused as refused:
            raise WriteRefused(str(refused)) from None
        except TimeoutError:
            raise WriteRefused(f"the scan did not take the action within {ACTION_TIMEOUT:g} s") from None

    def acknowledge(self, name: str, client: str) -> None:
        self._apply(lambda t, at: self.manager.acknowledge(name, t, at))

    def shelve(self, name: str, seconds: float, client: str) -> None:
        self._apply(lambda t, at: self.manager.shelve(name, seconds, t, at))

    def unshelve(self, name: str, client: str) -> None:
        self._apply(lambda t, at: self.manager.unshelve(name, t, at))

    def states(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"name": a.name, "state": a.state.label, "condition": a.condition, "priority": a.priority.name,
                     "description": a.description, "since": a.since, "shelved_until": a.shelved_until,
                     "raised": a.raised} for a in self.manager.alarms.values()]

    def standing(self) -> int:
        with self._lock:
            return len(self.manager.standing())

    def journal(self) -> list[dict[str, Any]]:
        with self._lock:
            return self.manager.journal_records()[::-1]
