"""soc: coulomb-counted state of charge and the health figures derived from it (seeds 003 and 004).

The charge in Ah integrates ``bat.current`` (charge counted times ``par.charge_efficiency``, 0.98), clamped to
0..``par.capacity_ah``. It is synced to full when the average cell (pack voltage / cells) has reached
``par.soc_full_cell_v`` and
the current has tapered to the full-charge tail (``par.full_current_c``, 0.05C) for ``par.soc_full_delay_s``
(the end of a full charge), and to empty when the lowest cell reaches the empty voltage ``par.cell_v_min``.
The retained tag ``soc.charge_ah`` is rewritten only when the charge moved by 0.25 % of the capacity (or at a
sync), as the seed-003 aggregator persists it, so a restart resumes within that step and an SD card is spared.
Before the first value is known (``soc.charge_ah`` < 0) the counter starts from the BMS estimate ``bms.soc``
as soon as a BMS answers (50 % if none has within a minute).

Uncertainty (issue 14): ``soc.uncertainty`` (points, retained) grows by ``par.soc_uncertainty_pct`` of every Ah
counted and by seed 000's self-discharge bound (3.5 % a month) per day; a full or empty sync sets it to 0.
The schedule raises the reserve by it, so a SoC that may read high cannot deep-discharge the pack.

Health (seed 004): residual energy = charge x nominal pack voltage; cycles = discharged Ah / capacity;
cell imbalance % = |max - min| / (max + min) x 200; SoH = measured capacity / rated capacity, where the
capacity is measured as the net Ah taken out between a full sync and the next empty sync.
"""

from __future__ import annotations

from runtime.program import FunctionBlock, ScanContext
from runtime.tags import TagDB

PERSIST_STEP = 0.0025  # of capacity: the seed-003 aggregator's 0.25 % persistence threshold
DEFAULT_SOC = 50.0  # % when neither a retained value nor a BMS estimate is available ...
INIT_WAIT_S = 60.0  # ... within this long after the start
SELF_DISCHARGE_PTS_PER_S = 3.5 / (30 * 86400)  # seed 000's datasheet bound, 3.5 % a month, in points per second


