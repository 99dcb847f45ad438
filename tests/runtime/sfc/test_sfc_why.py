"""runtime/sfc/why.py: the explanation of what a chart waits for, part by part, with live values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.config.schema import Errors
from runtime.sfc.model import read_chart
from runtime.sfc.why import UNKNOWN, MappingSnapshot, _Evaluator, explain, render

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def unload():
    errors = Errors()
    decl = read_chart(ROOT / "programs" / "unload.sfc.yaml", errors)
    assert not errors
    return decl


START_VALUES = {
    "grid.power": 243.2, "par.unload_start_import_w": 200, "par.unload_start_delay_s": 60, "bat.voltage": 26.4,
    "par.unload_start_cell_v": 3.265, "par.cells_series": 8, "schedule.discharge_allowed": True,
    "interlock.discharge_blocked": False, "cmd.battery_off": False, "schedule.battery_off_hold": False,
    "cmd.mode": "auto", "unload.import_wh": 10.0, "schedule.time_s": 1000.0, "unload.relock_until": 0.0,
}
STEPS = {"load": ("idle", 5.0), "ballast": ("idle", 1.0)}


def test_a_single_comparison_reads_as_the_issue_shows_it(unload) -> None:
    snap = MappingSnapshot({"grid.power": 143.2, "par.unload_start_import_w": 200, "cmd.mode": "auto"},
                           steps={"unload": ("idle", 3725.0)})
    text = render(explain(unload, snap))
    assert text.splitlines() == [
        "unload: idle for 1h2min5s (inverter off; a charge (current into the battery from a charging chart) ends a relock)",
        "  T1 idle -> importing: grid.power > par.unload_start_import_w  (143.2 > 200: false)",
    ]


def test_each_part_of_a_conjunction_is_shown_with_its_values(unload) -> None:
    snap = MappingSnapshot(START_VALUES, steps={**STEPS, "unload": ("importing", 12.0)})
    why = explain(unload, snap)
    start = next(t for t in why.transitions if t.transition.target == "start")
    assert start.condition.result is False
    false_parts = [p.text for p in start.condition.parts if p.result is False]
    assert false_parts == ["importing.T >= par.unload_start_delay_s"]
    text = render(why)
    assert "importing.T >= par.unload_start_delay_s  (12 >= 60: false)" in text
    assert "bat.voltage >= par.unload_start_cell_v * par.cells_series  (26.4 >= 26.12: true)" in text
    assert "not load.charge.X  (not false: true)" in text


def test_when_the_delay_has_passed_the_transition_is_true(unload) -> None:
    snap = MappingSnapshot(START_VALUES, steps={**STEPS, "unload": ("importing", 61.0)})
    start = next(t for t in explain(unload, snap).transitions if t.transition.target == "start")
    assert start.condition.result is True


def test_a_missing_value_is_unknown_unless_the_rest_decides(unload) -> None:
    values = dict(START_VALUES)
    del values["bat.voltage"]
    snap = MappingSnapshot(values, steps={**STEPS, "unload": ("importing", 12.0)})
    start = next(t for t in explain(unload, snap).transitions if t.transition.target == "start")
    assert start.condition.result is False  # the delay alone decides it
    voltage = next(p for p in start.condition.parts if p.text.startswith("bat.voltage"))
    assert voltage.result is UNKNOWN and "?" in render(explain(unload, snap))
    snap = MappingSnapshot(values, steps={**STEPS, "unload": ("importing", 99.0)})
    start = next(t for t in explain(unload, snap).transitions if t.transition.target == "start")
    assert start.condition.result is UNKNOWN


def test_the_enable_condition_is_named_when_it_holds_the_chart(unload) -> None:
    snap = MappingSnapshot({**START_VALUES, "cmd.mode": "off"}, steps={**STEPS, "unload": ("idle", 1.0)})
    assert "held in its safe step while the enable condition is not true: cmd.mode == 'auto'" in render(
        explain(unload, snap))


def test_an_unknown_step_says_so(unload) -> None:
    assert render(explain(unload, MappingSnapshot({}))) == "unload: active step unknown"


numbers = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False) | st.integers(-100, 100)


@given(a=numbers, b=numbers, c=numbers, flag=st.booleans())
def test_evaluation_agrees_with_python(a, b, c, flag) -> None:
    """The explanation's verdict is the expression's value (the compiler's semantics for these operators)."""
    expression = "(x.a + x.b * 2 > x.c or not x.flag) and min(x.a, x.c) <= max(x.b, 0) and clamp(x.a, -1, 1) != x.c"
    snap = MappingSnapshot({"x.a": a, "x.b": b, "x.c": c, "x.flag": flag})
    expected = (a + b * 2 > c or not flag) and min(a, c) <= max(b, 0) and max(-1, min(a, 1)) != c
    assert _Evaluator("chart", snap).part(expression).result is expected
