"""The oracle: the plant's own judge of what really happened, each harm with its time of first occurrence.

It reads only the plant's physical state and the cell's datasheet limits (seed 000), never the controller's
parameters or the BMS's settings: a mis-set BMS or a wrong ``par.*`` cannot hide a harm from it.

Per pack and step (the BMS judges the end of a step, and so does the oracle):

- charge current into a pack whose highest cell is above 3.65 V, or colder than 0 degC, or hotter than 65;
- discharge current from a pack whose lowest cell is below 2.5 V, or colder than -30 degC, or hotter than 65;
- charge current above 0.5C (seed 000's standard charge), discharge current above 1C or the 250 A fuse.

"Current" means more than ``DEAD_BAND_A`` = 0.01 A: the resolution of a Victron SmartShunt (VE.Direct
reports mA, the unit resolves 10 mA), the finest instrument of the site. A smaller current would be invisible
to any real measurement, a larger dead band would hide a real trickle (the old monitor's 0.5 A hid 12 Wh a
day). For the site: battery energy exported (the inverter's AC output that the meter sent to the grid at the
same moment: the integral of min(inverter AC, max(0, -grid))), hours above 90 % true SoC, hours discharging,
and the battery's share of the house's energy (the inverter's AC output that stayed in the house, over what the
house consumed, heater and fan included: issue 14's "the battery covers >= 30 % of the house").
"""

from __future__ import annotations

from typing import Any

DEAD_BAND_A = 0.01
CELL_MAX_V = 3.65
CELL_MIN_V = 2.50
CHARGE_T_MIN, CHARGE_T_MAX = 0.0, 65.0
DISCHARGE_T_MIN, DISCHARGE_T_MAX = -30.0, 65.0
CHARGE_C_RATE = 0.5
DISCHARGE_C_RATE = 1.0

# counters of seconds, by name; the first six are the cell and temperature harms (``safety_violations``)
HARMS = ("charge_above_3v65_s", "charge_below_0c_s", "charge_above_65c_s", "discharge_below_2v5_s",
         "discharge_below_minus30c_s", "discharge_above_65c_s")
CURRENTS = ("charge_above_0c5_s", "discharge_above_1c_s", "discharge_above_fuse_s")


class Oracle:
    """Counts harms in seconds (and steps for ``safety_violations``) with the time each was first seen."""

    def __init__(self, fuse_a: float) -> None:
        self.fuse_a = fuse_a
        self.seconds: dict[str, float] = dict.fromkeys(HARMS + CURRENTS, 0.0)
        self.first: dict[str, float] = {}
        self.violations = 0  # steps with any cell or temperature harm
        self.export_ws = 0.0
        self.above_90_s = 0.0
        self.discharge_s = 0.0
        self.house_ws = 0.0
        self.battery_house_ws = 0.0

    def _count(self, name: str, t: float, dt: float) -> None:
        self.seconds[name] += dt
        if name not in self.first:
            self.first[name] = t

    def judge_pack(self, t: float, dt: float, current: float, vmax: float, vmin: float, tmax: float,
                   tmin: float, capacity_ah: float) -> None:
        """One pack's step; ``t`` is the time at the end of the step."""
        if current > DEAD_BAND_A:
            if vmax > CELL_MAX_V or tmin < CHARGE_T_MIN or tmax > CHARGE_T_MAX:
                self.violations += 1
                if vmax > CELL_MAX_V:
                    self._count("charge_above_3v65_s", t, dt)
                if tmin < CHARGE_T_MIN:
                    self._count("charge_below_0c_s", t, dt)
                if tmax > CHARGE_T_MAX:
                    self._count("charge_above_65c_s", t, dt)
            if current > CHARGE_C_RATE * capacity_ah:
                self._count("charge_above_0c5_s", t, dt)
        elif current < -DEAD_BAND_A:
            if vmin < CELL_MIN_V or tmin < DISCHARGE_T_MIN or tmax > DISCHARGE_T_MAX:
                self.violations += 1
                if vmin < CELL_MIN_V:
                    self._count("discharge_below_2v5_s", t, dt)
                if tmin < DISCHARGE_T_MIN:
                    self._count("discharge_below_minus30c_s", t, dt)
                if tmax > DISCHARGE_T_MAX:
                    self._count("discharge_above_65c_s", t, dt)
            if -current > DISCHARGE_C_RATE * capacity_ah:
                self._count("discharge_above_1c_s", t, dt)
            if -current > self.fuse_a:
                self._count("discharge_above_fuse_s", t, dt)

    def judge_site(self, t: float, dt: float, inverter_ac_w: float, grid_w: float, house_w: float,
                   soc: float) -> None:
        """The site's step: battery energy exported, the house's energy and the battery's part of it, time above
        90 % SoC, time discharging."""
        self.house_ws += house_w * dt
        if inverter_ac_w > 0.0:
            self.discharge_s += dt
            exported = 0.0
            if grid_w < 0.0:
                exported = inverter_ac_w if inverter_ac_w < -grid_w else -grid_w
                self.export_ws += exported * dt
                if "battery_export_wh" not in self.first:
                    self.first["battery_export_wh"] = t
            self.battery_house_ws += (inverter_ac_w - exported) * dt
        if soc > 0.9:
            self.above_90_s += dt

    def summary(self) -> dict[str, Any]:
        """The counters as summary keys (numbers, so a scenario's ``expect`` can bound each)."""
        out: dict[str, Any] = {name: round(s, 3) for name, s in self.seconds.items()}
        out["battery_export_wh"] = round(self.export_ws / 3600.0, 3)
        out["hours_above_90pct"] = round(self.above_90_s / 3600.0, 4)
        out["discharge_h"] = round(self.discharge_s / 3600.0, 4)
        out["house_kwh"] = round(self.house_ws / 3.6e6, 3)
        out["battery_share_pct"] = round(100.0 * self.battery_house_ws / self.house_ws, 2) if self.house_ws > 0 else 0.0
        return out
