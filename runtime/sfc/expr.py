"""Chart expressions: a small, safe subset of Python, type-checked and compiled once at load.

What an expression may contain (anything else is refused at load, with file:line):

    literals    1, 2.5, true / false (True / False), 'name' (only compared with an enum tag)
    names       tags by dotted name: bat.cell_v_max, par.unload_start_import_w
                step flags: <step>.X / <step>.T of this chart, <chart>.<step>.X / .T of any chart
                (.X is true while the step is active, .T its seconds since activation, kept after it leaves)
                now_h (hour of the day, 0 <= now_h < 24), weekday (0 = Monday), dt (seconds since last scan)
    operators   + - * / // %    < <= > >= == !=    and or not    a if condition else b
    functions   min(a, b, ...), max(a, b, ...), abs(x), clamp(x, lo, hi), ok(tag) (quality is GOOD)

Types are checked at load: ``and``/``or``/``not`` take true/false, arithmetic takes numbers, a bool is never
compared with a number, an enum tag is compared only with one of its names (``cmd.mode == 'force_charge'``,
compiled to the enum's code), a condition must be true/false. The checked tree is rewritten into plain Python
that reads ``db.values`` (``V['bat.voltage']``), ``db.quality`` and step flags directly, with what reads
nothing folded to a constant; runtime/sfc/codegen.py inlines it into each step's scan function, which runs
with no builtins: a condition costs a few dict lookups.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from runtime.config.errors import allowed, did_you_mean
from runtime.names import chart_tag
from runtime.tags import Quality, TagDB, TagDef, TagType

MAX_LENGTH = 1000
MAX_DEPTH = 40


class ExprError(Exception):
    """An expression is refused; the message says what and why."""


@dataclass(frozen=True)
class Kind:
    """The type of an expression: bool, int, float, enum (with its names) or text (a quoted literal)."""

    name: str
    values: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return self.name in ("int", "float")


BOOL = Kind("bool")
INT = Kind("int")
FLOAT = Kind("float")
TEXT = Kind("text")
NUMBER = Kind("number")  # what a duration expression must be: int or float


def kind_of(tag: TagDef) -> Kind:
    if tag.type == TagType.ENUM:
        return Kind("enum", tag.values)
    return {TagType.BOOL: BOOL, TagType.INT: INT, TagType.FLOAT: FLOAT}[tag.type]


class StepFlag:
    """The live flags of one step, shared by every chart whose expressions read them."""

    __slots__ = ("chart", "step", "x", "t", "since")

    def __init__(self, chart: str, step: str) -> None:
        self.chart = chart
        self.step = step
        self.x = False  # active
        self.t = 0.0  # seconds since activation; kept after the step leaves, reset on re-entry
        self.since = 0.0  # scan time (ctx.t) of the last activation

    def __repr__(self) -> str:
        return f"StepFlag({self.chart}.{self.step}, x={self.x}, t={self.t:g})"


CLOCK = {"now_h": FLOAT, "weekday": INT, "dt": FLOAT}
FUNCTIONS = ("abs", "clamp", "max", "min", "ok")
_TRUE_FALSE = {"true": True, "false": False}

_REFUSED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts (x[...])",
    ast.Slice: "slices",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.NamedExpr: "assignments (:=)",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Starred: "* unpacking",
}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_EQUALITY = (ast.Eq, ast.NotEq)
_BITS = "bit operators (& | ^ ~ << >>) are not allowed; use and / or / not on true/false values"

FlagResolver = Callable[[str, str, Any], StepFlag]  # (chart, step, origin of the expression) -> flag


@dataclass
class Compiled:
    """One checked expression: its canonical text, type, generated code and the tags it reads."""

    text: str
    kind: Kind
    code: ast.expr  # the rewritten tree, inlined into the step functions (runtime/sfc/codegen.py)
    fn: Callable[[], Any]  # the same code as a function of its own
    reads: frozenset[str]
    clock: frozenset[str]  # the clock variables it uses (now_h, weekday, dt)


class Scope:
    """What names mean inside one chart, and the namespace its compiled code runs in.

    ``flag(chart, step, origin)`` returns the shared flag of a step of another chart (or raises ExprError);
    ``origin`` is whatever the caller passed to ``compile`` (where the expression was written). This chart's
    own steps are given by name in ``steps``.
    """

    def __init__(self, db: TagDB, chart: str, steps: dict[str, StepFlag], flag: FlagResolver) -> None:
        self.db = db
        self.chart = chart
        self.steps = steps
        self._flag = flag
        self.namespace: dict[str, Any] = {
            "__builtins__": {}, "V": db.values, "Q": db.quality, "GOOD": Quality.GOOD,
            "min": min, "max": max, "abs": abs, "float": float, "round": round,
            "now_h": 0.0, "weekday": 0, "dt": 0.0,
        }
        self._flag_names: dict[int, str] = {}
        self._temporaries = 0

    def flag(self, chart: str, step: str, origin: Any) -> StepFlag:
        if chart == self.chart:
            found = self.steps.get(step)
            if found is None:
                raise ExprError(f"this chart has no step {step!r}{did_you_mean(step, self.steps)}")
            return found
        return self._flag(chart, step, origin)

    def flag_name(self, flag: StepFlag) -> str:
        """The global name the generated code uses for a step flag."""
        name = self._flag_names.get(id(flag))
        if name is None:
            name = self._flag_names[id(flag)] = f"_flag{len(self._flag_names)}"
            self.namespace[name] = flag
        return name

    def temporary(self) -> str:
        """A fresh local name for generated code (no expression can spell it: see _dotted_name)."""
        self._temporaries += 1
        return f"_tmp{self._temporaries}"

    def known_names(self) -> list[str]:
        flags = [f"{step}.{x}" for step in self.steps for x in ("X", "T")]
        return [*self.db.defs, *flags, *CLOCK, *_TRUE_FALSE]

    def compile(self, text: str, want: Kind, place: str = "a condition", origin: Any = None) -> Compiled:
        """Check ``text`` and compile it; ``want`` is BOOL for conditions, NUMBER for durations, or an
        output's kind; ``place`` names it in messages. Raise ExprError saying what is wrong."""
        tree = _parse(text)
        checker = _Checker(self, origin)
        code, kind = checker.check(tree.body)
        code = _convert(_fold(code), kind, want, text, place)
        kind = want if want is not NUMBER else kind
        return Compiled(ast.unparse(tree.body), kind, code, self.function(code), frozenset(checker.reads),
                        frozenset(checker.clock))

    def function(self, code: ast.expr) -> Callable[[], Any]:
        """A no-argument function evaluating generated code in this chart's namespace."""
        lam = ast.Lambda(args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
                         body=code)
        tree = ast.fix_missing_locations(ast.Expression(body=lam))
        return eval(compile(tree, f"<chart {self.chart}>", "eval"), self.namespace)  # noqa: S307 - checked tree


