"""The tag database and the process image.

Every value in battplc is a tag: declared once (type, unit, access, limits, retain, Modbus mapping), held in
the image with a quality and a timestamp. Programs read the *current* image, which only changes at the
scan's latch and commit phases, and write into a *staged* image that becomes current at commit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from operator import attrgetter
from typing import Any


class Quality(IntEnum):
    GOOD = 0
    STALE = 1
    BAD = 2
    INIT = 3


class TagType:
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    ENUM = "enum"
    ALL = (BOOL, INT, FLOAT, ENUM)


# tags.yaml maps tags to addresses 0 .. DECLARED_ADDRESSES - 1 (bits and registers); the server keeps the
# addresses above for the runtime's own tags and the quality registers (runtime/server/regmap.py).
DECLARED_ADDRESSES = 10000


@dataclass(frozen=True)
class ModbusMap:
    """Where a tag lives in the server's register map. The table follows from type and access."""

    address: int
    dtype: str = "uint16"  # bool | int16 | uint16 | int32 | uint32 | float32
    scale: float = 1.0  # value = register x scale (a voltage in centivolts: 0.01), as in io_map.yaml

    @property
    def per_unit(self) -> float:
        """Register counts per unit of the value (1 / scale): 0.01 -> exactly 100.0, so encoding multiplies by a
        whole number and reads back exactly."""
        inverse = 1.0 / self.scale
        return float(round(inverse)) if abs(inverse - round(inverse)) < 1e-9 * abs(inverse) else inverse

    @property
    def width(self) -> int:
        return 2 if self.dtype in ("int32", "uint32", "float32") else 1


@dataclass(frozen=True)
class AlarmSpec:
    """How an ``alarm.<name>`` tag annunciates (tags.yaml ``alarm:``): ISA-18.2 priority and latching."""

    priority: str = "medium"  # low | medium | high
    latching: bool = False  # a returned alarm waits for an acknowledge before it goes normal


@dataclass(frozen=True)
class TagDef:
    name: str
    type: str
    unit: str = ""
    description: str = ""
    default: Any = None
    retain: bool = False
    access: str = "ro"  # ro | rw
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()  # enum names, code = index
    modbus: ModbusMap | None = None
    metric: bool = True
    safe: Any = None  # value an output takes when its program faults or the runtime stops
    alarm: AlarmSpec | None = None  # set on every boolean alarm.<name> tag (defaults when tags.yaml says nothing)
    file: str = ""
    line: int = 0

    @property
    def is_bool(self) -> bool:
        return self.type == TagType.BOOL

    @property
    def modbus_table(self) -> str | None:
        """'coil', 'discrete', 'holding' or 'input' for a mapped tag."""
        if self.modbus is None:
            return None
        if self.type == TagType.BOOL:
            return "coil" if self.access == "rw" else "discrete"
        return "holding" if self.access == "rw" else "input"

    def coerce(self, value: Any) -> Any:
        """The value in this tag's Python type (enum names accepted); raise ValueError if impossible."""
        if self.type == TagType.FLOAT:
            if isinstance(value, str):
                raise ValueError(f"{self.name}: expected a number, got {value!r}")
            return float(value)
        if self.type == TagType.BOOL:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "on", "yes"):
                    return True
                if low in ("0", "false", "off", "no"):
                    return False
                raise ValueError(f"{self.name}: expected a boolean, got {value!r}")
            return bool(value)
        if self.type == TagType.ENUM:
            if isinstance(value, str):
                if value in self.values:
                    return self.values.index(value)
                if value.isdigit():
                    value = int(value)
                else:
                    raise ValueError(f"{self.name}: {value!r} is not one of {', '.join(self.values)}")
            code = int(value)
            if not 0 <= code < len(self.values):
                raise ValueError(f"{self.name}: code {code} is not one of 0..{len(self.values) - 1}")
            return code
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{self.name}: expected an integer, got {value!r}")
            return int(round(value))
        return int(value)

    @property
    def number_coercer(self) -> Callable[[Any], Any]:
        """``coerce`` for a value that is already a number or a boolean (a decoded register or field): the
        float and bool built-ins where they give the same result, so the drivers' decode skips the dispatch."""
        if self.type == TagType.FLOAT:
            return float
        if self.type == TagType.BOOL:
            return bool
        return self.coerce

    def in_range(self, value: Any) -> bool:
        if self.type in (TagType.BOOL, TagType.ENUM):
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def format(self, value: Any) -> str:
        """Human text for a value: enum names, booleans as 0/1, floats trimmed."""
        if value is None:
            return ""
        if self.type == TagType.ENUM:
            return self.values[value] if 0 <= value < len(self.values) else str(value)
        if self.type == TagType.BOOL:
            return "1" if value else "0"
        if self.type == TagType.FLOAT:
            return f"{value:.6g}"
        return str(value)

    @property
    def initial(self) -> Any:
        if self.default is not None:
            return self.coerce(self.default)
        return {TagType.BOOL: False, TagType.INT: 0, TagType.FLOAT: 0.0, TagType.ENUM: 0}[self.type]

    @property
    def safe_value(self) -> Any:
        return self.coerce(self.safe) if self.safe is not None else self.initial


