"""The chart declaration: what a NAME.sfc.yaml file says, validated, with file:line for every part.

A chart file, key by key (expressions: see runtime/sfc/expr.py)::

    name: keep                      # the chart's name, equal to the file name (keep.sfc.yaml)
    description: keep-alive charging
    requires: [bat.voltage]         # inputs that must be GOOD; if one is not, the chart holds its safe step
    enable: cmd.mode == 'auto'      # optional; while false the chart holds its safe step
    initial: idle                   # the step active at start
    safe: idle                      # held while a required input is not GOOD, enable is false, or a device
                                    #   the outputs are written to (io_map) is down
    outputs:                        # every tag the actions drive
      charger.enable: {}            #   not driven -> the tag's safe value
      charger.current_sp: {idle: 0} #   not driven -> this value
      keep.cycles: {hold: true}     #   not driven -> keeps its last value
    steps:
      idle: {description: waiting}  # a step without actions
      charge:
        actions:                    # qualifier, output (set), value (default true), time (D and L only)
          - {qualifier: N, set: charger.enable}
          - {qualifier: L, set: charger.current_sp, value: par.keep_current_a, time: 30min}
          - {qualifier: P1, set: keep.cycles, value: keep.cycles + 1}
    transitions:                    # the order written is the priority where several leave one step
      - {from: idle, to: charge, when: bat.voltage < par.keep_start_v}
      - {from: charge, to: idle, when: charge.T > 2 * 3600 or bat.voltage > par.keep_stop_v}

Qualifiers (IEC 61131-3): N while the step is active; S from activation until an R of the same output in a
later step; R resets what S stored; P1 one scan on entry; P0 one scan on exit; D while active once
``.T >= time``; L while active as long as ``.T < time``. ``time`` is a duration (30s, 6h20min) or an
expression in seconds (par.ballast_max_s).

Each scan an output takes, later layers winning: its idle value (or its last value, with ``hold``), what an
S stored, the active step's N / D / L / P1 actions in the order written, and the P0 pulse of a step left in
this scan. An output several charts drive needs ``arbitration: [chart, ...]`` on its tag in tags.yaml (the
highest-priority chart that drives it wins; all must agree on its idle value). The first scan activates the
initial step; its transitions are evaluated from the next scan on, and no step is ever left in the scan it
became active.

Here only what the file alone can tell is checked (shape, step names, reachability, qualifier rules);
names and types inside expressions are checked against the tag database in runtime/sfc/load.py.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigErrors, did_you_mean
from runtime.config.schema import (
    MISSING,
    Errors,
    Invalid,
    ListOf,
    MapOf,
    Optional,
    Required,
    Schema,
    Where,
    boolean,
    one_of,
    scalar,
    string,
    tag_name,
    where_in,
    where_of,
)
from runtime.config.yamlloc import load_file

QUALIFIERS = ("N", "S", "R", "P1", "P0", "D", "L")
TIMED = ("D", "L")
SUFFIX = ".sfc.yaml"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def chart_name(value: Any) -> str:
    """A chart or step name: lower-case letters, digits and '_', usable in expressions (keep.charge.X)."""
    value = string(value)
    if not _NAME.match(value) or keyword.iskeyword(value):
        raise Invalid(f"{value!r} is not a usable name; use lower-case letters, digits and '_', "
                      "starting with a letter, and not a Python keyword")
    return value


def expression(value: Any) -> str:
    """An expression as written; YAML may have read `true` or `5` as a bool or a number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    raise Invalid(f"expected an expression (text, a number or true/false), got {type(value).__name__}")


ACTION = Schema({
    Required("qualifier"): one_of(*QUALIFIERS),
    Required("set"): tag_name,
    Optional("value"): expression,
    Optional("time"): expression,
    Optional("description", default=""): string,
})

STEP = Schema({
    Optional("description", default=""): string,
    Optional("actions", default=list): ListOf(ACTION),
})

TRANSITION = Schema({
    Required("from"): chart_name,
    Required("to"): chart_name,
    Required("when"): expression,
    Optional("description", default=""): string,
})

OUTPUT = Schema({
    Optional("idle"): scalar,
    Optional("hold", default=False): boolean,
    Optional("description", default=""): string,
})

CHART = Schema({
    Required("name"): chart_name,
    Optional("description", default=""): string,
    Optional("requires", default=list): ListOf(tag_name),
    Optional("enable"): expression,
    Required("initial"): chart_name,
    Required("safe"): chart_name,
    Required("steps"): MapOf(chart_name, STEP),
    Optional("transitions", default=list): ListOf(TRANSITION),
    Optional("outputs", default=dict): MapOf(tag_name, OUTPUT),
})


@dataclass(frozen=True)
class Source:
    """An expression as written in the file, and where."""

    text: str
    where: Where


@dataclass
class ActionDecl:
    qualifier: str
    output: str
    value: Source | None  # None: true (bool outputs), or nothing for R
    time: Source | None  # D and L only
    description: str
    where: Where


@dataclass
class StepDecl:
    name: str
    description: str
    actions: list[ActionDecl]
    where: Where


@dataclass
class TransitionDecl:
    number: int  # 1-based in declaration order: T1, T2, ...
    source: str
    target: str
    when: Source
    description: str
    where: Where

    @property
    def label(self) -> str:
        return f"T{self.number}"


@dataclass
class OutputDecl:
    tag: str
    idle: Any  # None: the tag's safe value
    hold: bool
    where: Where


