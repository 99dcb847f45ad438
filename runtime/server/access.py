"""Who may talk to the server, for how long, and who may write: allowlist, connection caps, timeouts, TLS,
write authorization.

These answer the complaints about soft PLCs that bind every interface with no access control and let idle
connections exhaust the server: a client outside the allowed networks, or one over a cap (``max_connections``
in all, ``max_connections_per_client`` from one address), is closed at once (logged, at a bounded rate).
At the global cap a new client takes the slot of the oldest connection that sent no complete request for
``frame_timeout`` (the Modbus/TCP implementation guide's "close the oldest unused connection"), so idle
clients cannot lock others out. A client that sends no complete request for ``idle_timeout`` seconds is
dropped, and one whose frame stays incomplete for ``frame_timeout`` (2 s) too, so a trickling client cannot
hold a slot either.

TLS follows Modbus/TCP Security: TLS 1.2 or newer on its own port, client certificates required when a
``ca`` is configured; ``tls.only`` leaves the plain port closed. Roles come from the client certificate's
organizational units (OU). ``writers`` (per tag group: the first word of a tag name, or ``*`` for the
rest) lists who may write: networks for clients without TLS, ``role:NAME`` for TLS clients and for the MQTT
bridge (one writer, ``mqtt.writes_as``: MQTT messages carry no sender; ``WritePolicy.for_role``). Without
``writers`` every admitted client may write, as before. A refused write is answered with exception 01, as
Modbus/TCP Security prescribes for a request the client's role is not authorized for.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.config.settings import ServerSettings, TlsSettings

if TYPE_CHECKING:
    from runtime.server.protocol import Connection, ServerStats

log = logging.getLogger("battplc.server")


# Log lines per 10 s for accepted writes, and as many for refused ones; the rest are counted, then summarised.
WRITE_LOG_BURST = 20


class RateLimitedLog:
    """At most ``burst`` warnings per ``window`` seconds; the rest are counted and summarised in one line.

    For what a client can trigger at will (refused connections, malformed frames, refused and accepted
    writes), so it cannot flood the log: one client writing refused values as fast as it can once made
    11 MB of log in 10 s. ``flush()`` (called by the Gate's sweep) writes the summary of a window that
    ended, also when nothing came after it.
    """

    def __init__(self, clock: Callable[[], float], what: str, burst: int = 10, window: float = 10.0,
                 level: int = logging.WARNING) -> None:
        self.clock = clock
        self.what = what
        self.burst = burst
        self.window = window
        self.level = level
        self._start = -window
        self._count = 0
        self._suppressed = 0

    def log(self, message: str, *args: Any) -> None:
        """Log ``message`` (at this log's level) unless over the budget of this window."""
        now = self.clock()
        if now - self._start >= self.window:
            self._summarise()
            self._start, self._count = now, 0
        if self._count < self.burst:
            self._count += 1
            log.log(self.level, message, *args)
        else:
            self._suppressed += 1

    def flush(self) -> None:
        """Write the summary of a finished window now, instead of with the next message."""
        if self._suppressed and self.clock() - self._start >= self.window:
            self._summarise()

    def _summarise(self) -> None:
        if self._suppressed:
            log.log(self.level, "%d more %s in %.0f s were not logged (at most %d per %.0f s)", self._suppressed,
                    self.what, self.window, self.burst, self.window)
        self._suppressed = 0


class WritePolicy:
    """Who may write which tags (``server.writers``); None as settings: every admitted client may."""

    def __init__(self, writers: Mapping[str, Iterable[str]] | None) -> None:
        self.groups: dict[str, tuple[list[Network], frozenset[str]]] | None = None
        if writers is not None:
            self.groups = {
                group: ([ipaddress.ip_network(e, strict=False) for e in entries if not e.startswith("role:")],
                        frozenset(e.removeprefix("role:") for e in entries if e.startswith("role:")))
                for group, entries in writers.items()
            }

    def for_client(self, host: str, roles: frozenset[str] | None) -> Callable[[str], bool] | None:
        """``may_write(tag_name)`` for a client: by ``roles`` over TLS (None: no TLS), else by address.
        None when every client may write."""
        if self.groups is None:
            return None
        address = parse_address(host)
        allowed = frozenset(
            group for group, (networks, group_roles) in self.groups.items()
            if (roles & group_roles if roles is not None else address is not None and in_networks(address, networks))
        )
        groups = self.groups

        def may_write(name: str) -> bool:
            group = name.split(".", 1)[0]
            return (group if group in groups else "*") in allowed
        return may_write

    def for_role(self, role: str) -> Callable[[str], bool] | None:
        """``may_write`` for a writer known only by its role (``role:NAME``, e.g. the MQTT bridge's)."""
        return self.for_client("", frozenset({role.removeprefix("role:")}))

    def groups_of(self, role: str) -> list[str]:
        """The tag groups ``role:NAME`` may write (empty without ``writers``: then everyone may write all)."""
        name = role.removeprefix("role:")
        return sorted(group for group, (_, roles) in (self.groups or {}).items() if name in roles)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a peer (IPv4-mapped IPv6 counts as IPv4); None if it is not one."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Iterable[Network]) -> bool:
    return any(address in network for network in networks)


def certificate_roles(cert: Mapping[str, Any]) -> frozenset[str]:
    """The roles a TLS client certificate grants: its subject's organizational units (OU)."""
    return frozenset(value for rdn in cert.get("subject", ()) for key, value in rdn if key == "organizationalUnitName")


class Gate:
    """Admission and timeouts for every connection of one server (plain and TLS listeners share it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: ServerSettings, stats: ServerStats,
                 logs: Iterable[RateLimitedLog] = ()) -> None:
        self.loop = loop
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.allow]
        self.max_connections = settings.max_connections
        self.max_per_client = settings.max_connections_per_client
        self.idle_timeout = settings.idle_timeout
        self.frame_timeout = settings.frame_timeout
        self.handshake_timeout = min(self.idle_timeout, 10.0)
        self.writers = WritePolicy(settings.writers)
        self.stats = stats
        self.connections: set[Connection] = set()
        self.per_host: Counter[str] = Counter()
        self.refusals = RateLimitedLog(loop.time, "refused connection(s)")
        self.malformed = RateLimitedLog(loop.time, "malformed frame(s)")
        self.logs = [self.refusals, self.malformed, *logs]
        self._sweeper: asyncio.TimerHandle | None = None

    def allowed(self, host: str) -> bool:
        """Whether a peer address lies in one of the allowed networks (IPv4-mapped IPv6 counts as IPv4)."""
        address = parse_address(host)
        return address is not None and in_networks(address, self.networks)

    def admit(self, connection: Connection) -> bool:
        """Take a new connection if its client is allowed and a slot is free (logged either way)."""
        if not self.allowed(connection.host):
            return self._refuse(connection, f"not in the allowed networks "
                                            f"({', '.join(str(n) for n in self.networks)})")
        if self.per_host[connection.host] >= self.max_per_client:
            return self._refuse(connection, f"{self.per_host[connection.host]} connections from {connection.host} "
                                            f"already open (max_connections_per_client)")
        if len(self.connections) >= self.max_connections and not self._evict_unused():
            return self._refuse(connection, f"{len(self.connections)} connections already open, all in use "
                                            f"(max_connections)")
        self.stats.connections_accepted += 1
        connection.last_request = self.loop.time()
        self.connections.add(connection)
        self.per_host[connection.host] += 1
        self.stats.connections_peak = max(self.stats.connections_peak, len(self.connections))
        log.info("client %s connected (%d open)", connection.client, len(self.connections))
        return True

    def _refuse(self, connection: Connection, why: str) -> bool:
        self.stats.connections_refused += 1
        self.refusals.log("refused %s: %s", connection.client, why)
        return False

    def _evict_unused(self) -> bool:
        """At the cap: close the oldest connection without a complete request for frame_timeout, if any."""
        oldest = min(self.connections, key=lambda c: c.last_request)
        if self.loop.time() - oldest.last_request < self.frame_timeout:
            return False
        self.stats.connections_evicted += 1
        self.refusals.log("closing %s: oldest unused connection (no complete request for %.3g s), its slot "
                          "goes to a new client", oldest.client, self.loop.time() - oldest.last_request)
        oldest.close(abort=True)
        return True

    def release(self, connection: Connection) -> None:
        """Free a connection's slot (idempotent)."""
        if connection in self.connections:
            self.connections.discard(connection)
            self.per_host[connection.host] -= 1
            if not self.per_host[connection.host]:
                del self.per_host[connection.host]
            log.info("client %s disconnected (%d open)", connection.client, len(self.connections))

    # ---- sweep ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sweep (timeouts, log summaries)."""
        self._schedule()

    def stop(self) -> None:
        """Stop the sweep and drop every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.close(abort=True)

    def _schedule(self) -> None:
        period = min(1.0, max(0.02, min(self.idle_timeout, self.frame_timeout) / 4))
        self._sweeper = self.loop.call_later(period, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        for connection in list(self.connections):
            if connection.partial_since is not None and connection.partial_since < now - self.frame_timeout:
                self.stats.connections_partial_closed += 1
                self.refusals.log("closing %s: a frame incomplete for %.3g s (frame_timeout)", connection.client,
                                  now - connection.partial_since)
                connection.close(abort=True)
            elif connection.last_request < now - self.idle_timeout:
                self.stats.connections_idle_closed += 1
                log.info("closing %s: no complete request for %.3g s (idle_timeout)", connection.client,
                         self.idle_timeout)
                connection.close(abort=connection.has_unsent_output)  # a client that stopped reading: no flush
        for rate_limited in self.logs:
            rate_limited.flush()
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
