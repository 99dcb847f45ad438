"""Build a runnable Chart from a NAME.sfc.yaml file against the tag database of a site.

``load_chart`` reads and checks the declaration (runtime/sfc/model.py), resolves every output against the
tag database (type, idle value, arbitration), checks and compiles every expression once
(runtime/sfc/expr.py), and generates each step's scan function (runtime/sfc/codegen.py). Every problem is
added to ``errors`` with file:line; the chart is returned only if there was none.
"""

from __future__ import annotations

import ast
from functools import partial
from pathlib import Path
from typing import Any

from runtime.config.errors import did_you_mean
from runtime.config.schema import Errors, Where
from runtime.durations import DurationError, parse_duration
from runtime.names import chart_tag, device_tag
from runtime.sfc.chart import HOLD, Chart, Step, state_tags
from runtime.sfc.codegen import ActionCode, OutputCode, step_functions
from runtime.sfc.expr import (
    BOOL,
    NUMBER,
    Compiled,
    ExprError,
    Scope,
    all_of,
    kind_of,
    quality_guard,
    true_guard,
)
from runtime.sfc.model import ActionDecl, ChartDecl, OutputDecl, Source, StepDecl, TransitionDecl, read_chart
from runtime.sfc.shared import UNDRIVEN, ChartSet, chart_set
from runtime.tags import TagDB


def load_chart(path: Path | str, db: TagDB, errors: Errors, site: Any = None, *,
               chart_class: type[Chart] = Chart) -> Chart | None:
    """Load one chart; problems go to ``errors`` (file:line) and the result is then None.

    ``site`` (optional) gives the program list, so a reference to a chart that is not one of the site's
    programs is an error at once, the ``arbitration`` lists of tags.yaml, and its devices: the chart is also
    held in its safe step while a device its outputs are written to does not answer
    (``dev.<name>.reachable``). ``chart_class`` builds a variant of the executor (the benchmark's naive
    reference).
    """
    decl = read_chart(path, errors)
    if decl is None:
        return None
    charts = chart_set(db)
    if not charts.register(decl.name, tuple(decl.steps), Where(decl.file, decl.line, "name"), errors):
        return None
    before = len(errors)  # what register found wrong in earlier charts' references is theirs, not this one's
    chart = _Builder(decl, db, errors, charts, site).build(chart_class)
    return chart if len(errors) == before else None


