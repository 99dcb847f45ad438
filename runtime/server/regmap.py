"""The register map: which tag answers at which Modbus table and address, and how its value is encoded.

Everything here follows from tags.yaml (a tag's ``modbus`` mapping, type and access); nothing is declared in
Python. Two address spaces exist, as the config checks them: *bits* (bool tags) and *registers* (all other
tags). A tag's home table follows from its access:

    ro bool   -> discrete input (also readable as a coil at the same address)
    rw bool   -> coil
    ro number -> input register (also readable as a holding register at the same address)
    rw number -> holding register

Numbers are encoded as ``raw = value / scale`` (value = raw x scale, as in io_map.yaml) in the mapped data type, 32-bit values high word first,
enums as their code. A value that does not fit its data type saturates at the type's limits; a value that
is not a number (NaN) reads as the SunSpec "not implemented" marker (0x8000 / 0xFFFF / 0x80000000 /
0xFFFFFFFF, NaN for float32). ``render_markdown``/``render_csv`` print the map for operators
(``battplc regmap``).
"""

from __future__ import annotations

import csv
import io
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from runtime.tags import TagDef, TagType

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
        return struct.pack(_STRUCT[dtype], min(hi, max(lo, int(raw))))

    def decode(self, data: bytes) -> Any:
        """The tag value (in the tag's type) that register bytes written by a client stand for.

        Raises ValueError when the registers do not make a valid value of this tag (e.g. NaN, an enum code
        that does not exist). Range (min/max) is checked separately with ``tag.in_range``.
        """
        raw = struct.unpack(_STRUCT[self.dtype], data)[0]
        value = raw / self.per_unit if self.per_unit != 1.0 else raw
        if self.tag.type in (TagType.INT, TagType.ENUM) and isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{self.name}: {value:g} is not a whole number")
        return self.tag.coerce(value)


class RegisterMap:
    """Every mapped tag, looked up by name or by (address space, address)."""

    def __init__(self, points: Iterable[Point]) -> None:
        self.points = sorted(points, key=lambda p: (p.space, p.address))
        self.by_name = {p.name: p for p in self.points}
        self._owner: dict[str, dict[int, Point]] = {BITS: {}, REGISTERS: {}}
        for point in self.points:
            owner = self._owner[point.space]
            for address in range(point.address, point.end):
                if address in owner:
                    raise ValueError(f"{point.name} and {owner[address].name} share {point.space} {address}; "
                                     "the config check should have refused this map")
                owner[address] = point

    @classmethod
    def from_tags(cls, tags: Iterable[TagDef]) -> RegisterMap:
        """The map of every tag with a ``modbus`` mapping."""
        return cls(point_of(tag) for tag in tags if tag.modbus is not None)

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
        """The point that holds this bit or register, if any."""
        return self._owner[space].get(address)

    def readable_runs(self, function_code: int) -> list[tuple[int, int]]:
        """Contiguous (start, end) address ranges a read with this function code may cover."""
        space, ro, rw = READ_VIEWS[function_code]
        runs: list[tuple[int, int]] = []
        for point in self.points:
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
                 width=1 if dtype == "bool" else mb.width, per_unit=mb.per_unit)


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
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows(regmap)]
    return "\n".join(lines) + "\n"


def render_csv(regmap: RegisterMap) -> str:
    """The map as CSV with a header row (for spreadsheets and HMI tag importers)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(regmap))
    return buffer.getvalue()
