"""A bench for the battery function blocks: the default site's tag database, chosen blocks, a scan loop.

``Bench(["aggregate", "limits"])`` loads tags.yaml of the repository root (the real parameters and
defaults), builds the named blocks from programs/, and runs them on ``runtime.scan.Scan``. Inputs are set
GOOD with ``bench.set(...)``; ``bench.run(seconds)`` advances the clock scan by scan. The clock is a
``SimClock`` starting at ``start``, or, with ``frozen`` (a freezegun ``FrozenDateTimeFactory``), the real
clock under freezegun, so that wall dates come from the frozen time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from runtime.clock import RealClock, SimClock
from runtime.loader import find_program, load_block
from runtime.program import FunctionBlock, Program
from runtime.scan import Scan
from runtime.site import Site, load_site
from runtime.tags import Quality, TagDB

ROOT = Path(__file__).resolve().parents[2]

# A healthy, idle, mid-charge 8S battery with the meter, charger and inverter answering.
HEALTHY = {
    **{f"bms1.cell_{k}": 3.30 for k in range(1, 9)},
    "bms1.temp_1": 20.0, "bms1.temp_2": 20.0, "bms1.voltage": 26.4, "bms1.current": 0.0, "bms1.soc": 50.0,
    "bms1.capacity_ah": 320.0, "bms1.charge_allowed": True, "bms1.discharge_allowed": True,
    "shunt.voltage": 26.4, "shunt.current": 0.0, "shunt.soc": 50.0, "grid.power": 300.0, "pv.power": 0.0, "house.power": 300.0,
    "inverter.power": 0.0, "charger.current": 0.0, "charger.voltage": 0.0,
}


@cache
def site_of(folder: Path) -> Site:
    """A site folder, loaded once per test session (parsing it is most of a bench's cost)."""
    return load_site(folder, with_programs=False)[0]


def fresh_db(folder: Path = ROOT) -> TagDB:
    """A new tag database of a site: defaults everywhere, every tag GOOD."""
    return site_of(folder).new_db()


class Bench:
    def __init__(self, blocks: Iterable[str], interlocks: bool = False, start: datetime | None = None,
                 period: float = 1.0, frozen: Any = None, site: Path = ROOT, db: TagDB | None = None,
                 extra: Iterable[Program] = ()) -> None:
        self.site = site_of(site)
        self.db = db if db is not None else self.site.new_db()
        self.blocks = {name: self._block(name) for name in blocks}
        self.interlocks = self._block("interlocks") if interlocks else None
        self.frozen = frozen
        self.clock = RealClock() if frozen is not None else SimClock(start or datetime(2026, 4, 15, 12, 0))
        self.period = period
        programs = [*self.blocks.values(), *extra]  # extra: stand-ins for charts, after the blocks
        self.scan = Scan(self.db, programs, self.clock, period, interlocks=self.interlocks)
        for block in self.everything():
            block.start(self.db)
        self.set(**HEALTHY)

    def _block(self, name: str) -> FunctionBlock:
        path = find_program(self.site, name)
        assert path is not None, name
        block = load_block(path, name, self.site)
        for tag in block.declare():
            self.db.ensure(tag)
        return block

    def everything(self) -> list[FunctionBlock]:
        return list(self.blocks.values()) + ([self.interlocks] if self.interlocks else [])

    def set(self, values: dict[str, Any] | None = None, quality: Quality = Quality.GOOD, **kw: Any) -> None:
        """Latch inputs into the image; keyword names use '__' for '.' (bms1__cell_1=3.3) or pass a dict."""
        for name, value in {**(values or {}), **{k.replace("__", "."): v for k, v in kw.items()}}.items():
            assert name in self.db, name
            self.db.set_input(name, self.db.define(name).coerce(value), quality, self.clock.monotonic())

    def bad(self, *names: str, quality: Quality = Quality.BAD) -> None:
        for name in names:
            self.db.set_quality(name, quality)

    def cells(self, *volts: float) -> None:
        """Set the eight cells of bms1 (a single value for all, or one per cell) and, as a real pack would
        show, the pack voltage the BMS and the shunt measure: their sum."""
        values = volts * 8 if len(volts) == 1 else volts
        self.set({f"bms1.cell_{k + 1}": v for k, v in enumerate(values)})
        self.set({"bms1.voltage": sum(values), "shunt.voltage": sum(values)})

    def step(self) -> None:
        if self.frozen is not None:
            self.frozen.tick(self.period)
        else:
            self.clock.advance(self.period)
        self.scan.step()

    def run(self, seconds: float) -> None:
        for _ in range(max(1, round(seconds / self.period))):
            self.step()

    def __getitem__(self, name: str) -> Any:
        return self.db[name]

    def quality(self, name: str) -> Quality:
        return self.db.quality[name]


@pytest.fixture
def bench_factory() -> type[Bench]:
    return Bench
