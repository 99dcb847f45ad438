"""The Modbus/TCP server over the tag image: its own thread and asyncio loop, off the scan path.

Wiring to the scan (see ``runtime.server.attach``):

* ``Server.port`` (a ``WriteQueue``) is a scan Port: accepted client writes land at the next latch.
* ``Server.observe`` is a scan observer: after each commit it compares the mapped tags with the values it
  last encoded and posts the changed ones to the server loop, which re-encodes them into the register image
  between two requests (so a read never sees half a scan). The comparison is one tuple build and compare on
  the scan thread; encoding happens on the server thread.
* With the scan on the real clock, the server steps aside around every scan: from 1 ms before the deadline
  until the scan committed it blocks its own thread, leaving the GIL and a CPU to the scan, as a hardware
  PLC serves communication between scans. Under full client load this keeps the scan's start lateness at its
  unloaded level (without it, p99 is several times higher on a 2-core machine; see
  tools/bench/bench_modbus.py) for about 1-2 ms of every period taken from the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.clock import RealClock
from runtime.config.settings import ServerSettings, section_of
from runtime.scan import Scan
from runtime.server.access import WRITE_LOG_BURST, Gate, RateLimitedLog, tls_context
from runtime.server.image import RegisterImage, WriteQueue, served
from runtime.server.protocol import Connection, RequestHandler, ServerStats
from runtime.server.regmap import Point, RegisterMap
from runtime.tags import Quality, TagDB

log = logging.getLogger("battplc.server")


# Kernel buffer per direction of every client socket (set on the listeners; accepted sockets inherit it).
# A Modbus answer is at most 260 bytes and clients wait for it, so this is plenty; without it loopback
# autotuning lets a client that never reads its answers make the server compute megabytes of them
# before back-pressure (pause reading) starts.
SOCKET_BUFFER = 16384

# The server steps aside from QUIET_GUARD before each scan's deadline until that scan committed, at most
# QUIET_LIMIT past the deadline (see Server._step_aside).

QUIET_GUARD = 0.001
QUIET_LIMIT = 0.005


def limit_socket_buffers(listener: asyncio.Server) -> None:
    """Set SOCKET_BUFFER on a listener's sockets, for the client sockets it accepts."""
    for sock in listener.sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)


