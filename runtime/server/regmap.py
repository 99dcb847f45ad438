"""The register map: which tag answers at which Modbus table and address, and how its value is encoded.

Two address spaces exist, as the config checks them: *bits* (bool tags) and *registers* (all other tags).
The address plan (``battplc regmap`` prints it, README "Register map" explains it):

    0 .. 9999        tags.yaml: every tag with a ``modbus`` mapping, at its declared address
    10000 .. 19999   the runtime's own tags, in declared blocks (``BLOCKS``): the controller's heartbeat and
                     scan figures, then one slot per function block, chart, device and alarm, then the
                     alarm system's commands and figures at fixed addresses (``ALARM_SYSTEM_FIRST``)
    20000 + A        input register: the quality (0 GOOD, 1 STALE, 2 BAD, 3 INIT) of the register tag at A
    40000 + A        input register: the quality of the bit tag at A

A runtime tag (``scan.*``, ``prog.*``, ``sfc.*``, ``dev.*``) gets its address from its owner's slot: owners of
a kind are numbered in the order the site declares them (charts and function blocks in scan order, the
interlocks last; devices in io_map.yaml order) and each field sits at a fixed offset in its slot. A program or
device added at the end of its list takes a new slot and moves nothing; one inserted before others moves those
after it (tests/programs/regmap.snapshot.csv names every move). A chart's fault tags live in its chart slot,
so a chart inserted before ``schedule`` in the scan order (as charts are, by priority) moves no function block.
A runtime tag that tags.yaml maps itself keeps that mapping. A tag's home table follows from its access:

    ro bool   -> discrete input (also readable as a coil at the same address)
    rw bool   -> coil
    ro number -> input register (also readable as a holding register at the same address)
    rw number -> holding register

Numbers are encoded as ``raw = value / scale`` (value = raw x scale, as in io_map.yaml) in the mapped data type, 32-bit values high word first,
enums as their code. A value that does not fit its data type saturates at the type's limits (the heartbeat
``scan.count`` wraps instead); a value that is not a number (NaN), and a number tag with no reading (quality
BAD or INIT, see ``Server.observe``), reads as the SunSpec "not implemented" marker (0x8000 / 0xFFFF /
0x80000000 / 0xFFFFFFFF, NaN for float32). ``render_markdown``/``render_csv`` print the map for operators
(``battplc regmap``).
"""

from __future__ import annotations

import csv
import io
import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from runtime.names import ALARMS, CHART, DEVICE, PROGRAM, owned
from runtime.tags import DECLARED_ADDRESSES, ModbusMap, TagDef, TagType

BITS = "bits"
REGISTERS = "registers"

# Function code -> (address space, whether ro tags answer, whether rw tags answer).
READ_VIEWS = {
    0x01: (BITS, True, True),        # read coils: rw bools, and ro bools readable as coils
    0x02: (BITS, True, False),       # read discrete inputs: ro bools
    0x03: (REGISTERS, True, True),   # read holding registers: rw numbers, and ro numbers readable as holding
    0x04: (REGISTERS, True, False),  # read input registers: ro numbers
}

_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_LIMITS = {"int16": (-0x8000, 0x7FFF), "uint16": (0, 0xFFFF), "int32": (-0x80000000, 0x7FFFFFFF),
           "uint32": (0, 0xFFFFFFFF)}
