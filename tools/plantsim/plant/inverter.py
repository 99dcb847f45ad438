"""A grid-tie inverter discharging the battery into the house. Inputs: ``enable``, ``power_sp`` (W AC).

After enable (and with DC present) it runs its grid check for ``start_delay_s`` (VDE-AR-N 4105: ~30 s or
more) before it delivers; running, the AC power follows the setpoint clamped to [min_w, max_w] with a
first-order lag of ``tau_s``. It stops at once when disabled or when the DC goes away (the BMS opens), and
then starts over with the grid check.

Efficiency curve: DC drawn = AC + ``idle_w`` + ``loss_w_per_kw2`` x (AC in kW)^2, the usual loss model of a
power converter (a fixed part and a conduction part). With 10 W and 15 W/kW^2 it gives 84 % at 53 W, 91 % at
100 W, 95.9 % at 500 W and 96.6 % at 2 kW: the shape of a small grid-tie unit's curve at the EN 50530 load
points (a generic curve, not one unit's datasheet).
"""

from __future__ import annotations

import math


class Inverter:
    __slots__ = ("enable", "power_sp", "start_delay_s", "min_w", "max_w", "tau_s", "idle_w", "loss_per_w2",
                 "running", "start_timer_s", "ac_power", "dc_power", "starts", "_alpha_dt", "_alpha")

    def __init__(self, start_delay_s: float = 30.0, min_w: float = 53.0, max_w: float = 2000.0,
                 tau_s: float = 2.0, idle_w: float = 10.0, loss_w_per_kw2: float = 15.0) -> None:
        self.enable = False
        self.power_sp = 0.0
        self.start_delay_s = float(start_delay_s)
        self.min_w = float(min_w)
        self.max_w = float(max_w)
        self.tau_s = float(tau_s)
        self.idle_w = float(idle_w)
        self.loss_per_w2 = float(loss_w_per_kw2) / 1e6
        self.running = False
        self.start_timer_s = 0.0
        self.ac_power = 0.0  # measured AC output (W)
        self.dc_power = 0.0  # drawn from the battery (W)
        self.starts = 0  # grid checks passed: times it began to deliver
        self._alpha_dt = -1.0
        self._alpha = 1.0

    def efficiency(self, ac_w: float) -> float:
        """AC out / DC in at an AC output of ``ac_w``."""
        return ac_w / (ac_w + self.idle_w + self.loss_per_w2 * ac_w * ac_w) if ac_w > 0 else 0.0

    def stop(self) -> None:
        self.running = False
        self.start_timer_s = 0.0
        self.ac_power = 0.0
        self.dc_power = 0.0

    def update(self, dt: float, dc_ok: bool) -> float:
        """Advance by ``dt``; returns the DC power (W) it wants from the battery this step."""
        if not (self.enable and dc_ok):
            if self.running or self.start_timer_s or self.ac_power:
                self.stop()
            return 0.0
        if not self.running:
            self.start_timer_s += dt
            if self.start_timer_s < self.start_delay_s:
                return 0.0
            self.running = True
            self.starts += 1
            self.ac_power = self.min_w  # a grid-tie unit connects at its minimum and ramps from there
        if dt != self._alpha_dt:
            # the lag factor only changes when dt does; cache it to keep exp() off the usual path
            self._alpha_dt = dt
            self._alpha = 1.0 - math.exp(-dt / self.tau_s) if self.tau_s > 0 else 1.0
        sp = self.power_sp
        target = self.min_w if sp < self.min_w else (self.max_w if sp > self.max_w else sp)
        p = self.ac_power + (target - self.ac_power) * self._alpha
        self.ac_power = p
        self.dc_power = p + self.idle_w + self.loss_per_w2 * p * p
        return self.dc_power
