"""What a program is to the scan: a name, the tags it reads and writes, and one ``scan(ctx)`` per cycle.

Two kinds exist: declared charts (``programs/*.sfc.yaml``, see runtime/sfc) and function blocks
(``programs/*.py``, a ``FunctionBlock`` subclass). Programs never read the clock: ``ctx.now`` (site wall
time) and ``ctx.dt`` (seconds since the previous scan) come from the scan.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from runtime.tags import Quality, TagDB, TagDef


class Program:
    """Base of everything the scan runs."""

    name: str = ""
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    file: str = ""
    line: int = 0

    def declare(self) -> Iterable[TagDef]:
        """Tags this program adds to the database (its state, alarms); called before references are checked."""
        return ()

    def start(self, db: TagDB) -> None:
        """Called once after the image (and retained values) are loaded, before the first scan."""

    def scan(self, ctx: ScanContext) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class OwnershipError(RuntimeError):
    pass


class ScanContext:
    """A program's view of one scan: read the current image, stage writes to the outputs it owns."""

    __slots__ = ("db", "values", "quality", "now", "t", "dt", "count", "program", "_owned")

    def __init__(self, db: TagDB) -> None:
        self.db = db
        self.values = db.values
        self.quality = db.quality
        self.now: datetime = datetime(1970, 1, 1)
        self.t = 0.0
        self.dt = 0.0
        self.count = 0
        self.program: Program | None = None
        self._owned: frozenset[str] = frozenset()

    def bind(self, program: Program) -> None:
        self.program = program
        self._owned = program.writes

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def ok(self, name: str) -> bool:
        """True when the tag's quality is GOOD."""
        return self.quality[name] is Quality.GOOD

    def all_ok(self, names: Iterable[str]) -> bool:
        quality = self.quality
        return all(quality[n] is Quality.GOOD for n in names)

    def staged(self, name: str) -> Any:
        """The value a tag will have after this scan (what earlier programs wrote, else current)."""
        return self.db.staged_value(name)

    def write(self, name: str, value: Any) -> None:
        if name not in self._owned:
            who = self.program.name if self.program else "?"
            raise OwnershipError(f"program {who!r} wrote {name!r}, which it does not declare in its writes")
        self.db.staged[name] = value

    def invalidate(self, name: str) -> None:
        """Mark an owned output BAD (a derived value with no GOOD source); it stays BAD until written again.

        Takes effect at once, so a program should invalidate only tags that no earlier program read this scan.
        """
        if name not in self._owned:
            who = self.program.name if self.program else "?"
            raise OwnershipError(f"program {who!r} invalidated {name!r}, which it does not declare in its writes")
        self.db.staged.pop(name, None)
        self.quality[name] = Quality.BAD


class FunctionBlock(Program):
    """A program written in Python under programs/. Subclasses list ``reads`` and ``writes`` as tuples."""

    reads: ClassVar[frozenset[str] | tuple[str, ...]] = ()
    writes: ClassVar[frozenset[str] | tuple[str, ...]] = ()

    def __init__(self, name: str, site: Any = None) -> None:
        self.name = name
        self.site = site
        self.reads = frozenset(type(self).reads)
        self.writes = frozenset(type(self).writes)
