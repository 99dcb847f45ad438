"""Why a chart waits: its active step, since when, and for each transition out of it which parts of the condition
are false now, with live values.

The explanation is computed from the chart's declaration (the condition text as written) over a ``Snapshot``
of values, so it works wherever values can be had: the tag image of a running scan, registers read over
Modbus, or one row of a simulation trace. Expressions were type-checked when the chart was loaded; here they
are only evaluated again, by walking their syntax tree, so each part can be shown with its own value::

    unload: importing for 12 s (the house imports more than the start threshold)
      T3 importing -> start: false
        importing.T >= par.unload_start_delay_s  (12 >= 60: false)
        bat.voltage >= par.unload_start_cell_v * par.cells_series  (26.4 >= 26.12: true)

A value the snapshot does not have (an unmapped tag, the ``.T`` of a step that is not active) is shown as
``?``; a part that depends on it is unknown unless the rest decides it (``false and ?`` is false).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.sfc.model import ChartDecl, TransitionDecl


class _Unknown:
    """A value the snapshot does not have."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN: Any = _Unknown()
CLOCK_NAMES = ("now_h", "weekday", "dt")
TRUE_FALSE = {"true": True, "false": False, "True": True, "False": False}


class Snapshot(Protocol):
    """Values to explain with. Anything not known is ``UNKNOWN``."""

    def value(self, name: str) -> Any:
        """A tag's value (an enum as its name), or a clock name's (now_h, weekday, dt)."""

    def good(self, tag: str) -> Any:
        """True when the tag's quality is GOOD."""

    def step(self, chart: str) -> tuple[str | None, Any]:
        """The chart's active step and the seconds it has been active."""


@dataclass
class MappingSnapshot:
    """A snapshot from plain mappings: tag -> value, tag -> quality name, chart -> (step, seconds)."""

    values: Mapping[str, Any]
    qualities: Mapping[str, str] = field(default_factory=dict)
    steps: Mapping[str, tuple[str | None, Any]] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        return self.values.get(name, UNKNOWN)

    def good(self, tag: str) -> Any:
        quality = self.qualities.get(tag)
        return UNKNOWN if quality is None else quality == "GOOD"

    def step(self, chart: str) -> tuple[str | None, Any]:
        return self.steps.get(chart, (None, UNKNOWN))


@dataclass
class Part:
    """One piece of a condition with what it evaluated to."""

    text: str
    result: Any  # True, False or UNKNOWN
    shown: str = ""  # the values, e.g. "143.2 > 200"
    parts: list[Part] = field(default_factory=list)  # the operands of an and/or
    joined_by: str = ""  # "and" or "or" when it has parts


@dataclass
class TransitionWhy:
    transition: TransitionDecl
    condition: Part


@dataclass
class ChartWhy:
    chart: str
    step: str | None
    since_s: Any
    description: str
    transitions: list[TransitionWhy]
    enabled: Part | None  # the chart's enable condition, when it has one


def explain(decl: ChartDecl, snapshot: Snapshot) -> ChartWhy:
    """The active step of ``decl`` in ``snapshot`` and every transition out of it, part by part."""
    step, since = snapshot.step(decl.name)
    evaluator = _Evaluator(decl.name, snapshot)
    transitions = [TransitionWhy(t, evaluator.part(t.when.text)) for t in decl.leaving(step)] if step else []
    enabled = evaluator.part(decl.enable.text) if decl.enable is not None else None
    description = decl.steps[step].description if step in decl.steps else ""
    return ChartWhy(decl.name, step, since, description, transitions, enabled)


def render(why: ChartWhy) -> str:
    """The explanation as text, one line per condition part."""
    if why.step is None:
        return f"{why.chart}: active step unknown"
    since = "" if why.since_s is UNKNOWN else f" for {_duration(why.since_s)}"
    head = f"{why.chart}: {why.step}{since}" + (f" ({why.description})" if why.description else "")
    lines = [head]
    if why.enabled is not None and why.enabled.result is not True:
        lines.append(f"  held in its safe step while the enable condition is not true: {_line(why.enabled)}")
    if not why.transitions:
        lines.append("  no transition leaves this step")
    for t in why.transitions:
        decl = t.transition
        label = f"  {decl.label} {decl.source} -> {decl.target}" + (f" ({decl.description})" if decl.description else "")
        if t.condition.parts:
            lines.append(f"{label}: {_word(t.condition.result)}, {'all' if t.condition.joined_by == 'and' else 'any'} of:")
            lines += _tree(t.condition.parts, "    ")
        else:
            lines.append(f"{label}: {_line(t.condition)}")
    return "\n".join(lines)


