"""Alarm management after ISA-18.2: each alarm's state, acknowledge and shelve, a journal, and a flood counter.

A program raises an alarm by writing its condition (a boolean tag ``alarm.<name>``); this module keeps what an
operator sees of it. States (ISA-18.2's alarm state transition diagram):

    normal                      condition false, nothing to acknowledge
    active-unacknowledged       condition true, not yet acknowledged          (raised)
    active-acknowledged         condition true, acknowledged
    returned-unacknowledged     condition gone, never acknowledged            (a latching alarm stays here)
    shelved                     taken out of the operator's view until a time; its condition still counts
                                for the programs, it only stops annunciating. Unshelved at expiry or by hand.

An alarm raised again while returned-unacknowledged goes back to active-unacknowledged and counts as raised
once more. Acknowledging an active alarm makes it active-acknowledged; acknowledging a returned one makes it
normal. A non-latching alarm (the default) that returns while acknowledged goes to normal; a latching one never
returns to normal without an acknowledge.

The journal keeps the last ``journal_size`` transitions (time, alarm, from, to, who); it is plain data so it can
be retained. The flood counter follows EEMUA 191: ``flood_count`` raised alarms within ``flood_window_s`` (10 in
10 minutes) is a flood; ``floods`` counts how many began.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any


class AlarmState(enum.IntEnum):
    """An alarm's state; the values are its Modbus enum codes."""

    NORMAL = 0
    ACTIVE_UNACK = 1
    ACTIVE_ACK = 2
    RETURNED_UNACK = 3
    SHELVED = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_unack", "-unacknowledged").replace("_ack", "-acknowledged")