def canonical(text: str) -> str:
    """An expression in one canonical spelling (spaces around operators, comments gone); as written if it
    does not parse."""
    try:
        return ast.unparse(_parse(text).body)
    except ExprError:
        return " ".join(text.split())


def _parse(text: str) -> ast.Expression:
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    one_line = " ".join(text.split("\n"))  # YAML block scalars keep newlines; an expression is one line
    if not one_line.strip():
        raise ExprError("empty expression")
    try:
        return ast.parse(one_line.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"not a valid expression ({exc.msg}, column {exc.offset or 0}): {text.strip()!r}") from None
    except (ValueError, RecursionError, MemoryError):
        raise ExprError("not a valid expression (too deeply nested)") from None


def _convert(code: ast.expr, kind: Kind, want: Kind, text: str, place: str) -> ast.expr:
    """Fit a checked expression to what its place needs (a condition, a duration, an output's type)."""
    shown = text.strip()
    if want.name == "enum":
        if kind is TEXT:
            return _enum_code(code, want)
        if kind == want:
            return code
        raise ExprError(f"{shown!r} is {_a(kind)}, but {place} is an enum: write one of its names in quotes, "
                        f"{allowed(want.values)}")
    if kind is TEXT:
        raise ExprError(f"text {shown} can only be compared with an enum tag, e.g. cmd.mode == 'auto'")
    if want is BOOL:
        if kind is not BOOL:
            raise ExprError(f"{shown!r} is {_a(kind)}, but {place} must be true or false")
        return code
    if not kind.numeric:  # want is a number
        raise ExprError(f"{shown!r} is {_a(kind)}, but {place} must be a number")
    if want is FLOAT and kind is INT:
        return constant_node(float(code.value)) if isinstance(code, ast.Constant) else call_node("float", code)
    if want is INT and kind is FLOAT:
        return constant_node(round(code.value)) if isinstance(code, ast.Constant) else call_node("round", code)
    return code


