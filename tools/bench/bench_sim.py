"""Simulated days: the sunny summer day of the default site, plant and controller on the simulated clock.

A 24 h day at a 1 s scan (goal, issue 17: at most 5 s of wall time, >= 17,000x real time) and at the site's 100 ms scan
(goal: under 90 s). The reference, measured in the same run, is the plant model alone stepping the same
number of times with the same profiles: the floor for any simulation of this plant, so the ratio says what
the controller and the device path (register encode, the drivers' decode) cost on top of the physics.
In quick mode the 100 ms day is 2 h, extrapolated to 24 h (the figures say so).
"""

from __future__ import annotations

import time

from runtime.site import REPO_ROOT
from tools.bench.figures import Figure
from tools.plantsim.model import Plant
from tools.plantsim.scenario import Scenario, load_scenario
from tools.plantsim.sim import Simulation

SCENARIO = REPO_ROOT / "scenarios" / "sunny_summer_day.yaml"
DAY = 86400.0


def plant_alone(scenario: Scenario, seconds: float, period: float) -> float:
    """Wall seconds for the plant model to step through ``seconds`` at ``period`` with the day's profiles."""
    plant = Plant(scenario.plant)
    pv, house, ambient = scenario.pv, scenario.house, scenario.ambient
    steps = int(round(seconds / period))
    begin = time.perf_counter()
    for k in range(steps):
        t = k * period
        plant.step(period, pv(t), house(t), ambient(t))
    return time.perf_counter() - begin


def profiles_alone(scenario: Scenario, seconds: float, period: float) -> float:
    """Wall seconds to evaluate the day's profiles alone at every step: the floor under ``plant_alone``."""
    pv, house, ambient = scenario.pv, scenario.house, scenario.ambient
    steps = int(round(seconds / period))
    begin = time.perf_counter()
    for k in range(steps):
        t = k * period
        pv(t), house(t), ambient(t)
    return time.perf_counter() - begin


def plant_step(scenario: Scenario) -> Figure:
    """The plant model's own cost per 1 s step over the day (best of three), against the profiles alone."""
    plant = min(plant_alone(scenario, DAY, 1.0) for _ in range(3)) / DAY * 1e6
    floor = min(profiles_alone(scenario, DAY, 1.0) for _ in range(3)) / DAY * 1e6
    return Figure("sim", "plant model alone, per 1 s step", plant, "us", reference=floor,
                  reference_name="the day's profiles alone", goal="<= 20 us (24 h at 1 s in <= 5 s later)",
                  note="cells with hysteresis, R(SoC, T), pack, BMS, charger, inverter, shunt, meter, oracle")


def day(scenario: Scenario, period: float, simulated: float) -> list[Figure]:
    summary = Simulation(scenario, duration=simulated, scan=period).run()
    factor = DAY / simulated
    wall = summary["wall_s"] * factor
    reference = plant_alone(scenario, simulated, period) * factor
    label = f"{period * 1000:g} ms" if period < 1 else f"{period:g} s"
    extrapolated = f" (extrapolated from {simulated / 3600:g} h)" if factor != 1 else ""
    cost = summary["cost_us_per_scan"]
    note = (f"{DAY / wall:,.0f}x real time{extrapolated}, CPU {summary['cpu_s'] * factor:.1f} s; per scan: "
            f"plant {cost['plant']:g} us, devices "
            f"{cost['devices']:g} us, controller {cost['controller']:g} us; safety violations "
            f"{summary['safety_violations']}")
    goal = 5.0 if period >= 1 else 90.0
    return [
        Figure("sim", f"24 h at {label} scan, wall{extrapolated}", wall, "s", reference=reference,
               reference_name="plant model alone", goal=f"<= {goal:g} s", note=note),
        Figure("sim", f"24 h at {label} scan, ratio to real time", DAY / wall, "x real time",
               reference=DAY / reference, reference_name="plant model alone", lower_is_better=False,
               goal=f">= {DAY / goal:,.0f}x", note=extrapolated.strip(" ()")),
        Figure("sim", f"scan at {label}: device path (encode + decode)", cost["devices"], "us",
               note="register banks, InlinePort, the drivers' decode, output writes"),
        Figure("sim", f"scan at {label}: controller (programs + scan)", cost["controller"], "us",
               goal="full default application < 1000 us per scan",
               note="latch/commit bookkeeping, 8 programs, interlocks (one process, so wall = CPU)"),
    ]


def run(quick: bool) -> list[Figure]:
    scenario = load_scenario(SCENARIO)
    return [plant_step(scenario)] + day(scenario, 1.0, DAY) + day(scenario, 0.1, 2 * 3600.0 if quick else DAY)


if __name__ == "__main__":
    for figure in run(quick=True):
        print(figure.line())
