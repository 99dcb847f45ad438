"""schedule: reserves, charge periods and operating mode on the site's wall clock (seed 004), and the state
of the keep-charging inhibits (seed 002).

Charge periods: two, each with ``start``/``end`` as minutes of the day (an end before the start runs over
midnight; start == end disables the period) and ``enable`` ("charge from grid"). Inside a period the battery
is not discharged; it is charged from the grid only if the period is enabled, up to ``par.max_soc`` (a run
that reached it restarts once the SoC is 5 % lower). Outside, the unload chart may discharge down to the
reserve: ``max(par.min_soc, par.min_soc_on_grid)`` while ``grid.present`` (a meter or SCADA drives it; seed
004 keeps an outage reserve on grid), ``par.min_soc`` without grid; either raised by ``soc.uncertainty``, so
a SoC that may read high cannot turn the reserve into a deep discharge (issue 14).

``cmd.mode``: ``auto``; ``off`` (no requests at all, the charts idle); ``force_charge`` (a load request now,
no discharge); ``hold`` (no discharge). A balancing run that has yet to reach its voltage
(``limits.balance_charge``) is a load request too.

Inhibits: the charts store the END of each keep inhibit as wall seconds in retained tags (unload 6 h 20 min,
controlled load 2 h, battery off 20 min; seed 002), so a restart keeps them. Here they become
``keep.inhibited``/``keep.inhibit_left_s`` and ``schedule.battery_off_hold`` (the 20 minutes after a
battery-off command, in which no chart starts). Each end is trusted only up to now + its own duration, so
a wall clock that was set back cannot stretch an inhibit. The block runs after the charts, so an inhibit a
chart sets in one scan holds for every chart from the next.
"""

from __future__ import annotations

from runtime.program import FunctionBlock, ScanContext

MODES = ("auto", "off", "force_charge", "hold")  # cmd.mode codes, in the order of its tags.yaml values
AUTO, OFF, FORCE_CHARGE, HOLD = range(4)
MAX_SOC_RESTART_BAND = 5.0  # % below par.max_soc at which a window charge that reached it starts again

PERIODS = (("par.charge1_enable", "par.charge1_start", "par.charge1_end"),
           ("par.charge2_enable", "par.charge2_start", "par.charge2_end"))
INHIBITS = (("keep.inhibit_unload_until", "par.keep_inhibit_unload_s"),
            ("keep.inhibit_load_until", "par.keep_inhibit_load_s"),
            ("keep.inhibit_cmd_until", "par.keep_inhibit_cmd_s"))


def in_period(minute: int, start: int, end: int) -> bool:
    """Whether a minute of the day lies in [start, end); over midnight when end < start; empty if equal."""
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


class Schedule(FunctionBlock):
    reads = ("cmd.mode", "bat.soc", "limits.balance_charge", "par.min_soc", "par.min_soc_on_grid", "grid.present",
             "soc.uncertainty",
             "par.max_soc") + tuple(n for p in PERIODS for n in p) + tuple(n for i in INHIBITS for n in i)
    writes = ("schedule.time_s", "schedule.minute_of_day", "schedule.charge_window", "schedule.grid_charge",
              "schedule.load_request", "schedule.discharge_allowed", "schedule.soc_floor",
              "schedule.battery_off_hold", "keep.inhibited", "keep.inhibit_left_s")

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.window_charge_wanted = True
        self.trusted: dict[str, tuple[float, float]] = {}  # inhibit tag -> (stored end, end trusted)

    def scan(self, ctx: ScanContext) -> None:
        now = ctx.now
        time_s = now.timestamp()
        minute = now.hour * 60 + now.minute
        ctx.write("schedule.time_s", time_s)
        ctx.write("schedule.minute_of_day", minute)

        window = grid_charge = False
        for enable, start, end in PERIODS:
            if in_period(minute, ctx.staged(start), ctx.staged(end)):
                window = True
                grid_charge = grid_charge or bool(ctx.staged(enable))
        ctx.write("schedule.charge_window", window)
        ctx.write("schedule.grid_charge", grid_charge)

        mode, soc = ctx.staged("cmd.mode"), ctx.staged("bat.soc")
        max_soc = ctx.staged("par.max_soc")
        if soc >= max_soc:
            self.window_charge_wanted = False
        elif soc <= max_soc - MAX_SOC_RESTART_BAND:
            self.window_charge_wanted = True
        window_charge = grid_charge and self.window_charge_wanted
        request = mode == FORCE_CHARGE or (
            mode in (AUTO, HOLD) and (window_charge or ctx.staged("limits.balance_charge")))
        ctx.write("schedule.load_request", request)

        floor = ctx.staged("par.min_soc")
        if ctx.staged("grid.present"):
            floor = max(floor, ctx.staged("par.min_soc_on_grid"))
        floor += ctx.staged("soc.uncertainty")
        ctx.write("schedule.soc_floor", floor)
        ctx.write("schedule.discharge_allowed", mode == AUTO and not window and soc > floor)

        unload_end, load_end, cmd_end = (self._trusted_end(tag, ctx.staged(tag), time_s + ctx.staged(duration))
                                         for tag, duration in INHIBITS)
        inhibit_end = max(unload_end, load_end, cmd_end)
        ctx.write("keep.inhibited", time_s < inhibit_end)
        ctx.write("keep.inhibit_left_s", max(0.0, inhibit_end - time_s))
        ctx.write("schedule.battery_off_hold", time_s < cmd_end)

    def _trusted_end(self, tag: str, stored: float, latest: float) -> float:
        """An inhibit end, cut to now + its duration when first seen (a clock set back is not trusted)."""
        seen = self.trusted.get(tag)
        if seen is None or seen[0] != stored:
            seen = self.trusted[tag] = (stored, min(stored, latest))
        return seen[1]
