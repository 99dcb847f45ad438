"""The scan cycle: every period P, in this fixed order.

1. WAIT     for the absolute deadline t0 + k*P on the monotonic clock (no drift). A scan that ran past its
            slot counts an overrun and the loop skips to the next free slot; it never bursts to catch up.
2. LATCH    every input port copies its newest values (with timestamp and quality) into the image, and
            SCADA writes made since the last scan land. Nothing changes the image during 3 and 4.
3. PROGRAMS run in declared order against the image, staging writes to the outputs they own. A program
            that raises is isolated: logged once with its name, counted, its fault tag raised and its
            outputs staged at their safe values (a retained output with no declared ``safe`` is state, a
            counter or an estimate, not a command: it holds its value); the scan goes on.
4. INTERLOCKS run last and have the final word on every output.
5. COMMIT   staged values become current; changed outputs go to the ports (which write asynchronously);
            observers (metrics snapshot, retain, watchdog) are told.
6. MEASURE  scan duration, start lateness and overruns, as tags.

Device I/O never happens here: ports only move values between buffers.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.clock import Clock
from runtime.names import program_tag
from runtime.program import Program, ScanContext
from runtime.tags import TagDB, TagDef, TagType

log = logging.getLogger("battplc.scan")


class Port(Protocol):
    """An input/output boundary of the image (device drivers, the SCADA server)."""

    def latch(self, db: TagDB, now: float) -> None:
        """Copy the newest buffered inputs into the image. Must not block."""

    def commit(self, changed: Mapping[str, Any], db: TagDB) -> None:
        """Hand changed outputs over for writing. Must not block."""


Observer = Callable[["Scan"], None]


SCAN_TAGS = (
    TagDef("scan.count", TagType.INT, "count", "scans run since start", metric=False),
    TagDef("scan.duration", TagType.FLOAT, "s", "duration of the last scan (latch to commit)"),
    TagDef("scan.lateness", TagType.FLOAT, "s", "start of the last scan minus its deadline"),
    TagDef("scan.overruns", TagType.INT, "count", "scans that ran past their slot"),
    TagDef("scan.skipped", TagType.INT, "count", "slots skipped after overruns"),
    TagDef("scan.period", TagType.FLOAT, "s", "configured scan period"),
)


def fault_tags(program: str) -> tuple[TagDef, TagDef]:
    return (
        TagDef(program_tag(program, "fault"), TagType.BOOL, "", f"program {program} raised in its last scan"),
        TagDef(program_tag(program, "faults"), TagType.INT, "count", f"scans in which program {program} raised"),
    )


def runtime_tags(programs: Iterable[Program]) -> list[TagDef]:
    """The tags a Scan declares: its own figures (``scan.*``) and each program's fault tags, in scan order."""
    return [*SCAN_TAGS, *(tag for program in programs for tag in fault_tags(program.name))]


class Samples:
    """Bounded recent samples (ring buffer) with percentiles, for lateness and duration figures."""

    def __init__(self, size: int = 200_000) -> None:
        self._data = array("d")
        self._size = size
        self._next = 0

    def add(self, value: float) -> None:
        if len(self._data) < self._size:
            self._data.append(value)
        else:
            self._data[self._next] = value
            self._next = (self._next + 1) % self._size

    def __len__(self) -> int:
        return len(self._data)

    def percentile(self, p: float) -> float:
        if not self._data:
            return math.nan
        ordered = sorted(self._data)
        index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def max(self) -> float:
        return max(self._data) if self._data else math.nan


@dataclass
class _Fault:
    flag_tag: str  # prog.<name>.fault
    count_tag: str  # prog.<name>.faults
    count: int = 0
    active: bool = False


