"""Register codec and read planner: how io_map points become Modbus requests and back, without any I/O.

Everything here is pure and synchronous, so the asyncio driver, the in-process simulator path and the tests
all share one implementation:

- ``plan_reads`` merges the input points of one device into as few read requests as possible: points of the
  same table that are contiguous or separated by at most ``max_gap`` unused registers (bits for coils and
  discrete inputs) share one request, never longer than 125 registers or 2000 bits (the Modbus limits).
- ``decode_point`` turns the registers of a point into its engineering value (data type, word order, bit,
  scale, offset); ``encode_output`` does the reverse for an output (scale/offset or a lookup table).

Registers are 16-bit unsigned ints, big-endian inside a register as Modbus defines; ``word_order`` only
decides which register of a 32-bit value comes first ("big": high word first, the common case).
"""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

REGISTER_TABLES = ("holding", "input")
BIT_TABLES = ("coil", "discrete")
MAX_REGISTERS = 125  # FC03/FC04 limit
MAX_BITS = 2000  # FC01/FC02 limit

WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "bit": 1}
RANGE = {"int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-(2**31), 2**31 - 1),
         "uint32": (0, 2**32 - 1)}


class DecodeError(ValueError):
    """A response that does not fit the request (short, malformed) or a value that cannot be represented."""


@dataclass(frozen=True)
class InputPoint:
    """tag <- (table, address, type, bit, word order, scale, offset); VE.Direct points use ``field``."""

    tag: str
    table: str = "holding"
    address: int = 0
    type: str = "uint16"
    bit: int | None = None
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    field: str = ""
    line: int = 0

    @property
    def width(self) -> int:
        return WIDTH[self.type]


@dataclass(frozen=True)
class OutputPoint:
    """tag -> (table, address, type); written on change or every poll; ``failsafe`` None = the tag's safe value."""

    tag: str
    table: str = "holding"
    address: int = 0
    type: str = "uint16"
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    write: str = "on_change"
    failsafe: Any = None
    lookup: tuple[tuple[float, float], ...] = ()
    line: int = 0

    @property
    def width(self) -> int:
        return WIDTH[self.type]


@dataclass(frozen=True)
class ReadBlock:
    """One read request: ``count`` registers (or bits) of ``table`` from ``address``, and the points in it."""

    unit: int
    table: str
    address: int
    count: int
    points: tuple[InputPoint, ...]

    @property
    def end(self) -> int:
        return self.address + self.count

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(p.tag for p in self.points)


@dataclass(frozen=True)
class Write:
    """One write request: registers (FC06/FC16) or a coil (FC05)."""

    unit: int
    table: str
    address: int
    values: tuple[int, ...] | tuple[bool, ...]


# ---- planning ----------------------------------------------------------------------------------------------

def plan_reads(points: Iterable[InputPoint], unit: int, max_gap: int = 8) -> list[ReadBlock]:
    """Merge points into read blocks per table: contiguous or at most ``max_gap`` apart, within the limits."""
    by_table: dict[str, list[InputPoint]] = {}
    for point in points:
        by_table.setdefault(point.table, []).append(point)
    blocks: list[ReadBlock] = []
    for table in ("holding", "input", "coil", "discrete"):
        table_points = sorted(by_table.get(table, ()), key=lambda p: (p.address, p.width))
        limit = MAX_BITS if table in BIT_TABLES else MAX_REGISTERS
        start = end = -1
        members: list[InputPoint] = []
        for point in table_points:
            point_end = point.address + point.width
            joins = bool(members) and point.address - end <= max_gap and max(end, point_end) - start <= limit
            if not joins:
                if members:
                    blocks.append(ReadBlock(unit, table, start, end - start, tuple(members)))
                start, end, members = point.address, point_end, []
            members.append(point)
            end = max(end, point_end)
        if members:
            blocks.append(ReadBlock(unit, table, start, end - start, tuple(members)))
    return blocks