class Soc(FunctionBlock):
    reads = ("bat.current", "bat.voltage", "bat.cell_v_max", "bat.cell_v_min", "bms.soc", "bms.online",
             "par.capacity_ah",
             "par.charge_efficiency", "par.soc_full_cell_v", "par.full_current_c", "par.soc_full_delay_s",
             "par.cell_v_min", "par.cells_series", "par.cell_v_nominal", "par.soc_uncertainty_pct")
    writes = ("soc.uncertainty", "bat.soc", "soc.charge_ah", "soc.residual_kwh", "soc.discharged_ah", "soc.cycles", "soc.soh",
              "soc.capacity_measured_ah", "soc.imbalance_pct")

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.charge: float | None = None  # Ah; None until known
        self.waited = 0.0
        self.discharged = 0.0  # Ah, lifetime
        self.full_timer = 0.0
        self.empty_timer = 0.0
        self.net_since_full: float | None = None  # Ah taken out since the last full sync, None if none yet

    def start(self, db: TagDB) -> None:
        saved = db["soc.charge_ah"]
        self.charge = saved if saved >= 0 else None
        self.discharged = db["soc.discharged_ah"]

    def scan(self, ctx: ScanContext) -> None:
        capacity = ctx.staged("par.capacity_ah")
        if self.charge is None:
            self.waited += ctx.dt
            if ctx.staged("bms.online") > 0:  # aggregate has just written the BMS estimate
                self.charge = capacity * ctx.staged("bms.soc") / 100.0
            elif self.waited >= INIT_WAIT_S:
                self.charge = capacity * DEFAULT_SOC / 100.0
            else:
                return  # the devices are not answering yet; bat.soc stays as it was
            ctx.write("soc.charge_ah", self.charge)
        synced = self._count(ctx, capacity) if ctx.ok("bat.current") else False
        self._uncertainty(ctx, capacity, synced)

        charge = self.charge
        step = PERSIST_STEP * capacity
        if synced or abs(charge - ctx.staged("soc.charge_ah")) >= step:
            ctx.write("soc.charge_ah", charge)
        if abs(self.discharged - ctx.staged("soc.discharged_ah")) >= step:
            ctx.write("soc.discharged_ah", self.discharged)
        ctx.write("bat.soc", 100.0 * charge / capacity)
        pack_v_nominal = ctx.staged("par.cell_v_nominal") * ctx.staged("par.cells_series")
        ctx.write("soc.residual_kwh", charge * pack_v_nominal / 1000.0)
        ctx.write("soc.cycles", self.discharged / capacity)
        measured = ctx.staged("soc.capacity_measured_ah")
        ctx.write("soc.soh", 100.0 * measured / capacity if measured > 0 else 100.0)
        if ctx.ok("bat.cell_v_max") and ctx.ok("bat.cell_v_min"):
            high, low = ctx.staged("bat.cell_v_max"), ctx.staged("bat.cell_v_min")
            ctx.write("soc.imbalance_pct", abs(high - low) / (high + low) * 200.0 if high + low > 0 else 0.0)

    def _uncertainty(self, ctx: ScanContext, capacity: float, synced: bool) -> None:
        if synced:
            ctx.write("soc.uncertainty", 0.0)
            return
        counted = abs(ctx.staged("bat.current")) * ctx.dt / 3600.0 if ctx.ok("bat.current") else 0.0
        grow = ctx.staged("par.soc_uncertainty_pct") * counted / capacity + SELF_DISCHARGE_PTS_PER_S * ctx.dt
        ctx.write("soc.uncertainty", min(100.0, ctx.staged("soc.uncertainty") + grow))

    def _count(self, ctx: ScanContext, capacity: float) -> bool:
        """Integrate the current over dt and apply the full/empty syncs; True if a sync happened."""
        current, dt = ctx.staged("bat.current"), ctx.dt
        amp_hours = current * dt / 3600.0
        if current > 0:
            amp_hours *= ctx.staged("par.charge_efficiency")
        else:
            self.discharged -= amp_hours
        assert self.charge is not None
        self.charge = min(capacity, max(0.0, self.charge + amp_hours))
        if self.net_since_full is not None:
            self.net_since_full -= amp_hours

        cells_ok = ctx.ok("bat.cell_v_max") and ctx.ok("bat.cell_v_min")
        tail = ctx.staged("par.full_current_c") * capacity
        # Full is judged on the pack's average cell, not the highest one: with a spread, one cell reaches the
        # full voltage while the pack holds a lower monthly charge voltage at ~94 %, which is not full.
        # 0.5 mV below the threshold counts: the sum of eight 3.45 V readings divides back to 3.4499999.
        average_cell_v = ctx.staged("bat.voltage") / max(1, ctx.staged("par.cells_series"))
        at_full = (cells_ok and ctx.ok("bat.voltage")
                   and average_cell_v >= ctx.staged("par.soc_full_cell_v") - 0.0005
                   and -tail <= current <= tail)
        at_empty = cells_ok and ctx.staged("bat.cell_v_min") <= ctx.staged("par.cell_v_min") and current <= 0
        self.full_timer = self.full_timer + dt if at_full else 0.0
        self.empty_timer = self.empty_timer + dt if at_empty else 0.0
        delay = ctx.staged("par.soc_full_delay_s")
        if self.full_timer >= delay:
            self.net_since_full = 0.0  # a capacity measurement starts (again) from here
            if self.charge < capacity:
                self.charge = capacity
                return True
        elif self.empty_timer >= delay:
            measured = self.net_since_full
            if measured is not None and 0.5 * capacity <= measured <= 1.5 * capacity:
                ctx.write("soc.capacity_measured_ah", measured)
            self.net_since_full = None
            if self.charge > 0:
                self.charge = 0.0
                return True
        return False
