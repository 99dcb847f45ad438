"""One pack: a series string of LFP cells sharing one lumped temperature, with its own BMS, heater pads and
the cabinet fan, an OCV hysteresis state, and a connection to the bank's DC bus.

Two temperature sensors: a hot-spot one between the cells (sees internal heat) and one near the cabinet wall
(pulled toward ambient), so ``temp_max``/``temp_min`` differ a little, like a real JK's T1/T2. The thermal
step is the exact exponential solution, so any dt is stable.
"""

from __future__ import annotations

import math
import random

from tools.plantsim.plant.bms import Bms
from tools.plantsim.plant.cells import (
    GRID_N,
    HALF_GRID,
    HALF_RISE,
    HYSTERESIS_SOC,
    MID_GRID,
    MID_RISE,
    Cell,
    capacity_factor,
    ocv_slope,
    resistance_soc_factor,
    resistance_temperature_factor,
)
from tools.plantsim.plant.config import PlantConfig


def build_cells(cfg: PlantConfig, seed: int, high_cell: int | None) -> list[Cell]:
    """The cells of one pack: an SoC spread giving ``cell_spread_mv`` at mid SoC and a capacity spread, both
    shuffled so the highest cell is not simply the last one; optionally one cell that runs high."""
    n = cfg.cells_series
    rng = random.Random(seed)
    dsoc = (cfg.cell_spread_mv / 1000.0) / ocv_slope(0.5)
    offsets = [dsoc * (i / (n - 1) - 0.5) for i in range(n)] if n > 1 else [0.0]
    rng.shuffle(offsets)
    spread = cfg.capacity_spread_pct / 100.0
    caps = [cfg.capacity_ah * (1.0 + spread * (i / (n - 1) - 0.5)) for i in range(n)] if n > 1 else [cfg.capacity_ah]
    rng.shuffle(caps)
    r_cell = cfg.cell_resistance_mohm / 1000.0
    cells = []
    for k in range(n):
        soc, cap = cfg.soc + offsets[k], caps[k]
        if high_cell == k:
            soc = cfg.soc + dsoc / 2.0 + cfg.high_cell_soc_offset
            cap = cfg.capacity_ah * cfg.high_cell_capacity_factor
        cells.append(Cell(cap, soc, r_cell, cfg.self_discharge_pct_per_month))
    return cells


