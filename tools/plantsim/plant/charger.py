"""A DC charger module: CC/CV with its own current, voltage and power limits, whatever it is told.

Inputs: ``enable``, ``voltage_sp`` (V), ``current_sp`` (A). The setpoints are clamped to the module's own
``max_voltage_v`` and ``max_current_a`` (a real module refuses to go past its rating); the current tapers as
the bank's voltage approaches the setpoint through the bank and cable resistance; ``max_power_w`` caps the DC
output. It never pushes current backwards.
"""

from __future__ import annotations

import math


class Charger:
    __slots__ = ("enable", "voltage_sp", "current_sp", "max_power_w", "max_current_a", "max_voltage_v",
                 "efficiency", "cable_r_ohm", "current", "output_voltage", "dc_power", "ac_power", "starts",
                 "_was_enabled")

    def __init__(self, max_power_w: float = 5000.0, max_current_a: float = 160.0, max_voltage_v: float = 29.2,
                 efficiency: float = 0.94, cable_r_ohm: float = 0.010) -> None:
        self.enable = False
        self.voltage_sp = 0.0
        self.current_sp = 0.0
        self.max_power_w = float(max_power_w)
        self.max_current_a = float(max_current_a)
        self.max_voltage_v = float(max_voltage_v)
        self.efficiency = float(efficiency)
        self.cable_r_ohm = float(cable_r_ohm)
        self.current = 0.0  # measured output current (A)
        self.output_voltage = 0.0
        self.dc_power = 0.0
        self.ac_power = 0.0  # drawn from the AC bus (W)
        self.starts = 0  # times it was switched on (enable rising)
        self._was_enabled = False

    def available_current(self, bank_ocv: float, bank_r_ohm: float) -> float:
        """Current the charger would push into a bank at ``bank_ocv`` with ``bank_r_ohm``, before the BMS."""
        if not self.enable:
            return 0.0
        cap = self.current_sp if self.current_sp < self.max_current_a else self.max_current_a
        if cap <= 0.0:
            return 0.0
        v_sp = self.voltage_sp if self.voltage_sp < self.max_voltage_v else self.max_voltage_v
        r = bank_r_ohm + self.cable_r_ohm
        i = (v_sp - bank_ocv) / r
        if i <= 0.0:
            return 0.0
        if i > cap:
            i = cap
        if i * (bank_ocv + i * r) > self.max_power_w:
            # solve r*i^2 + ocv*i - P = 0 for the power-limited current
            i = (math.sqrt(bank_ocv * bank_ocv + 4.0 * r * self.max_power_w) - bank_ocv) / (2.0 * r)
        return i

    def settle(self, current_a: float, bank_ocv: float, bank_r_ohm: float) -> None:
        """Record the current that actually flowed (after the BMS) and the resulting powers."""
        if self.enable and not self._was_enabled:
            self.starts += 1
        self._was_enabled = self.enable
        self.current = current_a
        if current_a > 0.0:
            v = bank_ocv + current_a * (bank_r_ohm + self.cable_r_ohm)
            self.output_voltage = v
            self.dc_power = v * current_a
            self.ac_power = self.dc_power / self.efficiency
        else:
            # open circuit (BMS open, CV reached or disabled): the output sits at its setpoint, no draw
            self.output_voltage = min(self.voltage_sp, self.max_voltage_v) if self.enable else 0.0
            self.dc_power = 0.0
            self.ac_power = 0.0
