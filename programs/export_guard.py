"""export_guard: battery energy sent to the grid, counted per day, with an alarm above a daily budget (issue 14).

Battery energy exported is the inverter's AC output while the meter exports, min(inverter, -grid), as the
plant's oracle counts it. ``export.today_wh`` (retained) sums it and restarts at local midnight
(``export.day`` holds the day it counts, so a restart on the same day resumes the sum); above
``par.export_day_max_wh`` (20 Wh) ``alarm.battery_export`` is raised until the day ends. The unload chart is
built not to export; this is the proof an owner sees, and the alarm if a device or a setting defeats it.
"""

from __future__ import annotations

from programs._common import day_number
from runtime.program import FunctionBlock, ScanContext


class ExportGuard(FunctionBlock):
    reads = ("inverter.power", "grid.power", "par.export_day_max_wh", "export.today_wh", "export.day")
    writes = ("export.today_wh", "export.day", "alarm.battery_export")

    def scan(self, ctx: ScanContext) -> None:
        today = day_number(ctx.now)
        total = ctx.staged("export.today_wh") if ctx.staged("export.day") == today else 0.0
        if ctx.ok("inverter.power") and ctx.ok("grid.power"):
            inverter, grid = ctx.staged("inverter.power"), ctx.staged("grid.power")
            if inverter > 0 and grid < 0:
                total += min(inverter, -grid) * ctx.dt / 3600.0
        ctx.write("export.day", today)
        ctx.write("export.today_wh", total)
        ctx.write("alarm.battery_export", total > ctx.staged("par.export_day_max_wh"))
