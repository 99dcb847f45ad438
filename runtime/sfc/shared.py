"""What the charts of one tag database share: step flags read across charts, and output arbiters.

Charts load one at a time, in the site's program order, and may read the steps of a chart that loads later
(``keep`` reads ``unload.discharge.X``). A reference to a chart not loaded yet gets the flag object that
chart will use, and is checked when that chart loads; a chart that never loads leaves its ``sfc.<chart>.step``
tag undeclared, which the loader reports as an unknown tag of the reading chart.

An output driven by several charts declares ``arbitration: [unload, load, ballast, keep]`` in tags.yaml; its
``Arbiter`` lets the highest-priority chart that actively drives it in a scan set it, whatever the order the
charts run in, and falls back to the idle value when none does.
"""

from __future__ import annotations

import weakref
from typing import Any

from runtime.config.errors import did_you_mean
from runtime.config.schema import Errors, Where
from runtime.program import ScanContext
from runtime.sfc.expr import ExprError, StepFlag
from runtime.tags import TagDB


class Undriven:
    """The marker for 'no action of this chart drives the output in this scan'."""

    def __repr__(self) -> str:
        return "UNDRIVEN"


UNDRIVEN: Any = Undriven()
_IDLE_RANK = 1 << 30


class Arbiter:
    """One output that several charts drive: the highest-priority active driver of each scan wins."""

    __slots__ = ("tag", "idle", "hold", "_scan", "_rank")

    def __init__(self, tag: str, idle: Any, hold: bool) -> None:
        self.tag = tag
        self.idle = idle
        self.hold = hold
        self._scan = -1
        self._rank = _IDLE_RANK

    def offer(self, ctx: ScanContext, rank: int, value: Any) -> None:
        """A chart's value for this scan (UNDRIVEN if it does not drive the output); rank 0 is highest.

        It stages straight into the image, as the charts' generated code does (runtime/sfc/codegen.py): every
        chart offering is one that declares the output (load builds the arbiter from its outputs), so the
        ownership check of ``ctx.write`` would only repeat that, some ten times a scan."""
        if ctx.count != self._scan:  # the first offer of this scan decides until a better one comes
            self._scan = ctx.count
            self._rank = _IDLE_RANK
            if value is UNDRIVEN:
                if not self.hold:
                    ctx.db.staged[self.tag] = self.idle
                return
        elif value is UNDRIVEN or rank >= self._rank:
            return
        self._rank = rank
        ctx.db.staged[self.tag] = value


class ChartSet:
    """The charts loaded into one tag database."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[str, ...]] = {}  # loaded chart -> its step names
        self._flags: dict[tuple[str, str], StepFlag] = {}
        self._pending: dict[str, list[tuple[str, Where]]] = {}
        self._arbiters: dict[str, Arbiter] = {}

    def flag(self, chart: str, step: str) -> StepFlag:
        key = (chart, step)
        found = self._flags.get(key)
        if found is None:
            found = self._flags[key] = StepFlag(chart, step)
        return found

    def reference(self, chart: str, step: str, where: Where, programs: list[str] | None) -> StepFlag:
        """The flag of ``chart.step`` read by an expression at ``where``; raise ExprError if it cannot exist."""
        if programs is not None and chart not in programs:
            raise ExprError(f"no chart {chart!r} among this site's programs{did_you_mean(chart, programs)}")
        steps = self.steps.get(chart)
        if steps is None:
            self._pending.setdefault(chart, []).append((step, where))
        elif step not in steps:
            raise ExprError(f"chart {chart!r} has no step {step!r}{did_you_mean(step, steps)}")
        return self.flag(chart, step)

    def register(self, chart: str, steps: tuple[str, ...], where: Where, errors: Errors) -> bool:
        """A chart is loading: check the references other charts made to it before. False if it is there
        already."""
        if chart in self.steps:
            errors.add(where, f"chart {chart!r} is loaded twice into one tag database")
            return False
        self.steps[chart] = steps
        for step, used_at in self._pending.pop(chart, []):
            if step not in steps:
                errors.add(used_at, f"chart {chart!r} has no step {step!r}{did_you_mean(step, steps)}")
        return True

    def arbiter(self, tag: str, idle: Any, hold: bool) -> Arbiter:
        """The arbiter of an output; every chart driving it must agree on what it is when undriven."""
        found = self._arbiters.get(tag)
        if found is None:
            found = self._arbiters[tag] = Arbiter(tag, idle, hold)
        elif (found.idle, found.hold) != (idle, hold):
            raise ValueError(f"charts sharing {tag!r} disagree on its idle value: "
                             f"{'hold' if found.hold else repr(found.idle)} and {'hold' if hold else repr(idle)}")
        return found


_SETS: dict[int, ChartSet] = {}


def chart_set(db: TagDB) -> ChartSet:
    """The ChartSet of a tag database, created with it and dropped when the database is."""
    key = id(db)
    found = _SETS.get(key)
    if found is None:
        found = _SETS[key] = ChartSet()
        weakref.finalize(db, _SETS.pop, key, None)
    return found
