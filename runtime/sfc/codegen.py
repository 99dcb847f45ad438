"""Each step of a chart compiled into two small Python functions, so a scan costs one call per chart.

``run(ctx) -> int`` is a step's steady scan: it updates the step's ``.T`` and ``sfc.<chart>.step_time``
(and the clock names the chart uses: ``now_h``/``weekday``/``dt`` through ``CLOCK(ctx)``, or only ``dt``, stored
straight from ``ctx.dt`` into the namespace, as the charts of the reference site need), checks the guard (required
inputs GOOD, enable) and the outgoing conditions in priority order, and returns HOLD when the guard fails,
the index of the first transition that clears, or -1 after writing every output of the chart for this step.
The safe step's ``run`` also ends a hold (``if HELD: RELEASE()``) once the guard is true again. For a step
with two transitions and three outputs it reads like::

    def run(ctx):
        elapsed = ctx.t - _flag1.since
        _flag1.t = elapsed
        V['sfc.keep.step_time'] = elapsed
        if not (Q['bat.voltage'] is GOOD and V['cmd.mode'] == 1):
            return -2
        if V['bat.voltage'] < V['par.keep_start_v']:
            return 0
        if _flag3.x:
            return 1
        STAGED['charger.enable'] = True
        STAGED['charger.current_sp'] = V['par.keep_current_a'] if elapsed < 1800.0 else 0.0
        A2.offer(ctx, 1, U)
        return -1

``drive(ctx, elapsed, entry)`` only writes the outputs; the executor calls it in the scan a step becomes
active (P1 actions fire, P0 pulses of the step just left apply) and while the chart is held in its safe step.

An output's value is built in layers, later ones winning: its idle value (or U, 'undriven', for arbitrated
and hold outputs), what an S stored (``ST[slot]``), the step's N / D / L / P1 actions in declared order, and
P0 pulses (``PU``). Only already-checked expression trees (runtime/sfc/expr.py) and names this module
generates go into the code; it runs in the chart's namespace, which has no builtins.

Outputs are written straight into the staged image (``STAGED`` is ``db.staged``) rather than through
``ScanContext.write``: the generated code names no tag but the chart's declared outputs, which are its
``writes``, so the ownership check would repeat at every write what load already guarantees. Arbitrated
outputs go through ``Arbiter.offer``, which does use ``ctx.write``.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.sfc.expr import call_node, constant_node, name_node, subscript_node


@dataclass
class OutputCode:
    """What the generator needs to know about one output of the chart."""

    slot: int
    tag: str
    idle: Any
    undriven_is_idle: bool  # False for arbitrated and hold outputs: undriven means 'write nothing / offer U'
    arbiter: str | None  # namespace name of its Arbiter
    rank: int
    stored: bool  # some step has an S action on it
    pulsed: bool  # some step has a P0 action on it


@dataclass
class ActionCode:
    qualifier: str  # N, D, L or P1 (S, R and P0 act on entry and exit, not here)
    slot: int
    value: ast.expr
    time: ast.expr | None = None


def _value(output: OutputCode, actions: Sequence[ActionCode], for_drive: bool) -> tuple[ast.expr, bool]:
    """The value expression of one output in one step, and whether it may be U (undriven).

    ``run`` never runs in an entry scan: its code leaves P1 and P0 pulses out. ``drive`` tests its ``entry``
    parameter for P1 and applies the pulses.
    """
    value: ast.expr = constant_node(output.idle) if output.undriven_is_idle else name_node("U")
    maybe_undriven = not output.undriven_is_idle
    if output.stored:
        value = ast.IfExp(test=ast.Compare(left=subscript_node("ST", output.slot), ops=[ast.IsNot()],
                                           comparators=[constant_node(None)]),
                          body=call_node(subscript_node("ST", output.slot)), orelse=value)
    for action in actions:
        if action.slot != output.slot:
            continue
        q = action.qualifier
        if q == "N":
            value, maybe_undriven = action.value, False
        elif q in ("D", "L"):
            test = ast.Compare(left=name_node("elapsed"), ops=[ast.GtE() if q == "D" else ast.Lt()],
                               comparators=[action.time])
            value = ast.IfExp(test=test, body=action.value, orelse=value)
        elif q == "P1" and for_drive:
            value = ast.IfExp(test=name_node("entry"), body=action.value, orelse=value)
    if output.pulsed and for_drive:
        value = ast.IfExp(test=ast.Compare(left=constant_node(output.slot), ops=[ast.In()], comparators=[name_node("PU")]),
                          body=subscript_node("PU", output.slot), orelse=value)
    return value, maybe_undriven


def _write(output: OutputCode, value: ast.expr, maybe_undriven: bool) -> list[ast.stmt]:
    if output.arbiter is not None:
        offer = ast.Attribute(value=name_node(output.arbiter), attr="offer", ctx=ast.Load())
        return [ast.Expr(value=call_node(offer, name_node("ctx"), constant_node(output.rank), value))]
    if not maybe_undriven:
        return [_stage(output.tag, value)]
    if isinstance(value, ast.Name):  # U: a hold output this step never drives
        return []
    # a hold output the step may drive: write only when it does
    store = ast.Assign(targets=[ast.Name(id="value", ctx=ast.Store())], value=value)
    driven = ast.Compare(left=name_node("value"), ops=[ast.IsNot()], comparators=[name_node("U")])
    return [store, ast.If(test=driven, body=[_stage(output.tag, name_node("value"))], orelse=[])]


def _stage(tag: str, value: ast.expr) -> ast.Assign:
    target = ast.Subscript(value=name_node("STAGED"), slice=constant_node(tag), ctx=ast.Store())
    return ast.Assign(targets=[target], value=value)


def _outputs(outputs: Sequence[OutputCode], actions: Sequence[ActionCode], for_drive: bool) -> list[ast.stmt]:
    body: list[ast.stmt] = []
    for output in outputs:
        body += _write(output, *_value(output, actions, for_drive))
    return body


def _choice(conditions: Sequence[ast.expr], guard: ast.expr | None, hold: int, release: bool) -> list[ast.stmt]:
    body: list[ast.stmt] = []
    if guard is not None:
        body.append(ast.If(test=ast.UnaryOp(op=ast.Not(), operand=guard), body=[ast.Return(value=constant_node(hold))],
                           orelse=[]))
    if release:  # the safe step, with the guard true: end a hold
        body.append(ast.If(test=name_node("HELD"), body=[ast.Expr(value=call_node("RELEASE"))], orelse=[]))
    for index, condition in enumerate(conditions):
        body.append(ast.If(test=condition, body=[ast.Return(value=constant_node(index))], orelse=[]))
    return body


def _clock(names: Collection[str]) -> list[ast.stmt]:
    """The start of a run: ``CLOCK(ctx)`` for a chart that reads the wall clock (now_h, weekday); for one that
    only reads ``dt`` (every chart of the reference site), ``global dt; dt = ctx.dt``, a store into the
    namespace without a call (this runs for every chart every scan)."""
    if {"now_h", "weekday"} & set(names):
        return [ast.Expr(value=call_node("CLOCK", name_node("ctx")))]
    if "dt" in names:
        dt = ast.Attribute(value=name_node("ctx"), attr="dt", ctx=ast.Load())
        return [ast.Global(names=["dt"]), ast.Assign(targets=[ast.Name(id="dt", ctx=ast.Store())], value=dt)]
    return []


def _bookkeeping(flag: str, time_tag: str) -> list[ast.stmt]:
    elapsed = ast.BinOp(left=ast.Attribute(value=name_node("ctx"), attr="t", ctx=ast.Load()), op=ast.Sub(),
                        right=ast.Attribute(value=name_node(flag), attr="since", ctx=ast.Load()))
    return [
        ast.Assign(targets=[ast.Name(id="elapsed", ctx=ast.Store())], value=elapsed),
        ast.Assign(targets=[ast.Attribute(value=name_node(flag), attr="t", ctx=ast.Store())], value=name_node("elapsed")),
        ast.Assign(targets=[ast.Subscript(value=name_node("V"), slice=constant_node(time_tag), ctx=ast.Store())],
                   value=name_node("elapsed")),
    ]


class _OwnTime(ast.NodeTransformer):
    """In a step's own functions its ``.T`` is the local ``elapsed``. Works on a copy: the checked trees are
    shared (the guard by every step)."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def rewrite(self, statements: list[ast.stmt]) -> list[ast.stmt]:
        return [self.visit(copy.deepcopy(statement)) for statement in statements]

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        if isinstance(node.value, ast.Name) and node.value.id == self.flag and node.attr == "t":
            return name_node("elapsed")
        return self.generic_visit(node)


