"""What the server reads from and where its writes wait: the encoded register image and the write queue.

The truth is the scan's tag image (``TagDB.values`` and ``.quality``). The server never keeps values of its
own: it answers reads from ``RegisterImage``, the *encoded* form of the mapped tags and their qualities
(register bytes and bits), refreshed from the tags that changed at each scan's commit (see
``Server.observe``). It is a cache of the committed image, one scan old at most, never written by clients.

A number with no reading (quality BAD or INIT) is served as the "not implemented" marker of its data type
(``served``), so a client that ignores the quality registers still cannot take it for a measurement; a bit
has no such marker, its quality register tells.

Client writes never touch either image directly. ``WriteQueue`` is the server's scan ``Port``: an accepted
write waits there and lands at the next scan's latch phase, so programs never see a value change in the
middle of a scan.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.server.regmap import BITS, READ_VIEWS, Point, RegisterMap
from runtime.tags import Quality, TagDB

ADDRESSES = 65536
_ASCII_BITS = bytes.maketrans(b"\x00\x01", b"01")
NO_READING = frozenset((Quality.BAD, Quality.INIT))


def served(point: Point, value: Any, quality: Quality) -> Any:
    """What a point's registers show: the value, or NaN (the marker) for a number with no reading."""
    return math.nan if quality in NO_READING and point.space != BITS else value


class RegisterImage:
    """Register bytes and bits of every mapped tag, and which address ranges each read function may cover.

    ``runs[fc][a]`` is the end (exclusive) of the readable run that contains address ``a`` for function code
    ``fc`` (``a`` itself when ``a`` is not readable), so a read of ``count`` from ``a`` is valid exactly when
    ``runs[fc][a] >= a + count``: one lookup, whatever the count.
    """

    def __init__(self, regmap: RegisterMap) -> None:
        self.regmap = regmap
        self.registers = bytearray(2 * ADDRESSES)  # big-endian words, as they go on the wire
        self.bits = bytearray(ADDRESSES)  # one byte (0 or 1) per coil / discrete input
        self.runs: dict[int, array] = {}
        for function_code in READ_VIEWS:
            ends = array("I", range(ADDRESSES))
            for start, end in regmap.readable_runs(function_code):
                ends[start:end] = array("I", [end]) * (end - start)
            self.runs[function_code] = ends

    def load(self, values: Mapping[str, Any], quality: Mapping[str, Quality]) -> None:
        """Encode every mapped tag and its quality from a full image (at start)."""
        qualities = self.regmap.quality
        self.apply((point, served(point, values[point.name], quality[point.name])) for point in self.regmap)
        self.apply((qualities[point.name], quality[point.name]) for point in self.regmap)

    def apply(self, changes: Iterable[tuple[Point, Any]]) -> None:
        """Re-encode the given tags (one scan's changes, applied together between two requests)."""
        registers, bits = self.registers, self.bits
        for point, value in changes:
            if point.space == BITS:
                bits[point.address] = 1 if value else 0
            else:
                start = 2 * point.address
                registers[start:start + 2 * point.width] = point.encode(value)

    def packed_bits(self, address: int, count: int) -> bytes:
        """``count`` bits from ``address`` packed as Modbus sends them (first bit in the lowest bit)."""
        chunk = self.bits[address:address + count]
        return int(chunk[::-1].translate(_ASCII_BITS), 2).to_bytes((count + 7) // 8, "little")


class WriteQueue:
    """The server's scan Port: client writes accepted since the last scan, applied at its latch.

    A request's writes are queued as one group so a multi-register write lands in a single latch. ``put``
    runs on the server thread and ``latch`` on the scan thread; ``deque`` append/popleft are atomic, so
    neither side ever blocks the other.
    """

    def __init__(self) -> None:
        self._pending: deque[tuple[tuple[str, Any], ...]] = deque()
        self.latched = 0

    def put(self, writes: tuple[tuple[str, Any], ...]) -> None:
        """Queue the (tag, value) pairs of one accepted request (server thread)."""
        self._pending.append(writes)

    def __len__(self) -> int:
        return len(self._pending)

    def latch(self, db: TagDB, now: float) -> None:
        """Scan phase 2: the queued writes become current, with quality GOOD and this scan's stamp."""
        pending = self._pending
        while pending:
            for name, value in pending.popleft():
                db.set_input(name, value, Quality.GOOD, now)
                self.latched += 1

    def commit(self, changed: Mapping[str, Any], db: TagDB) -> None:
        """Nothing to hand over: the register image is refreshed by the server's scan observer."""
