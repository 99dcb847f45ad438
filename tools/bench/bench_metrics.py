"""Benchmark of the /metrics endpoint: what a scrape costs, and what scrapes cost the scan.

1. Scrape time of /metrics with 1,000 metric tags, fetched over HTTP by a separate process (as Prometheus
   would), against stock prometheus_client Gauges holding the same 1,000 values, served the same way.
2. Start lateness of a 10 ms scan while /metrics is scraped every 100 ms, against the same scan with nobody
   scraping, in the same run (GIL switch interval 0.5 ms, as the service sets it).
3. The observer's cost per scan (snapshot every 100 ms of scan time), against a snapshot every scan.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from runtime.clock import RealClock, SimClock
from runtime.metrics import MetricsExporter
from runtime.program import FunctionBlock, ScanContext
from runtime.scan import Scan
from runtime.tags import TagDB, TagDef, TagType
from tools.bench.figures import Figure

BENCH = "metrics"
TAGS = 1000
PERIOD = 0.01
SCRAPE_INTERVAL = 0.1
SWITCH_INTERVAL = 0.0005  # the GIL switch interval the service runs with (runtime.app.Controller)
UNITS = ("V", "A", "W", "%", "degC", "s", "kWh", "mV")

# The scraper runs in its own process so its HTTP parsing does not compete for this process's GIL.
_SCRAPER = """
import json, sys, time, urllib.request
url, interval, until = sys.argv[1], float(sys.argv[2]), time.monotonic() + float(sys.argv[3])
limit = int(sys.argv[4])
times = []
while time.monotonic() < until and len(times) < limit:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
    times.append((time.perf_counter() - start) * 1000)
    time.sleep(max(0.0, interval - (time.perf_counter() - start)))
print(json.dumps(times))
"""


def tag_set(count: int) -> list[TagDef]:
    """``count`` metric tags of mixed types and units, like a large site's."""
    defs = []
    for i in range(count):
        kind = i % 10
        if kind == 8:
            defs.append(TagDef(f"bench.flag_{i}", TagType.BOOL, "", f"bench flag {i}"))
        elif kind == 9:
            defs.append(TagDef(f"bench.mode_{i}", TagType.ENUM, "", f"bench mode {i}", values=("a", "b", "c")))
        else:
            defs.append(TagDef(f"bench.value_{i}", TagType.FLOAT, UNITS[kind], f"bench value {i}"))
    return defs