# the image and its helpers, bound as keyword-only defaults: a local lookup is cheaper than a global one
_BOUND = ("V", "Q", "GOOD", "STAGED", "U")


def _function(name: str, params: Sequence[str], body: list[ast.stmt], namespace: dict[str, Any],
              filename: str) -> Callable[..., Any]:
    args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=p) for p in params],
                         kwonlyargs=[ast.arg(arg=n) for n in _BOUND], kw_defaults=[name_node(n) for n in _BOUND],
                         defaults=[])
    func = ast.FunctionDef(name=name, args=args, body=body or [ast.Pass()], decorator_list=[], returns=None,
                           type_comment=None)
    module = ast.fix_missing_locations(ast.Module(body=[func], type_ignores=[]))
    local: dict[str, Any] = {}
    exec(compile(module, filename, "exec"), namespace, local)  # noqa: S102 - generated from checked trees
    return local[name]


def step_functions(step: str, flag: str, time_tag: str, outputs: Sequence[OutputCode],
                   actions: Sequence[ActionCode], conditions: Sequence[ast.expr], guard: ast.expr | None, hold: int,
                   clock: Collection[str], safe: bool, namespace: dict[str, Any],
                   filename: str) -> tuple[Callable[..., int], Callable[..., None]]:
    """``run`` and ``drive`` of one step (see the module docstring); ``flag`` is the namespace name of the
    step's StepFlag, ``time_tag`` the chart's sfc.<chart>.step_time; ``clock``: the clock names the chart's
    expressions use (now_h, weekday, dt); ``safe``: this is the chart's safe step."""
    own_time = _OwnTime(flag)
    run_body = (_clock(clock) + _bookkeeping(flag, time_tag)
                + own_time.rewrite(_choice(conditions, guard, hold, safe and guard is not None)
                                   + _outputs(outputs, actions, False))
                + [ast.Return(value=constant_node(-1))])
    run = _function(f"run_{step}", ("ctx",), run_body, namespace, filename)
    drive = _function(f"drive_{step}", ("ctx", "elapsed", "entry"), own_time.rewrite(_outputs(outputs, actions, True)),
                      namespace, filename)
    return run, drive

