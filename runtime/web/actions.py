"""What an operator may change from the page, and the one path each change takes.

Tag writes (parameters, mode, commands) take the path MQTT commands take (runtime/mqtt/commands.py): the value
becomes the Modbus write request a SCADA would send and goes through the Modbus server's request handler, so
the whitelist (a mapped ``rw`` tag), decoding, range check, write authorization (``server.writers``, by the
browser's address) and log lines are the server's own; the page's accepted writes wait in their own write
queue, a scan Port, and land at the next latch like a Modbus write.

Alarms: acknowledge and shelve are the alarm service's ``cmd.alarm_*`` commands, written the same way; the
scan carries them out after its next commit and answers in ``alarms.result``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from runtime.alarms.service import ACK, RESULT, RESULT_SEQ, SHELVE, SHELVE_S, UNSHELVE, alarm_names
from runtime.mqtt.commands import Commands
from runtime.names import alarm_tag
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
    """The site's alarms for the page, through the controller's alarm service (runtime/alarms/service.py): states
    from its ``alarms.<name>.*`` tags in the page's sample, actions written as its ``cmd.alarm_*`` commands
    through the same write path as a SCADA's, the answer read from ``alarms.result`` once
    ``alarms.result_seq`` moved."""

    def __init__(self, db: TagDB, service: Any, writer: TagWriter) -> None:
        self.db = db
        self.service = service
        self.writer = writer
        self.names = tuple(alarm_names(db.defs.values())) if service is not None else ()

    def states(self, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        defs = self.db.defs
        out = []
        for name in self.names:
            state = alarm_tag(name, "state")
            out.append({"name": name, "state": defs[state].format(values[state]).replace("_", "-"),
                        "condition": bool(values[f"alarm.{name}"]), "raised": values[alarm_tag(name, "raised")],
                        "description": defs[f"alarm.{name}"].description})
        return out

    def journal(self) -> list[dict[str, Any]]:
        if self.service is None:
            return []
        entries = list(self.service.manager.journal)  # one C-level copy: the scan may append meanwhile
        return [entry.record() for entry in reversed(entries)]

    def _command(self, writes: list[tuple[str, Any]], host: str) -> None:
        if self.service is None:
            raise WriteRefused("this site has no alarms")
        values = self.db.values
        seq = values[RESULT_SEQ]
        for tag, value in writes:
            self.writer.write(tag, value, host)
        deadline = time.monotonic() + ACTION_TIMEOUT
        while values[RESULT_SEQ] == seq:
            if time.monotonic() > deadline:
                raise WriteRefused(f"the scan did not carry out the command within {ACTION_TIMEOUT:g} s")
            time.sleep(0.02)
        result = self.db.defs[RESULT].format(values[RESULT])
        if result != "done":
            raise WriteRefused(result.replace("_", " "))

    def acknowledge(self, name: str, host: str) -> None:
        self._command([(ACK, name)], host)

    def shelve(self, name: str, seconds: float, host: str) -> None:
        self._command([(SHELVE_S, round(seconds)), (SHELVE, name)], host)

    def unshelve(self, name: str, host: str) -> None:
        self._command([(UNSHELVE, name)], host)
