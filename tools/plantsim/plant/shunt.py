"""A Victron SmartShunt-style monitor on the bank's main negative: it measures the whole bank's current and
voltage and keeps its own coulomb counter (charge efficiency, synced at "charged"), a separate measurement
from the BMSs' and from the controller's.

Sensor faults act where a real shunt's would: a faulted current reading (``current_fault``) is also what its
own coulomb counter integrates, so an offset drifts its SoC; ``soc_fault`` and ``voltage_fault`` only change
what it reports. ``consumed_ah`` is 0 at full and negative below; ``time_to_go_min`` is -1 when not
discharging.
"""

from __future__ import annotations

from tools.plantsim.plant.sensors import SensorFault


class Shunt:
    __slots__ = ("voltage", "current", "power", "consumed_ah", "soc_permille", "time_to_go_min", "temperature",
                 "capacity_ah", "soc", "charge_efficiency", "charged_v", "tail_a", "detect_s", "syncs",
                 "current_fault", "voltage_fault", "soc_fault", "_sync_timer", "_t")

    def __init__(self, capacity_ah: float, soc: float, charged_v: float, tail_a: float, detect_s: float = 180.0,
                 charge_efficiency: float = 0.99) -> None:
        self.capacity_ah = float(capacity_ah)
        self.soc = float(soc)
        self.charged_v = float(charged_v)
        self.tail_a = float(tail_a)
        self.detect_s = float(detect_s)
        self.charge_efficiency = float(charge_efficiency)
        self.syncs = 0
        self._sync_timer = 0.0
        self._t = 0.0
        self.current_fault: SensorFault | None = None
        self.voltage_fault: SensorFault | None = None
        self.soc_fault: SensorFault | None = None
        self.voltage = 0.0
        self.current = 0.0
        self.power = 0.0
        self.temperature = 0.0
        self.consumed_ah = -(1.0 - self.soc) * self.capacity_ah
        self.soc_permille = int(round(self.soc * 1000.0))
        self.time_to_go_min = -1.0

    def update(self, dt: float, voltage: float, current: float, temperature: float) -> None:
        self._t += dt
        if self.current_fault is not None:
            current = self.current_fault.apply(current, self._t)
        if self.voltage_fault is not None:
            voltage = self.voltage_fault.apply(voltage, self._t)
        self.voltage = voltage
        self.current = current
        self.power = voltage * current
        self.temperature = temperature
        eff = self.charge_efficiency if current > 0.0 else 1.0
        s = self.soc + current * eff * dt / (3600.0 * self.capacity_ah)
        s = 1.0 if s > 1.0 else (0.0 if s < 0.0 else s)
        # "charged" detection: voltage above the charged voltage and current below the tail for detect_s
        # (a discharge is not "below the tail", hence the two-sided test). One sync per detection.
        if voltage >= self.charged_v and -self.tail_a < current < self.tail_a:
            if self._sync_timer < self.detect_s:
                self._sync_timer += dt
                if self._sync_timer >= self.detect_s:
                    s = 1.0
                    self.syncs += 1
        else:
            self._sync_timer = 0.0
        self.soc = s
        self.consumed_ah = -(1.0 - s) * self.capacity_ah
        shown = s if self.soc_fault is None else self.soc_fault.apply(s * 1000.0, self._t) / 1000.0
        permille = shown * 1000.0
        # min(1000, max(0, permille)) without the two calls (NaN reads 0 as it does there)
        permille = permille if permille > 0.0 else 0.0
        self.soc_permille = int((permille if permille < 1000.0 else 1000.0) + 0.5)
        if current < -0.1:
            self.time_to_go_min = s * self.capacity_ah / -current * 60.0
        else:
            self.time_to_go_min = -1.0

    def set_fault(self, quantity: str, fault: SensorFault | None) -> None:
        """Start or end a sensor fault on ``current``, ``voltage`` or ``soc``."""
        if quantity not in ("current", "voltage", "soc"):
            raise ValueError(f"the shunt has no measurement {quantity!r}; it has current, voltage, soc")
        if fault is not None:
            fault.since = self._t
            fault.scale = 1.0 if quantity == "soc" else 0.001  # permille; mA and mV on VE.Direct
        setattr(self, f"{quantity}_fault", fault)
