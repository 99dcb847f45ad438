"""The chart executor: one declared chart as a Program the scan runs, with IEC 61131-3 semantics.

The first scan activates the initial step (or the safe step, if the guard fails already): its P1 actions
fire and its transitions are evaluated from the next scan on. Then each scan:
1. The active step's compiled ``run`` function (runtime/sfc/codegen.py) updates its ``.T`` and checks the
   guard (required inputs GOOD, every device its outputs are written to up, ``enable`` true) and the outgoing conditions in priority order. If none
   clears, ``run`` has already written the outputs and the scan of this chart is over: one call.
2. Only when a transition clears is the ``transitions`` Machine called: its exit callback deactivates the
   old step (P0 actions take their one-scan pulse, ``.T`` is kept) and its entry callback activates the new
   one (``.T`` = 0, S stores, R clears); the new step's ``drive`` then writes the outputs with its P1
   actions firing. A step activated in this scan is not left before the next one (no chained firing).
3. A failed guard moves the chart to its safe step the same way (the old step's N, D and L outputs drop)
   and holds it there, driving the safe step's actions, until the guard is true again; the safe step's own
   transitions then lead out of it.
4. ``sfc.<chart>.step``, ``.step_time`` and ``.held`` are set in the image directly: they are the chart's
   state, visible to other programs at once, like a PLC's step flags.

Outputs no action drives take their idle value (or keep their value with ``hold``); outputs several charts
drive go through their Arbiter (runtime/sfc/shared.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from transitions import Machine, State

from runtime.names import chart_tag
from runtime.program import Program, ScanContext
from runtime.sfc.expr import StepFlag
from runtime.sfc.model import ChartDecl
from runtime.tags import TagDB, TagDef, TagType

HOLD = -2  # what a step's run returns while the guard fails
BEGIN = -3  # what the chart returns before its first scan
GO_SAFE = "go_safe"  # the Machine trigger from any step to the safe step

Value = Callable[[], Any]

# (ctx.now, now_h, weekday) of the last scan: every chart of a scan asks for the same. The datetime is held, so
# the identity test cannot meet a new one at a freed one's address; one tuple, swapped whole, so a chart in
# another thread's scan reads a consistent triple.
_WALL: list[tuple[Any, float, int]] = [(None, 0.0, 0)]


@dataclass(eq=False, slots=True)
class Step:
    name: str
    code: int  # its index, the enum code of sfc.<chart>.step
    flag: StepFlag
    run: Callable[[ScanContext], int]  # the steady scan (runtime/sfc/codegen.py)
    drive: Callable[[ScanContext, float, bool], None]  # outputs only: entry scan, held in the safe step
    triggers: tuple[str, ...]  # Machine trigger of each outgoing transition, in priority order
    conditions: tuple[Value, ...]  # each outgoing condition on its own (run has them inline)
    stores: tuple[tuple[int, Value], ...]  # S: (output slot, value) stored on entry
    resets: tuple[int, ...]  # R: output slots cleared on entry
    on_exit: tuple[tuple[int, Value], ...]  # P0: (output slot, value) pulsed on exit


def state_tags(chart: str, steps: Iterable[str], initial: str) -> tuple[TagDef, ...]:
    """The tags a chart declares: its active step, the time in it, and whether the guard holds it safe."""
    return (
        TagDef(chart_tag(chart, "step"), TagType.ENUM, "", f"active step of chart {chart}", default=initial,
               values=tuple(steps)),
        TagDef(chart_tag(chart, "step_time"), TagType.FLOAT, "s", f"seconds since the active step of {chart} began"),
        TagDef(chart_tag(chart, "held"), TagType.BOOL, "", f"chart {chart} is held in its safe step: a required "
                                                      "input is not GOOD, a device its outputs go to is not up, "
                                                      "or enable is false"),
    )


class _NotStarted:
    """The 'active step' of a chart before its first scan: its run asks for the initial step."""

    name = None

    @staticmethod
    def run(ctx: ScanContext) -> int:
        return BEGIN


class Chart(Program):
    """A declared sequential function chart, run by the scan."""

    def __init__(self, decl: ChartDecl, db: TagDB, steps: list[Step], writes: Iterable[str], reads: Iterable[str],
                 guard: Callable[[], bool] | None, namespace: dict[str, Any]) -> None:
        """``namespace`` is the one the steps' code runs in; it holds ``ST`` (stored S values by output slot)
        and ``PU`` (P0 pulses of this scan by output slot), which this executor keeps up to date, and gets
        ``CLOCK(ctx)`` (sets now_h, weekday, dt), ``HELD`` and ``RELEASE()`` (the guard is true again) from it."""
        self.decl = decl
        self.name = decl.name
        self.file = decl.file
        self.line = decl.line
        self.reads = frozenset(reads)
        self.writes = frozenset(writes)
        self.steps = {step.name: step for step in steps}
        self.initial = self.steps[decl.initial]
        self.safe = self.steps[decl.safe]
        self.guard = guard
        self._namespace = namespace
        self._stored: list[Value | None] = namespace["ST"]
        self._pulses: dict[int, Any] = namespace["PU"]
        self._values = db.values
        self._step_tag, self._time_tag, self._held_tag = (tag.name for tag in self.declare())
        self._step: Step | _NotStarted = _NotStarted()
        self._run = self._step.run  # the active step's run, the one call of a scan
        self._held = False
        self._now = 0.0
        namespace.update(CLOCK=self._set_clock, HELD=False, RELEASE=partial(self._set_held, False))
        self.machine = self._build_machine()

    def _build_machine(self) -> Machine:
        states = [State(step.name, on_enter=[partial(self._enter, step)], on_exit=[partial(self._exit, step)])
                  for step in self.steps.values()]
        transitions = [{"trigger": t.label, "source": t.source, "dest": t.target} for t in self.decl.transitions]
        transitions.append({"trigger": GO_SAFE, "source": "*", "dest": self.safe.name})
        return Machine(states=states, transitions=transitions, initial=self.initial.name, auto_transitions=False)

    # ---- Program --------------------------------------------------------------------------------------------

    def declare(self) -> tuple[TagDef, ...]:
        return state_tags(self.name, self.steps, self.initial.name)

    def start(self, db: TagDB) -> None:
        """Back to before the first scan, which activates the initial step (or the safe one)."""
        self._step = _NotStarted()
        self._run = self._step.run
        self._stored[:] = [None] * len(self._stored)
        self._pulses.clear()
        for step in self.steps.values():
            step.flag.x, step.flag.t = False, 0.0
        self.machine.set_state(self.initial.name)

    def scan(self, ctx: ScanContext) -> None:
        choice = self._run(ctx)
        if choice != -1:
            self._change(ctx, choice)

    # ---- the rare path: first scan, a transition clears, the guard fails -------------------------------------

    def _change(self, ctx: ScanContext, choice: int) -> None:
        step = self._step
        if choice == BEGIN:
            self._begin(ctx)
            return
        if choice >= 0:
            self._fire(ctx, step.triggers[choice])
            return
        self._set_held(True)  # HOLD; the safe step's run calls RELEASE when the guard is true again
        if step is self.safe:
            step.drive(ctx, step.flag.t, False)
        else:
            self._fire(ctx, GO_SAFE)

    def _fire(self, ctx: ScanContext, trigger: str) -> None:
        self._now = ctx.t  # for the callbacks
        self.machine.trigger(trigger)
        try:
            self._step.drive(ctx, 0.0, True)
        finally:
            self._pulses.clear()  # a pulse lasts this scan, even if driving raised
        self._values[self._time_tag] = 0.0

    def _begin(self, ctx: ScanContext) -> None:
        self._now = ctx.t
        self._set_clock(ctx)
        self._set_held(self.guard is not None and not self.guard())
        first = self.safe if self._held else self.initial
        self.machine.set_state(first.name)
        self._enter(first)
        first.drive(ctx, 0.0, True)
        self._values[self._time_tag] = 0.0

    def _set_held(self, held: bool) -> None:
        self._held = self._namespace["HELD"] = held
        self._values[self._held_tag] = held

    def _set_clock(self, ctx: ScanContext) -> None:
        namespace, now = self._namespace, ctx.now
        namespace["dt"] = ctx.dt
        wall = _WALL[0]
        if wall[0] is not now:  # the first chart of this scan to ask
            wall = _WALL[0] = (now, now.hour + now.minute / 60 + (now.second + now.microsecond / 1e6) / 3600,
                               now.weekday())
        namespace["now_h"], namespace["weekday"] = wall[1], wall[2]

    # ---- Machine callbacks ----------------------------------------------------------------------------------

    def _enter(self, step: Step) -> None:
        step.flag.x, step.flag.t, step.flag.since = True, 0.0, self._now
        self._step = step
        self._run = step.run
        self._values[self._step_tag] = step.code
        for slot, value in step.stores:
            self._stored[slot] = value
        for slot in step.resets:
            self._stored[slot] = None

    def _exit(self, step: Step) -> None:
        step.flag.x, step.flag.t = False, self._now - step.flag.since
        for slot, value in step.on_exit:
            self._pulses[slot] = value()

    # ---- views ----------------------------------------------------------------------------------------------

    @property
    def step(self) -> str | None:
        """Name of the active step (None before the first scan)."""
        return self._step.name

    @property
    def held(self) -> bool:
        """True while a required input is not GOOD, a device its outputs go to is down, or enable is false (the
        chart holds its safe step)."""
        return self._held