def _fold(code: ast.expr) -> ast.expr:
    """Evaluate at load what reads nothing (2 * 60, -1), so constant values cost nothing per scan."""
    if isinstance(code, ast.Constant) or any(isinstance(n, (ast.Name, ast.Subscript, ast.Attribute, ast.Call))
                                             for n in ast.walk(code)):
        return code
    tree = ast.fix_missing_locations(ast.Expression(body=code))
    try:
        value = eval(compile(tree, "<constant>", "eval"), {"__builtins__": {}})  # noqa: S307 - operators only
    except ArithmeticError as exc:
        raise ExprError(f"{ast.unparse(code)!r} cannot be computed: {exc}") from None
    return constant_node(value)


def _a(kind: Kind) -> str:
    return {"bool": "true/false", "int": "an integer", "float": "a number", "text": "text",
            "number": "a number"}.get(kind.name, "an enum")


# ---- building generated code (also used by runtime/sfc/codegen.py) -----------------------------------------

def constant_node(value: Any) -> ast.Constant:
    return ast.Constant(value=value)


def name_node(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def call_node(func: ast.expr | str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=name_node(func) if isinstance(func, str) else func, args=list(args), keywords=[])


def subscript_node(table: str, key: str | int) -> ast.Subscript:
    """``table[key]``, e.g. V['bat.voltage']."""
    return ast.Subscript(value=name_node(table), slice=constant_node(key), ctx=ast.Load())


def _good(tag: str) -> ast.Compare:
    """``Q[tag] is GOOD``."""
    return ast.Compare(left=subscript_node("Q", tag), ops=[ast.Is()], comparators=[name_node("GOOD")])


def _enum_code(code: ast.expr, kind: Kind) -> ast.expr:
    """Text (a literal, or 'a' if c else 'b') as the codes of the enum ``kind``."""
    if isinstance(code, ast.IfExp):
        return ast.IfExp(test=code.test, body=_enum_code(code.body, kind), orelse=_enum_code(code.orelse, kind))
    name = code.value  # a text literal: the only other thing of kind text
    if name not in kind.values:
        raise ExprError(f"{name!r} is not one of {', '.join(kind.values)}{did_you_mean(name, kind.values)}")
    return constant_node(kind.values.index(name))


def dotted(node: ast.expr) -> list[str] | None:
    """['bat', 'cell_v_max'] for bat.cell_v_max; None if the node is not a plain dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


class _Checker:
    """Walks a parsed expression: refuses what is not allowed, infers types, rewrites names into reads."""

    def __init__(self, scope: Scope, origin: Any) -> None:
        self.scope = scope
        self.origin = origin
        self.reads: set[str] = set()
        self.clock: set[str] = set()
        self.depth = 0

    def check(self, node: ast.expr) -> tuple[ast.expr, Kind]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested more than {MAX_DEPTH} levels deep")
        try:
            rule = self._RULES.get(type(node))
            if rule is None:
                what = _REFUSED.get(type(node), type(node).__name__)
                raise ExprError(f"{what} not allowed: {ast.unparse(node)!r}")
            return rule(self, node)
        finally:
            self.depth -= 1

    # ---- leaves ---------------------------------------------------------------------------------------------

    def _literal(self, node: ast.Constant) -> tuple[ast.expr, Kind]:
        value = node.value
        if isinstance(value, bool):
            return node, BOOL
        if isinstance(value, int):
            return node, INT
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ExprError(f"number {ast.unparse(node)} is too large")
            return node, FLOAT
        if isinstance(value, str):
            return node, TEXT
        raise ExprError(f"{ast.unparse(node)} is not allowed: only numbers, true/false and enum names in quotes")

    def _dotted_name(self, node: ast.expr) -> tuple[ast.expr, Kind]:
        parts = dotted(node)
        if parts is None:
            raise ExprError(f"attribute access not allowed: {ast.unparse(node)!r}")
        for part in parts:
            if part.startswith("__"):
                raise ExprError(f"double-underscore names are not allowed: {'.'.join(parts)!r}")
        name = ".".join(parts)
        tags = self.scope.db.defs
        if len(parts) == 1:
            found = self._single_name(name)
            if found is not None:
                return found
        if parts[-1] in ("X", "T") and len(parts) in (2, 3):
            chart, step = (self.scope.chart, parts[0]) if len(parts) == 2 else (parts[0], parts[1])
            if len(parts) == 3 and chart != self.scope.chart:
                self.reads.add(chart_tag(chart, "step"))
            flag = self.scope.flag(chart, step, self.origin)
            code = ast.Attribute(value=name_node(self.scope.flag_name(flag)),
                                 attr=parts[-1].lower(), ctx=ast.Load())
            return code, BOOL if parts[-1] == "X" else FLOAT
        if name in tags:
            self.reads.add(name)
            return subscript_node("V", name), kind_of(tags[name])
        if parts[-1] in ("x", "t") and len(parts) in (2, 3):
            flag = ".".join([*parts[:-1], parts[-1].upper()])
            raise ExprError(f"unknown name {name!r}; step flags are written in capitals (did you mean {flag!r}?)")
        for cut in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in tags:
                raise ExprError(f"attribute access not allowed: {prefix!r} is a tag and has no "
                                f"{'.'.join(parts[cut:])!r}")
        raise ExprError(f"unknown name {name!r}{did_you_mean(name, self.scope.known_names())}")

    def _single_name(self, name: str) -> tuple[ast.expr, Kind] | None:
        if name in _TRUE_FALSE:
            return constant_node(_TRUE_FALSE[name]), BOOL
        if name in CLOCK:
            self.clock.add(name)
            return name_node(name), CLOCK[name]
        if name == "now":
            raise ExprError("'now' is a date and time and cannot be computed with; use now_h (hour of the day, "
                            "0..24) or weekday (0 = Monday)")
        if name in FUNCTIONS:
            raise ExprError(f"{name} is a function; call it, e.g. {name}(...)")
        return None

    # ---- operators ------------------------------------------------------------------------------------------

    def _bool_op(self, node: ast.BoolOp) -> tuple[ast.expr, Kind]:
        word = "and" if isinstance(node.op, ast.And) else "or"
        values = []
        for operand in node.values:
            code, kind = self.check(operand)
            if kind is not BOOL:
                raise ExprError(f"'{word}' needs true/false on both sides; {ast.unparse(operand)!r} is {_a(kind)}")
            values.append(code)
        return ast.BoolOp(op=node.op, values=values), BOOL

    def _unary_op(self, node: ast.UnaryOp) -> tuple[ast.expr, Kind]:
        if isinstance(node.op, ast.Invert):
            raise ExprError(_BITS)
        code, kind = self.check(node.operand)
        if isinstance(node.op, ast.Not):
            if kind is not BOOL:
                raise ExprError(f"'not' needs true/false; {ast.unparse(node.operand)!r} is {_a(kind)}")
            return ast.UnaryOp(op=node.op, operand=code), BOOL
        if not kind.numeric:
            raise ExprError(f"a sign needs a number; {ast.unparse(node.operand)!r} is {_a(kind)}")
        return _fold(ast.UnaryOp(op=node.op, operand=code)), kind

    def _bin_op(self, node: ast.BinOp) -> tuple[ast.expr, Kind]:
        symbol = _ARITHMETIC.get(type(node.op))
        if symbol is None:
            if isinstance(node.op, ast.Pow):
                raise ExprError("** is not allowed; write the multiplication, e.g. x * x")
            if isinstance(node.op, ast.MatMult):
                raise ExprError("@ is not allowed")
            raise ExprError(_BITS)
        left, left_kind = self.check(node.left)
        right, right_kind = self.check(node.right)
        for side, kind in ((node.left, left_kind), (node.right, right_kind)):
            if not kind.numeric:
                raise ExprError(f"'{symbol}' needs numbers; {ast.unparse(side)!r} is {_a(kind)}")
        both_int = left_kind is INT and right_kind is INT and symbol != "/"
        return _fold(ast.BinOp(left=left, op=node.op, right=right)), INT if both_int else FLOAT

    def _compare(self, node: ast.Compare) -> tuple[ast.expr, Kind]:
        for op in node.ops:
            if not isinstance(op, _ORDER + _EQUALITY):
                raise ExprError("'is' and 'in' are not allowed; compare with == or != (joined by or)")
        operands = [node.left, *node.comparators]
        checked = [self.check(operand) for operand in operands]
        codes = [code for code, _ in checked]
        kinds = [kind for _, kind in checked]
        for i, op in enumerate(node.ops):
            left, right = kinds[i], kinds[i + 1]
            shown = f"{ast.unparse(operands[i])} {_SYMBOLS[type(op)]} {ast.unparse(operands[i + 1])}"
            if left.numeric and right.numeric:
                continue
            if TEXT in (left, right) and {left.name, right.name} == {"text", "enum"}:
                enum = left if right is TEXT else right
                text_at = i + 1 if right is TEXT else i
                self._equality_only(op, shown, "enum names have no order")
                codes[text_at] = _enum_code(codes[text_at], enum)
                continue
            if left == right and left.name in ("bool", "enum"):
                self._equality_only(op, shown, "true/false have no order" if left is BOOL
                                    else "enum names have no order")
                continue
            raise ExprError(f"cannot compare {_a(left)} with {_a(right)}: {shown!r}{_compare_hint(left, right)}")
        return ast.Compare(left=codes[0], ops=node.ops, comparators=codes[1:]), BOOL

    @staticmethod
    def _equality_only(op: ast.cmpop, shown: str, why: str) -> None:
        if not isinstance(op, _EQUALITY):
            raise ExprError(f"{why}; use == or !=: {shown!r}")

    def _if_exp(self, node: ast.IfExp) -> tuple[ast.expr, Kind]:
        test, test_kind = self.check(node.test)
        if test_kind is not BOOL:
            raise ExprError(f"the condition of 'if' must be true/false; {ast.unparse(node.test)!r} is "
                            f"{_a(test_kind)}")
        body, body_kind = self.check(node.body)
        orelse, else_kind = self.check(node.orelse)
        if body_kind.numeric and else_kind.numeric:
            kind = INT if body_kind is INT and else_kind is INT else FLOAT
        elif body_kind == else_kind:  # text too: names of an enum, resolved by whatever compares or sets it
            kind = body_kind
        elif {body_kind.name, else_kind.name} == {"enum", "text"}:
            kind = body_kind if body_kind is not TEXT else else_kind
            body = _enum_code(body, kind) if body_kind is TEXT else body
            orelse = _enum_code(orelse, kind) if else_kind is TEXT else orelse
        else:
            raise ExprError(f"both sides of 'if ... else' must have the same type; {ast.unparse(node.body)!r} is "
                            f"{_a(body_kind)}, {ast.unparse(node.orelse)!r} is {_a(else_kind)}")
        return ast.IfExp(test=test, body=body, orelse=orelse), kind

    # ---- calls ----------------------------------------------------------------------------------------------

    def _function_call(self, node: ast.Call) -> tuple[ast.expr, Kind]:
        if not isinstance(node.func, ast.Name):
            raise ExprError(f"only the functions {', '.join(FUNCTIONS)} can be called: {ast.unparse(node)!r}")
        name = node.func.id
        if name not in FUNCTIONS:
            raise ExprError(f"calling {name!r} is not allowed{did_you_mean(name, FUNCTIONS)}; "
                            f"the functions are {', '.join(FUNCTIONS)}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ExprError(f"{name}() takes plain arguments only: {ast.unparse(node)!r}")
        if name == "ok":
            return self._ok(node)
        count = {"abs": (1, 1), "clamp": (3, 3)}.get(name, (2, 99))
        if not count[0] <= len(node.args) <= count[1]:
            need = f"{count[0]}" if count[0] == count[1] else f"at least {count[0]}"
            raise ExprError(f"{name}() takes {need} argument(s), got {len(node.args)}: {ast.unparse(node)!r}")
        args, kinds = [], []
        for arg in node.args:
            code, kind = self.check(arg)
            if not kind.numeric:
                raise ExprError(f"{name}() needs numbers; {ast.unparse(arg)!r} is {_a(kind)}")
            args.append(code)
            kinds.append(kind)
        kind = INT if all(k is INT for k in kinds) else FLOAT
        if kind is FLOAT:  # min(x, 0) of a float x gives a float, also when the 0 wins
            args = [constant_node(float(a.value)) if isinstance(a, ast.Constant) else a for a in args]
        if name == "clamp":  # lo if x < lo, hi if x > hi, else x: inline, x evaluated once
            x = self.scope.temporary()
            first = ast.NamedExpr(target=ast.Name(id=x, ctx=ast.Store()), value=args[0])
            above = ast.IfExp(test=ast.Compare(left=name_node(x), ops=[ast.Gt()], comparators=[args[2]]), body=args[2],
                              orelse=name_node(x))
            return ast.IfExp(test=ast.Compare(left=first, ops=[ast.Lt()], comparators=[args[1]]), body=args[1],
                             orelse=above), kind
        return call_node(name, *args), kind

    def _ok(self, node: ast.Call) -> tuple[ast.expr, Kind]:
        parts = dotted(node.args[0]) if len(node.args) == 1 else None
        tag = ".".join(parts) if parts else ""
        if tag not in self.scope.db.defs:
            hint = did_you_mean(tag, self.scope.db.defs) if tag else ""
            raise ExprError(f"ok() takes one tag name, e.g. ok(bat.voltage): {ast.unparse(node)!r}{hint}")
        self.reads.add(tag)
        return _good(tag), BOOL

    _RULES: dict[type, Callable[[_Checker, Any], tuple[ast.expr, Kind]]] = {
        ast.Constant: _literal,
        ast.Name: _dotted_name,
        ast.Attribute: _dotted_name,
        ast.BoolOp: _bool_op,
        ast.UnaryOp: _unary_op,
        ast.BinOp: _bin_op,
        ast.Compare: _compare,
        ast.IfExp: _if_exp,
        ast.Call: _function_call,
    }


def _compare_hint(left: Kind, right: Kind) -> str:
    if "enum" in (left.name, right.name) or TEXT in (left, right):
        return "; compare an enum tag with one of its names in quotes, e.g. cmd.mode == 'auto'"
    if BOOL in (left, right):
        return "; a true/false value is used as is (x, not x), never compared with a number"
    return ""


def quality_guard(tags: Iterable[str]) -> ast.expr | None:
    """``Q[a] is GOOD and Q[b] is GOOD ...`` for the required inputs, or None if there are none."""
    checks = [_good(tag) for tag in tags]
    if not checks:
        return None
    return checks[0] if len(checks) == 1 else ast.BoolOp(op=ast.And(), values=checks)


def true_guard(tags: Iterable[str]) -> ast.expr | None:
    """``V[a] and V[b] ...`` for boolean tags that must be true, or None if there are none."""
    checks = [subscript_node("V", tag) for tag in tags]
    if not checks:
        return None
    return checks[0] if len(checks) == 1 else ast.BoolOp(op=ast.And(), values=checks)


def all_of(*parts: ast.expr | None) -> ast.expr | None:
    """``a and b and ...`` of the parts that are not None (None if none is)."""
    present: list[ast.expr] = []
    for part in parts:
        if isinstance(part, ast.BoolOp) and isinstance(part.op, ast.And):
            present += part.values
        elif part is not None:
            present.append(part)
    if not present:
        return None
    return present[0] if len(present) == 1 else ast.BoolOp(op=ast.And(), values=present)
