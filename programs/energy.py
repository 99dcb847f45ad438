"""energy: kWh counters for energy dashboards (Home Assistant's, an HMI's), lifetime and today.

Each counter integrates one power flow over the scan's ``ctx.dt`` (the power of this scan over the time since
the previous one, as the soc block counts charge). A flow counts only while every tag it is computed from
holds a reading (GOOD and a number): a gap in the readings adds nothing, it never guesses.

    grid_import       grid.power > 0 (+ = import)
    grid_export       -grid.power > 0
    charged           bat.power > 0 (+ = charging)
    discharged        -bat.power > 0
    pv                pv.power > 0
    house             house.power > 0
    battery_export    min(inverter.power, -grid.power) > 0: what the inverter delivered while the grid took
                      energy out, i.e. battery energy that went to the grid instead of the house

``energy.<flow>_total`` counts over the battery's life: retained, never decreasing (a flow's power is
clipped at 0 before it is added, and nothing else writes it; a SoC resync does not touch it).
``energy.<flow>_today`` counts since local midnight of the site's wall time (``ctx.now``): at the first scan
of a new day (``energy.day`` changes) every today counter starts again from 0. Both are retained, so a
restart resumes where the last save left them.

``energy.battery_export_today`` is the site's one daily count of battery energy sent to the grid (issue 14):
above ``par.export_day_max_wh`` (20 Wh) ``alarm.battery_export`` is raised until the day ends. The unload chart
is built not to export; this is the proof an owner sees, and the alarm if a device or a setting defeats it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from programs._common import day_number
from runtime.program import FunctionBlock, ScanContext
from runtime.tags import TagDB

# flow -> (the tags it is computed from, its power in W from their values in that order)
FLOWS: dict[str, tuple[tuple[str, ...], Callable[..., float]]] = {
    "grid_import": (("grid.power",), lambda grid: grid),
    "grid_export": (("grid.power",), lambda grid: -grid),
    "charged": (("bat.power",), lambda battery: battery),
    "discharged": (("bat.power",), lambda battery: -battery),
    "pv": (("pv.power",), lambda pv: pv),
    "house": (("house.power",), lambda house: house),
    "battery_export": (("inverter.power", "grid.power"), lambda inverter, grid: min(inverter, -grid)),
}
TOTAL, TODAY = "energy.{}_total", "energy.{}_today"
SOURCES = tuple(sorted({tag for needs, _ in FLOWS.values() for tag in needs}))
EXPORT_ALARM, EXPORT_MAX = "alarm.battery_export", "par.export_day_max_wh"  # on battery_export_today
# each flow with its tags' names, built once (the scan writes them all)
PLAN = tuple((flow, needs, power, TOTAL.format(flow), TODAY.format(flow)) for flow, (needs, power) in FLOWS.items())


class Energy(FunctionBlock):
    reads = (*SOURCES, EXPORT_MAX)
    writes = (*(TOTAL.format(flow) for flow in FLOWS), *(TODAY.format(flow) for flow in FLOWS), "energy.day",
              EXPORT_ALARM)

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.total = dict.fromkeys(FLOWS, 0.0)  # kWh
        self.today = dict.fromkeys(FLOWS, 0.0)
        self.day = 0  # days since 1970 of the day the today counters count

    def start(self, db: TagDB) -> None:
        """Resume from the retained counters."""
        for flow in FLOWS:
            self.total[flow] = db[TOTAL.format(flow)]
            self.today[flow] = db[TODAY.format(flow)]
        self.day = db["energy.day"]

    def scan(self, ctx: ScanContext) -> None:
        today_share = 1.0  # of this scan's energy (over the last dt) that falls after midnight
        day = day_number(ctx.now)
        if day != self.day:
            self.day = day
            self.today = dict.fromkeys(FLOWS, 0.0)
            ctx.write("energy.day", day)
            now = ctx.now
            since_midnight = now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
            today_share = min(1.0, since_midnight / ctx.dt) if ctx.dt > 0 else 1.0
        readings = {tag: ctx.staged(tag) for tag in SOURCES if ctx.ok(tag) and math.isfinite(ctx.staged(tag))}
        hours = ctx.dt / 3600.0 if ctx.dt > 0 else 0.0
        for flow, needs, power, total_tag, today_tag in PLAN:
            if hours and all(map(readings.__contains__, needs)):
                watts = power(*map(readings.__getitem__, needs))
                if watts > 0:
                    kwh = watts * hours / 1000.0
                    self.total[flow] += kwh
                    self.today[flow] += kwh * today_share
            ctx.write(total_tag, self.total[flow])
            ctx.write(today_tag, self.today[flow])
        ctx.write(EXPORT_ALARM, self.today["battery_export"] * 1000.0 > ctx.staged(EXPORT_MAX))
