"""Expression safety: hostile and broken expressions are refused at load, each with the file:line it is on."""

from __future__ import annotations

import pytest

CHART = """\
name: e
initial: a
safe: a
outputs:
  t.out: {}
steps:
  a: {}
  b: {actions: [{qualifier: N, set: t.out}]}
transitions:
  - from: a
    to: b
    when: |-
      %s
  - {from: b, to: a, when: not t.go}
"""

HOSTILE = [
    ("t.x.__class__", "double-underscore names are not allowed"),
    ("t.x.__class__.__bases__[0].__subclasses__()", "only the functions"),
    ("().__class__", "attribute access not allowed"),
    ("'abc'.upper() == 'ABC'", "only the functions"),
    ("t.x.real > 1", "attribute access not allowed: 't.x' is a tag"),
    ("t.mode[0] == 1", "subscripts"),
    ("(lambda: True)()", "only the functions"),
    ("lambda: True", "lambda not allowed"),
    ("[x for x in (1, 2)] == []", "comprehensions not allowed"),
    ("any(x > 1 for x in (t.x,))", "calling 'any' is not allowed"),
    ("import os", "not a valid expression"),
    ("__import__('os').system('true')", "only the functions"),
    ("__import__('os')", "calling '__import__' is not allowed"),
    ("open('/etc/passwd') == 1", "calling 'open' is not allowed"),
    ("eval('1') == 1", "calling 'eval' is not allowed"),
    ("maxx(t.x, 1) > 0", "calling 'maxx' is not allowed (did you mean 'max'?)"),
    ("bat.voltag > 3.4", "unknown name 'bat.voltag'"),
    ("t.xx > 1", "unknown name 't.xx' (did you mean 't.x'?)"),
    ("b.x", "unknown name 'b.x'; step flags are written in capitals (did you mean 'b.X'?)"),
    ("nosuch.step.X", "no chart 'nosuch' among this site's programs"),
    ("e.nostep.X", "this chart has no step 'nostep'"),
    ("t.flag > 1.5", "cannot compare true/false with a number"),
    ("t.flag == 1", "cannot compare true/false with an integer"),
    ("(y := 1) == 1", "assignments (:=) not allowed"),
    ("f'{t.x}' == 'a'", "f-strings not allowed"),
    ("t.x ** 2 > 1", "** is not allowed"),
    ("t.n & 1 == 1", "bit operators"),
    ("~t.n == 1", "bit operators"),
    ("t.mode == 'turbo'", "'turbo' is not one of auto, off, force_charge"),
    ("t.mode == 'forcecharge'", "(did you mean 'force_charge'?)"),
    ("t.mode == 1", "compare an enum tag with one of its names in quotes"),
    ("t.mode > 'auto'", "enum names have no order"),
    ("t.x", "is a number, but a condition must be true or false"),
    ("t.flag and t.x", "'and' needs true/false on both sides"),
    ("not t.x", "'not' needs true/false"),
    ("t.flag + 1 > 0", "'+' needs numbers"),
    ("min(t.x) > 0", "min() takes at least 2 argument(s)"),
    ("max(*(1, 2)) > 0", "max() takes plain arguments only"),
    ("abs(x=1) > 0", "abs() takes plain arguments only"),
    ("now > 3", "'now' is a date and time"),
    ("t.x is None", "'is' and 'in' are not allowed"),
    ("t.mode in ('auto',)", "'is' and 'in' are not allowed"),
    ("{'a': 1} == {}", "dicts not allowed"),
    ("None == None", "only numbers, true/false and enum names"),
    ("b'x' == b'x'", "only numbers, true/false and enum names"),
    ("(1 if t.x else 0) > 0", "the condition of 'if' must be true/false"),
    ("(1 if t.flag else t.flag)", "both sides of 'if ... else' must have the same type"),
    ("1 / 0 > t.x", "cannot be computed: division by zero"),
    ("1e999 > t.x", "too large"),
    ("'auto'", "text 'auto' can only be compared with an enum tag"),
    ("'auto' == 'auto'", "cannot compare text with text: \"'auto' == 'auto'\"; compare an enum tag with one"),
    ("t.x > 1; t.x < 2", "not a valid expression"),
    ("ok(1)", "ok() takes one tag name"),
    ("ok(t.xy)", "ok() takes one tag name, e.g. ok(bat.voltage): 'ok(t.xy)' (did you mean 't.x'?)"),
    ("min", "min is a function; call it"),
    ("t.x > " + " + ".join(["1"] * 400), "at most 1000 are allowed"),
    ("(" * 60 + "t.flag" + ")" * 60 + " and " + "not " * 45 + "t.flag", "nested more than 40 levels deep"),
]


