"""The plant judges the controller, so it must not be built from the controller's configuration, and every
counter of the oracle must move when something is deliberately wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.site import REPO_ROOT
from tools.plantsim.model import Plant, PlantConfig

PLANT_SOURCES = sorted((REPO_ROOT / "tools" / "plantsim" / "plant").glob("*.py"))


@pytest.mark.parametrize("path", PLANT_SOURCES, ids=[p.name for p in PLANT_SOURCES])
def test_no_plant_number_comes_from_the_controllers_configuration(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"tags\\.yaml|io_map\\.yaml|\\bprograms\\b|\\bpar\\.[a-z_]+|runtime\\.", text), path
    assert not re.search(r"^\\s*(from|import)\\s+(programs|runtime)\\b", text, re.M), path


def plant(**kw: object) -> Plant:
    return Plant(PlantConfig(**kw))  # type: ignore[arg-type]


def step(p: Plant, seconds: int, pv: float = 0.0, house: float = 0.0, ambient: float = 20.0) -> None:
    for _ in range(seconds):
        p.step(1.0, pv, house, ambient)


def charge(p: Plant, volts: float, amps: float) -> None:
    p.charger.enable, p.charger.voltage_sp, p.charger.current_sp = True, volts, amps


def discharge(p: Plant, watts: float) -> None:
    p.inverter.enable, p.inverter.power_sp = True, watts


def test_charge_above_3v65_with_a_broken_bms() -> None:
    p = plant(soc=0.97, bms_protect=False, balancer_a=0.0)
    charge(p, 31.0, 100.0)
    step(p, 3600)
    s = p.oracle.summary()
    assert s["charge_above_3v65_s"] > 0 and p.oracle.first["charge_above_3v65_s"] > 0 and p.safety_violations > 0


@pytest.mark.parametrize(("name", "temp"), [("charge_below_0c_s", -5.0), ("charge_above_65c_s", 70.0)])
def test_charge_outside_its_temperatures(name: str, temp: float) -> None:
    p = plant(soc=0.5, bms_protect=False, temperature_c=temp, ambient_c=temp)
    charge(p, 28.0, 50.0)
    step(p, 60, ambient=temp)
    assert p.oracle.summary()[name] > 0


def test_discharge_below_2v5_with_a_broken_bms() -> None:
    p = plant(soc=0.02, bms_protect=False)
    discharge(p, 2000.0)
    step(p, 3600)
    assert p.oracle.summary()["discharge_below_2v5_s"] > 0


@pytest.mark.parametrize(("name", "temp"), [("discharge_below_minus30c_s", -35.0), ("discharge_above_65c_s", 70.0)])
def test_discharge_outside_its_temperatures(name: str, temp: float) -> None:
    p = plant(soc=0.5, bms_protect=False, temperature_c=temp, ambient_c=temp)
    discharge(p, 1000.0)
    step(p, 120, ambient=temp)
    assert p.oracle.summary()[name] > 0


def test_charge_above_half_c_from_a_charger_rated_too_high() -> None:
    p = plant(soc=0.3, charger_max_current_a=250.0, charger_max_power_w=9000.0)
    charge(p, 29.0, 250.0)
    step(p, 10)
    assert p.oracle.summary()["charge_above_0c5_s"] > 0


@pytest.mark.parametrize(("name", "capacity"), [("discharge_above_1c_s", 20.0), ("discharge_above_fuse_s", 20.0)])
def test_discharge_above_1c_and_the_fuse_with_an_oversized_inverter(name: str, capacity: float) -> None:
    p = plant(soc=0.9, capacity_ah=capacity, inverter_max_w=8000.0, fuse_a=100.0 if "fuse" in name else 250.0)
    discharge(p, 8000.0)
    step(p, 60)
    assert p.oracle.summary()[name] > 0


def test_battery_energy_exported_is_the_inverter_share_of_the_export() -> None:
    p = plant(soc=0.8)
    discharge(p, 1000.0)
    step(p, 3600, house=300.0, pv=500.0)  # house 300 W: 500 W PV and ~1 kW inverter -> ~1.2 kW out
    s = p.oracle.summary()
    # the meter exported PV and battery together; the battery's part is bounded by what the inverter made
    assert 0.0 < s["battery_export_wh"] <= p.grid_export_kwh * 1000.0
    # after the 30 s grid check the export (~1.2 kW) exceeds the inverter's 1 kW: all of it counts
    assert s["battery_export_wh"] == pytest.approx(1000.0 * (3600 - 30) / 3600, rel=0.01)
    assert s["discharge_h"] == pytest.approx((3600 - 30) / 3600, abs=0.001)


def test_starts_trips_and_hours_above_90() -> None:
    p = plant(soc=0.95)
    charge(p, 30.0, 100.0)
    step(p, 7200)
    assert p.bms_trips >= 1 and p.charger.starts == 1
    assert 0 < p.oracle.first["charger_starts"] < p.oracle.first["bms_trips"]
    assert p.oracle.summary()["hours_above_90pct"] > 1.9
    discharge(p, 500.0)
    p.charger.enable = False
    step(p, 60)
    p.inverter.enable = False
    step(p, 5)
    discharge(p, 500.0)
    step(p, 60)
    assert p.inverter.starts == 2 and p.oracle.first["inverter_starts"] == pytest.approx(7200 + 30, abs=1)


def test_a_pack_off_the_bus_puts_all_current_on_the_other() -> None:
    p = plant(packs=2, soc=0.5)
    charge(p, 28.5, 100.0)
    step(p, 60)
    a, b = (pack.current for pack in p.packs)
    assert a > 20 and b > 20 and a + b == pytest.approx(100.0, abs=1)
    p.packs[1].connected = False
    step(p, 5)
    assert p.packs[0].current == pytest.approx(100.0, abs=1) and p.packs[1].current == 0.0
