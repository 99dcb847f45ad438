"""Outputs driven by several charts: the tag's arbitration list decides, whatever order the charts run in."""

from __future__ import annotations

import pytest

ARBITRATED = "t.sp: {type: float, arbitration: [hi, lo]}\n"

DRIVER = """\
name: {name}
initial: off
safe: off
outputs:
  t.sp: {{{idle}}}
steps:
  off: {{}}
  on: {{actions: [{{qualifier: N, set: t.sp, value: {value}}}]}}
transitions:
  - {{from: off, to: on, when: {input}}}
  - {{from: on, to: off, when: not {input}}}
"""


def drivers(hi_idle: str = "idle: -1", lo_idle: str = "idle: -1", lo_name: str = "lo") -> dict[str, str]:
    return {"hi": DRIVER.format(name="hi", idle=hi_idle, value=10, input="t.go"),
            lo_name: DRIVER.format(name=lo_name, idle=lo_idle, value=5, input="t.back")}


# (t.go drives hi, t.back drives lo) -> t.sp
TABLE = [((False, False), -1.0), ((True, False), 10.0), ((True, True), 10.0), ((False, True), 5.0),
         ((False, False), -1.0), ((False, True), 5.0), ((True, True), 10.0)]


@pytest.mark.parametrize("order", [["hi", "lo"], ["lo", "hi"]])
def test_the_highest_priority_active_driver_wins_in_any_run_order(rig, order: list[str]) -> None:
    r = rig(drivers(), tags=ARBITRATED, programs=order)
    r.step()
    for (go, back), expected in TABLE:
        assert r.step(t_go=go, t_back=back)["t.sp"] == expected, (go, back)


def test_arbitrated_hold_output_keeps_its_value_when_nobody_drives_it(rig) -> None:
    r = rig(drivers("hold: true", "hold: true"), tags=ARBITRATED)
    r.step()
    assert [r.step(t_go=go, t_back=back)["t.sp"] for go, back in ((False, True), (False, False), (True, False),
                                                                   (False, False))] == [5.0, 5.0, 10.0, 10.0]


def test_a_chart_missing_from_the_arbitration_list(load_errors, line_of, tmp_path) -> None:
    errors = load_errors(drivers(lo_name="other"), tags=ARBITRATED)
    path = tmp_path / "programs" / "other.sfc.yaml"
    assert [(e.file, e.line) for e in errors] == [(str(path), line_of(path, "t.sp:"))]
    assert errors[0].message == "'t.sp' is arbitrated between hi, lo; add 'other' to its arbitration list in tags.yaml"


def test_charts_sharing_an_output_must_agree_on_its_idle_value(load_errors, line_of, tmp_path) -> None:
    errors = load_errors(drivers(lo_idle="idle: 0"), tags=ARBITRATED)
    path = tmp_path / "programs" / "lo.sfc.yaml"
    assert [(e.file, e.line) for e in errors] == [(str(path), line_of(path, "t.sp:"))]
    assert "disagree on its idle value: -1.0 and 0.0" in errors[0].message


def test_the_arbitration_list_is_validated_with_the_tags(load_errors, line_of, tmp_path) -> None:
    errors = load_errors(drivers(), tags="t.sp: {type: float, arbitration: Hi}\n")
    path = tmp_path / "tags.yaml"
    assert [(e.file, e.line, e.path) for e in errors] == [(str(path), line_of(path, "t.sp:"),
                                                           "tags.t.sp.arbitration")]


def test_site_exposes_the_arbitrated_tags(rig) -> None:
    r = rig(drivers(), tags=ARBITRATED)
    assert r.site.arbitrated == {"t.sp"}
    assert r.site.arbitration == {"t.sp": ["hi", "lo"]}