class Churn(FunctionBlock):
    """Writes a new value into a tenth of the float tags each scan, so snapshots copy a changing image."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("churn")
        self.names = names
        self.writes = frozenset(names)

    def scan(self, ctx: ScanContext) -> None:
        names = self.names
        for i in range(ctx.count % 10, len(names), 10):
            ctx.write(names[i], ctx.count * 0.001 + i)


def make_scan(clock: RealClock | SimClock, tags: int = TAGS, period: float = PERIOD) -> Scan:
    defs = tag_set(tags)
    db = TagDB.from_defs(defs)
    floats = [d.name for d in defs if d.type == TagType.FLOAT]
    return Scan(db, [Churn(floats)], clock, period)


@contextmanager
def exporter_for(scan: Scan) -> Iterator[MetricsExporter]:
    exporter = MetricsExporter(scan)
    scan.observers.append(exporter.observe)
    exporter.serve("127.0.0.1", 0)
    try:
        yield exporter
    finally:
        exporter.stop()


def start_scraper(url: str, interval: float, seconds: float, limit: int = 1_000_000) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _SCRAPER, url, str(interval), str(seconds), str(limit)],
                            stdout=subprocess.PIPE, text=True)


def scrape_times(url: str, count: int) -> list[float]:
    """Milliseconds per GET of ``url``, back to back, from another process (after 3 warm-up GETs)."""
    process = start_scraper(url, 0.0, 600.0, count + 3)
    out, _ = process.communicate(timeout=600)
    return json.loads(out)[3:]


def percentile(data: list[float], p: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def bench_scrape(count: int) -> list[Figure]:
    scan = make_scan(SimClock())
    with exporter_for(scan) as exporter:
        scan.run(max_scans=20)
        ours = scrape_times(exporter.url, count)
    registry = CollectorRegistry()
    for tag in scan.db.defs.values():
        Gauge(tag.name.replace(".", "_"), tag.description or tag.name, registry=registry).set(1.5)
    httpd, thread = start_http_server(0, "127.0.0.1", registry=registry)
    try:
        stock = scrape_times(f"http://127.0.0.1:{httpd.server_address[1]}/metrics", count)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    reference = f"stock prometheus_client, {TAGS} Gauges"
    return [
        Figure(BENCH, f"scrape p50, {TAGS} metric tags", statistics.median(ours), "ms",
               statistics.median(stock), reference, goal="< 20 ms"),
        Figure(BENCH, f"scrape p99, {TAGS} metric tags", percentile(ours, 99), "ms", percentile(stock, 99),
               reference, note="includes quality, scan and chart families"),
    ]


def lateness_run(seconds: float, scraped: bool) -> tuple[Scan, list[float]]:
    """Run a 10 ms scan for ``seconds`` in real time, scraped every 100 ms by another process or not at all."""
    scan = make_scan(RealClock())
    times: list[float] = []
    with exporter_for(scan) as exporter:
        scraper = start_scraper(exporter.url, SCRAPE_INTERVAL, seconds + 1) if scraped else None
        time.sleep(0.3 if scraped else 0.0)  # let the scraper's interpreter start before the scan does
        scan.run(duration=seconds)
        if scraper is not None:
            out, _ = scraper.communicate(timeout=60)
            times = json.loads(out)
    return scan, times


def bench_lateness(seconds: float) -> list[Figure]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        quiet, _ = lateness_run(seconds, scraped=False)
        busy, times = lateness_run(seconds, scraped=True)
    finally:
        sys.setswitchinterval(previous)
    reference = "same scan, no scraping"
    note = f"{PERIOD * 1000:g} ms scan, {TAGS} tags, {len(times)} scrapes, p50 {statistics.median(times):.1f} ms"
    figures = []
    for p in (50, 99):
        figures.append(Figure(BENCH, f"scan lateness p{p} while scraped", busy.lateness.percentile(p) * 1000, "ms",
                              quiet.lateness.percentile(p) * 1000, reference, note=note))
    figures.append(Figure(BENCH, "scan lateness max while scraped", busy.lateness.max() * 1000, "ms",
                          quiet.lateness.max() * 1000, reference, note=note))
    figures.append(Figure(BENCH, "overruns while scraped", busy.overruns, "scans", quiet.overruns, reference,
                          note=f"of {busy.count} and {quiet.count} scans"))
    return figures


def bench_observer(scans: int) -> list[Figure]:
    """Microseconds per observe() call with 1,000 tags: snapshot every 100 ms vs every scan."""
    results = []
    for interval in (0.1, 0.0):
        scan = make_scan(SimClock())
        exporter = MetricsExporter(scan, snapshot_interval=interval, process_metrics=False)
        scan.run(max_scans=2)
        total = 0.0
        for _ in range(scans):
            scan.ctx.t += PERIOD
            scan.count += 1
            start = time.perf_counter()
            exporter.observe(scan)
            total += time.perf_counter() - start
        results.append(total / scans * 1e6)
    return [Figure(BENCH, f"observer cost per scan, {TAGS} tags", results[0], "us", results[1],
                   "snapshot every scan", note="snapshot every 100 ms of scan time at a 10 ms period")]


def run(quick: bool) -> list[Figure]:
    """All figures; ``quick`` finishes in under 30 s."""
    figures = bench_scrape(50 if quick else 300)
    figures += bench_observer(2_000 if quick else 20_000)
    figures += bench_lateness(6.0 if quick else 30.0)
    return figures


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(figure.line())