class Server:
    """Serve every tag of ``db`` that has a ``modbus`` mapping or a slot in the runtime's blocks, and their
    qualities, per the site's ``server`` settings.

    ``settings`` may be partial; missing keys take the defaults of tags.yaml's ``site.server``. Relative TLS
    file names are resolved against ``base_dir`` (the site folder). ``step_aside``: pause serving around each
    scan on the real clock (see ``_step_aside``); off only to measure what it buys.
    """

    def __init__(self, db: TagDB, settings: ServerSettings | Mapping[str, Any] | None = None,
                 base_dir: Path | str = ".",
                 step_aside: bool = True) -> None:
        self.db = db
        self.step_aside = step_aside
        self.settings = settings if isinstance(settings, ServerSettings) else section_of("server", settings or {})
        self.base_dir = Path(base_dir)
        self.regmap = RegisterMap.from_tags(db.defs.values())
        self.image = RegisterImage(self.regmap)
        self.port = WriteQueue()
        self.stats = ServerStats()
        # Writes are logged with the client, tag, old and new value, but at a bounded rate: a client writing
        # as fast as it can must not fill the disk (see access.RateLimitedLog).
        self.write_logs = (RateLimitedLog(time.monotonic, "refused write(s)", burst=WRITE_LOG_BURST),
                           RateLimitedLog(time.monotonic, "accepted write(s)", burst=WRITE_LOG_BURST,
                                          level=logging.INFO))
        self.handler = RequestHandler(self.regmap, self.image, self.port, self.settings.unit_id,
                                      self.settings.wrong_unit, db.values.__getitem__, self.stats,
                                      *self.write_logs)
        self.gate: Gate | None = None
        self._points = tuple(self.regmap)
        self._quality_points = tuple(self.regmap.quality[point.name] for point in self._points)
        self._names = tuple(point.name for point in self._points)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners: list[asyncio.Server] = []
        self._plain: asyncio.Server | None = None
        self._tls: asyncio.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._encoded, self._encoded_quality = self._mapped_values(), self._mapped_qualities()
        self.image.load(db.values, db.quality)
        self._scans = 0
        self._scan_done = threading.Event()
        self._quiet: asyncio.TimerHandle | None = None

    # ---- life cycle -----------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Encode the current image, open the listeners on the server thread; raise OSError if that fails."""
        self._encoded, self._encoded_quality = self._mapped_values(), self._mapped_qualities()
        self.image.load(self.db.values, self.db.quality)
        self._thread = threading.Thread(target=self._run, name="battplc-modbus-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the Modbus server did not start listening in time")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        """Close every connection and listener and end the server thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._loop is not None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the plain listener, as bound (useful with port 0); OSError in TLS-only mode."""
        if self._plain is None:
            raise OSError("this server listens for TLS only (server.tls.only)")
        return self._plain.sockets[0].getsockname()[:2]

    @property
    def tls_address(self) -> tuple[str, int] | None:
        """(host, port) of the TLS listener, None without TLS."""
        if self._tls is None:
            return None
        return self._tls.sockets[0].getsockname()[:2]

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open(loop))
        except BaseException as exc:  # reported to start(), which raises it in the caller's thread
            self._error = exc
            loop.run_until_complete(self._close())
            loop.close()
            self._ready.set()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close())
            loop.close()

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        settings = self.settings
        self.gate = gate = Gate(loop, settings, self.stats, self.write_logs)
        handler = self.handler
        tls = settings.tls
        if not (tls and tls.only):
            self._plain = await self._listen(loop, lambda: Connection(handler, gate, self.stats), settings.port)
            log.info("Modbus/TCP server on %s:%d, unit %d, %d tags mapped", *self.address, settings.unit_id,
                     len(self.regmap))
        if tls:
            context = tls_context(tls, self.base_dir)
            self._tls = await self._listen(loop, lambda: Connection(handler, gate, self.stats, tls=context),
                                           tls.port)
            log.info("Modbus/TCP Security (TLS) on %s:%d%s", *self.tls_address,  # type: ignore[misc]
                     ", TLS only: no plain port" if tls.only else "")
        if settings.writers is None:
            log.info("server.writers not set: every client admitted may write every rw tag")
        gate.start()

    async def _listen(self, loop: asyncio.AbstractEventLoop, protocol: Any, port: int) -> asyncio.Server:
        listener = await loop.create_server(protocol, self.settings.listen, port, reuse_address=True,
                                            backlog=128)
        self._listeners.append(listener)
        limit_socket_buffers(listener)
        return listener

    async def _close(self) -> None:
        if self.gate is not None:
            self.gate.stop()
        for listener in self._listeners:
            listener.close()
        await asyncio.sleep(0)  # let aborted transports run their connection_lost

    # ---- scan side ------------------------------------------------------------------------------------------

    def _mapped_values(self) -> tuple[Any, ...]:
        return tuple(map(self.db.values.__getitem__, self._names))

    def _mapped_qualities(self) -> tuple[Quality, ...]:
        return tuple(map(self.db.quality.__getitem__, self._names))

    def observe(self, scan: Scan) -> None:
        """Scan observer (after commit): hand the changed mapped tags and the next deadline to the server loop."""
        current, qualities = self._mapped_values(), self._mapped_qualities()
        changes: list[tuple[Point, Any]] = []
        if current != self._encoded or qualities != self._encoded_quality:
            changes = self._changes(current, qualities)
        self._scans += 1
        self._scan_done.set()
        real_time = isinstance(scan.clock, RealClock)
        loop = self._loop
        if loop is not None and (changes or real_time):
            next_deadline = scan.deadline + scan.period if real_time else None
            try:
                loop.call_soon_threadsafe(self._after_scan, changes, next_deadline, scan.period, self._scans)
                return
            except RuntimeError:  # the loop closed under us (stop() from another thread)
                pass
        self.image.apply(changes)  # not serving: nobody else touches the image

    def _changes(self, current: tuple[Any, ...], qualities: tuple[Quality, ...]) -> list[tuple[Point, Any]]:
        """The points (values and qualities) to re-encode since the last observe; remembers what they are now."""
        encoded, encoded_quality = self._encoded, self._encoded_quality
        self._encoded, self._encoded_quality = current, qualities
        points = self._points
        if qualities == encoded_quality:  # the common case: some values changed, every quality as it was
            return [(points[i], served(points[i], value, qualities[i]))
                    for i, (value, old) in enumerate(zip(current, encoded, strict=True))
                    if value is not old and value != old]
        changes: list[tuple[Point, Any]] = []
        for i, (value, old, quality, old_quality) in enumerate(zip(current, encoded, qualities, encoded_quality,
                                                                   strict=True)):
            if quality is not old_quality:
                changes.append((self._quality_points[i], quality))
            if quality is not old_quality or (value is not old and value != old):
                changes.append((points[i], served(points[i], value, quality)))
        return changes

    # ---- server side of the scan ------------------------------------------------------------------------------

    def _after_scan(self, changes: list[tuple[Point, Any]], next_deadline: float | None, period: float,
                    scans: int) -> None:
        """On the loop: refresh the image, then plan to step aside for the next scan."""
        self.image.apply(changes)
        if next_deadline is None or self._loop is None or not self.step_aside:
            return
        if self._quiet is not None:
            self._quiet.cancel()
        guard = min(QUIET_GUARD, period / 10, (next_deadline - self._loop.time()) / 2)
        self._quiet = self._loop.call_at(next_deadline - guard, self._step_aside, scans, guard)

    def _step_aside(self, scans: int, guard: float) -> None:
        """Block this thread (GIL and CPU free) from just before a scan's deadline until that scan committed.

        Communication is served in the time between scans, as in a hardware PLC: under client load the scan
        then starts on time instead of waiting for the GIL or a CPU the server holds. Bounded, so a stuck
        scan never stops the server for long.
        """
        self._quiet = None
        self._scan_done.clear()
        if self._scans > scans:
            return  # that scan already committed
        self.stats.steps_aside += 1
        self._scan_done.wait(guard + QUIET_LIMIT)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until everything posted to the server loop so far (image refreshes) has run."""
        loop = self._loop
        if loop is None:
            return
        done = threading.Event()
        loop.call_soon_threadsafe(done.set)
        if not done.wait(timeout):
            raise TimeoutError("the Modbus server loop did not respond")
