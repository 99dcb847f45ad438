"""How scan cost grows: 100 / 1,000 / 10,000 tags, 1 / 10 / 100 charts; peak memory with 1,000 tags.

Every figure is a whole ``Scan.step()`` (latch, programs, commit, measure) on a SimClock, so no waiting is
timed. The tag sites have a port that latches a tenth of the inputs each scan and a function block that
copies every tenth input to an output; the chart sites run generated charts of 8 steps and 12 transitions
whose inputs change every scan. The reference of each row is the smallest size in the same run, so the
ratio is the growth factor (linear growth would be 10x per step).
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.clock import SimClock
from runtime.program import Program, ScanContext
from runtime.scan import Scan
from runtime.site import load_site
from runtime.tags import Quality, TagDB, TagDef, TagType
from tools.bench.figures import Figure

ROOT = Path(__file__).resolve().parents[2]


class RotatingInputs:
    """A port that latches a tenth of the inputs each scan, in rotation, with fresh values."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.offset = 0
        self.rng = random.Random(3)

    def latch(self, db: TagDB, now: float) -> None:
        chunk = max(1, len(self.names) // 10)
        for name in self.names[self.offset:self.offset + chunk]:
            db.set_input(name, self.rng.random(), Quality.GOOD, now)
        self.offset = (self.offset + chunk) % len(self.names)

    def commit(self, changed: dict[str, Any], db: TagDB) -> None:
        pass


class CopyEveryTenth(Program):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.name = "copy"
        self.pairs = pairs[::10]
        self.writes = frozenset(out for _, out in self.pairs)

    def scan(self, ctx: ScanContext) -> None:
        for source, target in self.pairs:
            ctx.write(target, ctx[source] * 2.0)


def time_scans(scan: Scan, scans: int) -> float:
    """Median microseconds of one Scan.step()."""
    samples = []
    for _ in range(scans):
        scan.clock.advance(scan.period)
        t0 = time.perf_counter()
        scan.step()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def tag_scan_cost(n_tags: int, scans: int) -> float:
    half = n_tags // 2
    inputs = [f"in.t{i}" for i in range(half)]
    outputs = [f"out.t{i}" for i in range(half)]
    db = TagDB.from_defs(TagDef(n, TagType.FLOAT) for n in inputs + outputs)
    scan = Scan(db, [CopyEveryTenth(list(zip(inputs, outputs, strict=True)))], SimClock(), 0.1,
                ports=[RotatingInputs(inputs)])
    return time_scans(scan, scans)


def chart_text(k: int) -> str:
    lines = [f"name: c{k}", f"requires: [b.c{k}.x]", "initial: s0", "safe: s0", "outputs:",
             f"  b.c{k}.run: {{}}", f"  b.c{k}.sp: {{idle: 0}}", "steps:"]
    for s in range(8):
        lines += [f"  s{s}:", "    actions:", f"      - {{qualifier: N, set: b.c{k}.run}}",
                  f"      - {{qualifier: N, set: b.c{k}.sp, value: 'clamp(b.c{k}.y * {s}, 0, 8)'}}"]
    lines.append("transitions:")
    for s in range(8):
        lines.append(f"  - {{from: s{s}, to: s{(s + 1) % 8}, when: 'b.c{k}.x > 0.999 and s{s}.T >= 1'}}")
    for s in range(0, 8, 2):
        lines.append(f"  - {{from: s{s}, to: s0, when: 'b.c{k}.y > 0.9995'}}")
    return "\n".join(lines) + "\n"


def chart_site(folder: Path, n_charts: int) -> None:
    (folder / "programs").mkdir(parents=True)
    tags = ["site:", "  name: scaling", f"  programs: [{', '.join(f'c{k}' for k in range(n_charts))}]", "tags:"]
    for k in range(n_charts):
        tags += [f"  b.c{k}.x: {{type: float}}", f"  b.c{k}.y: {{type: float}}",
                 f"  b.c{k}.run: {{type: bool}}", f"  b.c{k}.sp: {{type: float}}"]
        (folder / "programs" / f"c{k}.sfc.yaml").write_text(chart_text(k))
    (folder / "tags.yaml").write_text("\n".join(tags) + "\n")


class ChartInputs:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.rng = random.Random(5)

    def latch(self, db: TagDB, now: float) -> None:
        for name in self.names:
            db.set_input(name, self.rng.random(), Quality.GOOD, now)

    def commit(self, changed: dict[str, Any], db: TagDB) -> None:
        pass


def chart_scan_cost(n_charts: int, scans: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        chart_site(Path(tmp), n_charts)
        _, db, programs, interlocks = load_site(tmp)
    names = [f"b.c{k}.{axis}" for k in range(n_charts) for axis in ("x", "y")]
    scan = Scan(db, programs, SimClock(), 0.1, interlocks=interlocks, ports=[ChartInputs(names)])
    for program in programs:
        program.start(db)
    return time_scans(scan, scans)


# VmHWM, not getrusage's ru_maxrss: across fork+exec Linux carries the parent's peak into ru_maxrss, so a
# probe started from a big harness would report the harness's size.
RSS_PROBE = """
import sys, tempfile
from pathlib import Path
n = int(sys.argv[1])
from runtime.app import Controller
from runtime.clock import SimClock
if n:
    tmp = Path(tempfile.mkdtemp())
    lines = ["site:", "  name: rss", "  retain: {path: " + str(tmp / "retain.json") + "}", "tags:"]
    lines += [f"  t.v{i}: {{type: float, retain: {str(i % 10 == 0).lower()}, modbus: {{address: {i}}}}}"
              for i in range(n)]
    (tmp / "tags.yaml").write_text("\\n".join(lines) + "\\n")
    controller = Controller(tmp, clock=SimClock(), services=False)
    for _ in range(100):
        controller.clock.advance(0.1)
        controller.scan.step()
status = Path("/proc/self/status").read_text().splitlines()
print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024)
"""


def peak_rss_mib(n_tags: int) -> float:
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(n_tags)], capture_output=True, text=True,
                         cwd=ROOT, check=True, timeout=120).stdout
    return float(out.strip().splitlines()[-1])


def run(quick: bool) -> list[Figure]:
    scans = 2_000 if quick else 20_000
    figures = []
    base = None
    for n in (100, 1_000, 10_000):
        cost = tag_scan_cost(n, scans)
        base = base or cost
        figures.append(Figure("scaling", f"scan cost, {n:,} tags", cost, "us", reference=base,
                              reference_name="same, 100 tags", note="median Scan.step()"))
    base = None
    for n in (1, 10, 100):
        cost = chart_scan_cost(n, scans // (10 if n == 100 else 1))
        base = base or cost
        figures.append(Figure("scaling", f"scan cost, {n} charts (8 steps, 12 transitions)", cost, "us",
                              reference=base, reference_name="same, 1 chart", note="median Scan.step()"))
    rss = peak_rss_mib(1_000)
    bare = peak_rss_mib(0)
    figures.append(Figure("scaling", "peak RSS, runtime with 1,000 tags", rss, "MiB", reference=bare,
                          reference_name="runtime imported, no site",
                          note=f"{rss - bare:.1f} MiB for the site, image and 100 scans"))
    return figures
