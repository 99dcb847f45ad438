"""Replays: the shipped recorded day at a 1 s scan, and a synthetic weather year at a 10 s scan (issue 17).

Each run is ``battplc replay`` in a child process, so its peak RSS is its own (``os.wait4``). The reference,
measured in the same run, is the plant model alone stepping the same recording at the same period: the
floor of any replay. The year run also judges long-run correctness: the oracle's safety violations (goal 0)
and the displayed SoC's largest error, and reports the year's KPIs. Its memory is compared with the same
replay over its first day: a flat memory (the trace streamed to disk) keeps the ratio near 1.
Quick mode replays 14 days of the year instead of 365 (the figures say so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.site import REPO_ROOT
from tools.bench.figures import Figure
from tools.plantsim.model import Plant
from tools.plantsim.plant.config import PlantConfig
from tools.plantsim.recording import Recording, load_recording, series
from tools.plantsim.weather import synthetic_year, write_csv

DAY_CSV = REPO_ROOT / "examples" / "recordings" / "broken_clouds_day.csv"
YEAR_S = 365 * 86400.0


def replay(recording: Path, scan: float, out: Path) -> tuple[float, float, float, dict[str, Any]]:
    """(wall s, CPU s, peak RSS MB, KPIs) of one ``battplc replay`` in a child process (CPU: the wall time
    of a machine with a free core, which a loaded one does not show)."""
    kpis = out / f"{recording.stem}.json"
    begin = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "runtime.cli", "replay", str(recording), "--scan", f"{scan:g}",
                              "--json", str(kpis), "--trace", str(out / f"{recording.stem}-trace.csv")],
                             cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - begin
    if child.returncode not in (0, 1):  # 1: safety violations, which the figures report
        raise RuntimeError(f"battplc replay {recording} exited {child.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024.0, json.loads(kpis.read_text())["as configured"]


def plant_alone(recording: Recording, scan: float) -> float:
    """Wall seconds for the plant model alone to step through the recording at ``scan``."""
    plant = Plant(PlantConfig())
    pv, house = series(recording.pv), series(recording.house)
    ambient = series(recording.ambient) if recording.ambient else (lambda _t: 20.0)
    begin = time.perf_counter()
    for k in range(int(recording.duration / scan)):
        t = k * scan
        plant.step(scan, pv(t), house(t), ambient(t))
    return time.perf_counter() - begin


def recorded_day(out: Path) -> list[Figure]:
    wall, cpu, _, kpis = replay(DAY_CSV, 1.0, out)
    reference = plant_alone(load_recording(DAY_CSV), 1.0)
    return [Figure("replay", "recorded day at 1 s scan, wall", wall, "s", reference=reference,
                   reference_name="plant model alone", goal="<= 5 s",
                   note=f"examples/recordings/{DAY_CSV.name} (made by the simulator), process start included, "
                        f"CPU {cpu:.1f} s; "
                        f"safety violations {kpis['safety_violations']}")]


def year(out: Path, quick: bool) -> list[Figure]:
    days = 14 if quick else 365
    recording = synthetic_year(days=days)
    path = out / f"year-{days}d.csv"
    write_csv(recording, path)
    first_day = out / "year-1d.csv"
    write_csv(synthetic_year(days=1), first_day)
    wall, cpu, rss, kpis = replay(path, 10.0, out)
    _, _, rss_day, _ = replay(first_day, 10.0, out)
    reference = plant_alone(recording, 10.0)
    span = f"{days} days" if quick else "a year"
    factor = YEAR_S / recording.duration
    summary = kpis["summary"]
    kpi_note = (f"export {kpis['battery_export_kwh']:.2f} kWh, self-consumption {kpis['self_consumption_pct']:.1f} %, "
                f"import saved {kpis['grid_import_saved_kwh']:.0f} kWh, {kpis['full_cycles']:.0f} full cycles, "
                f"{kpis['hours_above_90pct']:.0f} h above 90 %, inverter starts {kpis['inverter_starts']}, "
                f"charger starts {kpis['charger_starts']}, alarms {kpis['alarms_raised']}, "
                f"BMS trips {summary['bms_trips']}")
    return [
        Figure("replay", f"synthetic year at 10 s scan, wall{'' if not quick else ' (extrapolated)'}",
               wall * factor, "s", reference=reference * factor, reference_name="plant model alone",
               goal="<= 600 s", note=f"{span} replayed{', x' + format(factor, '.1f') if quick else ''}; "
                                     f"{YEAR_S / (wall * factor):,.0f}x real time, CPU {cpu * factor:,.0f} s"),
        Figure("replay", "synthetic year: peak RSS", rss, "MB", reference=rss_day,
               reference_name="the same replay of its first day", goal="flat (ratio ~1)",
               note=f"{span}; trace streamed to disk"),
        Figure("replay", "synthetic year: safety violations", kpis["safety_violations"], "", goal="0",
               note=f"{span}; oracle: {kpi_note}"),
        Figure("replay", "synthetic year: SoC error max", kpis["soc_error_max_pts"], "pts", goal="<= 5 pts",
               note=f"{span}; displayed bat.soc against the plant's true SoC, at the end "
                    f"{summary['soc_error_end_pts']:+.2f} pts"),
    ]


def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="battplc-bench-replay-") as tmp:
        out = Path(tmp)
        return recorded_day(out) + year(out, quick)


if __name__ == "__main__":
    for figure in run(quick=True):
        print(figure.line())
