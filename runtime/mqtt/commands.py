"""Commands over MQTT through the Modbus server's own write path, so both answer to the same rules.

A command ``<prefix>/set/<tag>`` with a value is turned into the Modbus write request that sets that tag's
register (write single coil for a bool, write multiple registers otherwise) and handed to a
``RequestHandler`` of the server: its whitelist (only rw tags with a register), decoding, range check and
write queue are the ones Modbus clients meet, and an accepted command lands at the next scan's latch as a
Modbus write does. The answer goes to ``<prefix>/result``: accepted (with the value that lands), or refused
with the reason; a refused command queues nothing. The write authorization (``server.writers``) is the
caller's ``may_write``: the bridge's is judged for its one role, ``mqtt.writes_as`` (runtime/mqtt/bridge.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.mqtt.discovery import resolution
from runtime.server.access import WRITE_LOG_BURST, RateLimitedLog
from runtime.server.image import RegisterImage, WriteQueue
from runtime.server.protocol import MayWrite, Refused, RequestHandler, ServerStats
from runtime.server.regmap import BITS, Point, RegisterMap
from runtime.tags import TagDB

log = logging.getLogger("battplc.mqtt")


@dataclass(frozen=True)
class Outcome:
    """What became of one command (the JSON on the result topic)."""

    tag: str
    payload: str
    accepted: bool
    value: str = ""  # the value that lands at the next latch (after rounding to the register)
    reason: str = ""

    def as_json(self) -> dict[str, str]:
        out = {"tag": self.tag, "payload": self.payload, "result": "accepted" if self.accepted else "refused"}
        out.update({"value": self.value} if self.accepted else {"reason": self.reason})
        return out


class _RecordingHandler(RequestHandler):
    """The server's request handler, keeping the reason of the last refusal for the result topic."""

    refusal: Refused | None = None

    def _log_refused(self, client: str, table: str, address: int, refused: Refused) -> None:
        self.refusal = refused
        super()._log_refused(client, table, address, refused)


class Commands:
    """Checks commands and queues the accepted ones; ``writes`` is a scan Port (lands at the latch)."""

    def __init__(self, db: TagDB, regmap: RegisterMap, unit_id: int = 1,
                 current: Callable[[str], Any] | None = None) -> None:
        self.db = db
        self.regmap = regmap
        self.unit_id = unit_id
        self.writes = WriteQueue()
        self.stats = ServerStats()
        # The same bounded write log as the Modbus server: a client flooding commands cannot fill the disk.
        logs = (RateLimitedLog(time.monotonic, "refused command(s)", burst=WRITE_LOG_BURST),
                RateLimitedLog(time.monotonic, "accepted command(s)", burst=WRITE_LOG_BURST, level=logging.INFO))
        self.handler = _RecordingHandler(regmap, RegisterImage(regmap), self.writes, unit_id, "ignore",
                                         current or db.values.__getitem__, self.stats, *logs)

    def writable(self, name: str) -> Point | None:
        """The register of a tag a command may set (the Modbus whitelist), else None."""
        point = self.regmap.by_name.get(name)
        return point if point is not None and point.writable else None

    def submit(self, name: str, payload: str, client: str = "mqtt", may_write: MayWrite | None = None) -> Outcome:
        """Check one command and queue it if it passes; never raises for bad input. ``may_write`` is the
        server's write authorization for this client (``server.writers``; None: every rw tag)."""
        def refuse(reason: str) -> Outcome:
            log.warning("command refused from %s: %s <- %r: %s", client, name, payload, reason)
            return Outcome(name, payload, False, reason=reason)

        tag = self.db.defs.get(name)
        if tag is None:
            return refuse("unknown tag")
        point = self.regmap.by_name.get(name)
        if point is None:
            return refuse("not writable: the tag has no register (only rw tags with a modbus mapping are)")
        try:
            value = tag.coerce(_number_or_text(payload))
        except (TypeError, ValueError) as exc:
            return refuse(f"not a value of this tag: {exc}")
        if isinstance(value, float) and not math.isfinite(value):
            return refuse(f"{payload!r} is not a finite number")
        data = point.encode(value) if point.space != BITS else b""
        if data and tag.in_range(value):
            landed = point.decode(data)
            if _differs(landed, value, point):
                return refuse(f"{tag.format(value)} does not fit its register ({point.dtype}); "
                              f"it would land as {tag.format(landed)}")
        self.handler.refusal = None
        response = self.handler.handle(self.unit_id, _request(point, value, data), client, may_write)
        if response is None or response[0] & 0x80:
            refusal = self.handler.refusal
            return refuse(str(refusal) if refusal is not None else "refused by the write check")
        landed = value if not data else point.decode(data)
        return Outcome(name, payload, True, value=tag.format(landed))


def _number_or_text(payload: str) -> Any:
    """A payload as a number when it reads as one (HA sends '12.5', '1'), else the text (enum names)."""
    text = payload.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _differs(landed: Any, value: Any, point: Point) -> bool:
    """Whether the register cannot hold the value (saturated or NaN), beyond rounding to one count."""
    if isinstance(landed, float) and not math.isfinite(landed):
        return True
    if point.dtype == "float32":
        return abs(landed - value) > 1e-6 * max(1.0, abs(value))
    return abs(landed - value) > max(resolution(point) / 2, 1e-6 * max(1.0, abs(value)))


def _request(point: Point, value: Any, data: bytes) -> bytes:
    """The Modbus PDU that writes ``value`` to the point: 05 for a coil, 16 for registers."""
    address = point.address.to_bytes(2, "big")
    if point.space == BITS:
        return b"\x05" + address + (b"\xff\x00" if value else b"\x00\x00")
    return b"\x10" + address + point.width.to_bytes(2, "big") + bytes([len(data)]) + data
