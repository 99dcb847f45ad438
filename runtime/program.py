"""What a program is to the scan: a name, the tags it reads and writes, and one ``scan(ctx)`` per cycle.

Two kinds exist: declared charts (``programs/*.sfc.yaml``, see runtime/sfc) and function blocks
(``programs/*.py``, a ``FunctionBlock`` subclass). Programs never read the clock: ``ctx.now`` (site wall
time) and ``ctx.dt`` (seconds since the previous scan) come from the scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, ClassVar

from runtime.tags import Quality, TagDB, TagDef

_GOOD = Quality.GOOD  # a module constant: ``ok`` runs ~20 times a scan


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
    """A program's view of one scan: read the current image, stage writes to the outputs it owns.

    ``ctx.staged(name)`` is the value a tag will have after this scan: what the programs before this one
    wrote, else the current value. It is the staged writes' own lookup (``StagedWrites``), a C call, as
    function blocks read this way about a hundred times a scan.
    """

    __slots__ = ("db", "values", "quality", "staged", "now", "t", "dt", "count", "program", "owned", "_staged")

    def __init__(self, db: TagDB) -> None:
        self.db = db
        self.values = db.values
        self.quality = db.quality
        self._staged = db.staged  # the same dict as db.staged: commit clears it in place
        self.staged: Callable[[str], Any] = db.staged.__getitem__
        self.now: datetime = datetime(1970, 1, 1)
        self.t = 0.0
        self.dt = 0.0
        self.count = 0
        self.program: Program | None = None
        self.owned: frozenset[str] = frozenset()  # what ``program`` may write and invalidate

    def bind(self, program: Program) -> None:
        """Make ``program`` the one that runs (the scan sets the two attributes itself, inline)."""
        self.program = program
        self.owned = program.writes

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def ok(self, name: str) -> bool:
        """True when the tag's quality is GOOD."""
        return self.quality[name] is _GOOD

    def all_ok(self, names: Iterable[str]) -> bool:
        quality, good = self.quality, Quality.GOOD
        for name in names:  # a plain loop: blocks call this every scan, a generator costs twice as much
            if quality[name] is not good:
                return False
        return True

    def write(self, name: str, value: Any) -> None:
        if name not in self.owned:
            self._not_owned(name, "wrote")
        self._staged[name] = value

    def invalidate(self, name: str) -> None:
        """Mark an owned output BAD (a derived value with no GOOD source); it stays BAD until written again.

        Takes effect at once, so a program should invalidate only tags that no earlier program read this scan.
        """
        if name not in self.owned:
            self._not_owned(name, "invalidated")
        self._staged.pop(name, None)
        self.quality[name] = Quality.BAD

    def _not_owned(self, name: str, verb: str) -> None:
        who = self.program.name if self.program else "?"
        raise OwnershipError(f"program {who!r} {verb} {name!r}, which it does not declare in its writes")


def fetcher(keys: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A C-level fetch of ``keys`` from a mapping or a sequence, always as a tuple: ``itemgetter`` for two keys
    or more (of one key it gives the item itself, not a tuple), a lambda for one key or none. Scan observers
    and blocks read their tags this way every scan."""
    if len(keys) > 1:
        return itemgetter(*keys)  # type: ignore[return-value]
    if keys:
        only = keys[0]
        return lambda items: (items[only],)
    return lambda _items: ()


class TagGroup:
    """Tags a block reads together every scan (a BMS's cells), fetched in one C-level call each.

    ``staged(ctx)`` reads them as ``ctx.staged`` reads one tag: straight from the image unless a program
    before this one staged one of them in this scan; ``quality(ctx)`` gives their qualities.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self._fetch = fetcher(self.names)

    def staged(self, ctx: ScanContext) -> tuple[Any, ...]:
        if ctx.db.staged.keys().isdisjoint(self.names):
            return self._fetch(ctx.values)
        return tuple(map(ctx.staged, self.names))

    def current(self, ctx: ScanContext) -> tuple[Any, ...]:
        """As the image holds them (what ``ctx[name]`` reads)."""
        return self._fetch(ctx.values)

    def quality(self, ctx: ScanContext) -> tuple[Quality, ...]:
        return self._fetch(ctx.quality)


class FunctionBlock(Program):
    """A program written in Python under programs/. Subclasses list ``reads`` and ``writes`` as tuples."""

    reads: ClassVar[frozenset[str] | tuple[str, ...]] = ()
    writes: ClassVar[frozenset[str] | tuple[str, ...]] = ()

    def __init__(self, name: str, site: Any = None) -> None:
        self.name = name
        self.site = site
        self.reads = frozenset(type(self).reads)
        self.writes = frozenset(type(self).writes)
