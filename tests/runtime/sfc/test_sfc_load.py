"""Chart files that must not load: each problem is reported once, with the file:line a person has to fix."""

from __future__ import annotations

import pytest

from runtime.config.errors import ConfigErrors
from runtime.config.schema import Errors
from runtime.loader import check_references
from runtime.sfc import load_chart
from runtime.site import load_site

BASE = """\
name: m
initial: a
safe: a
outputs:
  t.out: {}
steps:
  a: {}
  b:
    actions:
      - {qualifier: N, set: t.out}
transitions:
  - {from: a, to: b, when: t.go}
  - {from: b, to: a, when: not t.go}
"""

ACTION = "      - {qualifier: N, set: t.out}"

# (case, replace this, with that (everywhere), text on the line the error names, words of the message)
BROKEN = [
    ("unknown qualifier", ACTION, "      - {qualifier: X, set: t.out}", "qualifier: X", "'X' is not allowed"),
    ("misspelt key", ACTION, "      - {qualifer: N, set: t.out}", "qualifer", "unknown key 'qualifer' (did you mean"),
    ("D without time", ACTION, "      - {qualifier: D, set: t.out}", "qualifier: D", "qualifier D needs a time"),
    ("N with a time", ACTION, "      - {qualifier: N, set: t.out,\n         time: 3s}", "time: 3s",
     "only D and L take a time"),
    ("bad duration", ACTION, "      - {qualifier: D, set: t.out,\n         time: 3 parsecs}", "time: 3 parsecs",
     "not a valid expression"),
    ("negative time", ACTION, "      - {qualifier: L, set: t.out,\n         time: -5}", "time: -5",
     "a time cannot be negative"),
    ("R with a value", ACTION, "      - {qualifier: R, set: t.out,\n         value: true}", "value: true",
     "R resets what S stored and takes no value"),
    ("S and R in one step", ACTION, ACTION.replace("N", "S") + "\n      - {qualifier: R, set: t.out}",
     "qualifier: R", "step 'b' both sets (S) and resets (R) 't.out'"),
    ("output not declared", ACTION, ACTION + "\n      - {qualifier: N, set: t.num, value: 1}", "set: t.num",
     "'t.num' is not in this chart's outputs"),
    ("output never set", "  t.out: {}", "  t.out: {}\n  t.num: {}", "t.num: {}",
     "output 't.num' is declared but no action sets it"),
    ("unknown output tag", "t.out", "t.outt", "t.outt: {}", "unknown tag 't.outt' (did you mean 't.out'?)"),
    ("hold and idle", "  t.out: {}", "  t.out: {idle: true, hold: true}", "t.out: {idle",
     "either holds its last value"),
    ("bad idle value", "  t.out: {}", "  t.out: {idle: 'maybe'}", "t.out: {idle", "idle value"),
    ("unknown required tag", "initial: a", "requires: [t.go, t.gone]\ninitial: a", "requires",
     "unknown tag 't.gone' (did you mean 't.go'?)"),
    ("initial is not a step", "initial: a", "initial: aa", "initial: aa", "initial 'aa' is not a step"),
    ("unknown step in a transition", "{from: b, to: a,", "{from: bb, to: a,", "from: bb",
     "from 'bb' is not a step (did you mean 'b'?)"),
    ("step that cannot be reached", "  a: {}", "  a: {}\n  lost: {}", "lost:", "step 'lost' can never become active"),
    ("keyword as a step name", "  a: {}", "  a: {}\n  if: {}", "if:", "'if' is not a usable name"),
    ("name is not the file name", "name: m", "name: other", "name: other", "the chart is named 'other'"),
    ("YAML syntax", "  a: {}", "  a: {}}", "  a: {}}", "YAML syntax"),
    ("duplicate step", "  b:\n", "  a:  # again\n", "# again", "duplicate key 'a'; first given at line 7"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_chart(load_errors, line_of, tmp_path, case) -> None:
    _, old, new, marker, message = case
    errors = load_errors({"m": BASE.replace(old, new)})
    path = tmp_path / "programs" / "m.sfc.yaml"
    assert {(e.file, e.line) for e in errors} == {(str(path), line_of(path, marker))}, errors
    assert any(message in e.message for e in errors), errors


def test_a_safe_step_without_a_way_out(load_errors, line_of, tmp_path) -> None:
    errors = load_errors({"m": BASE.replace("safe: a", "safe: c").replace("  a: {}", "  a: {}\n  c: {}")})
    path = tmp_path / "programs" / "m.sfc.yaml"
    assert [(e.line, e.message) for e in errors] == [
        (line_of(path, "safe: c"), "no transition leaves the safe step 'c'; the chart could never recover from it")]


def test_two_charts_on_one_output_without_arbitration(load_errors, tmp_path) -> None:
    errors = load_errors({"m": BASE, "n": BASE.replace("name: m", "name: n")})
    first, second = tmp_path / "programs" / "m.sfc.yaml", tmp_path / "programs" / "n.sfc.yaml"
    assert [(e.file, e.line, e.path) for e in errors] == [(str(second), 1, "n.writes")]
    assert errors[0].message == (f"output 't.out' is already driven by 'm' ({first}:1); "
                                 "declare an arbitration for it")


def test_step_tag_declared_in_tags_yaml_must_list_the_steps(load_errors, line_of, tmp_path) -> None:
    errors = load_errors({"m": BASE}, tags="sfc.m.step: {type: enum, values: [a, c]}\n")
    path = tmp_path / "tags.yaml"
    assert [(e.file, e.line) for e in errors] == [(str(path), line_of(path, "sfc.m.step"))]
    assert "chart 'm' needs sfc.m.step to be enum with values ['a', 'b']" in errors[0].message


def test_step_tag_declared_in_tags_yaml_with_the_steps_is_used(rig) -> None:
    r = rig({"m": BASE}, tags="sfc.m.step: {type: enum, values: [a, b], modbus: {address: 7}}\n")
    assert r.db.defs["sfc.m.step"].modbus.address == 7
    assert r.step().step(t_go=True)["sfc.m.step"] == 1


def test_a_chart_never_loaded_is_an_unknown_tag_of_the_one_reading_it(write) -> None:
    """Without a site, a reference to another chart waits for it; the loader then reports what never came."""
    folder = write({"m": BASE.replace("when: t.go", "when: other.busy.X")})
    site, db, _, _ = load_site(folder, with_programs=False)
    errors = Errors()
    chart = load_chart(folder / "programs" / "m.sfc.yaml", db, errors)
    assert chart is not None and not errors
    for tag in chart.declare():
        db.ensure(tag)
    check_references(chart, db, errors)
    assert [e.message.split(" (")[0] for e in errors] == ["unknown tag 'sfc.other.step'"]


def test_errors_are_collected_not_stopped_at_the_first(load_errors) -> None:
    text = BASE.replace("when: t.go", "when: t.goo").replace("when: not t.go", "when: t.x")
    errors = load_errors({"m": text})
    assert len(errors) == 2


def test_load_site_raises_all_errors_at_once(write) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_site(write({"m": BASE.replace("t.go", "t.g0")}))
    assert len(info.value.errors) == 2


def test_a_chart_loaded_twice_into_one_database(write) -> None:
    folder = write({"m": BASE})
    _, db, _, _ = load_site(folder, with_programs=False)
    errors = Errors()
    assert load_chart(folder / "programs" / "m.sfc.yaml", db, errors) is not None
    assert load_chart(folder / "programs" / "m.sfc.yaml", db, errors) is None
    assert [e.message for e in errors] == ["chart 'm' is loaded twice into one tag database"]