class Priority(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class AlarmRefused(Exception):
    """An operator action that cannot be done; the message says why and ``reason`` names it (the code SCADA
    reads back in ``alarms.result``). Nothing was changed."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class JournalEntry:
    t: float  # scan clock, seconds
    at: str  # site wall time, ISO 8601
    alarm: str
    before: AlarmState
    after: AlarmState
    by: str  # "condition", "operator", "expiry"

    def record(self) -> dict[str, Any]:
        return {"t": self.t, "at": self.at, "alarm": self.alarm, "from": self.before.label,
                "to": self.after.label, "by": self.by}


@dataclass
class Alarm:
    """One alarm's operator-facing state."""

    name: str
    priority: Priority = Priority.LOW
    latching: bool = False
    description: str = ""
    state: AlarmState = AlarmState.NORMAL
    condition: bool = False
    since: float = 0.0  # scan time of the last state change
    shelved_until: float | None = None  # scan time at which a shelve ends
    state_before_shelve: AlarmState = AlarmState.NORMAL
    changed_while_shelved: bool = False
    raised: int = 0  # how often its condition became true (also while shelved)


@dataclass
class AlarmManager:
    """The alarms of a site, updated once per scan from their condition tags."""

    alarms: dict[str, Alarm]
    journal_size: int = 200
    flood_count: int = 10
    flood_window_s: float = 600.0
    max_shelve_s: float = 24 * 3600.0  # EEMUA 191: nothing leaves the operator's view for longer than a day
    journal: deque[JournalEntry] = field(init=False)
    floods: int = 0
    _raised_times: deque[float] = field(init=False)
    _in_flood: bool = False
    _shelved: int = 0  # alarms in SHELVED now, kept by _move (the service asks every scan)

    def __post_init__(self) -> None:
        self.journal = deque(maxlen=self.journal_size)
        self._raised_times = deque()

    # ---- the scan ----------------------------------------------------------------------------------------

    def update(self, conditions: dict[str, bool], t: float, at: str) -> list[JournalEntry]:
        """Take each alarm's condition as of this scan; return the transitions it caused."""
        changes = []
        for name, alarm in self.alarms.items():
            active = bool(conditions.get(name, False))
            if alarm.state is AlarmState.SHELVED:
                alarm.changed_while_shelved |= active != alarm.condition
                alarm.raised += active and not alarm.condition  # counted, but not annunciated: no flood
                alarm.condition = active
                if alarm.shelved_until is not None and t >= alarm.shelved_until:
                    changes.append(self._unshelve(alarm, t, at, "expiry"))
                continue
            if active and not alarm.condition:
                self._raised_times.append(t)
                alarm.raised += 1
                changes.append(self._move(alarm, AlarmState.ACTIVE_UNACK, t, at, "condition"))
            elif not active and alarm.condition:
                if alarm.state is AlarmState.ACTIVE_UNACK:
                    changes.append(self._move(alarm, AlarmState.RETURNED_UNACK, t, at, "condition"))
                elif alarm.state is AlarmState.ACTIVE_ACK:
                    target = AlarmState.RETURNED_UNACK if alarm.latching else AlarmState.NORMAL
                    changes.append(self._move(alarm, target, t, at, "condition"))
            alarm.condition = active
        self._check_flood(t)
        return [c for c in changes if c is not None]

    # ---- operator actions ----------------------------------------------------------------------------------

    def acknowledge(self, name: str, t: float, at: str) -> JournalEntry:
        alarm = self._get(name)
        if alarm.state is AlarmState.ACTIVE_UNACK:
            return self._move(alarm, AlarmState.ACTIVE_ACK, t, at, "operator")
        if alarm.state is AlarmState.RETURNED_UNACK:
            return self._move(alarm, AlarmState.NORMAL, t, at, "operator")
        raise AlarmRefused(f"alarm {name} is {alarm.state.label}: there is nothing to acknowledge",
                           "nothing_to_acknowledge")

    def shelve(self, name: str, seconds: float, t: float, at: str) -> JournalEntry:
        alarm = self._get(name)
        if not 0 < seconds <= self.max_shelve_s:
            raise AlarmRefused(f"a shelve lasts more than 0 s and at most {self.max_shelve_s:g} s, not {seconds:g} s",
                               "bad_duration")
        if alarm.state is AlarmState.SHELVED:
            alarm.shelved_until = t + seconds
            return self._entry(alarm, AlarmState.SHELVED, t, at, "operator")
        alarm.state_before_shelve = alarm.state
        alarm.shelved_until = t + seconds
        return self._move(alarm, AlarmState.SHELVED, t, at, "operator")

    def unshelve(self, name: str, t: float, at: str) -> JournalEntry:
        alarm = self._get(name)
        if alarm.state is not AlarmState.SHELVED:
            raise AlarmRefused(f"alarm {name} is {alarm.state.label}, not shelved", "not_shelved")
        return self._unshelve(alarm, t, at, "operator")

    # ---- figures -------------------------------------------------------------------------------------------

    def standing(self) -> list[Alarm]:
        """Alarms the operator should see: active or unacknowledged, not shelved."""
        return [a for a in self.alarms.values()
                if a.state in (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK, AlarmState.RETURNED_UNACK)]

    @property
    def any_shelved(self) -> bool:
        return self._shelved > 0

    @property
    def flood(self) -> bool:
        return self._in_flood

    def journal_records(self) -> list[dict[str, Any]]:
        return [entry.record() for entry in self.journal]

    # ---- inside ---------------------------------------------------------------------------------------------

    def _get(self, name: str) -> Alarm:
        key = name.removeprefix("alarm.")
        if key not in self.alarms:
            known = ", ".join(sorted(self.alarms)) or "none"
            raise AlarmRefused(f"no alarm {name!r}; alarms: {known}", "unknown_alarm")
        return self.alarms[key]

    def _unshelve(self, alarm: Alarm, t: float, at: str, by: str) -> JournalEntry:
        """Back in view: an active condition annunciates again unless it was acknowledged and never left."""
        before, changed = alarm.state_before_shelve, alarm.changed_while_shelved
        alarm.shelved_until = None
        alarm.changed_while_shelved = False
        if alarm.condition:
            target = AlarmState.ACTIVE_ACK if before is AlarmState.ACTIVE_ACK and not changed else \
                AlarmState.ACTIVE_UNACK
        else:
            target = AlarmState.RETURNED_UNACK if before in (AlarmState.ACTIVE_UNACK, AlarmState.RETURNED_UNACK) \
                else AlarmState.NORMAL
        return self._move(alarm, target, t, at, by)

    def _move(self, alarm: Alarm, target: AlarmState, t: float, at: str, by: str) -> JournalEntry:
        before = alarm.state
        self._shelved += (target is AlarmState.SHELVED) - (before is AlarmState.SHELVED)
        alarm.state = target
        alarm.since = t
        return self._entry(alarm, before, t, at, by)

    def _entry(self, alarm: Alarm, before: AlarmState, t: float, at: str, by: str) -> JournalEntry:
        entry = JournalEntry(t, at, alarm.name, before, alarm.state, by)
        self.journal.append(entry)
        return entry

    def _check_flood(self, t: float) -> None:
        while self._raised_times and self._raised_times[0] <= t - self.flood_window_s:
            self._raised_times.popleft()
        flooding = len(self._raised_times) >= self.flood_count
        if flooding and not self._in_flood:
            self.floods += 1
        self._in_flood = flooding