# SunSpec's "not implemented" values: what a NaN reads as in an integer register.
_NOT_A_NUMBER = {"int16": -0x8000, "uint16": 0xFFFF, "int32": -0x80000000, "uint32": 0xFFFFFFFF}
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Point:
    """One mapped tag: its table, first address, data type, width in registers/bits and scale."""

    tag: TagDef
    table: str  # coil | discrete | holding | input
    address: int
    dtype: str  # bool | int16 | uint16 | int32 | uint32 | float32
    scale: float  # value = raw x scale
    width: int
    per_unit: float = 1.0  # raw counts per unit of the value, 1 / scale (exact for 0.1, 0.01, ...)
    wraps: bool = False  # a counter that rolls over to 0 past the type's maximum (the heartbeat)

    @property
    def name(self) -> str:
        return self.tag.name

    @property
    def space(self) -> str:
        return BITS if self.dtype == "bool" else REGISTERS

    @property
    def writable(self) -> bool:
        return self.tag.access == "rw"

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.address + self.width

    @property
    def read_tables(self) -> tuple[str, ...]:
        """Every table a client can read this tag from."""
        if self.writable:
            return (self.table,)
        return (self.table, "coil" if self.space == BITS else "holding")

    # ---- encoding -------------------------------------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        """The register bytes (big-endian words, high word first) for a tag value."""
        dtype = self.dtype
        if dtype == "float32":
            raw = float(value) * self.per_unit
            if math.isfinite(raw) and abs(raw) > _FLOAT32_MAX:
                raw = math.copysign(math.inf, raw)
            return struct.pack(">f", raw)
        lo, hi = _LIMITS[dtype]
        raw = value * self.per_unit if self.per_unit != 1.0 else value
        if isinstance(raw, float):
            if math.isnan(raw):
                raw = _NOT_A_NUMBER[dtype]
            elif math.isinf(raw):
                raw = hi if raw > 0 else lo
            else:
                raw = round(raw)
        if self.wraps:
            return struct.pack(_STRUCT[dtype], lo + (int(raw) - lo) % (hi - lo + 1))
        return struct.pack(_STRUCT[dtype], min(hi, max(lo, int(raw))))

    def raw_value(self, data: bytes) -> float:
        """The number register bytes stand for (raw x scale), not yet checked against the tag's type."""
        raw = struct.unpack(_STRUCT[self.dtype], data)[0]
        return raw / self.per_unit if self.per_unit != 1.0 else raw

    def decode(self, data: bytes) -> Any:
        """The tag value (in the tag's type) that register bytes written by a client stand for.

        Raises ValueError when the registers do not make a valid value of this tag (e.g. NaN, an enum code
        that does not exist). Range (min/max) is checked separately with ``tag.in_range``.
        """
        value = self.raw_value(data)
        if self.tag.type in (TagType.INT, TagType.ENUM) and isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{self.name}: {value:g} is not a whole number")
        return self.tag.coerce(value)


class QualityPoint(Point):
    """The quality register(s) of a mapped tag: its ``Quality`` code in every word, read-only.

    Parallel to the value: a register tag at A (width w) has its quality in input registers ``QUALITY`` + A ..
    + A + w - 1, a bit tag at A in input register ``BIT_QUALITY`` + A.
    """

    @property
    def name(self) -> str:
        return f"{self.tag.name} (quality)"

    @property
    def writable(self) -> bool:
        return False

    def encode(self, value: Any) -> bytes:
        return struct.pack(">H", int(value)) * self.width


# ---- the address plan ---------------------------------------------------------------------------------------

RUNTIME_FIRST = DECLARED_ADDRESSES  # 10000: the runtime blocks, in both spaces
QUALITY = 20000  # input register QUALITY + A: quality of the register tag at A (0 .. 19999)
BIT_QUALITY = 40000  # input register BIT_QUALITY + A: quality of the bit tag at A (0 .. 19999)
BLOCK_SIZE = 1000  # addresses per block, in each space


@dataclass(frozen=True)
class Field:
    """One tag of an owner's slot: the part of its name after the owner, where in the slot, how encoded."""

    what: str
    offset: int
    dtype: str  # bool: in the bit slot
    scale: float = 1.0
    wraps: bool = False