def test_there_are_at_least_twenty_hostile_cases() -> None:
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("expression, message", HOSTILE, ids=[e[:40] for e, _ in HOSTILE])
def test_refused_at_load_with_file_and_line(load_errors, line_of, tmp_path, expression: str, message: str) -> None:
    errors = load_errors({"e": CHART % expression})
    path = tmp_path / "programs" / "e.sfc.yaml"
    assert len(errors) == 1, errors
    error = errors[0]
    assert (error.file, error.line, error.path) == (str(path), line_of(path, "when: |-"), "transitions[0].when")
    assert message in error.message


# Each place an expression can stand: (case, enable line, the action of step b, text on the bad line, message)
PLACES = [
    ("enable", "enable: t.x + 1", "{qualifier: N, set: t.out}", "enable", "enable must be true or false"),
    ("bool value", "", "{qualifier: N, set: t.out, value: t.x * 2}", "value: t.x * 2",
     "the value of t.out must be true or false"),
    ("enum value", "", "{qualifier: N, set: t.state, value: \"'bussy'\"}", "bussy", "(did you mean 'busy'?)"),
    ("time", "", "{qualifier: D, set: t.out, time: t.flag}", "time: t.flag", "a time (seconds) must be a number"),
    ("missing value", "", "{qualifier: N, set: t.num}", "set: t.num}", "t.num is float: say which value it gets"),
]

PLACES_CHART = """\
name: w
{enable}
initial: a
safe: a
outputs: {{t.out: {{}}, t.state: {{}}, t.num: {{}}}}
steps:
  a:
    actions:
      - {{qualifier: N, set: t.state, value: "'idle'"}}
      - {{qualifier: N, set: t.num, value: 1}}
      - {{qualifier: N, set: t.out, value: false}}
  b:
    actions:
      - {action}
transitions:
  - {{from: a, to: b, when: t.go}}
  - {{from: b, to: a, when: not t.go}}
"""


@pytest.mark.parametrize("case", PLACES, ids=[c[0] for c in PLACES])
def test_every_expression_place_reports_its_own_line(load_errors, line_of, tmp_path, case) -> None:
    _, enable, action, marker, message = case
    errors = load_errors({"w": PLACES_CHART.format(enable=enable, action=action)})
    path = tmp_path / "programs" / "w.sfc.yaml"
    assert [(e.file, e.line) for e in errors] == [(str(path), line_of(path, marker))], errors
    assert message in errors[0].message


def test_a_later_chart_without_the_referenced_step_points_at_the_reference(load_errors, line_of, tmp_path) -> None:
    errors = load_errors({
        "first": CHART.replace("name: e", "name: first") % "second.runing.X",
        "second": CHART.replace("name: e", "name: second").replace("t.out", "t.flag") % "t.go",
    })
    path = tmp_path / "programs" / "first.sfc.yaml"
    assert [(e.file, e.line, e.message) for e in errors] == [
        (str(path), line_of(path, "when: |-"), "chart 'second' has no step 'runing'")]


def test_a_reference_to_a_chart_loaded_earlier_is_checked_at_once(load_errors, line_of, tmp_path) -> None:
    errors = load_errors({
        "first": CHART.replace("name: e", "name: first") % "t.go",
        "second": CHART.replace("name: e", "name: second").replace("t.out", "t.flag") % "first.bb.X",
    })
    path = tmp_path / "programs" / "second.sfc.yaml"
    assert [(e.file, e.line) for e in errors] == [(str(path), line_of(path, "when: |-"))]
    assert "chart 'first' has no step 'bb' (did you mean 'b'?)" in errors[0].message
