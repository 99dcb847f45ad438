"""One LiFePO4 cell from published LFP behaviour, independent of anything the controller is configured with.

Nothing here comes from ``tags.yaml``, ``io_map.yaml`` or ``programs/`` (a test scans the plant's sources for
it): the cell is the judge of the controller's thresholds, so it must not be built from them.

Sources, curve by curve (the seed's own CATL datasheet PDF is not in the repository, so none of these are its
digits; where a figure is a reading of a generic published shape it says so):

- **Open-circuit voltage (OCV) vs SoC**: the generic LFP/graphite shape that every published C/20 or
  relaxed-OCV measurement shows: a steep knee below ~10 % SoC, a low plateau near 3.26-3.29 V up to ~60 %,
  a step to a second plateau near 3.32-3.33 V (the graphite stage transition), and a steep rise above ~97 %
  (e.g. Roscher and Sauer, "Dynamic electric behavior and open-circuit-voltage modeling in LiFePO4-based
  lithium ion secondary batteries", J. Power Sources 196 (2011) 331-336). The breakpoints of ``OCV_MID`` are
  our reading of that shape, not a table copied from the paper. The ends follow seed 000's 2.5-3.65 V range.
- **Hysteresis**: LFP's OCV after charging sits above the OCV after discharging at the same SoC, by some
  10-30 mV in the plateaus (Dreyer et al., "The thermodynamic origin of hysteresis in insertion batteries",
  Nature Materials 9 (2010) 448-453; Roscher and Sauer 2011). ``HALF_HYSTERESIS`` is half that gap (about
  10 mV mid-SoC, more at the low knee, none at the very ends); the state moves between the branches over
  about 5 % of capacity of throughput (the one-state hysteresis model of Plett, "Battery Management Systems,
  Vol. 1", Artech House 2015, ch. 2).
- **Resistance vs temperature**: Arrhenius, R(T) = R25 * exp(Ea/R * (1/T - 1/298.15)), the usual form for
  the electrolyte and charge-transfer resistance (reviewed for the cold by Jaguemont, Boulon and Dube,
  Applied Energy 164 (2016) 99-114). Ea = 20 kJ/mol is our choice at the low end of reported values: about
  2x the 25 degC resistance at 0 degC and 4x at -20 degC.
- **Resistance vs SoC**: flat in the middle, rising toward empty (about 2.5x at 0 %) and a little toward full,
  the shape pulse (HPPC) tests of LFP cells show; the factors are our reading of that shape.
- **Capacity vs temperature**: the fraction of the 25 degC capacity a cell delivers at 0.2-0.5C in generic
  LFP datasheets: ~70 % at -20 degC, ~80 % at -10, ~88 % at 0, ~95 % at 10, 100 % from 25 degC. The lost
  part is not lost charge but charge the cell cannot deliver before its voltage hits the floor, so it is
  modelled as a shift of the SoC the voltage curve sees (:func:`capacity_factor`).
- **Self-discharge**: seed 000's datasheet bound, <= 3.5 % per month; the model uses the bound (the worst
  case for a SoC estimate).
"""

from __future__ import annotations

import math
from bisect import bisect_right

# (SoC fraction, volts): the middle of the charge and discharge branches. Breakpoints on multiples of 0.005.
OCV_MID: tuple[tuple[float, float], ...] = (
    (0.000, 2.500),
    (0.005, 2.750),
    (0.010, 2.880),
    (0.020, 2.990),
    (0.050, 3.120),
    (0.100, 3.200),
    (0.150, 3.235),
    (0.200, 3.255),
    (0.300, 3.272),
    (0.400, 3.284),
    (0.500, 3.290),
    (0.600, 3.296),
    (0.650, 3.310),
    (0.700, 3.322),
    (0.800, 3.327),
    (0.900, 3.332),
    (0.950, 3.342),
    (0.970, 3.365),
    (0.985, 3.410),
    (0.995, 3.520),
    (1.000, 3.620),
)
# (SoC fraction, volts): half the gap between the charge branch (mid + half) and the discharge branch (mid - half)
HALF_HYSTERESIS: tuple[tuple[float, float], ...] = (
    (0.000, 0.000),
    (0.050, 0.018),
    (0.100, 0.015),
    (0.300, 0.011),
    (0.700, 0.010),
    (0.950, 0.008),
    (1.000, 0.000),
)
HYSTERESIS_SOC = 0.05  # throughput (fraction of capacity) over which the state crosses from one branch to the other
SELF_DISCHARGE_PCT_PER_MONTH = 3.5  # seed 000: <= 3.5 %/month
SECONDS_PER_MONTH = 30.0 * 86400.0
ACTIVATION_K = 20_000.0 / 8.314  # Ea / R in kelvin
# (SoC fraction, factor on the mid-SoC resistance)
R_SOC: tuple[tuple[float, float], ...] = ((0.0, 2.5), (0.1, 1.6), (0.2, 1.1), (0.3, 1.0), (0.9, 1.0), (1.0, 1.2))
# (degC, fraction of the 25 degC capacity the cell can deliver)
CAPACITY_T: tuple[tuple[float, float], ...] = (
    (-20.0, 0.70), (-10.0, 0.80), (0.0, 0.88), (10.0, 0.95), (25.0, 1.0))