@dataclass
class ChartDecl:
    name: str
    description: str
    file: str
    line: int
    requires: list[tuple[str, Where]]
    enable: Source | None
    initial: str
    safe: str
    steps: dict[str, StepDecl]
    transitions: list[TransitionDecl]
    outputs: dict[str, OutputDecl]
    keys: dict[str, Where]  # where each top-level key is (initial, safe, ...)

    def leaving(self, step: str) -> list[TransitionDecl]:
        """Transitions out of a step, highest priority first."""
        return [t for t in self.transitions if t.source == step]

    def actions(self) -> Iterator[ActionDecl]:
        """Every action of every step."""
        for step in self.steps.values():
            yield from step.actions


def read_chart(path: Path | str, errors: Errors) -> ChartDecl | None:
    """Load and validate one chart file; None (with errors added) if it is not usable."""
    path = Path(path)
    try:
        raw = load_file(path)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
        return None
    root = where_of(raw, str(path))
    before = len(errors)
    doc = CHART.walk(raw, root, errors)
    if len(errors) != before or doc is MISSING:
        return None
    decl = _build(doc, raw, root)
    _check_file_name(decl, path, errors)
    for rule in (_check_step_names, _check_actions, _check_outputs_used, _check_reachable):
        rule(decl, errors)
    return decl if len(errors) == before else None


_at = where_in  # file:line and key path of a value inside the loaded chart document


def _build(doc: dict[str, Any], raw: Any, root: Where) -> ChartDecl:
    steps = {}
    for name, step in doc["steps"].items():
        actions = []
        for i, action in enumerate(step["actions"]):
            at = ("steps", name, "actions", i)
            actions.append(ActionDecl(
                qualifier=action["qualifier"], output=action["set"],
                value=Source(action["value"], _at(raw, root, *at, "value")) if "value" in action else None,
                time=Source(action["time"], _at(raw, root, *at, "time")) if "time" in action else None,
                description=action["description"], where=_at(raw, root, *at),
            ))
        steps[name] = StepDecl(name, step["description"], actions, _at(raw, root, "steps", name))
    transitions = [
        TransitionDecl(i + 1, t["from"], t["to"], Source(t["when"], _at(raw, root, "transitions", i, "when")),
                       t["description"], _at(raw, root, "transitions", i))
        for i, t in enumerate(doc["transitions"])
    ]
    outputs = {tag: OutputDecl(tag, o.get("idle"), o["hold"], _at(raw, root, "outputs", tag))
               for tag, o in doc["outputs"].items()}
    requires = [(tag, _at(raw, root, "requires", i)) for i, tag in enumerate(doc["requires"])]
    enable = Source(doc["enable"], _at(raw, root, "enable")) if "enable" in doc else None
    keys = {key: _at(raw, root, key) for key in raw}
    return ChartDecl(doc["name"], doc["description"], root.file, keys["name"].line, requires, enable,
                     doc["initial"], doc["safe"], steps, transitions, outputs, keys)


# ---- rules that need the whole file: one small function each ----------------------------------------------

def _check_file_name(decl: ChartDecl, path: Path, errors: Errors) -> None:
    stem = path.name.removesuffix(SUFFIX)
    if decl.name != stem:
        errors.add(Where(decl.file, decl.line, "name"),
                   f"the chart is named {decl.name!r} but its file is {path.name}; name it {stem!r} "
                   f"or rename the file to {decl.name}{SUFFIX}")


def _check_step_names(decl: ChartDecl, errors: Errors) -> None:
    def check(step: str, where: Where, what: str) -> None:
        if step not in decl.steps:
            errors.add(where, f"{what} {step!r} is not a step{did_you_mean(step, decl.steps)}; "
                              f"steps: {', '.join(decl.steps)}")

    check(decl.initial, decl.keys["initial"], "initial")
    check(decl.safe, decl.keys["safe"], "safe")
    for t in decl.transitions:
        check(t.source, t.where, "from")
        check(t.target, t.where, "to")


def _check_actions(decl: ChartDecl, errors: Errors) -> None:
    for action in decl.actions():
        q = action.qualifier
        if action.output not in decl.outputs:
            errors.add(action.where, f"{action.output!r} is not in this chart's outputs"
                                     f"{did_you_mean(action.output, decl.outputs)}; list it under outputs:")
        if q in TIMED and action.time is None:
            errors.add(action.where, f"qualifier {q} needs a time, e.g. time: 30s")
        if q not in TIMED and action.time is not None:
            errors.add(action.time.where, f"only D and L take a time; {q} does not")
        if q == "R" and action.value is not None:
            errors.add(action.value.where, "R resets what S stored and takes no value")
    for step in decl.steps.values():
        stored = {a.output for a in step.actions if a.qualifier == "S"}
        for action in step.actions:
            if action.qualifier == "R" and action.output in stored:
                errors.add(action.where, f"step {step.name!r} both sets (S) and resets (R) {action.output!r}")


def _check_outputs_used(decl: ChartDecl, errors: Errors) -> None:
    used = {action.output for action in decl.actions()}
    for tag, output in decl.outputs.items():
        if tag not in used:
            errors.add(output.where, f"output {tag!r} is declared but no action sets it")
        if output.hold and output.idle is not None:
            errors.add(output.where, "an output either holds its last value (hold: true) or has an idle value, "
                                     "not both")


def _check_reachable(decl: ChartDecl, errors: Errors) -> None:
    if decl.initial not in decl.steps or decl.safe not in decl.steps:
        return  # already reported
    seen = {decl.initial, decl.safe}
    todo = [decl.initial, decl.safe]
    while todo:
        step = todo.pop()
        for t in decl.leaving(step):
            if t.target in decl.steps and t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    for name, step in decl.steps.items():
        if name not in seen:
            errors.add(step.where, f"step {name!r} can never become active: no transition leads to it "
                                   f"from {decl.initial!r}")
    if not decl.leaving(decl.safe):
        errors.add(decl.keys["safe"],
                   f"no transition leaves the safe step {decl.safe!r}; the chart could never recover from it")