@dataclass(frozen=True)
class Block:
    """Where one kind of runtime tag lives: a slot per owner from ``first`` in each space."""

    kind: str
    noun: str  # what an owner is, for messages
    first: int
    slot: int  # registers per owner
    bit_slot: int  # bits per owner
    fields: tuple[Field, ...]

    def address(self, index: int, field: Field) -> int:
        return self.first + index * (self.bit_slot if field.dtype == "bool" else self.slot) + field.offset

    @property
    def capacity(self) -> int:
        """How many owners fit in the block."""
        return min(BLOCK_SIZE // self.slot, BLOCK_SIZE // self.bit_slot)


CONTROLLER, FUNCTION_BLOCK = "controller", "function block"
BLOCKS = {
    CONTROLLER: Block(CONTROLLER, "controller", RUNTIME_FIRST, 100, 100, (
        Field("count", 0, "uint32", wraps=True),  # the heartbeat: one more each scan
        Field("overruns", 2, "uint32"), Field("skipped", 4, "uint32"),
        Field("duration", 6, "uint32", 1e-6), Field("lateness", 8, "int32", 1e-6),
        Field("period", 10, "uint32", 1e-6))),
    FUNCTION_BLOCK: Block(FUNCTION_BLOCK, "function block", RUNTIME_FIRST + BLOCK_SIZE, 2, 1, (
        Field("faults", 0, "uint32"), Field("fault", 0, "bool"))),
    CHART: Block(CHART, "chart", RUNTIME_FIRST + 2 * BLOCK_SIZE, 8, 2, (
        Field("step", 0, "uint16"), Field("step_time", 1, "uint32", 0.1), Field("faults", 3, "uint32"),
        Field("held", 0, "bool"), Field("fault", 1, "bool"))),
    DEVICE: Block(DEVICE, "device", RUNTIME_FIRST + 3 * BLOCK_SIZE, 16, 1, (
        Field("errors", 0, "uint32"), Field("age", 2, "int32", 0.1), Field("last_good", 4, "uint32"),
        Field("errors_timeout", 6, "uint32"), Field("errors_refused", 8, "uint32"),
        Field("errors_exception", 10, "uint32"), Field("errors_decode", 12, "uint32"),
        Field("errors_implausible", 14, "uint32"), Field("up", 0, "bool"),
        # reachable came after the one-bit slots were published: its bits follow at +500 (at most 62 devices)
        Field("reachable", 500, "bool"))),
    # One slot per alarm (alarm.<name> in declaration order): its ISA-18.2 state and how often it was raised.
    ALARMS: Block(ALARMS, "alarm", RUNTIME_FIRST + 4 * BLOCK_SIZE, 4, 1, (
        Field("state", 0, "uint16"), Field("raised", 2, "uint32"))),
}
# The alarm system's own commands and figures sit at fixed addresses after the alarm slots (runtime/alarms),
# and so do the conditions of the alarms the runtime raises itself (bits; alarms.flood is bit 15000).
ALARM_SYSTEM_FIRST = RUNTIME_FIRST + 5 * BLOCK_SIZE
RUNTIME_ALARMS = {"alarm.output_device_down": ALARM_SYSTEM_FIRST + 1, "alarm.retain_lost": ALARM_SYSTEM_FIRST + 2}


def _block_of(tag: TagDef, charts: set[str]) -> tuple[Block, str, str] | None:
    """(block, owner, field name) of a runtime tag; None for any other tag."""
    if tag.name.startswith("scan."):
        return BLOCKS[CONTROLLER], "scan", tag.name.removeprefix("scan.")
    part = owned(tag.name)
    if part is None:
        return None
    if part.namespace == PROGRAM:
        kind = CHART if part.owner in charts else FUNCTION_BLOCK
        return BLOCKS[kind], part.owner, part.what
    if part.namespace in (CHART, DEVICE, ALARMS):
        return BLOCKS[part.namespace], part.owner, part.what
    return None


def runtime_mapped(tags: Sequence[TagDef]) -> list[TagDef]:
    """The runtime's tags that tags.yaml does not map, each with the address of its field in its owner's slot.

    Owners are numbered per block in the order their first tag appears in ``tags`` (the order a site declares
    them, see the module docstring). A tag whose name matches no field of its block stays unmapped.
    """
    charts = {p.owner for t in tags if (p := owned(t.name)) is not None and p.namespace == CHART}
    owners: dict[str, dict[str, int]] = {kind: {} for kind in BLOCKS}
    mapped = []
    for tag in tags:
        if tag.modbus is not None:
            continue
        if tag.name in RUNTIME_ALARMS and tag.is_bool:
            mapped.append(replace(tag, modbus=ModbusMap(RUNTIME_ALARMS[tag.name], "bool"), access="ro"))
            continue
        found = _block_of(tag, charts)
        if found is None:
            continue
        block, owner, what = found
        field = next((f for f in block.fields if f.what == what and (f.dtype == "bool") == tag.is_bool), None)
        if field is None:
            continue
        capacity = block.capacity
        if block.kind == ALARMS:
            # The runtime's own alarms take the last slots, so an alarm a program adds moves none of them.
            runtime = list(RUNTIME_ALARMS)
            capacity -= len(runtime)
            if f"alarm.{owner}" in RUNTIME_ALARMS:
                index = block.capacity - 1 - runtime.index(f"alarm.{owner}")
                mapped.append(replace(tag, modbus=ModbusMap(block.address(index, field), field.dtype, field.scale),
                                      access="ro"))
                continue
        index = owners[block.kind].setdefault(owner, len(owners[block.kind]))
        if index >= capacity:
            raise ValueError(f"more than {capacity} {block.noun}s: {tag.name} has no slot left in the "
                             f"register block at {block.first}")
        modbus = ModbusMap(block.address(index, field), field.dtype if field.dtype != "bool" else "uint16",
                           field.scale)
        mapped.append(replace(tag, modbus=modbus, access="ro"))
    return mapped


def wrapping(tag: TagDef) -> bool:
    """The heartbeat counts on past its type's maximum, from 0 again."""
    return tag.name == "scan.count"


class RegisterMap:
    """Every mapped tag, looked up by name or by (address space, address); each with its quality register."""

    def __init__(self, points: Iterable[Point]) -> None:
        self.points = sorted(points, key=lambda p: (p.space, p.address))
        self.by_name = {p.name: p for p in self.points}
        self.quality = {p.name: quality_point(p) for p in self.points}
        self._owner: dict[str, dict[int, Point]] = {BITS: {}, REGISTERS: {}}
        for point in [*self.points, *self.quality.values()]:
            owner = self._owner[point.space]
            for address in range(point.address, point.end):
                if address in owner:
                    raise ValueError(f"{point.name} and {owner[address].name} share {point.space} {address}; "
                                     "the config check should have refused this map")
                owner[address] = point

    @classmethod
    def from_tags(cls, tags: Iterable[TagDef]) -> RegisterMap:
        """The map of every tag with a ``modbus`` mapping, and of the runtime's tags (their declared blocks)."""
        tags = list(tags)
        declared = [tag for tag in tags if tag.modbus is not None]
        return cls(point_of(tag) for tag in [*declared, *runtime_mapped(tags)])

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[Point]:
        return iter(self.points)

    def point(self, name: str) -> Point:
        """The point of a tag; KeyError saying it has no mapping."""
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"tag {name!r} has no modbus mapping") from None

    def owner(self, space: str, address: int) -> Point | None:
        """The point that holds this bit or register, if any (a quality register's is its QualityPoint)."""
        return self._owner[space].get(address)

    def readable_runs(self, function_code: int) -> list[tuple[int, int]]:
        """Contiguous (start, end) address ranges a read with this function code may cover."""
        space, ro, rw = READ_VIEWS[function_code]
        runs: list[tuple[int, int]] = []
        everything = sorted([*self.points, *self.quality.values()], key=lambda p: (p.space, p.address))
        for point in everything:
            if point.space != space or not (rw if point.writable else ro):
                continue
            if runs and runs[-1][1] == point.address:
                runs[-1] = (runs[-1][0], point.end)
            else:
                runs.append((point.address, point.end))
        return runs


