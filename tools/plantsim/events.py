"""Scenario events acting on the plant, the same in ``battplc sim`` and ``battplc demo``: device and sensor
faults starting and ending, and plant inputs (``pv``, ``house``, ``ambient`` pinned; packs off or on the bus)."""

from __future__ import annotations

from typing import Any

from tools.plantsim.devices import PlantDevices
from tools.plantsim.plant.sensors import SensorFault

FaultData = tuple[str, str, "float | None", "str | None", float]  # device, kind, seconds, sensor tag, value


def start_fault(devices: PlantDevices, data: FaultData, t: float, seed: int) -> None:
    """Begin a device fault (offline, timeout, garbage) or a sensor fault on one tag."""
    device, kind, _, tag, value = data
    if tag is None:
        devices.set_fault(device, kind)
    else:
        devices.set_sensor_fault(device, tag, SensorFault(kind, value, t, seed=seed))


def end_fault(devices: PlantDevices, data: FaultData) -> None:
    """End the fault ``data`` started: the device answers again, or the tag reads true again."""
    device, _, _, tag, _ = data
    if tag is None:
        devices.set_fault(device, None)
    else:
        devices.set_sensor_fault(device, tag, None)


def apply_plant(devices: PlantDevices, pinned: dict[str, float], data: dict[str, Any]) -> None:
    """A ``plant:`` event: take packs off or put them on the bus; pin the other inputs at their values."""
    values = dict(data)
    for key, connected in (("pack_off", False), ("pack_on", True)):
        if key in values:
            devices.plant.packs[int(values.pop(key)) - 1].connected = connected
    pinned.update(values)
