"""The exporter: snapshots the scan at commit time and serves the newest snapshot on ``/metrics``."""

from __future__ import annotations

import gzip
import logging
import math
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from runtime.metrics.families import RuntimeCollector, StatsSource, TagText
from runtime.metrics.plan import build_plan
from runtime.metrics.snapshot import Buckets, Snapshot

log = logging.getLogger("battplc.metrics")

SNAPSHOT_INTERVAL = 0.1  # s of scan time between snapshots: a dict copy per 100 ms, not per 10 ms scan


# ---- the exporter -----------------------------------------------------------------------------------------

class MetricsExporter:
    """Snapshots a scan at commit time and serves the newest snapshot on an HTTP endpoint.

    Register ``observe`` as a scan observer. ``render`` is one scrape's body; ``serve`` starts the endpoint on
    its own threads and ``stop`` ends it.
    """

    def __init__(self, scan: Any, snapshot_interval: float = SNAPSHOT_INTERVAL,
                 server_stats: StatsSource | None = None, process_metrics: bool = True) -> None:
        self.scan = scan
        self.snapshot_interval = snapshot_interval
        self.server_stats: StatsSource = server_stats or (lambda: None)
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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- scan thread --------------------------------------------------------------------------------------

    def observe(self, scan: Any) -> None:
        """Scan observer (commit phase): count the figures every scan, swap in a snapshot when one is due."""
        values = scan.db.values
        self.lateness.observe(values["scan.lateness"])
        if scan.count > 1:
            # scan.duration is measured after the observers ran, so it still holds the previous scan's.
            self.duration.observe(values["scan.duration"])
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

    def serve(self, listen: str, port: int) -> tuple[str, int]:
        """Start the HTTP endpoint on a daemon thread; return the address it listens on (port 0 picks one)."""
        self._server = _Server((listen, port), self)
        # serve_forever looks for shutdown() between requests every poll interval: 0.1 s makes stop() quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="metrics-http",
                                        daemon=True)
        self._thread.start()
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the metrics endpoint is not running")
        host, port = self._server.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def stop(self) -> None:
        """Stop the endpoint (the observer keeps counting harmlessly if the scan still runs)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], exporter: MetricsExporter) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.exporter = exporter
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that connects and sends nothing does not keep a thread forever

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        body = self.server.exporter.render()
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

    exporter = MetricsExporter(controller.scan, server_stats=server_stats)
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
