"""Property-based safety of the whole application against the plant: random starting states (SoC, cell
spread, a high cell, temperatures), weather, house load, month and operating mode, with the BMS's own
protection switched off so that only the controller stands between the cells and their limits. The plant
counts a safety violation whenever current flows into a cell above 3.65 V or outside 0..65 degC, or out of
one below 2.5 V or outside -30..65 degC: there must be none, and no program may fault.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.plantsim.scenario import load_scenario
from tools.plantsim.sim import Simulation

ROOT = Path(__file__).resolve().parents[2]

plants = st.fixed_dictionaries({
    "soc": st.floats(1, 99),
    "temperature": st.floats(-15, 50),
    "ambient": st.floats(-15, 40),
    "cell_spread_mv": st.floats(1, 30),
    "high_cell": st.one_of(st.none(), st.integers(1, 8)),
    "high_cell_soc_offset": st.floats(0, 0.05),
    "charger_cable_mohm": st.sampled_from([1.0, 10.0]),
})
days = st.fixed_dictionaries({
    "month": st.integers(1, 12),
    "hour": st.integers(0, 23),
    "pv_peak": st.sampled_from([0, 1500, 5000]),
    "house": st.lists(st.integers(0, 3000), min_size=3, max_size=3),
    "mode": st.sampled_from(["auto", "auto", "force_charge", "hold", "off"]),
})


def scenario_text(plant: dict, day: dict) -> str:
    high = "" if plant["high_cell"] is None else (f", high_cell: {plant['high_cell']}, "
                                                  f"high_cell_soc_offset: {plant['high_cell_soc_offset']}")
    house = ", ".join(f'["{h:02d}:00", {w}]' for h, w in zip((0, 8, 16), day["house"], strict=True))
    return f"""
name: random plant
start: 2026-{day['month']:02d}-15T{day['hour']:02d}:00:00
duration: 2h
scan: 10s
site: {ROOT}
plant: {{soc: {plant['soc']}, temperature: {plant['temperature']}, ambient: {plant['ambient']},
        cell_spread_mv: {plant['cell_spread_mv']}, charger_cable_mohm: {plant['charger_cable_mohm']},
        bms_protect: false{high}}}
pv: {{clear_sky: {{peak: {day['pv_peak']}, sunrise: "06:00", sunset: "20:00"}}}}
house: [{house}]
events:
  - {{at: 0s, write: {{cmd.mode: {day['mode']}, limits.balance_last_day: 1}}}}
trace_every: 1h
"""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plants, days)
def test_random_plants_and_days_never_break_a_cell_limit(plant: dict, day: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.yaml"
        path.write_text(scenario_text(plant, day))
        summary = Simulation(load_scenario(path)).run()
    assert summary["safety_violations"] == 0, (plant, day)
    assert not any(summary["program_faults"].values()), summary["program_faults"]