class Pack:
    __slots__ = ("cells", "bms", "connected", "temperature_c", "heat_capacity_j_per_k", "ua_natural_w_per_k",
                 "ua_fan_w_per_k", "heater_w", "fan_w", "heater_on", "fan_on", "sensor_gradient_k_per_w",
                 "sensor_wall_coupling", "temperatures", "temp_max", "temp_min", "hysteresis", "capacity_ah",
                 "r_nominal", "cell_voltages", "cell_v_max", "cell_v_min", "voltage", "current", "soc",
                 "balancer_a", "balance_start_v", "balance_trigger_v", "balancer_efficiency",
                 "_soc_next", "_i_max", "_i_min", "_t_cached", "_r_temp", "_cap_a", "_cap_b", "_mid_sum",
                 "_half_sum",
                 "_per_cell")

    def __init__(self, cells: list[Cell], cfg: PlantConfig, resistance_factor: float = 1.0) -> None:
        if not cells:
            raise ValueError("a pack needs at least one cell")
        self.cells = cells
        self.bms = Bms(cfg)
        self.connected = True  # False: the pack's cable is off the bus
        self.temperature_c = float(cfg.temperature_c)
        heat = cfg.heat_capacity_j_per_k
        self.heat_capacity_j_per_k = float(heat if heat is not None else 18.75 * sum(c.capacity_ah for c in cells))
        self.ua_natural_w_per_k = cfg.ua_natural_w_per_k
        self.ua_fan_w_per_k = cfg.ua_fan_w_per_k
        self.heater_w = cfg.heater_w
        self.fan_w = cfg.fan_w
        self.heater_on = False
        self.fan_on = False
        self.sensor_gradient_k_per_w = cfg.sensor_gradient_k_per_w
        self.sensor_wall_coupling = cfg.sensor_wall_coupling
        self.balancer_a = cfg.balancer_a
        self.balance_start_v = cfg.balance_start_v
        self.balance_trigger_v = cfg.balance_trigger_v
        self.balancer_efficiency = cfg.balancer_efficiency
        self.hysteresis = max(-1.0, min(1.0, cfg.hysteresis))
        self.capacity_ah = cfg.capacity_ah  # nominal: what the BMS is set to and the C-rates refer to
        self.r_nominal = sum(c.resistance_ohm for c in cells) * resistance_factor
        n = len(cells)
        self.cell_voltages = [0.0] * n
        self._soc_next = [c.soc for c in cells]
        self.cell_v_max = self.cell_v_min = 0.0
        self._i_max = self._i_min = 0
        self.voltage = 0.0
        self.current = 0.0
        self.soc = sum(c.soc for c in cells) / n
        self.temperatures = [self.temperature_c, self.temperature_c]
        self.temp_max = self.temp_min = self.temperature_c
        self._t_cached = math.nan
        self._r_temp = 1.0
        self._cap_a, self._cap_b = 1.0, 0.0
        self._mid_sum = self._half_sum = 0.0
        # per cell, for the step's loop: (cell, SoC per ampere-second, self-discharge per second, ohm)
        self._per_cell = [(c, 1.0 / (3600.0 * c.capacity_ah), c.self_discharge_per_s, c.resistance_ohm) for c in cells]
        self._temperature_factors()

    def _temperature_factors(self) -> None:
        """Resistance and deliverable-capacity factors at the temperature now."""
        t = self.temperature_c
        self._t_cached = t
        self._r_temp = resistance_temperature_factor(t)
        # the voltage curve sees s_eff = 1 - (1 - s) / f: the cell reaches its floor with (1 - f) still inside
        a = 1.0 / capacity_factor(t)
        self._cap_a, self._cap_b = a, 1.0 - a

    def resistance(self) -> float:
        """The string's resistance now (ohm): nominal x temperature factor x SoC factor."""
        return self.r_nominal * self._r_temp * resistance_soc_factor(self.soc)

    def ocv(self) -> float:
        """Open-circuit voltage of the string on its hysteresis branch: the last snapshot's (the SoCs it
        committed), with the hysteresis state moved since; the balancer's shift within a step is left out."""
        return self._mid_sum + self.hysteresis * self._half_sum

    def snapshot(self, dt: float, current_a: float, r_factor: float) -> None:
        """End-of-step SoCs (not committed) and terminal voltages for a trial current; ``r_factor`` is the
        step's resistance per nominal ohm (temperature x SoC)."""
        a, b, h = self._cap_a, self._cap_b, self.hysteresis
        mid, half, mid_rise, half_rise, gn = MID_GRID, HALF_GRID, MID_RISE, HALF_RISE, GRID_N
        vmax, vmin = -1.0, 1e9
        imax = imin = 0
        vsum = msum = hsum = 0.0
        nxt = self._soc_next
        volts = self.cell_voltages
        k = 0
        for c, per_as, leak, ohm in self._per_cell:
            s = c.soc + (current_a * per_as - leak) * dt
            s = 1.0 if s > 1.0 else (0.0 if s < 0.0 else s)
            nxt[k] = s
            x = s * a + b
            x = (0.0 if x < 0.0 else x) * gn
            i = int(x)
            if i >= gn:
                m, hh = mid[gn], half[gn]
            else:
                f = x - i
                m = mid[i] + mid_rise[i] * f
                hh = half[i] + half_rise[i] * f
            msum += m
            hsum += hh
            v = m + h * hh + current_a * ohm * r_factor
            volts[k] = v
            vsum += v
            if v > vmax:
                vmax, imax = v, k
            if v < vmin:
                vmin, imin = v, k
            k += 1
        self.cell_v_max, self.cell_v_min = vmax, vmin
        self._i_max, self._i_min = imax, imin
        self.voltage = vsum
        self.current = current_a
        self._mid_sum, self._half_sum = msum, hsum

    def commit(self, dt: float) -> None:
        """Make the snapshot's SoCs real; run the balancer; move the hysteresis state; the BMS's counter."""
        cells = self.cells
        nxt = self._soc_next
        soc_sum = 0.0
        for c, soc in zip(cells, nxt, strict=True):
            c.soc = soc
            soc_sum += soc
        n = len(cells)
        bal = self.balancer_a
        if (bal > 0.0 and n > 1 and self.cell_v_max >= self.balance_start_v
                and self.cell_v_max - self.cell_v_min >= self.balance_trigger_v):
            # active balancer: moves charge from the highest to the lowest cell near the top of the curve
            hi, lo = cells[self._i_max], cells[self._i_min]
            before = hi.soc + lo.soc
            hi.soc = max(0.0, hi.soc - bal * dt / (3600.0 * hi.capacity_ah))
            lo.soc = min(1.0, lo.soc + bal * self.balancer_efficiency * dt / (3600.0 * lo.capacity_ah))
            soc_sum += hi.soc + lo.soc - before
            self.bms.balancing = True
        else:
            self.bms.balancing = False
        self.soc = soc_sum / n
        i = self.current
        if i != 0.0:
            # one-state hysteresis: the state moves toward sign(I) over HYSTERESIS_SOC of throughput
            step = abs(i) * dt / (3600.0 * self.capacity_ah * HYSTERESIS_SOC)
            target = 1.0 if i > 0.0 else -1.0
            self.hysteresis += (target - self.hysteresis) * (1.0 if step > 1.0 else step)
        bms = self.bms
        bs = bms.soc_pct + 100.0 * i * dt / (3600.0 * bms.capacity_ah)
        bms.soc_pct = 100.0 if bs > 100.0 else (0.0 if bs < 0.0 else bs)

    def thermal_step(self, dt: float, joule_w: float, ambient_c: float) -> None:
        """Advance the lumped temperature and the two sensor readings."""
        ua = self.ua_fan_w_per_k if self.fan_on else self.ua_natural_w_per_k
        heat = joule_w + (self.heater_w if self.heater_on else 0.0)
        t_inf = ambient_c + heat / ua
        t = t_inf + (self.temperature_c - t_inf) * math.exp(-dt * ua / self.heat_capacity_j_per_k)
        self.temperature_c = t
        # why two sensors: the controller sees a spread, and the min one decides low-temperature charging.
        t_hot = t + self.sensor_gradient_k_per_w * heat
        t_wall = t + self.sensor_wall_coupling * (ambient_c - t)
        temps = self.temperatures
        temps[0], temps[1] = t_hot, t_wall
        self.temp_max, self.temp_min = (t_hot, t_wall) if t_hot >= t_wall else (t_wall, t_hot)
        if not abs(t - self._t_cached) < 0.05:  # only when it moved 0.05 K: exp() and a table lookup
            self._temperature_factors()