class _Builder:
    """Resolves one declaration against the tag database; collects errors instead of stopping."""

    def __init__(self, decl: ChartDecl, db: TagDB, errors: Errors, charts: ChartSet, site: Any) -> None:
        self.decl = decl
        self.db = db
        self.errors = errors
        self.charts = charts
        self.programs: list[str] | None = None
        self.devices: list[Any] = list(getattr(site, "devices", None) or [])
        if site is not None:
            settings = site.settings
            self.programs = [*settings.programs, *([settings.interlocks] if settings.interlocks else [])]
        self.arbitration: dict[str, list[str]] = getattr(site, "arbitration", None) or {}
        self.flags = {step: charts.flag(decl.name, step) for step in decl.steps}
        self.scope = Scope(db, decl.name, self.flags, partial(charts.reference, programs=self.programs))
        self.reads: set[str] = set()
        self.clock: set[str] = set()

    def build(self, chart_class: type[Chart]) -> Chart | None:
        decl = self.decl
        before = len(self.errors)
        self._check_state_tags()
        outputs = self._outputs()
        for tag, where in decl.requires:
            if tag not in self.db:
                self.errors.add(where, f"unknown tag {tag!r}{did_you_mean(tag, self.db.defs)}")
        required = [tag for tag, _ in decl.requires if tag in self.db]
        self.reads.update(required)
        enable = self._compile(decl.enable, BOOL, "enable") if decl.enable else None
        devices_reachable = self._output_devices({output.tag for output in outputs})
        self.reads.update(devices_reachable)
        guard = all_of(quality_guard(required), true_guard(devices_reachable), enable.code if enable else None)
        conditions = {t.number: self._compile(t.when, BOOL, "a condition") for t in decl.transitions}
        slots = {output.tag: output.slot for output in outputs}
        plans = [self._plan(code, step, slots) for code, step in enumerate(decl.steps.values())]
        if len(self.errors) != before:
            return None
        namespace = self.scope.namespace
        namespace.update(ST=[None] * len(outputs), PU={}, U=UNDRIVEN, STAGED=self.db.staged)
        steps = []
        for fields, actions, leaving in plans:
            run, drive = step_functions(
                fields["name"], self.scope.flag_name(fields["flag"]), chart_tag(decl.name, "step_time"), outputs, actions,
                [conditions[t.number].code for t in leaving], guard, HOLD, self.clock,
                fields["name"] == decl.safe, namespace, f"<chart {decl.name} step {fields['name']}>")
            steps.append(Step(**fields, run=run, drive=drive,
                              conditions=tuple(conditions[t.number].fn for t in leaving)))
        return chart_class(decl, self.db, steps, [o.tag for o in outputs], self.reads,
                           self.scope.function(guard) if guard else None, namespace)

    # ---- pieces ---------------------------------------------------------------------------------------------

    def _output_devices(self, outputs: set[str]) -> list[str]:
        """``dev.<name>.reachable`` of every device (io_map outputs) the chart's outputs are written to.

        A chart commanding a device nobody hears (a hung charger) would keep its outputs on and ramp its
        setpoints into the void; held in its safe step instead, its outputs drop to their idle values, which
        the device gets first when it answers again. The programs themselves name no device.
        """
        reachable = [device_tag(device.name, "reachable") for device in self.devices
                     if any(point.tag in outputs for point in device.outputs)]
        return [tag for tag in reachable if tag in self.db.defs]

    def _check_state_tags(self) -> None:
        """tags.yaml may declare sfc.<chart>.step (e.g. to map it to Modbus); its names must be the steps."""
        for tag in state_tags(self.decl.name, self.decl.steps, self.decl.initial):
            have = self.db.defs.get(tag.name)
            if have is not None and (have.type != tag.type or have.values != tag.values):
                wanted = f"enum with values {list(tag.values)}" if tag.values else tag.type
                self.errors.add(Where(have.file, have.line, f"tags.{tag.name}"),
                                f"chart {self.decl.name!r} needs {tag.name} to be {wanted}")

    def _outputs(self) -> list[OutputCode]:
        qualifiers: dict[str, set[str]] = {}
        for action in self.decl.actions():
            qualifiers.setdefault(action.output, set()).add(action.qualifier)
        outputs: list[OutputCode] = []
        for tag, decl in self.decl.outputs.items():
            tagdef = self.db.defs.get(tag)
            if tagdef is None:
                self.errors.add(decl.where, f"unknown tag {tag!r}{did_you_mean(tag, self.db.defs)}")
                continue
            try:
                idle = tagdef.safe_value if decl.idle is None else tagdef.coerce(decl.idle)
                if not tagdef.in_range(idle):
                    raise ValueError(f"{decl.idle!r} is outside {tag}'s min..max")
            except (TypeError, ValueError) as exc:
                self.errors.add(decl.where, f"idle value: {exc}")
                continue
            slot = len(outputs)
            output = OutputCode(slot, tag, idle, undriven_is_idle=not decl.hold, arbiter=None, rank=0,
                                stored="S" in qualifiers[tag], pulsed="P0" in qualifiers[tag])
            order = self.arbitration.get(tag)
            if order is not None and not self._arbitrate(output, tuple(order), decl):
                continue
            outputs.append(output)
        return outputs

    def _arbitrate(self, output: OutputCode, order: tuple[str, ...], decl: OutputDecl) -> bool:
        if self.decl.name not in order:
            self.errors.add(decl.where, f"{output.tag!r} is arbitrated between {', '.join(order)}; add "
                                        f"{self.decl.name!r} to its arbitration list in tags.yaml")
            return False
        try:
            arbiter = self.charts.arbiter(output.tag, output.idle, decl.hold)
        except ValueError as exc:
            self.errors.add(decl.where, str(exc))
            return False
        output.arbiter = f"A{output.slot}"
        output.undriven_is_idle = False
        output.rank = order.index(self.decl.name)
        self.scope.namespace[output.arbiter] = arbiter
        return True

    def _plan(self, code: int, decl: StepDecl, slots: dict[str, int]) \
            -> tuple[dict[str, Any], list[ActionCode], list[TransitionDecl]]:
        """A step's fields (all but its compiled functions), its continuous actions and its ways out."""
        leaving = self.decl.leaving(decl.name)
        actions: list[ActionCode] = []
        stores, resets, on_exit = [], [], []
        for action in decl.actions:
            slot = slots.get(action.output)
            if slot is None:  # an unknown output, reported already
                continue
            if action.qualifier == "R":
                resets.append(slot)
                continue
            value = self._value(action)
            time = self._time(action.time) if action.time else None
            if value is None or (action.time and time is None):
                continue
            if action.qualifier == "S":
                stores.append((slot, value.fn))
            elif action.qualifier == "P0":
                on_exit.append((slot, value.fn))
            else:
                actions.append(ActionCode(action.qualifier, slot, value.code, time))
        fields = {"name": decl.name, "code": code, "flag": self.flags[decl.name],
                  "triggers": tuple(t.label for t in leaving), "stores": tuple(stores), "resets": tuple(resets),
                  "on_exit": tuple(on_exit)}
        return fields, actions, leaving

    def _value(self, action: ActionDecl) -> Compiled | None:
        tagdef = self.db.defs[action.output]
        source = action.value
        if source is None:
            if not tagdef.is_bool:
                self.errors.add(action.where, f"{tagdef.name} is {tagdef.type}: say which value it gets "
                                              "(value: ...)")
                return None
            source = Source("true", action.where)
        return self._compile(source, kind_of(tagdef), f"the value of {tagdef.name}")

    def _time(self, source: Source) -> ast.expr | None:
        """A D/L time: a duration (30s, 6h20min) or an expression in seconds (par.ballast_max_s)."""
        try:
            return ast.Constant(value=parse_duration(source.text))
        except DurationError:
            compiled = self._compile(source, NUMBER, "a time (seconds)")
        if compiled and isinstance(compiled.code, ast.Constant) and compiled.code.value < 0:
            self.errors.add(source.where, f"a time cannot be negative: {source.text!r}")
            return None
        return compiled.code if compiled else None

    def _compile(self, source: Source, want: Any, place: str) -> Compiled | None:
        try:
            compiled = self.scope.compile(source.text, want, place, origin=source.where)
        except ExprError as exc:
            self.errors.add(source.where, str(exc))
            return None
        self.reads.update(compiled.reads)
        self.clock.update(compiled.clock)
        return compiled
