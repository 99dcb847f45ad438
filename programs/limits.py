"""limits: charge voltage limit (CVL) and charge/discharge current limits (CCL, DCL), after seed 003.

CVL, per cell times ``par.cells_series``:
  * the charge voltage of the month (``par.cvl_month_1`` .. ``_12``; 3.55 in January down to 3.40 in summer);
  * every ``par.balance_interval_days`` days a balancing run raises it to ``par.balance_cell_v``
    (``limits.balance_charge`` asks the load chart to charge there and to hold the pack at the top). The run
    succeeds once the pack has reached that voltage (or its highest cell has) and, then or later while it
    is held at the top, the cell spread is under ``par.balance_cell_diff`` (25 mV): the active balancer
    needs that time. The day of the
    last success is the retained ``limits.balance_last_day`` (days since 1970; 0 on a new site, which
    starts the cadence that day; an HMI may write 1 to ask for a run now). The raised CVL stays until the
    battery, discharging, is back at the month's voltage, so the end of a run never asks for a discharge;
    a run that did not succeed by then is tried again the next day (at most one run a day);
  * the dynamic cut: while a cell is above ``par.cell_v_cut``, CVL = pack voltage minus the sum of every
    cell's excess over it, so one runaway cell pulls the whole target down before its BMS trips;
  * never above ``par.cell_v_charge_max`` (3.65 V, seed 000).

CCL = min(``par.ccl_max_c`` x capacity (0.5C), fuse) x f(max cell voltage) x f(temperature);
DCL = min(``par.dcl_max_c`` x capacity (1C), fuse) x f(min cell voltage) x f(temperature), where the fuse
share is ``par.fuse_a`` x ``par.fuse_load_factor`` (250 A ANL fuse, seed 000). The cell-voltage tables are
seed 003's, anchored to the parameters: charge [vmin, vmin+0.05, cut-0.15, cut-0.05, cut] -> [0.2, 1, 1,
0.1, 0] (with a cut of 3.45 exactly the seed's), discharge [vmin, vmin+0.1, vmin+0.2] -> [0, 0.05, 1];
discharge is latched off at ``par.cell_v_min`` and released at ``par.cell_v_min_resume`` (+0.1 V).
A BMS that forbids a direction sets its limit to 0; cells that are not GOOD set both to 0. A pack whose BMS
goes silent is treated as at its limits (issue 14): unseen, its cells may be at a cut. Where the packs share
the bus without a contactor each (``par.packs_isolatable`` false, the default) it cannot be isolated and
stays in the current path, so both limits go to 0; where each pack can be isolated, both are scaled by the
share of BMS still online. Either way, while a BMS is silent CCL and DCL never rise above what they were
when it went silent.

Against flapping (seed 003's other driver): a limit that falls takes effect at once and is then held
``par.limit_hold_s``; a limit that rises waits for the hold to end, then ramps (``par.current_ramp_a_s``,
``par.cvl_ramp_v_s`` per cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from programs._common import day_number, interp, latch
from programs.aggregate import find_units
from runtime.program import FunctionBlock, ScanContext, TagGroup
from runtime.tags import Quality, TagDB

MONTHS = tuple(f"par.cvl_month_{m}" for m in range(1, 13))

# Charge derating by cell temperature (seed 003's other driver): 0..55 degC.
CHARGE_TEMP = ((0.0, 2.0, 5.0, 10.0, 40.0, 45.0, 50.0, 55.0), (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0))
# Discharge derating: 10 K and 20 K inside the discharge temperature limits (-30 / 65 degC, seed 000).
DISCHARGE_TEMP_OFFSETS = ((0.0, 10.0, 20.0), (0.0, 0.5, 1.0))


@lru_cache(maxsize=8)  # the limits are parameters: built again only when an HMI changes one
def discharge_temp_tables(t_low: float, t_high: float) -> tuple[tuple[list[float], tuple[float, ...]], ...]:
    """The derating tables (temperatures, factors) at the cold and at the hot end of the discharge range."""
    offsets, factors = DISCHARGE_TEMP_OFFSETS
    return (([t_low + o for o in offsets], factors),
            ([t_high - o for o in reversed(offsets)], tuple(reversed(factors))))


@dataclass
class Ramped:
    """One limit with hold-and-ramp: falls at once and holds; rises only after the hold, at a bounded rate."""

    value: float | None = None
    hold_until: float = 0.0

    def update(self, target: float, t: float, dt: float, hold: float, rate: float) -> float:
        if self.value is None or target <= self.value:
            if self.value is not None and target < self.value:
                self.hold_until = t + hold
            self.value = target
        elif t >= self.hold_until:
            self.value = min(target, self.value + rate * dt)
        return self.value


class Limits(FunctionBlock):
    reads = ("bat.voltage", "bat.current", "bat.cell_v_max", "bat.cell_v_min", "bat.temp_max", "bat.temp_min",
             "bms.charge_allowed", "bms.discharge_allowed", "bms.online", "bms.count",
             "par.cells_series", "par.capacity_ah", "par.balance_cell_v", "par.balance_interval_days",
             "par.balance_cell_diff", "par.cell_v_cut", "par.cell_v_charge_max", "par.cv_reached_cell_v",
             "par.ccl_max_c", "par.dcl_max_c", "par.fuse_a", "par.fuse_load_factor", "par.limit_hold_s",
             "par.current_ramp_a_s", "par.cvl_ramp_v_s", "par.cell_v_min", "par.cell_v_min_resume",
             "par.discharge_temp_min", "par.discharge_temp_max", "par.packs_isolatable") + MONTHS
    writes = ("limits.cvl", "limits.ccl", "limits.dcl", "limits.balance_last_day", "limits.balance_due",
              "limits.balancing", "limits.balance_charge", "limits.cvl_cut_active",
              "limits.discharge_latched")

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.cells: list[str] = []
        self.cvl = Ramped()
        self.ccl = Ramped()
        self.dcl = Ramped()
        self.balancing = False  # the CVL is raised for a run
        self.reached = False  # the run has reached the balancing voltage
        self.attempt_day = -1
        self.discharge_latched = False
        self.silent_caps: tuple[float, float] | None = None  # CCL, DCL when a BMS went silent

    def start(self, db: TagDB) -> None:
        self.cells = [c for unit in find_units(db) for c in unit.cells]
        self._cell_tags = TagGroup(self.cells)
        self.reads = frozenset(type(self).reads) | frozenset(self.cells)

    def scan(self, ctx: ScanContext) -> None:
        staged, write = ctx.staged, ctx.write
        cells_ok = ctx.all_ok(("bat.cell_v_max", "bat.cell_v_min", "bat.temp_max", "bat.temp_min"))
        n = staged("par.cells_series")
        hold = staged("par.limit_hold_s")
        current_rate = staged("par.current_ramp_a_s")

        cvl, cut_active = self._cvl(ctx, n)
        write("limits.cvl", self.cvl.update(cvl, ctx.t, ctx.dt, hold, staged("par.cvl_ramp_v_s") * n))
        write("limits.cvl_cut_active", cut_active)

        ccl, dcl = self._currents(ctx) if cells_ok else (0.0, 0.0)
        count, online = staged("bms.count"), staged("bms.online")
        if online >= count:
            self.silent_caps = None
        else:
            share = online / count if staged("par.packs_isolatable") else 0.0
            if self.silent_caps is None:  # from now on the limits may fall, never rise
                self.silent_caps = (self.ccl.value or 0.0, self.dcl.value or 0.0)
            ccl, dcl = min(ccl * share, self.silent_caps[0]), min(dcl * share, self.silent_caps[1])
        write("limits.ccl", self.ccl.update(ccl, ctx.t, ctx.dt, hold, current_rate))
        write("limits.dcl", self.dcl.update(dcl, ctx.t, ctx.dt, hold, current_rate))
        write("limits.discharge_latched", self.discharge_latched)

    # ---- CVL ----------------------------------------------------------------------------------------------

    def _cvl(self, ctx: ScanContext, n: int) -> tuple[float, bool]:
        staged = ctx.staged
        month_cell_v = staged(MONTHS[ctx.now.month - 1])
        cell_v = staged("par.balance_cell_v") if self._balancing(ctx, n, month_cell_v) else month_cell_v
        cvl = min(cell_v, staged("par.cell_v_charge_max")) * n
        cut = staged("par.cell_v_cut")
        good = Quality.GOOD
        qualities, volts = self._cell_tags.quality(ctx), self._cell_tags.staged(ctx)
        excess = sum(v - cut for v, q in zip(volts, qualities, strict=True) if q is good and v > cut)
        if excess > 0 and ctx.ok("bat.voltage"):
            return max(0.0, min(cvl, staged("bat.voltage") - excess)), True
        return cvl, False

    def _balancing(self, ctx: ScanContext, n: int, month_cell_v: float) -> bool:
        """Run the balancing cadence; True while the CVL is raised to the balancing voltage."""
        staged, write = ctx.staged, ctx.write
        today = day_number(ctx.now)
        last = staged("limits.balance_last_day")
        if last <= 0:  # a new site: the cadence starts on its first day (write 1 to ask for a run now)
            last = today
            write("limits.balance_last_day", today)
        due = today - last >= staged("par.balance_interval_days")
        if due and not self.balancing and self.attempt_day != today:  # at most one run a day
            self.balancing, self.reached, self.attempt_day = True, False, today
        if self.balancing and ctx.all_ok(("bat.voltage", "bat.cell_v_max", "bat.cell_v_min")):
            voltage, high = staged("bat.voltage"), staged("bat.cell_v_max")
            target = staged("par.balance_cell_v")
            self.reached = self.reached or high >= target or \
                voltage >= (target - staged("par.cv_reached_cell_v")) * n
            spread = high - staged("bat.cell_v_min")
            if self.reached and due and spread < staged("par.balance_cell_diff"):
                due = False
                write("limits.balance_last_day", today)
            discharging = ctx.ok("bat.current") and staged("bat.current") < 0
            if self.reached and discharging and voltage <= month_cell_v * n:  # used back down: run over
                self.balancing = False
        write("limits.balance_due", due)
        write("limits.balancing", self.balancing)
        write("limits.balance_charge", self.balancing and due)
        return self.balancing

    # ---- CCL / DCL ----------------------------------------------------------------------------------------

    def _currents(self, ctx: ScanContext) -> tuple[float, float]:
        staged = ctx.staged
        capacity = staged("par.capacity_ah")
        fuse = staged("par.fuse_a") * staged("par.fuse_load_factor")
        vmax, vmin = staged("bat.cell_v_max"), staged("bat.cell_v_min")
        tmax, tmin = staged("bat.temp_max"), staged("bat.temp_min")
        v_empty, cut = staged("par.cell_v_min"), staged("par.cell_v_cut")

        ccl = min(staged("par.ccl_max_c") * capacity, fuse)
        ccl *= interp(vmax, (v_empty, v_empty + 0.05, cut - 0.15, cut - 0.05, cut), (0.2, 1.0, 1.0, 0.1, 0.0))
        ccl *= min(interp(tmin, *CHARGE_TEMP), interp(tmax, *CHARGE_TEMP))
        if not staged("bms.charge_allowed"):
            ccl = 0.0

        self.discharge_latched = latch(self.discharge_latched, vmin <= v_empty,
                                       vmin >= staged("par.cell_v_min_resume"))
        dcl = min(staged("par.dcl_max_c") * capacity, fuse)
        dcl *= interp(vmin, (v_empty, v_empty + 0.1, v_empty + 0.2), (0.0, 0.05, 1.0))
        cold, hot = discharge_temp_tables(staged("par.discharge_temp_min"), staged("par.discharge_temp_max"))
        dcl *= min(interp(tmin, *cold), interp(tmax, *hot))
        if not staged("bms.discharge_allowed") or self.discharge_latched:
            dcl = 0.0
        return ccl, dcl
