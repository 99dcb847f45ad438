"""The battery application in the plant simulator: one scenario per behaviour (tests/programs/scenarios/).

Each scenario file is data: plant, profiles, SCADA writes and faults over time, the ``expect`` bounds on the
summary and ``checks`` of tag values at moments and over windows; every one must hold, with zero safety
violations counted by the plant and no program fault. Where a behaviour is about exact times (inhibits,
the 8 h limit, the 53 W rule, the end of a CV charge) the test below also records a few tags at every scan
and asserts on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime.site import REPO_ROOT
from tools.plantsim.scenario import load_scenario
from tools.plantsim.sim import Simulation

SCENARIOS = Path(__file__).parent / "scenarios"
CAPACITY_AH = 320.0  # the default site


@dataclass
class Run:
    """A finished simulation: its summary, and the watched tags at every scan (times in s from the start)."""

    summary: dict[str, Any]
    period: float
    start_s: float  # wall seconds (since 1970) of the scenario's start
    times: list[float]
    values: dict[str, list[Any]]

    def first(self, tag: str, value: Any, after: float = -1.0) -> float:
        """The first time after ``after`` at which ``tag`` had ``value``."""
        for t, v in zip(self.times, self.values[tag], strict=True):
            if t > after and v == value:
                return t
        raise AssertionError(f"{tag} never was {value!r} after {after:g} s")

    def first_not(self, tag: str, value: Any, after: float) -> float:
        for t, v in zip(self.times, self.values[tag], strict=True):
            if t > after and v != value:
                return t
        raise AssertionError(f"{tag} stayed {value!r} after {after:g} s")

    def at(self, tag: str, t: float) -> Any:
        return self.values[tag][self.times.index(t)]

    def between(self, tag: str, begin: float, end: float) -> list[Any]:
        return [v for t, v in zip(self.times, self.values[tag], strict=True) if begin <= t <= end]


def simulate(name: str | Path, watch: tuple[str, ...] = ()) -> Run:
    """A scenario of tests/programs/scenarios by name, or a shipped one by its path."""
    scenario = load_scenario(name if isinstance(name, Path) else SCENARIOS / f"{name}.yaml")
    simulation = Simulation(scenario)
    db = simulation.db
    times: list[float] = []
    values: dict[str, list[Any]] = {tag: [] for tag in watch}
    steps = {tag: db.defs[tag] for tag in watch if db.defs[tag].type == "enum"}

    def record(scan: Any) -> None:
        times.append(round(scan.ctx.t, 6))
        for tag in watch:
            value = db.values[tag]
            values[tag].append(steps[tag].format(value) if tag in steps else value)

    simulation.scan.observers.append(record)
    summary = simulation.run()
    failures = scenario.check_expectations(summary) + summary["checks_failed"]
    assert not failures, "\n".join(failures)
    assert summary["safety_violations"] == 0
    assert not any(summary["program_faults"].values()), summary["program_faults"]
    return Run(summary, simulation.period, scenario.start.timestamp(), times, values)


def test_unload_inhibits_keep_for_exactly_6h20_and_battery_off_does_not_shorten_it() -> None:
    run = simulate("unload_inhibits_keep", ("sfc.unload.step", "sfc.keep.step", "bat.soc",
                                            "keep.inhibit_unload_until", "keep.inhibit_cmd_until", "soc.uncertainty"))
    began = run.first("sfc.unload.step", "run")
    stopped = run.first_not("sfc.unload.step", "run", after=began)
    # it ran down to the (raised) reserve, itself raised by the SoC's uncertainty
    assert 0 < run.at("soc.uncertainty", stopped) < 0.5
    assert run.at("bat.soc", stopped) <= 55.0 + run.at("soc.uncertainty", stopped)
    assert run.at("keep.inhibit_unload_until", stopped) == pytest.approx(run.start_s + stopped + 22800)
    resumed = run.first("sfc.keep.step", "charge", after=stopped)
    assert stopped + 22800 <= resumed <= stopped + 22800 + run.period  # 6 h 20 min, to the scan
    assert run.at("keep.inhibit_cmd_until", 6000 + run.period) == pytest.approx(run.start_s + 6000 + 1200,
                                                                                abs=run.period)


def test_battery_off_inhibit_is_prolonged_by_a_second_press() -> None:
    run = simulate("battery_off_prolonged", ("keep.inhibit_cmd_until", "charger.enable", "sfc.ballast.step"))
    first_end = run.at("keep.inhibit_cmd_until", 3600 + run.period)
    assert first_end == pytest.approx(run.start_s + 3600 + 1200, abs=run.period)  # 11:20
    final_end = run.values["keep.inhibit_cmd_until"][-1]
    assert final_end == pytest.approx(run.start_s + 4200 + 1200, abs=run.period)  # 11:30, not 11:20
    assert not any(run.between("charger.enable", 3600 + 2 * run.period, 5400 - run.period))
    back = run.first("sfc.ballast.step", "charge", after=5400)
    assert back <= 5400 + 60 + 3 * run.period  # after the inhibit and the 60 s export settle


def test_load_charges_cc_then_cv_and_ends_at_a_twentieth_c() -> None:
    run = simulate("load_cv_end", ("sfc.load.step", "sfc.keep.step", "bat.current", "charger.current_sp"))
    tail = 0.05 * CAPACITY_AH
    done = run.first("sfc.load.step", "done")
    cv = run.first("sfc.load.step", "cv")
    # CC at the CCL, 0.5C, until the dynamic cut on the highest cell starts (on the plant's steep LFP top the
    # highest cell reaches it some 20 s before the pack reaches the CVL and the chart steps to cv)
    derate = next(t for t, i in zip(run.times, run.values["charger.current_sp"], strict=True) if t > 600 and i < 159.9)
    assert cv - 60 <= derate <= cv
    assert min(run.between("bat.current", 600, derate - run.period)) >= 159.9
    assert run.at("bat.current", cv) > 5 * tail  # the pack reached the CVL while still taking current
    low = next(t for t, i in zip(run.times, run.values["bat.current"], strict=True) if t > cv and i <= tail)
    assert all(i <= tail for i in run.between("bat.current", low, done))  # CV tapered to 0.05C ...
    assert 30 <= done - low <= 30 + 2 * run.period  # ... and the load ended 30 s later
    resumed = run.first("sfc.keep.step", "charge", after=done)
    assert done + 7200 <= resumed <= done + 7200 + run.period  # keep inhibited 2 h after a controlled load


@pytest.mark.parametrize("name", ["load_start_block", "load_start_below_80"])
def test_load_not_started_above_the_80_percent_voltage(name: str) -> None:
    simulate(name)


def test_inverter_counts_as_running_only_above_53_w() -> None:
    run = simulate("inverter_on_53w", ("sfc.unload.step", "inverter.power", "alarm.unload_start_failed"))
    assert max(run.values["inverter.power"]) <= 53.0 + 1e-6
    started = run.first("sfc.unload.step", "start")
    failed = run.first("sfc.unload.step", "failed")
    assert failed - started == pytest.approx(120, abs=run.period)  # par.inverter_start_timeout_s
    assert "run" not in run.values["sfc.unload.step"]


def test_unload_stops_after_8_hours() -> None:
    run = simulate("unload_8h_limit", ("sfc.unload.step", "unload.relock_until"))
    began = run.first("sfc.unload.step", "run")
    ended = run.first_not("sfc.unload.step", "run", after=began)
    assert ended - began == pytest.approx(28800, abs=run.period)
    assert run.at("sfc.unload.step", ended) == "rest"
    assert run.values["unload.relock_until"][-1] == pytest.approx(run.start_s + ended + 43200, abs=run.period)


def test_unload_follows_the_house_and_exports_no_battery_energy() -> None:
    run = simulate("unload_zero_export", ("sfc.unload.step", "inverter.enable", "inverter.power",
                                          "inverter.power_sp", "grid.power"))
    began = run.first("sfc.unload.step", "run")
    assert run.at("inverter.power", began) > 53.0  # the 53 W rule, the other way round
    assert run.values["inverter.power"][run.times.index(began) - 1] <= 53.0
    for on, setpoint, power, grid in zip(run.values["inverter.enable"], run.values["inverter.power_sp"],
                                         run.values["inverter.power"], run.values["grid.power"], strict=True):
        if on:
            assert setpoint <= max(0.0, power + grid) + 1e-6  # never more than the house draws


def test_without_grid_the_unload_uses_the_outage_reserve_and_stops_when_the_grid_is_back() -> None:
    """Seed 004: min SoC on grid (20 %) and min SoC (10 %) are distinct, told apart by grid.present."""
    run = simulate(REPO_ROOT / "scenarios" / "grid_outage_evening.yaml",
                   ("grid.present", "inverter.enable", "bat.soc", "schedule.soc_floor", "sfc.unload.step"))
    back = run.first("grid.present", True, after=run.first("grid.present", False))
    below_on_grid_floor = [t for t, present, on, soc in zip(run.times, run.values["grid.present"],
                                                            run.values["inverter.enable"], run.values["bat.soc"],
                                                            strict=True) if on and soc < 20.0]
    assert below_on_grid_floor  # the outage reserve was used
    for t in below_on_grid_floor:  # ... only without grid, and for at most two scans after it came back
        assert not run.at("grid.present", t) or back <= t <= back + 2 * run.period, t
    assert run.at("bat.soc", back) < 15.0  # it stopped far above the off-grid floor
    assert min(run.values["bat.soc"]) >= 10.0 - 0.5
    assert run.values["sfc.unload.step"][-1] == "low"  # the second outage ended under the stop voltage


def test_balancing_cadence() -> None:
    simulate("balancing_cadence")


def test_a_missing_bms_makes_outputs_safe_and_the_site_carries_on() -> None:
    run = simulate("bms_missing", ("alarm.bms_missing", "charger.enable"))
    assert run.summary["scans"] == 1800  # the controller never stopped scanning