def point_of(tag: TagDef) -> Point:
    """The Point of one mapped tag."""
    assert tag.modbus is not None
    mb = tag.modbus
    dtype = "bool" if tag.type == TagType.BOOL else mb.dtype
    return Point(tag=tag, table=tag.modbus_table or "", address=mb.address, dtype=dtype, scale=mb.scale,
                 width=1 if dtype == "bool" else mb.width, per_unit=mb.per_unit, wraps=wrapping(tag))


def quality_point(point: Point) -> QualityPoint:
    """The quality register(s) of a point, parallel to its value (see QualityPoint)."""
    first = (BIT_QUALITY if point.space == BITS else QUALITY) + point.address
    return QualityPoint(tag=point.tag, table="input", address=first, dtype="uint16", scale=1.0,
                        width=point.width if point.space == REGISTERS else 1)


# ---- operator documentation ---------------------------------------------------------------------------------

COLUMNS = ("table", "address", "tag", "dtype", "scale", "unit", "access", "range", "description")

TABLE_TEXT = {
    "coil": "coil",
    "discrete": "discrete input (+coil)",
    "holding": "holding",
    "input": "input (+holding)",
}


def _number(value: float) -> str:
    return f"{value:g}"


def _range_text(tag: TagDef) -> str:
    if tag.type == TagType.ENUM:
        return " ".join(f"{code}={name}" for code, name in enumerate(tag.values))
    if tag.type == TagType.BOOL:
        return "0/1"
    lo = "" if tag.min is None else _number(tag.min)
    hi = "" if tag.max is None else _number(tag.max)
    return f"{lo}..{hi}" if lo or hi else ""


