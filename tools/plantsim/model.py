"""Pure physics model of the battplc plant (the default site of DESIGN.md, section Simulation).

What it models: a series string of LiFePO4 cells (default 8S of CATL LEP71H3L7-01, 320 Ah, seed 000) with an
LFP open-circuit-voltage curve, internal resistance, self-discharge, a small cell-to-cell spread and a lumped
thermal model (I^2R, a heater, a cabinet fan, seed 001); a JK-style BMS with the seed-000 cut-offs and an
active balancer; a Victron-style shunt; a DC charger module (CC/CV); a grid-tie inverter with a start delay;
and a grid meter.

What it does not do: no I/O, no clocks, no Modbus. A caller (the register server or the in-process `battplc
sim`) sets the device inputs (``plant.charger.enable`` ...), calls ``plant.step(dt, pv_w, house_w,
ambient_c)`` and reads the plain-float outputs. Everything is plain floats and lists so that a 24 h run at
1 s steps costs well under a second of CPU.

Conventions: SoC is a fraction 0..1 everywhere in the model (``PlantConfig.soc`` too; the shunt's output is
per mille and the BMS estimate is percent because that is what those devices report). Battery current is
positive when charging. Grid power is positive when importing.

BMS hysteresis (JK-style latches, each cause latched on its own, released only when its release threshold is
crossed, so the flag does not chatter at the limit):

====================  ========================  ======================
cause                 trips when                released when
====================  ========================  ======================
charge, cell OV       any cell > 3.65 V         max cell < 3.55 V
charge, temp high     max temp > 65 degC        max temp < 60 degC
charge, temp low      min temp < 0 degC         min temp > 2 degC
discharge, cell UV    any cell < 2.50 V         min cell > 2.80 V
discharge, temp low   min temp < -30 degC       min temp > -25 degC
discharge, temp high  max temp > 65 degC        max temp < 60 degC
====================  ========================  ======================

The BMS judges the state at the end of a step with the step's current (like the hardware comparator that acts
within milliseconds, much faster than a 1 s step): if that state crosses a cut-off, the MOSFET opens for the
whole step and no current of that direction flows. So with protection on, no current ever flows past a limit.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass

__all__ = [
    "OCV_TABLE",
    "Bms",
    "Cell",
    "Charger",
    "Inverter",
    "Pack",
    "Plant",
    "PlantConfig",
    "Shunt",
    "ocv",
    "soc_from_ocv",
]

# ---------------------------------------------------------------------------------------------------------
# Open-circuit voltage of one LFP cell
# ---------------------------------------------------------------------------------------------------------

# (SoC fraction, volts per cell). The 10/20/25/80 % points are seed 002's 4S idle-curve values divided by 4
# (12.85 V, 13.06 V, 13.12 V, 13.35 V); the ends follow the cell's 2.5-3.65 V operating range (seed 000).
# All breakpoints sit on multiples of 0.005 so the uniform lookup grid below reproduces the table exactly.
OCV_TABLE: tuple[tuple[float, float], ...] = (
    (0.000, 2.500),
    (0.005, 2.700),
    (0.010, 2.850),
    (0.020, 2.980),
    (0.050, 3.120),
    (0.100, 3.2125),
    (0.150, 3.245),
    (0.200, 3.265),
    (0.250, 3.280),
    (0.300, 3.290),
    (0.400, 3.300),
    (0.500, 3.308),
    (0.600, 3.318),
    (0.700, 3.328),
    (0.800, 3.3375),
    (0.900, 3.350),
    (0.950, 3.370),
    (0.970, 3.400),
    (0.985, 3.450),
    (0.995, 3.550),
    (1.000, 3.650),
)
_OCV_X = tuple(p[0] for p in OCV_TABLE)
_OCV_Y = tuple(p[1] for p in OCV_TABLE)


def _interp_table(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    k = bisect_right(xs, x) - 1
    x0 = xs[k]
    y0 = ys[k]
    return y0 + (ys[k + 1] - y0) * (x - x0) / (xs[k + 1] - x0)


# A uniform grid turns the per-cell lookup (8 per step, twice) into an index computation instead of a bisect.
_GRID_N = 1000
_OCV_GRID: list[float] = [_interp_table(i / _GRID_N, _OCV_X, _OCV_Y) for i in range(_GRID_N + 1)]
_OCV_MAX = _OCV_GRID[_GRID_N]


def ocv(soc_fraction: float) -> float:
    """Open-circuit voltage of one cell (V) at a SoC fraction; clamped to the 0..1 ends of the curve."""
    if soc_fraction <= 0.0:
        return _OCV_GRID[0]
    x = soc_fraction * _GRID_N
    i = int(x)
    if i >= _GRID_N:
        return _OCV_MAX
    a = _OCV_GRID[i]
    return a + (_OCV_GRID[i + 1] - a) * (x - i)


def soc_from_ocv(volts: float) -> float:
    """Inverse of :func:`ocv`: SoC fraction of one cell resting at ``volts`` (clamped to 0..1)."""
    return _interp_table(volts, _OCV_Y, _OCV_X)


def _ocv_slope(soc_fraction: float, half_width: float = 0.05) -> float:
    """Local slope dV/dSoC of the curve (V per unit SoC), used to size the cell spread."""
    lo = max(0.0, soc_fraction - half_width)
    hi = min(1.0, soc_fraction + half_width)
    return (ocv(hi) - ocv(lo)) / (hi - lo)


_SECONDS_PER_MONTH = 30.0 * 86400.0


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------


@dataclass
class PlantConfig:
    """Everything that differs between sites and scenarios. Defaults are the default site (8S 320 Ah)."""

    cells_series: int = 8
    capacity_ah: float = 320.0  # nominal capacity of one series element (a 2P block counts as one cell)
    soc: float = 0.5  # initial mean SoC as a FRACTION 0..1 (not percent; > 1 is refused)
    temperature_c: float = 20.0  # initial pack temperature
    ambient_c: float = 20.0  # ambient until the first step() says otherwise
    cell_spread_mv: float = 3.0  # max-min cell voltage at mid SoC, produced by an initial SoC spread
    capacity_spread_pct: float = 1.0  # max-min of per-cell capacities, % of nominal
    high_cell: int | None = None  # index of a cell that "runs high" (higher SoC, lower capacity)
    high_cell_soc_offset: float = 0.02  # SoC fraction above the highest regular cell
    high_cell_capacity_factor: float = 0.98
    cell_resistance_mohm: float = 0.25  # DC, incl. busbars (seed 000 gives 0.18 mOhm at 1 kHz)
    resistance_temp_coeff: float = 0.015  # per K below 25 degC: LFP resistance rises in the cold
    self_discharge_pct_per_month: float = 3.5
    seed: int = 1  # the spread is pseudo-random but reproducible

    # thermal (lumped pack + cabinet)
    # None: 18.75 J/K per Ah of cell (a 320 Ah cell is ~5.4 kg at ~1.1 kJ/kgK)
    heat_capacity_j_per_k: float | None = None
    ua_natural_w_per_k: float = 2.5  # natural convection, enough at low rate (seed 001)
    ua_fan_w_per_k: float = 12.0  # forced air with the cabinet fan on (seed 001)
    heater_w: float = 120.0  # JK heating relay pads
    fan_w: float = 8.0
    sensor_gradient_k_per_w: float = 0.01  # hot-spot sensor: rise above the lump per W of internal heat
    sensor_wall_coupling: float = 0.05  # wall sensor: fraction of the way from the lump to ambient

    # BMS (JK-style)
    # False: the BMS never blocks (a broken BMS, to test the controller's own interlocks)
    bms_protect: bool = True
    cell_ovp_v: float = 3.65
    cell_ovpr_v: float = 3.55
    cell_uvp_v: float = 2.50
    cell_uvpr_v: float = 2.80
    charge_otp_c: float = 65.0
    charge_otpr_c: float = 60.0
    charge_utp_c: float = 0.0
    charge_utpr_c: float = 2.0
    discharge_otp_c: float = 65.0
    discharge_otpr_c: float = 60.0
    discharge_utp_c: float = -30.0
    discharge_utpr_c: float = -25.0
    balancer_a: float = 2.0  # seed 000: 2 A active balancing; 0 disables
    balance_start_v: float = 3.40
    balance_trigger_v: float = 0.010
    balancer_efficiency: float = 0.9

    # charger module (DC into the battery)
    charger_max_power_w: float = 5000.0
    charger_max_current_a: float = 160.0  # 0.5C of 320 Ah
    charger_efficiency: float = 0.94
    charger_cable_mohm: float = 10.0  # wiring + connectors between charger and pack

    # grid-tie inverter
    inverter_start_delay_s: float = 30.0
    inverter_min_w: float = 53.0
    inverter_max_w: float = 2000.0
    inverter_tau_s: float = 2.0
    inverter_efficiency: float = 0.95

    # shunt (Victron SmartShunt style)
    shunt_charged_v_per_cell: float = 3.45
    shunt_tail_pct: float = 4.0
    shunt_detect_s: float = 180.0
    shunt_charge_efficiency: float = 0.99


# ---------------------------------------------------------------------------------------------------------
# Cell and pack
# ---------------------------------------------------------------------------------------------------------


class Cell:
    """One LFP cell: SoC bookkeeping and terminal voltage. ``current_a`` > 0 charges."""

    __slots__ = ("capacity_ah", "soc", "resistance_ohm", "self_discharge_per_s")

    def __init__(
        self,
        capacity_ah: float = 320.0,
        soc: float = 0.5,
        resistance_ohm: float = 0.25e-3,
        self_discharge_pct_per_month: float = 3.5,
    ) -> None:
        if capacity_ah <= 0:
            raise ValueError("capacity_ah must be > 0")
        self.capacity_ah = float(capacity_ah)
        self.soc = min(1.0, max(0.0, float(soc)))
        self.resistance_ohm = float(resistance_ohm)
        self.self_discharge_per_s = self_discharge_pct_per_month / 100.0 / _SECONDS_PER_MONTH

    def ocv(self) -> float:
        return ocv(self.soc)

    def terminal_voltage(self, current_a: float, resistance_factor: float = 1.0) -> float:
        return ocv(self.soc) + current_a * self.resistance_ohm * resistance_factor

    def step(self, dt: float, current_a: float) -> None:
        s = self.soc + current_a * dt / (3600.0 * self.capacity_ah) - self.self_discharge_per_s * dt
        self.soc = 1.0 if s > 1.0 else (0.0 if s < 0.0 else s)


class Pack:
    """Series string of cells sharing one lumped temperature, with a heater and a cabinet fan.

    Two temperature sensors: a hot-spot one between the cells (sees internal heat) and one near the cabinet
    wall (pulled toward ambient), so ``temp_max``/``temp_min`` differ a little, like a real JK's T1/T2.
    """

    __slots__ = (
        "cells",
        "temperature_c",
        "heat_capacity_j_per_k",
        "ua_natural_w_per_k",
        "ua_fan_w_per_k",
        "heater_w",
        "fan_w",
        "heater_on",
        "fan_on",
        "resistance_temp_coeff",
        "sensor_gradient_k_per_w",
        "sensor_wall_coupling",
        "temperatures",
        "temp_max",
        "temp_min",
        "_r_sum",
    )

    def __init__(
        self,
        cells: list[Cell],
        temperature_c: float = 20.0,
        heat_capacity_j_per_k: float | None = None,
        ua_natural_w_per_k: float = 2.5,
        ua_fan_w_per_k: float = 12.0,
        heater_w: float = 120.0,
        fan_w: float = 8.0,
        resistance_temp_coeff: float = 0.015,
        sensor_gradient_k_per_w: float = 0.01,
        sensor_wall_coupling: float = 0.05,
    ) -> None:
        if not cells:
            raise ValueError("a pack needs at least one cell")
        self.cells = cells
        self.temperature_c = float(temperature_c)
        if heat_capacity_j_per_k is None:
            heat_capacity_j_per_k = 18.75 * sum(c.capacity_ah for c in cells)
        self.heat_capacity_j_per_k = float(heat_capacity_j_per_k)
        self.ua_natural_w_per_k = float(ua_natural_w_per_k)
        self.ua_fan_w_per_k = float(ua_fan_w_per_k)
        self.heater_w = float(heater_w)
        self.fan_w = float(fan_w)
        self.heater_on = False
        self.fan_on = False
        self.resistance_temp_coeff = float(resistance_temp_coeff)
        self.sensor_gradient_k_per_w = float(sensor_gradient_k_per_w)
        self.sensor_wall_coupling = float(sensor_wall_coupling)
        self._r_sum = sum(c.resistance_ohm for c in cells)
        self.temperatures = [self.temperature_c, self.temperature_c]
        self.temp_max = self.temperature_c
        self.temp_min = self.temperature_c

    @property
    def ocv_sum(self) -> float:
        return sum(ocv(c.soc) for c in self.cells)

    def resistance_factor(self) -> float:
        """Multiplier on the 25 degC resistance: higher in the cold, a little lower when warm."""
        f = 1.0 + self.resistance_temp_coeff * (25.0 - self.temperature_c)
        return 0.8 if f < 0.8 else (3.0 if f > 3.0 else f)

    def resistance_ohm(self) -> float:
        return self._r_sum * self.resistance_factor()

    def thermal_step(self, dt: float, joule_w: float, ambient_c: float) -> None:
        """Advance the lumped temperature; exact exponential solution, so any dt is stable."""
        ua = self.ua_fan_w_per_k if self.fan_on else self.ua_natural_w_per_k
        heat = joule_w + (self.heater_w if self.heater_on else 0.0)
        t_inf = ambient_c + heat / ua
        t = t_inf + (self.temperature_c - t_inf) * math.exp(-dt * ua / self.heat_capacity_j_per_k)
        self.temperature_c = t
        # why two sensors: the controller sees a spread, and the min one decides low-temperature charging.
        t_hot = t + self.sensor_gradient_k_per_w * heat
        t_wall = t + self.sensor_wall_coupling * (ambient_c - t)
        temps = self.temperatures
        temps[0] = t_hot
        temps[1] = t_wall
        if t_hot >= t_wall:
            self.temp_max = t_hot
            self.temp_min = t_wall
        else:
            self.temp_max = t_wall
            self.temp_min = t_hot


# ---------------------------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------------------------


class Bms:
    """JK-style BMS: per-cause latched cut-offs with hysteresis, trip counters, SoC estimate, balancer state.

    ``charge_allowed``/``discharge_allowed`` are the MOSFET states. With ``protect`` False the BMS never
    blocks (flags stay True, no trips): it stands for a broken or misconfigured BMS. ``online`` is only a
    stored flag for fault injection: the physics keeps working, the register server goes silent.
    """

    __slots__ = (
        "protect",
        "online",
        "ovp_v",
        "ovpr_v",
        "uvp_v",
        "uvpr_v",
        "charge_otp_c",
        "charge_otpr_c",
        "charge_utp_c",
        "charge_utpr_c",
        "discharge_otp_c",
        "discharge_otpr_c",
        "discharge_utp_c",
        "discharge_utpr_c",
        "charge_allowed",
        "discharge_allowed",
        "charge_block_reason",
        "discharge_block_reason",
        "trips",
        "charge_trips",
        "discharge_trips",
        "soc_pct",
        "capacity_ah",
        "balancing",
        "cell_voltages",
        "cell_v_max",
        "cell_v_min",
        "temperatures",
        "temp_max",
        "temp_min",
        "_c_ov",
        "_c_ot",
        "_c_ut",
        "_d_uv",
        "_d_ut",
        "_d_ot",
    )

    def __init__(self, cfg: PlantConfig) -> None:
        self.protect = cfg.bms_protect
        self.online = True
        self.ovp_v = cfg.cell_ovp_v
        self.ovpr_v = cfg.cell_ovpr_v
        self.uvp_v = cfg.cell_uvp_v
        self.uvpr_v = cfg.cell_uvpr_v
        self.charge_otp_c = cfg.charge_otp_c
        self.charge_otpr_c = cfg.charge_otpr_c
        self.charge_utp_c = cfg.charge_utp_c
        self.charge_utpr_c = cfg.charge_utpr_c
        self.discharge_otp_c = cfg.discharge_otp_c
        self.discharge_otpr_c = cfg.discharge_otpr_c
        self.discharge_utp_c = cfg.discharge_utp_c
        self.discharge_utpr_c = cfg.discharge_utpr_c
        self.charge_allowed = True
        self.discharge_allowed = True
        self.charge_block_reason = ""
        self.discharge_block_reason = ""
        self.trips = 0
        self.charge_trips = 0
        self.discharge_trips = 0
        self.soc_pct = 100.0 * cfg.soc
        self.capacity_ah = cfg.capacity_ah
        self.balancing = False
        self.cell_voltages: list[float] = []
        self.cell_v_max = 0.0
        self.cell_v_min = 0.0
        self.temperatures: list[float] = []
        self.temp_max = 0.0
        self.temp_min = 0.0
        self._c_ov = self._c_ot = self._c_ut = False
        self._d_uv = self._d_ut = self._d_ot = False

    def evaluate(self, vmax: float, vmin: float, tmax: float, tmin: float, count: bool = True) -> None:
        """Update the latches from one snapshot; ``count`` False at power-up (a cold start is not a trip)."""
        if not self.protect:
            return
        # each cause latches on its own so one cause clearing never releases another
        if self._c_ov:
            self._c_ov = vmax >= self.ovpr_v
        else:
            self._c_ov = vmax > self.ovp_v
        if self._c_ot:
            self._c_ot = tmax >= self.charge_otpr_c
        else:
            self._c_ot = tmax > self.charge_otp_c
        if self._c_ut:
            self._c_ut = tmin <= self.charge_utpr_c
        else:
            self._c_ut = tmin < self.charge_utp_c
        if self._d_uv:
            self._d_uv = vmin <= self.uvpr_v
        else:
            self._d_uv = vmin < self.uvp_v
        if self._d_ut:
            self._d_ut = tmin <= self.discharge_utpr_c
        else:
            self._d_ut = tmin < self.discharge_utp_c
        if self._d_ot:
            self._d_ot = tmax >= self.discharge_otpr_c
        else:
            self._d_ot = tmax > self.discharge_otp_c

        chg = not (self._c_ov or self._c_ot or self._c_ut)
        if chg != self.charge_allowed:
            self.charge_allowed = chg
            if chg:
                self.charge_block_reason = ""
            else:
                self.charge_block_reason = (
                    "cell_ov" if self._c_ov else ("temp_high" if self._c_ot else "temp_low")
                )
                if self._c_ov:
                    self.soc_pct = 100.0  # JK recalibrates its SoC at over-voltage
                if count:
                    self.trips += 1
                    self.charge_trips += 1
        dsg = not (self._d_uv or self._d_ut or self._d_ot)
        if dsg != self.discharge_allowed:
            self.discharge_allowed = dsg
            if dsg:
                self.discharge_block_reason = ""
            else:
                self.discharge_block_reason = (
                    "cell_uv" if self._d_uv else ("temp_low" if self._d_ut else "temp_high")
                )
                if self._d_uv:
                    self.soc_pct = 0.0
                if count:
                    self.trips += 1
                    self.discharge_trips += 1


class Charger:
    """Charger module on the DC side. Inputs: ``enable``, ``voltage_sp`` (V), ``current_sp`` (A).

    CC/CV against the pack's open-circuit voltage through the pack plus cable resistance, so the current
    tapers as the pack approaches ``voltage_sp``. Limited by ``max_power_w`` (DC out); never reverse.
    """

    __slots__ = (
        "enable",
        "voltage_sp",
        "current_sp",
        "max_power_w",
        "max_current_a",
        "efficiency",
        "cable_r_ohm",
        "current",
        "output_voltage",
        "dc_power",
        "ac_power",
    )

    def __init__(
        self,
        max_power_w: float = 5000.0,
        max_current_a: float = 160.0,
        efficiency: float = 0.94,
        cable_r_ohm: float = 0.010,
    ) -> None:
        self.enable = False
        self.voltage_sp = 0.0
        self.current_sp = 0.0
        self.max_power_w = float(max_power_w)
        self.max_current_a = float(max_current_a)
        self.efficiency = float(efficiency)
        self.cable_r_ohm = float(cable_r_ohm)
        self.current = 0.0  # measured output current (A)
        self.output_voltage = 0.0
        self.dc_power = 0.0
        self.ac_power = 0.0  # drawn from the AC bus (W)

    def available_current(self, pack_ocv: float, pack_r_ohm: float) -> float:
        """Current the charger would push into a pack at ``pack_ocv`` with ``pack_r_ohm``, before the BMS."""
        if not self.enable:
            return 0.0
        cap = self.current_sp if self.current_sp < self.max_current_a else self.max_current_a
        if cap <= 0.0:
            return 0.0
        r = pack_r_ohm + self.cable_r_ohm
        i = (self.voltage_sp - pack_ocv) / r
        if i <= 0.0:
            return 0.0
        if i > cap:
            i = cap
        if i * (pack_ocv + i * r) > self.max_power_w:
            # solve r*i^2 + ocv*i - P = 0 for the power-limited current
            i = (math.sqrt(pack_ocv * pack_ocv + 4.0 * r * self.max_power_w) - pack_ocv) / (2.0 * r)
        return i

    def settle(self, current_a: float, pack_ocv: float, pack_r_ohm: float) -> None:
        """Record the current that actually flowed (after the BMS) and the resulting powers."""
        self.current = current_a
        if current_a > 0.0:
            v = pack_ocv + current_a * (pack_r_ohm + self.cable_r_ohm)
            self.output_voltage = v
            self.dc_power = v * current_a
            self.ac_power = self.dc_power / self.efficiency
        else:
            # open circuit (BMS open, CV reached or disabled): the output sits at its setpoint, no draw
            self.output_voltage = self.voltage_sp if self.enable else 0.0
            self.dc_power = 0.0
            self.ac_power = 0.0


class Inverter:
    """Grid-tie inverter discharging the battery into the house. Inputs: ``enable``, ``power_sp`` (W AC).

    After enable (and with DC present) it waits ``start_delay_s`` (grid checks) before producing; running,
    the AC power follows the setpoint clamped to [min_w, max_w] with a first-order lag. It stops at once when
    disabled or when the BMS opens the discharge MOSFET, and then starts over with the delay.
    """

    __slots__ = (
        "enable",
        "power_sp",
        "start_delay_s",
        "min_w",
        "max_w",
        "tau_s",
        "efficiency",
        "running",
        "start_timer_s",
        "ac_power",
        "dc_power",
        "_alpha_dt",
        "_alpha",
    )

    def __init__(
        self,
        start_delay_s: float = 30.0,
        min_w: float = 53.0,
        max_w: float = 2000.0,
        tau_s: float = 2.0,
        efficiency: float = 0.95,
    ) -> None:
        self.enable = False
        self.power_sp = 0.0
        self.start_delay_s = float(start_delay_s)
        self.min_w = float(min_w)
        self.max_w = float(max_w)
        self.tau_s = float(tau_s)
        self.efficiency = float(efficiency)
        self.running = False
        self.start_timer_s = 0.0
        self.ac_power = 0.0  # measured AC output (W)
        self.dc_power = 0.0  # drawn from the battery (W)
        self._alpha_dt = -1.0
        self._alpha = 1.0

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
            self.ac_power = self.min_w  # a grid-tie unit connects at its minimum and ramps from there
        if dt != self._alpha_dt:
            # the lag factor only changes when dt does; cache it to keep exp() off the usual path
            self._alpha_dt = dt
            self._alpha = 1.0 - math.exp(-dt / self.tau_s) if self.tau_s > 0 else 1.0
        sp = self.power_sp
        target = self.min_w if sp < self.min_w else (self.max_w if sp > self.max_w else sp)
        p = self.ac_power + (target - self.ac_power) * self._alpha
        self.ac_power = p
        self.dc_power = p / self.efficiency
        return self.dc_power


class Shunt:
    """Victron SmartShunt-style monitor: its own coulomb counter (with charge efficiency) synced at full.

    ``consumed_ah`` is 0 at full and negative below; ``time_to_go_min`` is -1 when not discharging.
    """

    __slots__ = (
        "voltage",
        "current",
        "power",
        "consumed_ah",
        "soc_permille",
        "time_to_go_min",
        "temperature",
        "capacity_ah",
        "soc",
        "charge_efficiency",
        "charged_v",
        "tail_a",
        "detect_s",
        "syncs",
        "_sync_timer",
    )

    def __init__(
        self,
        capacity_ah: float,
        soc: float,
        charged_v: float,
        tail_a: float,
        detect_s: float = 180.0,
        charge_efficiency: float = 0.99,
    ) -> None:
        self.capacity_ah = float(capacity_ah)
        self.soc = float(soc)
        self.charged_v = float(charged_v)
        self.tail_a = float(tail_a)
        self.detect_s = float(detect_s)
        self.charge_efficiency = float(charge_efficiency)
        self.syncs = 0
        self._sync_timer = 0.0
        self.voltage = 0.0
        self.current = 0.0
        self.power = 0.0
        self.temperature = 0.0
        self.consumed_ah = -(1.0 - self.soc) * self.capacity_ah
        self.soc_permille = int(round(self.soc * 1000.0))
        self.time_to_go_min = -1.0

    def update(self, dt: float, voltage: float, current: float, temperature: float) -> None:
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
        self.soc_permille = int(s * 1000.0 + 0.5)
        if current < -0.1:
            self.time_to_go_min = s * self.capacity_ah / -current * 60.0
        else:
            self.time_to_go_min = -1.0


# ---------------------------------------------------------------------------------------------------------
# Plant
# ---------------------------------------------------------------------------------------------------------

# Independent safety monitor thresholds: the cell's own limits (seed 000), deliberately not taken from the
# BMS config so that a mis-set BMS cannot hide a violation.
_SAFE_CELL_MAX_V = 3.65
_SAFE_CELL_MIN_V = 2.50
_SAFE_CHARGE_T_MAX = 65.0
_SAFE_CHARGE_T_MIN = 0.0
_SAFE_DISCHARGE_T_MAX = 65.0
_SAFE_DISCHARGE_T_MIN = -30.0
_SAFE_CURRENT_A = 0.5


class Plant:
    """The whole site. Set device inputs, call :meth:`step`, read the output attributes.

    Inputs: ``charger.enable/voltage_sp/current_sp``, ``inverter.enable/power_sp``, ``heater_on``, ``fan_on``,
    ``bms.online`` (stored flag only), plus ``step()``'s pv/house/ambient arguments.
    """

    __slots__ = (
        "config",
        "pack",
        "cells",
        "bms",
        "charger",
        "inverter",
        "shunt",
        "n_cells",
        "capacity_ah",
        "time_s",
        "ambient_c",
        "pack_voltage",
        "battery_current",
        "battery_power",
        "cell_voltages",
        "cell_v_max",
        "cell_v_min",
        "temperatures",
        "temp_max",
        "temp_min",
        "soc",
        "grid_power",
        "pv_power",
        "house_power",
        "inverter_power",
        "charger_current",
        "charger_ac_power",
        "charged_kwh",
        "discharged_kwh",
        "grid_import_kwh",
        "grid_export_kwh",
        "cell_v_min_seen",
        "cell_v_max_seen",
        "temp_min_seen",
        "temp_max_seen",
        "safety_violations",
        "_soc_next",
        "_i_max",
        "_i_min",
        "_v_sum",
    )

    def __init__(self, config: PlantConfig | None = None) -> None:
        cfg = config if config is not None else PlantConfig()
        if cfg.cells_series < 1:
            raise ValueError("cells_series must be >= 1")
        if cfg.capacity_ah <= 0:
            raise ValueError("capacity_ah must be > 0")
        if not 0.0 <= cfg.soc <= 1.0:
            raise ValueError(f"PlantConfig.soc is a fraction 0..1, got {cfg.soc}")
        if cfg.high_cell is not None and not 0 <= cfg.high_cell < cfg.cells_series:
            raise ValueError(f"high_cell {cfg.high_cell} out of range 0..{cfg.cells_series - 1}")
        self.config = cfg
        n = cfg.cells_series
        self.n_cells = n
        self.capacity_ah = cfg.capacity_ah

        rng = random.Random(cfg.seed)
        # SoC offsets evenly spaced over a width that gives cell_spread_mv at mid SoC, shuffled so the
        # highest cell is not simply the last one; the curve is steeper at the ends, so the spread grows
        # there on its own.
        dsoc = (cfg.cell_spread_mv / 1000.0) / _ocv_slope(0.5)
        offsets = [dsoc * (i / (n - 1) - 0.5) for i in range(n)] if n > 1 else [0.0]
        rng.shuffle(offsets)
        cap_spread = cfg.capacity_spread_pct / 100.0
        caps = (
            [cfg.capacity_ah * (1.0 + cap_spread * (i / (n - 1) - 0.5)) for i in range(n)]
            if n > 1
            else [cfg.capacity_ah]
        )
        rng.shuffle(caps)
        r_cell = cfg.cell_resistance_mohm / 1000.0
        cells: list[Cell] = []
        for k in range(n):
            soc = cfg.soc + offsets[k]
            cap = caps[k]
            if cfg.high_cell == k:
                soc = cfg.soc + dsoc / 2.0 + cfg.high_cell_soc_offset
                cap = cfg.capacity_ah * cfg.high_cell_capacity_factor
            cells.append(Cell(cap, soc, r_cell, cfg.self_discharge_pct_per_month))
        self.cells = cells
        self.pack = Pack(
            cells,
            temperature_c=cfg.temperature_c,
            heat_capacity_j_per_k=cfg.heat_capacity_j_per_k,
            ua_natural_w_per_k=cfg.ua_natural_w_per_k,
            ua_fan_w_per_k=cfg.ua_fan_w_per_k,
            heater_w=cfg.heater_w,
            fan_w=cfg.fan_w,
            resistance_temp_coeff=cfg.resistance_temp_coeff,
            sensor_gradient_k_per_w=cfg.sensor_gradient_k_per_w,
            sensor_wall_coupling=cfg.sensor_wall_coupling,
        )
        self.bms = Bms(cfg)
        self.charger = Charger(
            cfg.charger_max_power_w,
            cfg.charger_max_current_a,
            cfg.charger_efficiency,
            cfg.charger_cable_mohm / 1000.0,
        )
        self.inverter = Inverter(
            cfg.inverter_start_delay_s,
            cfg.inverter_min_w,
            cfg.inverter_max_w,
            cfg.inverter_tau_s,
            cfg.inverter_efficiency,
        )
        self.shunt = Shunt(
            cfg.capacity_ah,
            cfg.soc,
            charged_v=cfg.shunt_charged_v_per_cell * n,
            tail_a=cfg.shunt_tail_pct / 100.0 * cfg.capacity_ah,
            detect_s=cfg.shunt_detect_s,
            charge_efficiency=cfg.shunt_charge_efficiency,
        )

        self.time_s = 0.0
        self.ambient_c = cfg.ambient_c
        self.cell_voltages = [0.0] * n
        self._soc_next = [c.soc for c in cells]
        self._i_max = 0
        self._i_min = 0
        self._v_sum = 0.0
        self.battery_current = 0.0
        self.battery_power = 0.0
        self.grid_power = 0.0
        self.pv_power = 0.0
        self.house_power = 0.0
        self.inverter_power = 0.0
        self.charger_current = 0.0
        self.charger_ac_power = 0.0
        self.charged_kwh = 0.0
        self.discharged_kwh = 0.0
        self.grid_import_kwh = 0.0
        self.grid_export_kwh = 0.0
        self.safety_violations = 0

        # power-up snapshot at rest, so every output is meaningful before the first step
        self._snapshot(0.0, 0.0, 1.0)
        self.pack.thermal_step(0.0, 0.0, cfg.ambient_c)
        self.bms.evaluate(
            self.cell_v_max, self.cell_v_min, self.pack.temp_max, self.pack.temp_min, count=False
        )
        self._publish()
        self.soc = sum(c.soc for c in cells) / n
        self.cell_v_min_seen = self.cell_v_min
        self.cell_v_max_seen = self.cell_v_max
        self.temp_min_seen = self.temp_min
        self.temp_max_seen = self.temp_max
        self.shunt.update(0.0, self.pack_voltage, 0.0, self.pack.temperatures[0])

    @classmethod
    def from_config(cls, config: PlantConfig) -> Plant:
        return cls(config)

    # -- convenience inputs --------------------------------------------------------------------------------

    @property
    def heater_on(self) -> bool:
        return self.pack.heater_on

    @heater_on.setter
    def heater_on(self, on: bool) -> None:
        self.pack.heater_on = bool(on)

    @property
    def fan_on(self) -> bool:
        return self.pack.fan_on

    @fan_on.setter
    def fan_on(self, on: bool) -> None:
        self.pack.fan_on = bool(on)

    @property
    def bms_trips(self) -> int:
        return self.bms.trips

    @property
    def charge_allowed(self) -> bool:
        return self.bms.charge_allowed

    @property
    def discharge_allowed(self) -> bool:
        return self.bms.discharge_allowed

    # -- the step ------------------------------------------------------------------------------------------

    def _snapshot(self, dt: float, current_a: float, rfac: float) -> None:
        """End-of-step SoCs (into _soc_next, not committed) and terminal voltages for a trial current."""
        grid = _OCV_GRID
        gn = _GRID_N
        vmax = -1.0
        vmin = 1e9
        imax = imin = 0
        vsum = 0.0
        nxt = self._soc_next
        volts = self.cell_voltages
        k = 0
        for c in self.cells:
            s = c.soc + current_a * dt / (3600.0 * c.capacity_ah) - c.self_discharge_per_s * dt
            if s > 1.0:
                s = 1.0
            elif s < 0.0:
                s = 0.0
            nxt[k] = s
            x = s * gn
            i = int(x)
            if i >= gn:
                v = grid[gn]
            else:
                a = grid[i]
                v = a + (grid[i + 1] - a) * (x - i)
            v += current_a * c.resistance_ohm * rfac
            volts[k] = v
            vsum += v
            if v > vmax:
                vmax = v
                imax = k
            if v < vmin:
                vmin = v
                imin = k
            k += 1
        self.cell_v_max = vmax
        self.cell_v_min = vmin
        self._i_max = imax
        self._i_min = imin
        self._v_sum = vsum

    def _publish(self) -> None:
        pack = self.pack
        bms = self.bms
        self.pack_voltage = self._v_sum
        self.temperatures = pack.temperatures
        self.temp_max = pack.temp_max
        self.temp_min = pack.temp_min
        bms.cell_voltages = self.cell_voltages
        bms.cell_v_max = self.cell_v_max
        bms.cell_v_min = self.cell_v_min
        bms.temperatures = pack.temperatures
        bms.temp_max = pack.temp_max
        bms.temp_min = pack.temp_min

    def step(self, dt: float, pv_w: float, house_w: float, ambient_c: float) -> None:
        """Advance the plant by ``dt`` seconds with the given PV production, house load and ambient."""
        if dt <= 0.0:
            raise ValueError("dt must be > 0")
        pack = self.pack
        bms = self.bms
        charger = self.charger
        inverter = self.inverter
        cells = self.cells
        protect = bms.protect
        self.ambient_c = ambient_c

        # pack OCV at the start of the step: what the charger and the inverter work against
        grid = _OCV_GRID
        gn = _GRID_N
        ocv_sum = 0.0
        for c in cells:
            x = c.soc * gn
            i = int(x)
            if i >= gn:
                ocv_sum += grid[gn]
            else:
                a = grid[i]
                ocv_sum += a + (grid[i + 1] - a) * (x - i)
        rfac = pack.resistance_factor()
        r_pack = pack._r_sum * rfac

        # devices see the MOSFET state from the last step: an open MOSFET is an open circuit / no DC
        i_chg = charger.available_current(ocv_sum, r_pack) if (bms.charge_allowed or not protect) else 0.0
        p_dc = inverter.update(dt, bms.discharge_allowed or not protect)
        i_dis = 0.0
        if p_dc > 0.0:
            # one fixed-point pass on V = OCV - I*R is plenty at these currents
            i_dis = p_dc / ocv_sum
            i_dis = p_dc / (ocv_sum - i_dis * r_pack)
        current = i_chg - i_dis

        self._snapshot(dt, current, rfac)
        pack.thermal_step(dt, current * current * r_pack, ambient_c)
        if protect:
            # Blocking one direction changes the net current, which can push the other direction past its
            # limit (charger and inverter both on): re-judge until nothing more opens (at most twice).
            while True:
                bms.evaluate(self.cell_v_max, self.cell_v_min, pack.temp_max, pack.temp_min)
                changed = False
                if i_chg > 0.0 and not bms.charge_allowed:
                    i_chg = 0.0
                    changed = True
                if i_dis > 0.0 and not bms.discharge_allowed:
                    i_dis = 0.0
                    inverter.stop()
                    changed = True
                if not changed:
                    break
                # the BMS opened within the step: redo the step without the blocked current
                current = i_chg - i_dis
                self._snapshot(dt, current, rfac)
        charger.settle(i_chg, ocv_sum, r_pack)

        # independent safety monitor on what actually happened this step
        tmax = pack.temp_max
        tmin = pack.temp_min
        if current > _SAFE_CURRENT_A:
            if self.cell_v_max > _SAFE_CELL_MAX_V or tmax > _SAFE_CHARGE_T_MAX or tmin < _SAFE_CHARGE_T_MIN:
                self.safety_violations += 1
        elif current < -_SAFE_CURRENT_A:
            if (
                self.cell_v_min < _SAFE_CELL_MIN_V
                or tmin < _SAFE_DISCHARGE_T_MIN
                or tmax > _SAFE_DISCHARGE_T_MAX
            ):
                self.safety_violations += 1

        # commit the SoCs
        nxt = self._soc_next
        k = 0
        soc_sum = 0.0
        for c in cells:
            s = nxt[k]
            c.soc = s
            soc_sum += s
            k += 1
        n = self.n_cells
        # active balancer: moves charge from the highest to the lowest cell near the top of the curve
        bal_a = self.config.balancer_a
        if (
            bal_a > 0.0
            and n > 1
            and self.cell_v_max >= self.config.balance_start_v
            and self.cell_v_max - self.cell_v_min >= self.config.balance_trigger_v
        ):
            hi = cells[self._i_max]
            lo = cells[self._i_min]
            d_hi = bal_a * dt / (3600.0 * hi.capacity_ah)
            d_lo = bal_a * self.config.balancer_efficiency * dt / (3600.0 * lo.capacity_ah)
            hi.soc = max(0.0, hi.soc - d_hi)
            lo.soc = min(1.0, lo.soc + d_lo)
            soc_sum += lo.soc - nxt[self._i_min] + hi.soc - nxt[self._i_max]
            bms.balancing = True
        else:
            bms.balancing = False
        self.soc = soc_sum / n

        self._publish()
        v = self._v_sum
        power = v * current
        self.battery_current = current
        self.battery_power = power
        self.time_s += dt

        # BMS SoC estimate (its own coulomb counter, recalibrated at OV/UV trips)
        bs = bms.soc_pct + 100.0 * current * dt / (3600.0 * bms.capacity_ah)
        bms.soc_pct = 100.0 if bs > 100.0 else (0.0 if bs < 0.0 else bs)
        self.shunt.update(dt, v, current, pack.temperatures[0])

        # AC side; heater and fan are house loads, the house meter sees them
        house = house_w
        if pack.heater_on:
            house += pack.heater_w
        if pack.fan_on:
            house += pack.fan_w
        pv = pv_w if pv_w > 0.0 else 0.0
        inv_ac = inverter.ac_power
        chg_ac = charger.ac_power
        gp = house + chg_ac - pv - inv_ac
        self.house_power = house
        self.pv_power = pv
        self.inverter_power = inv_ac
        self.charger_current = i_chg
        self.charger_ac_power = chg_ac
        self.grid_power = gp

        to_kwh = dt / 3.6e6
        if power > 0.0:
            self.charged_kwh += power * to_kwh
        else:
            self.discharged_kwh -= power * to_kwh
        if gp > 0.0:
            self.grid_import_kwh += gp * to_kwh
        else:
            self.grid_export_kwh -= gp * to_kwh

        if self.cell_v_max > self.cell_v_max_seen:
            self.cell_v_max_seen = self.cell_v_max
        if self.cell_v_min < self.cell_v_min_seen:
            self.cell_v_min_seen = self.cell_v_min
        if tmax > self.temp_max_seen:
            self.temp_max_seen = tmax
        if tmin < self.temp_min_seen:
            self.temp_min_seen = tmin
