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

Rest resync (issue 14): after ``par.soc_rest_s`` with |current| below ``par.soc_rest_current_c``, every cell's
voltage is read once against the rest curve ``REST_OCV`` (the pack's SoC is the mean of its cells'), on the branch of the last current's direction
(LFP rests higher after a charge than after a discharge: ``HALF_HYSTERESIS_V`` either side of the middle),
+-``par.soc_rest_error_mv``. That gives an interval of SoC; it is used only where the curve is steep enough
that the interval's half width is at most ``par.soc_rest_max_pts`` (with the defaults: below ~13 % and above
~97 %; never on the 20-95 % plateau, where 20 mV spans 10 to 30 points). If the interval and the count's own
(bat.soc +- soc.uncertainty) overlap, the SoC moves only as far as needed to enter the interval, and the
uncertainty shrinks to the overlap; if they do not overlap, the count has lost its way (a wrong start, a
drifting sensor) and the SoC is set to the middle of the interval, the uncertainty to its half width.

``REST_OCV``, per cell at rest (the middle of the two branches), and where each point comes from:
- 10 %, 20 %, 25 %, 80 %: seed 002's idle curve of a 12 V (4S) LiFePO4 battery, per cell: 12.85 V = 10 %,
  13.06 V = 20 %, 13.12 V = 25 %, 13.35 V = 80 % (an owner's readings of a different battery than the plant's
  cells: the controller's table is its own, not the simulator's).
- 0 %: seed 000's discharge end, 2.50 V. 5 %: 3.10 V, our assumption for the steep knee below 10 % that
  every published LFP OCV curve shows (e.g. Roscher and Sauer, J. Power Sources 196 (2011) 331-336, for the
  shape only: no figure of theirs is copied); between 0 and 10 % the table is coarse, and 1 mV there is
  < 0.1 point, so the error is in the table, not in the reading: a site with its cells' curve should use it.
- 97 %: 3.35 V, where seed 004 reports the cell voltages "start to rise rapidly" (~97 %), just above seed
  002's 80 % point; 100 %: 3.45 V, seed 003's full voltage (the cell at the 0.05C tail, ~OCV).
- ``HALF_HYSTERESIS_V``: LFP's charge and discharge OCV branches are 10-30 mV apart in the plateaus
  (Dreyer et al., Nature Materials 9 (2010) 448-453; Roscher and Sauer 2011); 10 mV is half the middle of it.
- ``COLD_PTS_PER_K``: a cold cell relaxes slower and its voltage still reads low after the rest (the same
  kinetics that make LFP datasheets rate ~85-90 % of the 25 degC capacity at 0 degC): below 25 degC (the
  coldest sensor) the reading's interval reaches 0.5 point per kelvin higher, so a winter pack's reading
  is too wide to use (7 degC: 9 points) and a mild one's is only shifted.
- ``par.soc_rest_s`` 2 h: the relaxation a fuel gauge's OCV learning waits after a charge (TI SLVUDW8,
  "let the battery relax for two hours"); the remaining relaxation is a few mV, inside the reading's error.

Shunt SoC cross-check (issue 14): the SmartShunt's own SoC (``shunt.soc``, when the site has one and it is
GOOD) is compared with bat.soc; more than ``par.soc_shunt_mismatch_pts`` apart for ``par.soc_shunt_mismatch_s``
raises ``alarm.soc_shunt_mismatch`` (cleared after as long within). It is an alarm of its own, not
``alarm.soc_sensor_mismatch``: that one says the shunt's current is wrong and the BMS current is being
counted; this one says two counters drifted apart (the shunt's efficiency or sync settings, or a start from a
wrong estimate), and the operator checks the shunt's settings or lets a full charge resync both. While it
stands and the shunt reads lower, the uncertainty is at least the gap, so the reserve assumes the lower one.

