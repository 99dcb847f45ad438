"""An output device that does not answer (the charger hangs mid-charge), through the plant simulator's devices
and the whole application: the charts writing to it hold their safe step (runtime/sfc/load.py), its setpoints
stop ramping, ``alarm.output_device_down`` is raised (runtime/drivers/state.py), and when it answers again the
first thing it gets is the safe values, before the charts start over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.site import REPO_ROOT
from tools.plantsim.scenario import load_scenario
from tools.plantsim.sim import Simulation

HANG_AT, HANG_FOR = 300, 120  # s: the charger hangs five minutes in, for two minutes


def test_a_hung_charger_holds_its_charts_safe_raises_an_alarm_and_gets_the_safe_values_first(tmp_path: Path) -> None:
    scenario = tmp_path / "hang.yaml"
    scenario.write_text(
        f"start: 2026-06-21T12:00:00\nduration: 10min\nscan: 1s\nsite: {REPO_ROOT}\n"
        "plant: {soc: 40, temperature: 20, ambient: 20}\npv: 3000\nhouse: 400\n"
        f"events:\n  - {{at: {HANG_AT}s, fault: {{device: charger, kind: offline, for: {HANG_FOR}s}}}}\n",
        encoding="utf-8")
    simulation = Simulation(load_scenario(scenario))
    bank = simulation.devices.banks["charger"]
    store = bank.store
    enables: list[tuple[float, bool]] = []  # (plant time, value) of every write the charger took to its enable coil

    def recording(table: str, address: int, values: list[Any]) -> None:
        if (table, address) == ("coil", 0):
            enables.append((simulation.plant.time_s, bool(values[0])))
        store(table, address, values)
    bank.store = recording
    rows: list[dict[str, Any]] = []

    def observe(scan: Any) -> None:
        values = scan.db.values
        rows.append({"sp": values["charger.current_sp"], "enable": values["charger.enable"],
                     "held": values["sfc.ballast.held"], "alarm": values["alarm.output_device_down"],
                     "plant_enable": simulation.plant.charger.enable, "step": values["sfc.ballast.step"]})
    simulation.scan.observers.append(observe)
    simulation.run()

    before, hang, after = rows[:HANG_AT], rows[HANG_AT + 2:HANG_AT + HANG_FOR], rows[HANG_AT + HANG_FOR + 1:]
    assert before[-1]["enable"] and before[-1]["sp"] > 0  # the ballast charge was running when it hung
    assert not any(row["alarm"] or row["held"] for row in before)
    # During the hang: held safe, nothing commanded, no ramp; the alarm stands. The hung device itself keeps
    # what it last had (nobody can reach it).
    assert all(row["held"] and row["alarm"] for row in hang)
    assert all(not row["enable"] and row["sp"] == 0 for row in hang)
    assert all(row["plant_enable"] for row in hang)
    # Back: the alarm clears, the device's first write is the safe values (the charger stops) ...
    assert not any(row["alarm"] or row["held"] for row in after)
    back = [value for t, value in enables if t >= HANG_AT + HANG_FOR]
    assert back[0] is False
    # ... then the charts go on from their safe steps: no ballast ramp (it waits its start delay again), the
    # keep-alive charge at its own current.
    charge = simulation.db.defs["sfc.ballast.step"].values.index("charge")
    assert all(row["step"] != charge for row in after[:30]) and after[0]["sp"] < before[-1]["sp"]
