"""Benchmark of the /metrics endpoint: what a scrape costs, and what scrapes cost the scan.

1. Scrape time of /metrics with 1,000 metric tags, fetched over HTTP by a separate process (as Prometheus
   would), against stock prometheus_client Gauges holding the same 1,000 values, served the same way.
2. Start lateness of a 10 ms scan while /metrics is scraped 20 times a second, against the same scan with
   nobody scraping, in the same run (GIL switch interval 0.5 ms, as the service sets it); beside it the same
   scrapes with the endpoint's stepping aside off (what it buys), and a flood (a scraper going back to back,
   mostly answered 429 by the scrape-rate limit). The arms run in interleaved slots, so all see the same
   machine noise; lateness is pooled per arm.
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
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from runtime.clock import RealClock, SimClock
from runtime.metrics import MetricsExporter
from runtime.metrics.exporter import MAX_SCRAPES_PER_S
from runtime.program import FunctionBlock, ScanContext
from runtime.scan import Scan
from runtime.tags import TagDB, TagDef, TagType
from tools.bench.figures import Figure

BENCH = "metrics"
TAGS = 1000
PERIOD = 0.01
SCRAPE_INTERVAL = 0.05  # 20 scrapes a second
SWITCH_INTERVAL = 0.0005  # the GIL switch interval the service runs with (runtime.app.Controller)
UNITS = ("V", "A", "W", "%", "degC", "s", "kWh", "mV")

# The scraper runs in its own process so its HTTP parsing does not compete for this process's GIL.
_SCRAPER = """
import json, sys, time, urllib.error, urllib.request
url, interval, until = sys.argv[1], float(sys.argv[2]), time.monotonic() + float(sys.argv[3])
limit = int(sys.argv[4])
times, limited = [], 0
while time.monotonic() < until and len(times) < limit:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
        times.append((time.perf_counter() - start) * 1000)
    except urllib.error.HTTPError as error:  # 429: over the scrape-rate limit
        limited += 1
    time.sleep(max(0.0, interval - (time.perf_counter() - start)))
print(json.dumps({"times": times, "limited": limited}))
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
def exporter_for(scan: Scan, step_aside: bool = True) -> Iterator[MetricsExporter]:
    exporter = MetricsExporter(scan, step_aside=step_aside)
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
    return json.loads(out)["times"][3:]


def percentile(data: list[float], p: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def bench_scrape(count: int) -> list[Figure]:
    scan = make_scan(SimClock())
    with exporter_for(scan) as exporter:
        # This measures a render, back to back: no rate limit, and no reuse of the last render (a scrape of
        # a new snapshot; the scan does not run meanwhile, so the snapshot would never change)
        exporter.limit.rate = 1e9
        exporter.body = exporter.render  # type: ignore[method-assign]
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


@dataclass
class Arm:
    """One side of the lateness comparison: how (and whether) the endpoint is scraped during its slots."""

    name: str
    interval: float | None  # s between scrapes; None: nobody scrapes; 0: back to back
    step_aside: bool = True
    lateness_ms: list[float] = field(default_factory=list)
    scrapes: int = 0
    limited: int = 0
    overruns: int = 0
    scans: int = 0

    def p(self, percent: float) -> float:
        return percentile(self.lateness_ms, percent)


def lateness_slot(arm: Arm, seconds: float) -> None:
    """Run a 10 ms scan for ``seconds`` in real time, scraped as ``arm`` says by another process."""
    scan = make_scan(RealClock())
    lateness = arm.lateness_ms
    scan.observers.append(lambda s: lateness.append(s.db.values["scan.lateness"] * 1000))
    with exporter_for(scan, arm.step_aside) as exporter:
        scraper = None if arm.interval is None else start_scraper(exporter.url, arm.interval, seconds + 1)
        time.sleep(0.3)  # both sides alike: let the scraper's interpreter start before the scan does
        scan.run(duration=seconds)
        if scraper is not None:
            out, _ = scraper.communicate(timeout=60)
            result = json.loads(out)
            arm.scrapes += len(result["times"])
            arm.limited += result["limited"]
    arm.overruns += scan.overruns
    arm.scans += scan.count


def bench_lateness(rounds: int, seconds: float) -> list[Figure]:
    arms = [Arm("unscraped", None), Arm("scraped 20/s", SCRAPE_INTERVAL),
            Arm("scraped 20/s, stepping aside off", SCRAPE_INTERVAL, step_aside=False),
            Arm("flooded (back to back)", 0.0)]
    quiet, scraped, unstepped, flooded = arms
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        for _ in range(rounds):
            for arm in arms:
                lateness_slot(arm, seconds)
    finally:
        sys.setswitchinterval(previous)
    reference = "same scan, nobody scraping (interleaved slots)"
    note = (f"{PERIOD * 1000:g} ms scan, {TAGS} tags, {rounds} slots of {seconds:g} s per arm; "
            f"{scraped.scrapes} scrapes served")
    figures = [
        Figure(BENCH, "scan lateness p50 while scraped 20/s", scraped.p(50), "ms", quiet.p(50), reference,
               note=note),
        Figure(BENCH, "scan lateness p99 while scraped 20/s", scraped.p(99), "ms", quiet.p(99), reference,
               goal="<= 1.5x unscraped"),
        Figure(BENCH, "scan lateness max while scraped 20/s", scraped.p(100), "ms", quiet.p(100), reference),
        Figure(BENCH, "scan lateness p99, scraped 20/s, no stepping aside", unstepped.p(99), "ms", quiet.p(99),
               reference, note="what stepping aside buys: the same scrapes rendered whenever they come"),
        Figure(BENCH, "scan lateness p99 while flooded", flooded.p(99), "ms", quiet.p(99), reference,
               note=f"a scraper back to back: {flooded.scrapes} served, {flooded.limited} answered 429 "
                    f"(max_scrapes_per_s {MAX_SCRAPES_PER_S})"),
        Figure(BENCH, "overruns while scraped 20/s", scraped.overruns, "scans", quiet.overruns, reference,
               note=f"of {scraped.scans} and {quiet.scans} scans"),
    ]
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
    figures += bench_lateness(*((2, 2.0) if quick else (8, 4.0)))
    return figures


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(figure.line())
