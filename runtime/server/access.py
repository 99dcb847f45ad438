"""Who may talk to the server and for how long: client allowlist, connection cap, idle timeout, TLS.

These answer the complaints about soft PLCs that bind every interface with no access control and let idle
connections exhaust the server: a client outside the allowed networks, or one over the cap, is closed at
once (logged, at a bounded rate); a client that sends no complete request for ``idle_timeout`` seconds is
dropped, so a silent or trickling client cannot hold a slot forever.

TLS follows Modbus/TCP Security: TLS 1.2 or newer on its own port, client certificates required when a
``ca`` is configured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.config.settings import TlsSettings

if TYPE_CHECKING:
    from runtime.server.protocol import Connection, ServerStats

log = logging.getLogger("battplc.server")


class RateLimitedLog:
    """At most ``burst`` warnings per ``window`` seconds; the rest are counted and summarised.

    For what a hostile client can trigger at will (refused connections, malformed frames), so it cannot
    flood the log. Writes are not rate limited: every write is logged.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, what: str, burst: int = 10, window: float = 10.0) -> None:
        self.loop = loop
        self.what = what
        self.burst = burst
        self.window = window
        self._start = -window
        self._count = 0
        self._suppressed = 0

    def warning(self, message: str, *args: Any) -> None:
        """Log like ``logging.warning`` unless over the budget of this window."""
        now = self.loop.time()
        if now - self._start >= self.window:
            if self._suppressed:
                log.warning("%d more %s were not logged", self._suppressed, self.what)
            self._start, self._count, self._suppressed = now, 0, 0
        if self._count < self.burst:
            self._count += 1
            log.warning(message, *args)
        else:
            self._suppressed += 1


class Gate:
    """Admission and idle policing for every connection of one server (plain and TLS listeners share it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, allow: Iterable[str], max_connections: int,
                 idle_timeout: float, stats: ServerStats) -> None:
        self.loop = loop
        self.networks = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.handshake_timeout = min(idle_timeout, 10.0)
        self.stats = stats
        self.connections: set[Connection] = set()
        self.refusals = RateLimitedLog(loop, "refused connection(s)")
        self.malformed = RateLimitedLog(loop, "malformed frame(s)")
        self._sweeper: asyncio.TimerHandle | None = None

    def allowed(self, host: str) -> bool:
        """Whether a peer address lies in one of the allowed networks (IPv4-mapped IPv6 counts as IPv4)."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def admit(self, connection: Connection) -> bool:
        """Take a new connection if its client is allowed and a slot is free (logged either way)."""
        if not self.allowed(connection.host):
            self.stats.connections_refused += 1
            self.refusals.warning("refused %s: not in the allowed networks (%s)", connection.client,
                                   ", ".join(str(n) for n in self.networks))
            return False
        if len(self.connections) >= self.max_connections:
            self.stats.connections_refused += 1
            self.refusals.warning("refused %s: %d connections already open (max_connections)",
                                   connection.client, len(self.connections))
            return False
        self.stats.connections_accepted += 1
        connection.last_request = self.loop.time()
        self.connections.add(connection)
        self.stats.connections_peak = max(self.stats.connections_peak, len(self.connections))
        log.info("client %s connected (%d open)", connection.client, len(self.connections))
        return True

    def release(self, connection: Connection) -> None:
        """Free a connection's slot (idempotent)."""
        if connection in self.connections:
            self.connections.discard(connection)
            log.info("client %s disconnected (%d open)", connection.client, len(self.connections))

    # ---- idle sweep -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the idle sweep."""
        self._schedule()

    def stop(self) -> None:
        """Stop the sweep and drop every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.close(abort=True)

    def _schedule(self) -> None:
        period = min(1.0, max(0.02, self.idle_timeout / 4))
        self._sweeper = self.loop.call_later(period, self._sweep)

    def _sweep(self) -> None:
        deadline = self.loop.time() - self.idle_timeout
        for connection in [c for c in self.connections if c.last_request < deadline]:
            self.stats.connections_idle_closed += 1
            log.info("closing %s: no complete request for %.3g s (idle_timeout)", connection.client,
                     self.idle_timeout)
            connection.close(abort=connection.has_unsent_output)  # a client that stopped reading: no flush
        self._schedule()


def tls_context(tls: TlsSettings, base: Path) -> ssl.SSLContext:
    """A server context from the site's ``server.tls`` settings; relative paths are from the site folder."""
    def resolve(name: str) -> str:
        path = Path(name)
        return str(path if path.is_absolute() else base / path)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(resolve(tls.cert), resolve(tls.key))
    if tls.ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(resolve(tls.ca))
    else:
        log.warning("server.tls has no 'ca': TLS encrypts, but clients are not authenticated by certificate")
    return context
