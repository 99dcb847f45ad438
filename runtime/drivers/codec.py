"""Register codec and read planner: how io_map points become Modbus requests and back, without any I/O.

Everything here is pure and synchronous, so the asyncio driver, the in-process simulator path and the tests
all share one implementation:

- ``plan_reads`` merges the input points of one device into as few read requests as possible: points of the
  same table that are contiguous or separated by at most ``max_gap`` unused registers (bits for coils and
  discrete inputs) share one request, never longer than 125 registers or 2000 bits (the Modbus limits).
- ``decode_point`` turns the registers of a point into its engineering value (data type, word order, bit,
  scale, offset); ``encode_output`` does the reverse for an output (scale/offset or a lookup table).
- ``BlockDecoder`` does what ``decode_point`` does for every point of a read block at once, compiled when the
  device is built: one ``struct`` unpack of the block and one pass over its points (the drivers' hot path).

Registers are 16-bit unsigned ints, big-endian inside a register as Modbus defines; ``word_order`` only
decides which register of a 32-bit value comes first ("big": high word first, the common case).
"""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    """tag <- (table, address, type, bit, word order, scale, offset): one Modbus input point."""

    tag: str
    table: str = "holding"
    address: int = 0
    type: str = "uint16"
    bit: int | None = None
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
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


# ---- decoding a whole block -------------------------------------------------------------------------------

_STRUCT_CODE = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f", "bit": "H"}

# Where a point's raw number sits in the block's bytes: (in the word-reversed copy, byte offset, struct code).
_Field = tuple[bool, int, str]


class _Layer:
    """One struct format over the block's bytes: fields in address order, pad bytes between them."""

    def __init__(self, reverse: bool) -> None:
        self.reverse = reverse
        self.end = 0  # byte offset after the last field
        self.format = ">"
        self.fields: list[_Field] = []

    def add(self, place: _Field) -> None:
        _, offset, code = place
        gap = offset - self.end
        self.format += f"{gap}x{code}" if gap else code
        self.end = offset + struct.calcsize(">" + code)
        self.fields.append(place)


def _layers(places: Iterable[_Field]) -> list[_Layer]:
    """As few formats as hold every field: a field that overlaps the previous one (a flag inside a 32-bit
    value, two types at one address) opens another layer, read from the same bytes."""
    layers: list[_Layer] = []
    for place in sorted(set(places)):
        reverse, offset, _ = place
        layer = next((lay for lay in layers if lay.reverse == reverse and lay.end <= offset), None)
        if layer is None:
            layer = _Layer(reverse)
            layers.append(layer)
        layer.add(place)
    return layers


class BlockDecoder:
    """One read block compiled once: ``decode(data)`` is ``decode_point`` and the tag's coercion for every
    point, in one ``struct`` unpack and one pass.

    The registers are packed into bytes as they travel on the wire (big-endian words), and one format reads
    every point's raw number out of them, with pad bytes over the gaps. A 32-bit point of little word order
    reads from the words packed in reverse order, where its high word comes first. Each point is then
    (tag, field index, bit, scale, offset, coerce). Coils and discrete inputs need no unpacking.
    """

    def __init__(self, block: ReadBlock, coercers: Mapping[str, Callable[[Any], Any]] | None = None) -> None:
        self.block = block
        coercers = coercers or {}
        self._count = block.count
        self._bits = block.table in BIT_TABLES
        self._pack = struct.Struct(f">{block.count}H").pack
        places = [self._place(point) for point in block.points]
        layers = [] if self._bits else _layers(places)
        self._unpackers = [(struct.Struct(layer.format).unpack_from, layer.reverse) for layer in layers]
        self._reverse = any(layer.reverse for layer in layers)
        self._last_data: list[Any] | None = None  # the words of the last decode, and what they gave
        self._last_values: dict[str, Any] = {}
        index = {place: i for i, place in enumerate(p for layer in layers for p in layer.fields)}
        self._points: list[tuple[str, int, int | None, float | None, float, Callable[[Any], Any] | None]] = []
        for point, place in zip(block.points, places, strict=True):
            if self._bits:  # a coil or discrete input: the bit itself, no scale
                self._points.append((point.tag, place[1], None, None, 0.0, coercers.get(point.tag)))
                continue
            bit = (point.bit or 0) if point.type == "bit" else None
            scale = None if point.scale == 1.0 and point.offset == 0.0 else point.scale
            self._points.append((point.tag, index[place], bit, scale, point.offset, coercers.get(point.tag)))

    def _place(self, point: InputPoint) -> _Field:
        """Where the point's raw number sits; for coils and discrete inputs (bit tables) its bit index."""
        index = point.address - self.block.address
        if self._bits:
            return (False, index, "")
        if point.width == 2 and point.word_order != "big":
            return (True, 2 * (self._count - index - 2), _STRUCT_CODE[point.type])
        return (False, 2 * index, _STRUCT_CODE[point.type])

    def _fields(self, data: Sequence[Any]) -> Sequence[Any]:
        """The raw number of every field, in layer order (the bits themselves for a bit table)."""
        if self._bits:
            return [bool(bit) for bit in data[:self._count]]
        words = data if len(data) == self._count else data[:self._count]
        try:
            packed = self._pack(*words)
            reverse = self._pack(*reversed(words)) if self._reverse else b""
        except struct.error as exc:
            raise DecodeError(f"register value out of range ({self.block.table} {self.block.address}..): "
                              f"{exc}") from None
        fields: tuple[Any, ...] = ()
        for unpack, reversed_words in self._unpackers:
            fields += unpack(reverse if reversed_words else packed)
        return fields

    def decode(self, data: Sequence[Any]) -> dict[str, Any]:
        """{tag: value} of the block's points; a point that is not representable (NaN, bad enum) is left out."""
        return dict(self.shared(data))

    def shared(self, data: Sequence[Any]) -> Mapping[str, Any]:
        """``decode`` without the copy, for a caller that only reads the result (before the next decode)."""
        if len(data) < self._count:
            check_length(self.block, data)
        # Most polls read what the last one did (cell voltages in mV, setpoints, flags): the same words decode
        # to the same values, so a repeat costs one comparison.
        if data != self._last_data:
            self._last_values = self._decode(data)
            self._last_data = list(data)
        return self._last_values

    def _decode(self, data: Sequence[Any]) -> dict[str, Any]:
        fields = self._fields(data)
        out: dict[str, Any] = {}
        for tag, index, bit, scale, offset, coerce in self._points:
            raw = fields[index]
            if bit is not None:
                value = bool((raw >> bit) & 1)
            elif isinstance(raw, float) and not math.isfinite(raw):
                continue  # a float32 register holding NaN or infinity: no value
            else:
                value = raw if scale is None else raw * scale + offset
            try:
                out[tag] = value if coerce is None else coerce(value)
            except (TypeError, ValueError):
                continue  # not representable in the tag's type (an enum code out of range, ...)
        return out


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
