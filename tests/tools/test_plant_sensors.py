"""Sensor faults (tools/plantsim/plant/sensors.py) and where the shunt's take effect."""

from __future__ import annotations

import pytest

from tools.plantsim.model import Plant
from tools.plantsim.plant.sensors import SensorFault


def test_each_kind_distorts_as_documented() -> None:
    assert SensorFault("offset", 3.0, 0.0).apply(10.0, 5.0) == 13.0
    assert SensorFault("gain", 1.1, 0.0).apply(10.0, 5.0) == pytest.approx(11.0)
    stuck = SensorFault("stuck", 0.0, 0.0)
    assert stuck.apply(3.30, 1.0) == 3.30 and stuck.apply(3.60, 2.0) == 3.30
    assert SensorFault("drift", 0.5, 100.0).apply(10.0, 100.0 + 7200.0) == pytest.approx(11.0)
    noisy = [SensorFault("noise", 0.1, 0.0, seed=3).apply(0.0, 0.0) for _ in range(1)]
    assert noisy[0] != 0.0
    # bit 12 of a mV register: 3.300 V -> 3300 ^ 4096 = 7396 mV, a valid number that is wrong
    assert SensorFault("bitflip", 12, 0.0, scale=0.001).apply(3.300, 0.0) == pytest.approx(7.396)
    with pytest.raises(ValueError, match="allowed"):
        SensorFault("wobble", 1.0, 0.0)


def test_a_shunt_current_offset_drifts_its_own_soc_and_ends_cleanly() -> None:
    plant = Plant()
    start = plant.shunt.soc
    plant.shunt.set_fault("current", SensorFault("offset", 3.0, 0.0))
    for _ in range(3600):
        plant.step(1.0, 0.0, 0.0, 20.0)
    assert plant.shunt.current == pytest.approx(3.0, abs=0.01)  # at rest, it reads 3 A of charge
    assert plant.shunt.soc - start == pytest.approx(3.0 * 0.99 / 320.0, rel=0.01)
    plant.shunt.set_fault("current", None)
    plant.step(1.0, 0.0, 0.0, 20.0)
    assert plant.shunt.current == pytest.approx(0.0, abs=0.01)


def test_a_shunt_soc_fault_changes_only_what_it_reports() -> None:
    plant = Plant()
    plant.shunt.set_fault("soc", SensorFault("offset", 100.0, 0.0))  # +100 permille
    plant.step(1.0, 0.0, 0.0, 20.0)
    assert plant.shunt.soc_permille == round(plant.shunt.soc * 1000) + 100
    with pytest.raises(ValueError, match="current, voltage, soc"):
        plant.shunt.set_fault("temperature", None)