class Scan:
    """The fixed-period scan loop over one tag database."""

    def __init__(
        self,
        db: TagDB,
        programs: Iterable[Program],
        clock: Clock,
        period: float,
        interlocks: Program | None = None,
        ports: Iterable[Port] = (),
        observers: Iterable[Observer] = (),
    ) -> None:
        if period <= 0:
            raise ValueError("scan period must be positive")
        self.db = db
        self.programs = list(programs)
        self.interlocks = interlocks
        self.clock = clock
        self.period = period
        self.ports = list(ports)
        self.observers = list(observers)
        self.ctx = ScanContext(db)
        self.count = 0
        self.overruns = 0
        self.skipped = 0
        self.lateness = Samples()
        self.durations = Samples()
        self.last_changed: dict[str, Any] = {}
        self._faults: dict[str, _Fault] = {}
        self._t0: float | None = None
        self._slot = 0
        self._deadline = 0.0  # of the current slot, set by wait()
        self._last_start: float | None = None
        self._stop = False
        for tag in SCAN_TAGS:
            db.ensure(tag)
        db.values["scan.period"] = period
        for program in self._all_programs():
            flag, count = fault_tags(program.name)
            self._faults[program.name] = _Fault(db.ensure(flag).name, db.ensure(count).name)
        # phases 3 and 4 in one list: the programs in declared order, then the interlocks (the last word)
        self._order = [(program, self._faults[program.name]) for program in self._all_programs()]

    def _all_programs(self) -> list[Program]:
        return self.programs + ([self.interlocks] if self.interlocks else [])

    # ---- control ------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end after the current scan (safe from signal handlers and other threads)."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        return self._stop

    def run(self, max_scans: int | None = None, duration: float | None = None) -> None:
        """Scan until stop(), ``max_scans`` scans, or ``duration`` seconds of slots; then make outputs safe.

        With ``duration`` the loop ends before the first slot at or after start + duration, so a clean run
        of 60 s at 10 ms makes 6000 scans and every skipped slot shows as a missing scan.
        """
        try:
            while not self._stop and (max_scans is None or self.count < max_scans):
                self.wait()
                if duration is not None and self.deadline >= self._t0 + duration - self.period * 1e-6:
                    break
                self.step()
        finally:
            self.shutdown()

    # ---- the phases ---------------------------------------------------------------------------------------

    def wait(self) -> None:
        """Phase 1: sleep until the next slot's absolute deadline; count overruns, never burst."""
        clock = self.clock
        now = clock.monotonic()
        if self._t0 is None:
            self._t0 = now
            self._slot = 0
            self._deadline = now
            return
        self._slot += 1
        deadline = self._t0 + self._slot * self.period
        if now > deadline:
            # The previous scan ran past this slot: count it once and skip to the next free slot.
            self.overruns += 1
            free = math.floor((now - self._t0) / self.period) + 1
            self.skipped += free - self._slot
            self._slot = free
            deadline = self._t0 + self._slot * self.period
        self._deadline = deadline
        clock.sleep_until(deadline)

    @property
    def deadline(self) -> float:
        """The absolute deadline of the current slot (0 before the first wait)."""
        return self._deadline

    def step(self) -> None:
        """Phases 2-6 of one scan, starting now."""
        clock = self.clock
        db = self.db
        start = clock.monotonic()
        lateness = start - self._deadline if self._t0 is not None else 0.0
        ctx = self.ctx
        ctx.now = clock.now()
        ctx.dt = start - self._last_start if self._last_start is not None else self.period
        ctx.t = start
        ctx.count = self.count
        self._last_start = start

        for port in self.ports:  # 2. latch
            port.latch(db, start)
        values = db.values
        for program, fault in self._order:  # 3. programs, 4. interlocks (inline: this runs ~10 times a scan)
            ctx.program = program  # ctx.bind(program), without the call
            ctx.owned = program.writes
            try:
                program.scan(ctx)
            except Exception:
                self._faulted(program, fault)
            else:
                if fault.active:
                    log.warning("program %s runs again after %d faulty scan(s)", program.name, fault.count)
                    fault.active = False
            values[fault.flag_tag] = fault.active

        self.count += 1
        values["scan.count"] = self.count
        values["scan.overruns"] = self.overruns
        values["scan.skipped"] = self.skipped
        values["scan.lateness"] = lateness
        changed = db.commit(start)  # 5. commit
        self.last_changed = changed
        if changed:
            for port in self.ports:
                port.commit(changed, db)
        for observer in self.observers:
            observer(self)
        duration = clock.monotonic() - start  # 6. measure
        values["scan.duration"] = duration
        self.lateness.add(lateness)
        self.durations.add(duration)

    def _faulted(self, program: Program, fault: _Fault) -> None:
        """A program raised (called in its except clause): count it, log it once, make its outputs safe."""
        fault.count += 1
        if not fault.active:
            log.exception("program %s raised; its outputs go to their safe values", program.name)
        fault.active = True
        self._make_safe(program.writes)
        self.db.values[fault.count_tag] = fault.count

    def _make_safe(self, names: Iterable[str]) -> None:
        defs, staged = self.db.defs, self.db.staged
        for name in names:
            tag = defs[name]
            if tag.retain and tag.safe is None:
                staged.pop(name, None)  # retained state holds: an energy counter must not drop to 0
            else:
                staged[name] = tag.safe_value

    def outputs(self) -> set[str]:
        out: set[str] = set()
        for program in self._all_programs():
            out |= program.writes
        return out

    def shutdown(self) -> None:
        """Drive every output to its safe value and hand that to the ports."""
        outputs = self.outputs()
        self._make_safe(outputs)
        changed = self.db.commit(self.clock.monotonic())
        # Ports get every output, changed or not: a device must see its fail-safe value at stop.
        final = {name: self.db.values[name] for name in outputs}
        final.update(changed)
        for port in self.ports:
            port.commit(final, self.db)

    # ---- figures ------------------------------------------------------------------------------------------

    def figures(self) -> dict[str, float]:
        return {
            "scans": self.count,
            "overruns": self.overruns,
            "lateness_p50_ms": self.lateness.percentile(50) * 1000,
            "lateness_p99_ms": self.lateness.percentile(99) * 1000,
            "lateness_max_ms": self.lateness.max() * 1000,
            "duration_p50_ms": self.durations.percentile(50) * 1000,
            "duration_p99_ms": self.durations.percentile(99) * 1000,
            "duration_max_ms": self.durations.max() * 1000,
        }