# ---- decoding ----------------------------------------------------------------------------------------------

def _pack(registers: Sequence[int], word_order: str) -> bytes:
    words = registers if word_order == "big" else list(reversed(registers))
    return struct.pack(f">{len(words)}H", *words)


def decode_raw(registers: Sequence[int], type_: str, word_order: str = "big", bit: int | None = None) -> Any:
    """The raw number in ``registers`` (already sliced to the point's width)."""
    if type_ == "bit":
        return bool((registers[0] >> (bit or 0)) & 1)
    if type_ == "uint16":
        return registers[0]
    if type_ == "int16":
        value = registers[0]
        return value - 0x10000 if value & 0x8000 else value
    fmt = {"int32": ">i", "uint32": ">I", "float32": ">f"}[type_]
    return struct.unpack(fmt, _pack(registers, word_order))[0]


def decode_point(point: InputPoint, block: ReadBlock, data: Sequence[Any]) -> Any:
    """The engineering value of ``point`` from the registers (or bits) ``data`` read for ``block``."""
    index = point.address - block.address
    if block.table in BIT_TABLES:
        return bool(data[index])
    raw = decode_raw(data[index:index + point.width], point.type, point.word_order, point.bit)
    if point.type == "bit":
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        raise DecodeError(f"{point.tag}: register value is {raw} (not a number)")
    if point.scale == 1.0 and point.offset == 0.0:
        return raw
    return raw * point.scale + point.offset


def check_length(block: ReadBlock, data: Sequence[Any]) -> None:
    if len(data) < block.count:
        unit = "bits" if block.table in BIT_TABLES else "registers"
        raise DecodeError(f"short response: {len(data)} {unit} for a request of {block.count} "
                          f"({block.table} {block.address}..{block.end - 1})")


# ---- encoding ----------------------------------------------------------------------------------------------

def encode_raw(raw: float | int, type_: str, word_order: str = "big") -> list[int]:
    """Registers for a raw number; integers are rounded and clamped to the type's range."""
    if type_ == "float32":
        words = list(struct.unpack(">2H", struct.pack(">f", float(raw))))
    else:
        lo, hi = RANGE[type_]
        value = min(hi, max(lo, int(round(raw))))
        if type_ in ("int16", "uint16"):
            return [value & 0xFFFF]
        words = list(struct.unpack(">2H", struct.pack(">i" if type_ == "int32" else ">I", value)))
    return words if word_order == "big" else words[::-1]


def fits(raw: float, type_: str) -> bool:
    """True when ``raw`` is representable without clamping."""
    if type_ in ("float32", "bit"):
        return math.isfinite(raw)
    lo, hi = RANGE[type_]
    return lo <= round(raw) <= hi


def interpolate(table: Sequence[tuple[float, float]], value: float) -> float:
    """Piecewise-linear ``value -> raw`` through sorted pairs; held flat outside the table."""
    xs = [x for x, _ in table]
    if value <= xs[0]:
        return table[0][1]
    if value >= xs[-1]:
        return table[-1][1]
    i = bisect.bisect_right(xs, value)
    (x0, y0), (x1, y1) = table[i - 1], table[i]
    return y0 + (y1 - y0) * (value - x0) / (x1 - x0)


def output_raw(point: OutputPoint, value: Any) -> float | bool:
    """The raw number the device should get for the tag value (before register encoding)."""
    if point.table == "coil":
        return bool(value)
    number = float(value)
    if point.lookup:
        return interpolate(point.lookup, number)
    return (number - point.offset) / point.scale


def encode_output(point: OutputPoint, value: Any, unit: int) -> Write:
    """The write request that puts ``value`` of the point's tag into the device."""
    raw = output_raw(point, value)
    if point.table == "coil":
        return Write(unit, "coil", point.address, (bool(raw),))
    return Write(unit, "holding", point.address, tuple(encode_raw(raw, point.type, point.word_order)))