Health (seed 004): residual energy = charge x nominal pack voltage; cycles = discharged Ah / capacity;
cell imbalance % = |max - min| / (max + min) x 200; SoH = measured capacity / rated capacity, where the
capacity is measured as the net Ah taken out between a full sync and the next empty sync.
"""

from __future__ import annotations

import math

from programs._common import Debounced, clamp, interp, readings
from programs.aggregate import find_units
from runtime.program import FunctionBlock, ScanContext, TagGroup
from runtime.tags import TagDB

PERSIST_STEP = 0.0025  # of capacity: the seed-003 aggregator's 0.25 % persistence threshold
DEFAULT_SOC = 50.0  # % when neither a retained value nor a BMS estimate is available ...
INIT_WAIT_S = 60.0  # ... within this long after the start
SELF_DISCHARGE_PTS_PER_S = 3.5 / (30 * 86400)  # seed 000's datasheet bound, 3.5 % a month, in points per second
# The rest curve, cell volts at SoC % (the middle of the two branches; sources in the module docstring).
REST_OCV_SOC = (0.0, 5.0, 10.0, 20.0, 25.0, 80.0, 97.0, 100.0)
REST_OCV_V = (2.50, 3.10, 3.2125, 3.265, 3.28, 3.3375, 3.35, 3.45)
HALF_HYSTERESIS_V = 0.010  # a rested cell sits this much above the middle after a charge, below after a discharge
REST_WARM_C = 25.0  # the curve's temperature (datasheet OCV and capacity figures are at 25 degC)
COLD_PTS_PER_K = 0.5  # below it, a rested cell may read up to this much too low per kelvin (module docstring)
SHUNT_SOC = "shunt.soc"  # optional: a site without a SmartShunt has no second SoC to compare with


class Soc(FunctionBlock):
    reads = ("bat.current", "bat.voltage", "bat.cell_v_max", "bat.cell_v_min", "bat.temp_min", "bms.soc",
             "bms.online", "par.capacity_ah", "par.charge_efficiency", "par.soc_full_cell_v", "par.full_current_c", "par.soc_full_delay_s",
             "par.cell_v_min", "par.cells_series", "par.cell_v_nominal", "par.soc_uncertainty_pct",
             "par.soc_rest_current_c", "par.soc_rest_s", "par.soc_rest_error_mv", "par.soc_rest_max_pts",
             "par.soc_shunt_mismatch_pts", "par.soc_shunt_mismatch_s")
    writes = ("soc.uncertainty", "alarm.soc_shunt_mismatch", "bat.soc", "soc.charge_ah", "soc.residual_kwh",
              "soc.discharged_ah", "soc.cycles", "soc.soh", "soc.capacity_measured_ah", "soc.imbalance_pct")

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.charge: float | None = None  # Ah; None until known
        self.waited = 0.0
        self.discharged = 0.0  # Ah, lifetime
        self.full_timer = 0.0
        self.empty_timer = 0.0
        self.net_since_full: float | None = None  # Ah taken out since the last full sync, None if none yet
        self.rest_timer = 0.0  # seconds at rest (|current| below par.soc_rest_current_c)
        self.rest_read = False  # this rest's voltage has been read
        self.direction = 0  # of the last current beyond the rest band: +1 charge, -1 discharge, 0 not seen yet
        self.shunt_soc = False
        self.shunt_mismatch = Debounced()
        self.cells = TagGroup(())  # every cell of every BMS, for the rest reading

    def start(self, db: TagDB) -> None:
        self.shunt_soc = SHUNT_SOC in db
        self.cells = TagGroup(name for unit in find_units(db) for name in unit.cells)
        self.reads = self.reads | set(self.cells.names) | ({SHUNT_SOC} if self.shunt_soc else set())
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
        rested = self._rest_reading(ctx, capacity) if ctx.ok("bat.current") else None
        if rested is not None:
            self._resync(ctx, capacity, *rested)
            synced = True
        if self.shunt_soc:
            self._cross_check_shunt(ctx, 100.0 * self.charge / capacity)

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

    def _rest_reading(self, ctx: ScanContext, capacity: float) -> tuple[float, float] | None:
        """Once per rest of par.soc_rest_s: the SoC interval (%) the rested cell voltages read, if the
        curve is steep enough there (half width <= par.soc_rest_max_pts); else None."""
        current = ctx.staged("bat.current")
        if abs(current) > ctx.staged("par.soc_rest_current_c") * capacity:
            self.direction = 1 if current > 0 else -1
            self.rest_timer, self.rest_read = 0.0, False
            return None
        self.rest_timer += ctx.dt
        if self.rest_read or self.rest_timer < ctx.staged("par.soc_rest_s"):
            return None
        volts = self.cells.staged(ctx)
        if not volts or not readings(self.cells.quality(ctx), volts) or not ctx.ok("bat.temp_min"):
            return None  # a BMS (cells or temperature) is silent: wait for the next rest
        self.rest_read = True
        # an unknown branch (no current seen since the start) widens the reading by the hysteresis
        error = ctx.staged("par.soc_rest_error_mv") / 1000.0 + (HALF_HYSTERESIS_V if self.direction == 0 else 0.0)
        shift = self.direction * HALF_HYSTERESIS_V
        # Each cell on the curve, then the mean: the pack's SoC is its cells' mean, and at the knee a spread
        # pack's mean voltage is not the voltage of its mean SoC (the low cells sit far down the knee).
        low = sum(interp(v - shift - error, REST_OCV_V, REST_OCV_SOC) for v in volts) / len(volts)
        high = sum(interp(v - shift + error, REST_OCV_V, REST_OCV_SOC) for v in volts) / len(volts)
        high += COLD_PTS_PER_K * max(0.0, REST_WARM_C - ctx.staged("bat.temp_min"))
        if (high - low) / 2.0 > ctx.staged("par.soc_rest_max_pts"):
            return None  # the plateau, or a cold pack: the voltage cannot tell
        return low, high

    def _resync(self, ctx: ScanContext, capacity: float, low: float, high: float) -> None:
        """Bring the SoC into the rest reading's interval [low, high] (%), and the uncertainty with it."""
        assert self.charge is not None
        soc, uncertainty = 100.0 * self.charge / capacity, ctx.staged("soc.uncertainty")
        if low <= soc + uncertainty and soc - uncertainty <= high:  # consistent: the truth is in the overlap
            soc_new = clamp(soc, low, high)  # moved only as far as the reading requires
            uncertainty = max(soc_new - max(low, soc - uncertainty), min(high, soc + uncertainty) - soc_new)
        else:  # the count lost its way: the voltage wins
            soc_new, uncertainty = (low + high) / 2.0, (high - low) / 2.0
        self.charge = capacity * soc_new / 100.0
        ctx.write("soc.uncertainty", uncertainty)

    def _cross_check_shunt(self, ctx: ScanContext, soc: float) -> None:
        """The shunt's own SoC against ours (no check while it is not a reading: the latch holds)."""
        shunt = ctx.staged(SHUNT_SOC)
        if not (ctx.ok(SHUNT_SOC) and math.isfinite(shunt)):
            return
        apart = abs(shunt - soc) > ctx.staged("par.soc_shunt_mismatch_pts")
        if self.shunt_mismatch.update(apart, ctx.dt, ctx.staged("par.soc_shunt_mismatch_s")) and shunt < soc:
            # we may read high by the gap: the reserve must not rely on the higher of the two
            ctx.write("soc.uncertainty", max(ctx.staged("soc.uncertainty"), soc - shunt))
        ctx.write("alarm.soc_shunt_mismatch", self.shunt_mismatch.state)

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