def interp(x: float, table: tuple[tuple[float, float], ...]) -> float:
    """Linear interpolation in a (x, y) table, clamped to its ends."""
    if x <= table[0][0]:
        return table[0][1]
    if x >= table[-1][0]:
        return table[-1][1]
    k = bisect_right([p[0] for p in table], x) - 1
    (x0, y0), (x1, y1) = table[k], table[k + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


# Uniform grids: the per-cell lookups (every cell, every step) are an index computation, not a bisect.
GRID_N = 1000
MID_GRID: list[float] = [interp(i / GRID_N, OCV_MID) for i in range(GRID_N + 1)]
HALF_GRID: list[float] = [interp(i / GRID_N, HALF_HYSTERESIS) for i in range(GRID_N + 1)]
R_SOC_GRID: list[float] = [interp(i / 100, R_SOC) for i in range(101)]
# The rise from each grid point to the next, subtracted once here instead of in every lookup (same floats).
MID_RISE: list[float] = [MID_GRID[i + 1] - MID_GRID[i] for i in range(GRID_N)]
HALF_RISE: list[float] = [HALF_GRID[i + 1] - HALF_GRID[i] for i in range(GRID_N)]


def ocv(soc: float, hysteresis: float = 0.0) -> float:
    """Open-circuit voltage of one cell (V) at a SoC fraction; ``hysteresis`` -1 (after discharge) .. +1
    (after charge) picks the branch."""
    x = (0.0 if soc < 0.0 else (1.0 if soc > 1.0 else soc)) * GRID_N
    i = int(x)
    if i >= GRID_N:
        return MID_GRID[GRID_N] + hysteresis * HALF_GRID[GRID_N]
    f = x - i
    mid = MID_GRID[i] + MID_RISE[i] * f
    half = HALF_GRID[i] + HALF_RISE[i] * f
    return mid + hysteresis * half


def soc_from_ocv(volts: float) -> float:
    """Inverse of the middle curve: the SoC fraction of a cell resting at ``volts`` (clamped to 0..1)."""
    return interp(volts, tuple((v, s) for s, v in OCV_MID))


def ocv_slope(soc: float, half_width: float = 0.05) -> float:
    """Local slope dV/dSoC of the middle curve (V per unit SoC), used to size the cell spread."""
    lo = max(0.0, soc - half_width)
    hi = min(1.0, soc + half_width)
    return (ocv(hi) - ocv(lo)) / (hi - lo)


def resistance_temperature_factor(temperature_c: float) -> float:
    """Multiplier on the 25 degC resistance (Arrhenius), clamped to 0.5..8 outside -30..60 degC."""
    t = -30.0 if temperature_c < -30.0 else (60.0 if temperature_c > 60.0 else temperature_c)
    return math.exp(ACTIVATION_K * (1.0 / (t + 273.15) - 1.0 / 298.15))


def resistance_soc_factor(soc: float) -> float:
    """Multiplier on the mid-SoC resistance at a SoC fraction."""
    return R_SOC_GRID[int((0.0 if soc < 0.0 else (1.0 if soc > 1.0 else soc)) * 100.0)]


def capacity_factor(temperature_c: float) -> float:
    """Fraction of the 25 degC capacity the cell can deliver at ``temperature_c``."""
    return interp(temperature_c, CAPACITY_T)


class Cell:
    """One LFP cell: its charge (as a SoC fraction of its capacity), capacity and 25 degC resistance."""

    __slots__ = ("capacity_ah", "soc", "resistance_ohm", "self_discharge_per_s")

    def __init__(self, capacity_ah: float = 320.0, soc: float = 0.5, resistance_ohm: float = 0.25e-3,
                 self_discharge_pct_per_month: float = SELF_DISCHARGE_PCT_PER_MONTH) -> None:
        if capacity_ah <= 0:
            raise ValueError("capacity_ah must be > 0")
        self.capacity_ah = float(capacity_ah)
        self.soc = min(1.0, max(0.0, float(soc)))
        self.resistance_ohm = float(resistance_ohm)
        self.self_discharge_per_s = self_discharge_pct_per_month / 100.0 / SECONDS_PER_MONTH

    def ocv(self, hysteresis: float = 0.0) -> float:
        return ocv(self.soc, hysteresis)

    def terminal_voltage(self, current_a: float, resistance_factor: float = 1.0, hysteresis: float = 0.0) -> float:
        return ocv(self.soc, hysteresis) + current_a * self.resistance_ohm * resistance_factor

    def step(self, dt: float, current_a: float) -> None:
        s = self.soc + current_a * dt / (3600.0 * self.capacity_ah) - self.self_discharge_per_s * dt
        self.soc = 1.0 if s > 1.0 else (0.0 if s < 0.0 else s)
