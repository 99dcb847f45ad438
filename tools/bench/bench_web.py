"""Benchmark of the operator page: what a browser downloads, and what open pages cost the scan.

1. Page weight: the bytes the overview loads (HTML, JS, CSS, /api/meta, the first live message) for the
   repository's site, and what the charts page adds (one SVG per chart). Goal <= 200 kB.
2. The page's scan observer per scan, against the metrics exporter's.
3. Start lateness of the repository's programs at a 10 ms scan with the page served and 5 pages open (SSE
   streams read by another process), against the same scan with the page served and none open, in the same
   run (GIL switch interval 0.5 ms, as the service sets it). Goal: p99 <= 1.2x.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from typing import Any

from runtime.clock import RealClock, SimClock
from runtime.metrics import MetricsExporter
from runtime.mqtt.commands import Commands
from runtime.scan import Scan
from runtime.server.access import WritePolicy
from runtime.server.regmap import RegisterMap
from runtime.site import REPO_ROOT, load_site
from runtime.web import WebApp
from runtime.web.actions import TagWriter
from tools.bench.figures import Figure

BENCH = "web"
PERIOD = 0.01
PAGES = 5
SWITCH_INTERVAL = 0.0005  # the GIL switch interval the service runs with (runtime.app.Controller)

# Five pages in another process, so their reading does not compete for this process's GIL: one thread each,
# reading its event stream until the time is up; prints the messages each received.
_PAGES = """
import http.client, json, sys, threading, time
port, pages, until = int(sys.argv[1]), int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
counts = [0] * pages
def page(i):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/api/events")
    response = connection.getresponse()
    while time.monotonic() < until:
        try:
            line = response.fp.readline()
        except TimeoutError:
            continue
        if line.startswith(b"data: "):
            counts[i] += 1
    connection.close()
threads = [threading.Thread(target=page, args=(i,)) for i in range(pages)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(counts))
"""


def site_app(clock: RealClock | SimClock, period: float) -> tuple[Scan, WebApp]:
    """The repository's site and programs on a scan with the page (and its write path, a scan Port)."""
    site, db, programs, interlocks = load_site(REPO_ROOT)
    scan = Scan(db, programs, clock, period, interlocks=interlocks)
    for program in programs + ([interlocks] if interlocks else []):
        program.start(db)
    commands = Commands(db, RegisterMap.from_tags(db.defs.values()))
    scan.ports.append(commands.writes)
    charts = [p.decl for p in programs if hasattr(p, "decl")]
    app = WebApp(db, charts, TagWriter(commands, WritePolicy(None)), token=None)
    scan.observers.append(app.observe)
    app.serve("127.0.0.1", 0)
    return scan, app


def get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    body = connection.getresponse().read()
    connection.close()
    return body


def first_message(port: int, scan: Scan) -> bytes:
    """The first live message a page receives (the simulated scan runs on a thread until the page has it)."""
    got = threading.Event()

    def scanning() -> None:
        while not got.is_set():
            scan.wait()
            scan.step()
            got.wait(0.001)

    runner = threading.Thread(target=scanning)
    runner.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/events")
        response = connection.getresponse()
        line = b""
        while not line.startswith(b"data: "):
            line = response.fp.readline()
        connection.close()
    finally:
        got.set()
        runner.join()
    return line.rstrip(b"\n")


def bench_weight() -> list[Figure]:
    scan, app = site_app(SimClock(), 0.1)
    try:
        for _ in range(20):
            scan.wait()
            scan.step()
        port = app.address[1]
        static = sum(len(get(port, path)) for path in ("/", "/app.js", "/app.css"))
        meta = get(port, "/api/meta")
        message = first_message(port, scan)
        steps = json.loads(message[6:])["charts"]
        svgs = sum(len(get(port, f"/api/chart/{c['chart']}.svg?step={c['step']}")) for c in steps)
    finally:
        app.stop()
    overview = static + len(meta) + len(message)
    note = (f"html+js+css {static / 1024:.1f} kB, meta {len(meta) / 1024:.1f} kB, live message "
            f"{len(message) / 1024:.1f} kB ({len(app.db.defs)} tags, uncompressed)")
    return [
        Figure(BENCH, "page weight, overview", overview / 1024, "kB", goal="<= 200 kB", note=note),
        Figure(BENCH, "page weight, overview + charts page", (overview + svgs) / 1024, "kB", goal="<= 200 kB",
               note=f"{len(steps)} chart SVGs {svgs / 1024:.1f} kB, drawn once per (chart, step)"),
    ]


def lateness_run(seconds: float, pages: int) -> tuple[Scan, list[int]]:
    """The site's programs at 10 ms in real time for ``seconds``, with ``pages`` pages open."""
    scan, app = site_app(RealClock(), PERIOD)
    counts: list[int] = []
    try:
        reader: Any = None
        if pages:
            reader = subprocess.Popen([sys.executable, "-c", _PAGES, str(app.address[1]), str(pages),
                                       str(seconds + 1.5)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the same settling time either way: the pages' interpreter starts first
        scan.run(duration=seconds)
        if reader is not None:
            out, _ = reader.communicate(timeout=60)
            counts = json.loads(out)
    finally:
        app.stop()
    return scan, counts


def bench_lateness(seconds: float) -> list[Figure]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        quiet, _ = lateness_run(seconds, 0)
        busy, counts = lateness_run(seconds, PAGES)
    finally:
        sys.setswitchinterval(previous)
    reference = "same scan, page served, no page open"
    note = (f"{PERIOD * 1000:g} ms scan, repository programs, {PAGES} SSE pages received "
            f"{min(counts)}..{max(counts)} messages each in {seconds:g} s")
    figures = [Figure(BENCH, f"scan lateness p{p} with {PAGES} pages open", busy.lateness.percentile(p) * 1000,
                      "ms", quiet.lateness.percentile(p) * 1000, reference, note=note,
                      goal="<= 1.2x" if p == 99 else "")
               for p in (50, 99)]
    figures.append(Figure(BENCH, f"overruns with {PAGES} pages open", busy.overruns, "scans", quiet.overruns,
                          reference, note=f"of {busy.count} and {quiet.count} scans"))
    return figures


def bench_observer(scans: int) -> list[Figure]:
    """Microseconds per scan the page's observer takes (alarms every scan, a sample every second of scan
    time), against the metrics exporter's observer on the same scan."""
    scan, app = site_app(SimClock(), PERIOD)
    try:
        for _ in range(20):
            scan.wait()
            scan.step()
        exporter = MetricsExporter(scan, process_metrics=False)
        results = []
        for observe in (app.observe, exporter.observe):
            start = time.perf_counter()
            for _ in range(scans):
                scan.ctx.t += PERIOD
                observe(scan)
            results.append((time.perf_counter() - start) / scans * 1e6)
    finally:
        app.stop()
    return [Figure(BENCH, "observer cost per scan", results[0], "us", results[1], "metrics exporter's observer",
                   note=f"{len(scan.db.defs)} tags; a sample per 1 s, a trend row per 10 s of scan time at 10 ms")]


def run(quick: bool) -> list[Figure]:
    """All figures; ``quick`` finishes in about 20 s."""
    return bench_weight() + bench_observer(2_000 if quick else 20_000) + bench_lateness(6.0 if quick else 30.0)


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(figure.line())