def _tree(parts: list[Part], indent: str) -> list[str]:
    lines = []
    for part in parts:
        if part.parts:
            lines.append(f"{indent}{'all' if part.joined_by == 'and' else 'any'} of ({_word(part.result)}):")
            lines += _tree(part.parts, indent + "  ")
        else:
            lines.append(f"{indent}{_line(part)}")
    return lines


def _line(part: Part) -> str:
    shown = f"{part.shown}: " if part.shown and part.shown not in (part.text, _word(part.result)) else ""
    return f"{part.text}  ({shown}{_word(part.result)})"


def _word(result: Any) -> str:
    return {True: "true", False: "false"}.get(result, "?") if isinstance(result, bool) else "?"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n) or "0s"


def show(value: Any) -> str:
    """A value as the explanation prints it."""
    if value is UNKNOWN:
        return "?"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class _Evaluator:
    """Evaluates a checked chart expression over a snapshot, keeping the value of each part."""

    def __init__(self, chart: str, snapshot: Snapshot) -> None:
        self.chart = chart
        self.snapshot = snapshot

    def part(self, text: str) -> Part:
        node = ast.parse(" ".join(text.split()), mode="eval").body
        return self._part(node)

    def _part(self, node: ast.expr) -> Part:
        text = ast.unparse(node)
        if isinstance(node, ast.BoolOp):
            parts = [self._part(v) for v in node.values]
            conjunction = isinstance(node.op, ast.And)
            return Part(text, _combine(conjunction, [p.result for p in parts]), parts=parts,
                        joined_by="and" if conjunction else "or")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._part(node.operand)
            result = UNKNOWN if inner.result is UNKNOWN else not inner.result
            return Part(text, result, f"not {inner.shown or show(inner.result)}")
        if isinstance(node, ast.Compare):
            values = [self.value(node.left), *(self.value(c) for c in node.comparators)]
            shown = show(values[0]) + "".join(f" {_SYMBOL[type(op)]} {show(v)}"
                                              for op, v in zip(node.ops, values[1:], strict=True))
            return Part(text, self.value(node), shown)
        value = self.value(node)
        return Part(text, value, show(value))

    def value(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name | ast.Attribute):
            return self._name(node)
        if isinstance(node, ast.BoolOp):
            return _combine(isinstance(node.op, ast.And), [self.value(v) for v in node.values])
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand)
            if operand is UNKNOWN:
                return UNKNOWN
            return not operand if isinstance(node.op, ast.Not) else (-operand if isinstance(node.op, ast.USub)
                                                                     else +operand)
        if isinstance(node, ast.BinOp):
            return _arithmetic(type(node.op), self.value(node.left), self.value(node.right))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            test = self.value(node.test)
            return UNKNOWN if test is UNKNOWN else self.value(node.body if test else node.orelse)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self._call(node.func.id, node.args)
        return UNKNOWN

    def _name(self, node: ast.expr) -> Any:
        parts = _dotted(node)
        name = ".".join(parts)
        if name in TRUE_FALSE:
            return TRUE_FALSE[name]
        if len(parts) in (2, 3) and parts[-1] in ("X", "T"):
            chart, step = (self.chart, parts[0]) if len(parts) == 2 else (parts[0], parts[1])
            active, since = self.snapshot.step(chart)
            if active is None:
                return UNKNOWN
            if parts[-1] == "X":
                return active == step
            return since if active == step else UNKNOWN  # .T of an inactive step: kept, not on the wire
        return self.snapshot.value(name)

    def _compare(self, node: ast.Compare) -> Any:
        left = self.value(node.left)
        result: Any = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.value(right_node)
            if left is UNKNOWN or right is UNKNOWN:
                result = UNKNOWN
            elif not _COMPARE[type(op)](left, right):
                return False
            left = right
        return result

    def _call(self, name: str, args: list[ast.expr]) -> Any:
        if name == "ok":
            return self.snapshot.good(".".join(_dotted(args[0])))
        values = [self.value(a) for a in args]
        if any(v is UNKNOWN for v in values):
            return UNKNOWN
        if name == "clamp":
            x, lo, hi = values
            return lo if x < lo else hi if x > hi else x
        return {"min": min, "max": max, "abs": abs}[name](*values)


def _dotted(node: ast.expr) -> list[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "?")
    return parts[::-1]


def _combine(conjunction: bool, results: list[Any]) -> Any:
    decisive = not conjunction  # false decides an `and`, true decides an `or`
    if any(r is not UNKNOWN and bool(r) == decisive for r in results):
        return decisive
    return UNKNOWN if any(r is UNKNOWN for r in results) else not decisive


def _arithmetic(op: type, left: Any, right: Any) -> Any:
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    try:
        return _ARITHMETIC[op](left, right)
    except ZeroDivisionError:
        return math.nan


_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
}
_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
}
