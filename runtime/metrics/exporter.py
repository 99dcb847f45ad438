"""The exporter: snapshots the scan at commit time and serves the newest snapshot on ``/metrics``.

The endpoint is built to cost the scan as little as the Modbus server does (runtime/server/server.py):

- It steps aside: a scrape is rendered only when it can finish before the next scan's deadline (the render
  time is learned as it goes), else right after that scan committed, waiting at most ``QUIET_LIMIT`` past
  the deadline. So a render never holds the GIL when a scan should start (real clock only).
- One render per snapshot: scrapes between two snapshots (100 ms of scan time) get the same bytes.
- A scrape-rate limit (``site.metrics.max_scrapes_per_s``, default 20): beyond it a scrape is answered
  ``429 Too Many Requests`` with ``Retry-After: 1`` at once, without rendering.
- A client that resets or times out mid-request is counted (``aborted``), never logged with a traceback.
"""

from __future__ import annotations

import gzip
import logging
import math
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from runtime.clock import RealClock
from runtime.config.tags_schema import METRICS
from runtime.http_thread import ServerThread, Serving
from runtime.metrics.families import BridgeSource, RuntimeCollector, StatsSource, TagText
from runtime.metrics.plan import build_plan
from runtime.metrics.snapshot import Buckets, Snapshot

log = logging.getLogger("battplc.metrics")

SNAPSHOT_INTERVAL = 0.1  # s of scan time between snapshots: a dict copy per 100 ms, not per 10 ms scan
MAX_SCRAPES_PER_S: int = METRICS({})["max_scrapes_per_s"]  # the default of site.metrics, from its schema
QUIET_GUARD = 0.001  # s kept free before a scan's deadline, beside the expected render time
QUIET_LIMIT = 0.005  # s a scrape waits at most past a deadline for that scan to commit (a stuck scan)
FIRST_RENDER_GUESS = 0.005  # s, until a render has been timed


