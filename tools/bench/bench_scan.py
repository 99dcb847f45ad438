"""Scan-start lateness of the real-time loop against cyclictest at the same period, in the same run.

cyclictest (rt-tests) is C with clock_nanosleep(TIMER_ABSTIME): the floor of wake-up latency on this machine.
battplc's figure is the lateness of scan starts (actual start minus the absolute deadline) with the demo
programs; the ratio says how much Python and the loop add to that floor. It is measured as the service runs
(the site's `scan_spin`: sleep, then poll the clock for the last 0.3 ms) and with plain sleeping, with the
CPU share each costs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from runtime.clock import RealClock
from runtime.scan import Scan
from runtime.site import load_site
from tools.bench.figures import Figure

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def cyclictest(period: float, seconds: float) -> dict[str, float] | None:
    """p50/p99/max wake-up latency in ms from cyclictest's histogram, or None when not installed."""
    exe = shutil.which("cyclictest")
    if exe is None:
        return None
    loops = max(1, round(seconds / period))
    out = subprocess.run([exe, "-q", "-t1", "-i", str(round(period * 1e6)), "-l", str(loops), "-h", "20000"],
                         capture_output=True, text=True, timeout=seconds * 3 + 30).stdout
    buckets: list[tuple[int, int]] = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]):
            buckets.append((int(parts[0]), int(parts[1])))
    total = sum(c for _, c in buckets)
    if not total:
        return None

    def percentile(p: float) -> float:
        seen = 0
        for us, count in buckets:
            seen += count
            if seen >= p / 100 * total:
                return us / 1000
        return buckets[-1][0] / 1000

    return {"p50": percentile(50), "p99": percentile(99), "max": buckets[-1][0] / 1000}


def battplc_lateness(period: float, seconds: float, spin: float | None = None) -> dict[str, float]:
    """Lateness figures of the demo site's scan; ``spin`` None = the site's `scan_spin` (the service default)."""
    site, db, programs, interlocks = load_site(DEMO)
    spin = site.settings.scan_spin if spin is None else spin
    scan = Scan(db, programs, RealClock(spin=spin), period, interlocks=interlocks)
    cpu = time.process_time()
    scan.run(duration=seconds)
    cpu = time.process_time() - cpu
    f = scan.figures()
    return {"p50": f["lateness_p50_ms"], "p99": f["lateness_p99_ms"], "max": f["lateness_max_ms"],
            "scans": f["scans"], "overruns": f["overruns"], "cpu_pct": cpu / seconds * 100, "spin": spin}


def run(quick: bool) -> list[Figure]:
    seconds = 10.0 if quick else 60.0
    figures = []
    # The service default (sleep, then spin the site's scan_spin) at both periods; plain sleep at 10 ms too.
    for period, spin in ((0.01, None), (0.01, 0.0), (0.1, None)):
        ours = battplc_lateness(period, seconds, spin)
        ref = cyclictest(period, seconds)
        label = f"{period * 1000:g} ms" + (", no spin" if spin == 0.0 else "")
        for key in ("p50", "p99", "max"):
            figures.append(Figure(
                "scan", f"start lateness {key} at {label}", ours[key], "ms",
                reference=None if ref is None else ref[key],
                reference_name=f"cyclictest -i {round(period * 1e6)}" if ref else "cyclictest not installed",
                goal="p99 <= 1.5x cyclictest" if key == "p99" and period == 0.01 and spin is None else "",
                note=(f"{seconds:g} s, {ours['scans']} scans, {ours['overruns']} overruns, spin "
                      f"{ours['spin'] * 1000:g} ms, CPU {ours['cpu_pct']:.1f} % of a core") if key == "p50" else ""))
    return figures