def rows(regmap: RegisterMap) -> list[tuple[str, ...]]:
    """One row per mapped tag, in address order (bits first, then registers)."""
    out = []
    for p in regmap:
        address = str(p.address) if p.width == 1 else f"{p.address}-{p.end - 1}"
        out.append((TABLE_TEXT[p.table], address, p.name, p.dtype, _number(p.scale), p.tag.unit, p.tag.access,
                    _range_text(p.tag), p.tag.description))
    return out


def render_markdown(regmap: RegisterMap) -> str:
    """The map as a Markdown table, with a short legend for SCADA engineers."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "Addresses are 0-based protocol addresses (mbpoll: `-0`; 1-based tools add 1). 32-bit values take two",
        "registers, high word first. `value = raw x scale`. ro tags answer as input registers / discrete inputs",
        "and as holding registers / coils at the same address; writes go to rw tags only and land at the next",
        "scan. Exceptions: 01 unknown function, 02 unmapped or read-only address, 03 bad quantity, value out of",
        "min..max or a write covering half of a 32-bit value.",
        "",
        f"Address plan: 0-{RUNTIME_FIRST - 1} the tags of tags.yaml; from {RUNTIME_FIRST} the runtime's own tags, "
        "in blocks:",
        "",
        *_block_lines(),
        "",
        "Owners k = 0, 1, ... are numbered in the order the site declares them (charts and function blocks in",
        "scan order, interlocks last; devices in io_map.yaml order): one added at the end moves nothing. A",
        "chart's `step` is an enum (the range column names its steps by code). An address of a slot that holds no",
        "tag answers 02, as any unmapped address: read a slot's tags, not the whole slot.",
        "",
        f"Quality: input register {QUALITY} + A holds the quality of the register tag at A (in each word of a",
        f"32-bit value), {BIT_QUALITY} + A that of the bit tag at A: 0 GOOD, 1 STALE (the last value; nothing "
        "fresh",
        "within the device's stale_after), 2 BAD, 3 INIT (no reading yet). A number with quality BAD or INIT",
        "reads as the \"not implemented\" marker of its type (int16 0x8000, uint16 0xFFFF, int32 0x80000000,",
        "uint32 0xFFFFFFFF, float32 NaN), never as a plain number; a bit keeps its last value, so read its",
        f"quality. Read both blocks alike: registers 0-9 and {QUALITY}-{QUALITY + 9}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows(regmap)]
    return "\n".join(lines) + "\n"


def _block_lines() -> list[str]:
    lines = []
    for block in BLOCKS.values():
        if block.kind == CONTROLLER:
            lines.append(f"- registers {block.first}-{block.first + block.slot - 1}: the controller; `scan.count` "
                         "is the heartbeat (+1 every scan, uint32, wraps to 0)")
            continue
        extra = " (with its `prog.` fault tags)" if block.kind == CHART else ""
        bits = "" if not any(f.dtype == "bool" for f in block.fields) else \
            f", bits {block.first}{f' + {block.bit_slot}k' if block.bit_slot > 1 else ' + k'}"
        lines.append(f"- {block.noun} k: registers {block.first} + {block.slot}k{bits}{extra}")
    lines.append(f"- from {ALARM_SYSTEM_FIRST}: the alarm system's commands (`cmd.alarm_*`, holding) and figures "
                 "(`alarms.*`)")
    return lines


def render_csv(regmap: RegisterMap) -> str:
    """The map as CSV with a header row (for spreadsheets and HMI tag importers)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(regmap))
    return buffer.getvalue()