class UnknownTag(KeyError):
    def __str__(self) -> str:
        return f"unknown tag {self.args[0]!r}"


class StagedWrites(dict[str, Any]):
    """The writes of the running scan, name -> value. Looking up a tag nobody wrote gives its value in the
    image, so ``staged[name]`` is what the tag will be after this scan: one C-level lookup for a tag written
    in this scan, which is how programs read what the programs before them wrote (``ScanContext.staged``)."""

    __slots__ = ("_image_get",)

    def __init__(self, image: dict[str, Any]) -> None:
        super().__init__()
        self._image_get = image.__getitem__

    # dict looks ``__missing__`` up on the type and binds it. A property whose getter is the C-level attrgetter
    # binds it to the image's own ``__getitem__``, so a read of a tag nobody wrote never enters a Python frame
    # (a ``def __missing__`` was a Python call for most of the ~80 staged reads a scan makes).
    __missing__ = property(attrgetter("_image_get"))


@dataclass
class TagDB:
    """The declared tags and the image of their values.

    ``values``/``quality``/``stamp`` are plain dicts so the hot path is a dict lookup. ``staged`` holds the
    writes of the running scan; ``commit`` makes them current and returns what changed.
    """

    defs: dict[str, TagDef] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Quality] = field(default_factory=dict)
    stamp: dict[str, float] = field(default_factory=dict)
    staged: StagedWrites = field(init=False)

    def __post_init__(self) -> None:
        self.staged = StagedWrites(self.values)

    @classmethod
    def from_defs(cls, defs: Iterable[TagDef]) -> TagDB:
        db = cls()
        for d in defs:
            db.declare(d)
        return db

    def declare(self, tag: TagDef, quality: Quality | None = None) -> None:
        """Add a tag; inputs start INIT, everything else GOOD at its default."""
        self.defs[tag.name] = tag
        self.values[tag.name] = tag.initial
        self.quality[tag.name] = quality if quality is not None else Quality.GOOD
        self.stamp[tag.name] = 0.0

    def ensure(self, tag: TagDef) -> TagDef:
        """Declare a runtime tag unless tags.yaml already declared it (which then wins, if types agree)."""
        have = self.defs.get(tag.name)
        if have is None:
            self.declare(tag)
            return tag
        if have.type != tag.type:
            raise ValueError(f"{have.file}:{have.line}: tag {tag.name!r} is declared as {have.type}, "
                             f"but the runtime needs {tag.type}")
        return have

    def __contains__(self, name: str) -> bool:
        return name in self.defs

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise UnknownTag(name) from None

    def define(self, name: str) -> TagDef:
        try:
            return self.defs[name]
        except KeyError:
            raise UnknownTag(name) from None

    def set_input(self, name: str, value: Any, quality: Quality, stamp: float) -> None:
        """Latch an input into the current image (called only in the latch phase)."""
        self.values[name] = value
        self.quality[name] = quality
        self.stamp[name] = stamp

    def set_quality(self, name: str, quality: Quality) -> None:
        self.quality[name] = quality

    def stage(self, name: str, value: Any) -> None:
        self.staged[name] = value

    def staged_value(self, name: str) -> Any:
        """What the tag will be after commit: the staged write, else the current value."""
        return self.staged[name]

    def commit(self, stamp: float) -> dict[str, Any]:
        """Make staged writes current; return {name: value} of those that changed."""
        values, quality, good = self.values, self.quality, Quality.GOOD
        # Programs stage most of their outputs every scan and few change: find those first, then update the
        # image with dict-level calls (this runs every scan).
        changed = {name: value for name, value in self.staged.items()
                   if values[name] != value or quality[name] is not good}
        if changed:
            values.update(changed)
            quality.update(dict.fromkeys(changed, good))
            self.stamp.update(dict.fromkeys(changed, stamp))
        self.staged.clear()
        return changed

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Quality]]:
        """A copy of values and qualities for readers off the scan thread (metrics, server)."""
        return dict(self.values), dict(self.quality)

    def restore(self, saved: Mapping[str, Any]) -> list[str]:
        """Load retained values; return the names that were skipped (unknown, not retained, or invalid)."""
        skipped = []
        for name, value in saved.items():
            tag = self.defs.get(name)
            if tag is None or not tag.retain:
                skipped.append(name)
                continue
            try:
                value = tag.coerce(value)
            except (TypeError, ValueError):
                skipped.append(name)
                continue
            if not tag.in_range(value):
                skipped.append(name)
                continue
            self.values[name] = value
        return skipped