class ScrapeLimit:
    """A token bucket: ``rate`` scrapes a second on average, bursts up to ``rate``; thread-safe."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._tokens = rate
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


# ---- the exporter -----------------------------------------------------------------------------------------

class MetricsExporter(Serving):
    """Snapshots a scan at commit time and serves the newest snapshot on an HTTP endpoint.

    Register ``observe`` as a scan observer. ``render`` is one scrape's body; ``serve`` starts the endpoint on
    its own threads and ``stop`` ends it.
    """

    def __init__(self, scan: Any, snapshot_interval: float = SNAPSHOT_INTERVAL,
                 server_stats: StatsSource | None = None, process_metrics: bool = True,
                 max_scrapes_per_s: float = MAX_SCRAPES_PER_S, step_aside: bool = True,
                 mqtt_bridge: BridgeSource | None = None) -> None:
        """``step_aside``: render in the gaps between scans (off only to measure what it buys)."""
        self.scan = scan
        self.limit = ScrapeLimit(max_scrapes_per_s)
        self.step_aside = step_aside
        self.scrapes = 0  # rendered or served from the last render
        self.limited = 0  # answered 429
        self.aborted = 0  # the client went away mid-request
        self.steps_aside = 0  # scrapes that waited for a scan to commit before rendering
        self._render_cost = FIRST_RENDER_GUESS
        self._next_deadline: float | None = None  # monotonic start of the next scan (real clock only)
        self._commits = 0
        self._committed = threading.Event()
        self._rendered: tuple[Snapshot | None, bytes] = (None, b"")
        self.snapshot_interval = snapshot_interval
        self.server_stats: StatsSource = server_stats or (lambda: None)
        self.mqtt_bridge: BridgeSource = mqtt_bridge or (lambda: None)
        self.duration = Buckets()
        self.lateness = Buckets()
        self.snapshots = 0
        self._next_snapshot = -math.inf
        self.snapshot = self._take()
        self._text: TagText | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RuntimeCollector(self))
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self.http = ServerThread("the metrics endpoint", "/metrics")

    # ---- scan thread --------------------------------------------------------------------------------------

    def observe(self, scan: Any) -> None:
        """Scan observer (commit phase): count the figures every scan, swap in a snapshot when one is due."""
        values = scan.db.values
        self.lateness.observe(values["scan.lateness"])
        if scan.count > 1:
            # scan.duration is measured after the observers ran, so it still holds the previous scan's.
            self.duration.observe(values["scan.duration"])
        if self.step_aside and isinstance(scan.clock, RealClock):
            self._next_deadline = scan.deadline + scan.period
            self._commits += 1
            self._committed.set()
        started = scan.ctx.t
        if started >= self._next_snapshot:
            # A microsecond early, so float sums of periods (0.1 + 0.2 > 0.3) do not skip a due snapshot.
            self._next_snapshot = started + self.snapshot_interval - 1e-6
            self.snapshot = self._take()  # one reference assignment: the HTTP thread sees old or new, whole

    def _take(self) -> Snapshot:
        scan = self.scan
        values, quality = scan.db.snapshot()
        self.snapshots += 1
        return Snapshot(values, quality, scan.count, scan.overruns, scan.skipped, scan.period,
                        self.duration.frozen(), self.lateness.frozen())

    # ---- HTTP threads -------------------------------------------------------------------------------------

    def plan(self) -> TagText:
        """The prepared exposition of the current tag definitions (redone when a service declared more)."""
        text, defs = self._text, self.scan.db.defs
        if text is None or text.plan.declared != len(defs):
            text = self._text = TagText(build_plan(list(defs.values())))
        return text

    def render(self) -> bytes:
        """One scrape: the text exposition format (version 0.0.4) of the newest snapshot."""
        tags = self.plan().render(self.snapshot)
        return generate_latest(self.registry) + tags.encode()

    def body(self) -> bytes:
        """What a scrape gets: the render of the newest snapshot, made once per snapshot, in a gap between
        scans."""
        snapshot = self.snapshot
        rendered, body = self._rendered
        if rendered is not snapshot:
            self._wait_for_gap()
            started = time.perf_counter()
            snapshot = self.snapshot
            body = self.render()
            # the slowest recent render counts most: the next one must fit before a deadline too
            self._render_cost = max(time.perf_counter() - started, 0.8 * self._render_cost)
            self._rendered = (snapshot, body)
        self.scrapes += 1
        return body

    def _wait_for_gap(self) -> None:
        """Return when a render can finish before the next scan's deadline: at once if there is time, else
        after the scan at that deadline committed (at most QUIET_LIMIT past it)."""
        deadline = self._next_deadline
        if deadline is None:
            return
        now = time.monotonic()
        if deadline - now > self._render_cost + QUIET_GUARD:
            return
        self.steps_aside += 1
        commits, until = self._commits, deadline + QUIET_LIMIT
        while self._commits == commits and now < until:
            self._committed.clear()
            if self._commits != commits:
                break
            self._committed.wait(until - now)
            now = time.monotonic()

    def serve(self, listen: str, port: int) -> tuple[str, int]:
        """Start the HTTP endpoint on a daemon thread; return the address it listens on (port 0 picks one)."""
        return self.http.start(_Server((listen, port), self), "metrics-http")

    def stop(self) -> None:
        """Stop the endpoint (the observer keeps counting harmlessly if the scan still runs)."""
        self.http.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # listen() backlog: the default 5 drops the SYNs of a burst of scrapers (each then waits 1 s to retry)
    # while the accepting thread waits for the GIL
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], exporter: MetricsExporter) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.exporter = exporter
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or times out mid-request is counted, not a traceback on stderr (the
        default): scrapers abort, and a flood of aborts must not flood the journal. Anything else is a bug
        and logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            self.exporter.aborted += 1
            log.debug("metrics: %s went away: %s", client_address, error)
            return
        log.exception("metrics: error serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that connects and sends nothing does not keep a thread forever

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        exporter = self.server.exporter
        if not exporter.limit.take():
            exporter.limited += 1
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = exporter.body()
        headers = {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: %s %s", self.address_string(), format % args)


def attach(controller: Any) -> Callable[[], None] | None:
    """Controller extension: serve /metrics when ``site.metrics.enabled``; return the stop callable.

    A port that cannot be bound is logged and the controller runs on without metrics: monitoring must never
    keep the battery from being controlled.
    """
    settings = controller.site.settings.metrics
    if not settings.enabled:
        return None
    listen, port = settings.listen, settings.port

    def server_stats() -> Any:
        return getattr(controller.parts.get("server"), "stats", None)

    exporter = MetricsExporter(controller.scan, server_stats=server_stats,
                               max_scrapes_per_s=settings.max_scrapes_per_s,
                               mqtt_bridge=lambda: controller.parts.get("mqtt"))
    try:
        exporter.serve(listen, port)
    except OSError as error:
        log.error("metrics: cannot listen on %s:%s (%s); running without /metrics", listen, port,
                  error.strerror or error)
        return None
    controller.scan.observers.append(exporter.observe)
    controller.parts["metrics"] = exporter
    log.info("metrics: serving %s", exporter.url)
    return exporter.stop
