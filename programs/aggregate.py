"""aggregate: one or several BMS as one battery (seed 003), the first program of every scan.

Every BMS of the site is found by its tag prefix (``bms1.``, ``bms2.``, ...): its cells ``bmsN.cell_K``, its
temperature sensors ``bmsN.temp_K``, and optionally ``voltage``, ``current``, ``soc``, ``capacity_ah``,
``charge_allowed``, ``discharge_allowed``. A BMS counts as online while all of its cells, sensors and
allow flags are GOOD.

From the online units it writes the battery as one: max/min cell voltage and temperature over all cells,
charge/discharge allowed only if every online BMS allows it, a capacity-weighted SoC estimate. The current
comes from the shunt while it is GOOD (it sees the whole bank), else the sum of the BMS currents; the
voltage likewise. A BMS that goes missing raises ``alarm.bms_missing`` and lowers ``bms.online``, which the
limits block turns into proportionally lower current limits; the site keeps running on the others (the
aggregator of seed 003 exits instead, and the inverter stops). With no BMS online there is nothing to judge
the cells by: the cell and temperature tags go BAD, so interlocks and charts make everything safe.

The shunt is cross-checked against the BMS (issue 14): when its current and the sum of the online BMS
currents disagree by more than ``par.soc_mismatch_a`` for ``par.soc_mismatch_s``, ``alarm.soc_sensor_mismatch``
is raised and the battery current is the BMS sum until they agree again for as long (a shunt with a bad
zero would otherwise drag the SoC and every limit built on it: 3 A is 72 Ah a day).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from programs._common import Debounced, readings
from runtime.program import FunctionBlock, ScanContext, TagGroup
from runtime.tags import TagDB

_UNIT = re.compile(r"^(bms\d+)\.(cell|temp)_(\d+)$")

SHUNT = ("shunt.voltage", "shunt.current")  # optional: a site without a shunt declares neither
OPTIONAL = ("voltage", "current", "soc", "capacity_ah", "charge_allowed", "discharge_allowed")
FLAGS = (("charge_allowed", "bms.charge_allowed"), ("discharge_allowed", "bms.discharge_allowed"))
# Written only while some source is GOOD; otherwise set BAD (a computed value must not look fresh).
DERIVED = ("bat.voltage", "bat.current", "bat.power", "bat.cell_v_max", "bat.cell_v_min", "bat.temp_max",
           "bat.temp_min")


@dataclass
class BmsUnit:
    """The tags of one BMS, as found in the tag database."""

    prefix: str
    cells: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)
    optional: dict[str, str] = field(default_factory=dict)  # short name -> tag: "current" -> bms1.current

    def __post_init__(self) -> None:
        # read every scan: one C call each instead of one lookup per tag
        self.required_tags = TagGroup(self.required)
        self.cell_tags = TagGroup(self.cells)
        self.temp_tags = TagGroup(self.temps)

    @property
    def required(self) -> list[str]:
        flags = [self.optional[k] for k in ("charge_allowed", "discharge_allowed") if k in self.optional]
        return self.cells + self.temps + flags


def reading(ctx: ScanContext, name: str) -> bool:
    """A tag holds a usable reading: GOOD and a number (garbage decoded as NaN is no reading)."""
    return ctx.ok(name) and math.isfinite(ctx[name])


def find_units(db: TagDB) -> list[BmsUnit]:
    """Every BMS in the database, in name order, each with its cells and sensors in number order."""
    found: dict[str, dict[str, list[tuple[int, str]]]] = {}
    for name in db.defs:
        match = _UNIT.match(name)
        if match:
            prefix, kind, number = match.groups()
            found.setdefault(prefix, {"cell": [], "temp": []})[kind].append((int(number), name))
    units = []
    for prefix in sorted(found, key=lambda p: int(p[3:])):
        optional = {short: f"{prefix}.{short}" for short in OPTIONAL if f"{prefix}.{short}" in db.defs}
        unit = BmsUnit(prefix, [n for _, n in sorted(found[prefix]["cell"])],
                       [n for _, n in sorted(found[prefix]["temp"])], optional)
        if unit.cells:
            units.append(unit)
    return units


class Aggregate(FunctionBlock):
    writes = DERIVED + ("bms.charge_allowed", "bms.discharge_allowed", "bms.online", "bms.count", "bms.soc",
                        "alarm.bms_missing", "alarm.soc_sensor_mismatch")

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.units: list[BmsUnit] = []
        self.shunt = False
        self.mismatch = Debounced()  # the shunt disagrees with the BMS: count the BMS current

    def start(self, db: TagDB) -> None:
        self.units = find_units(db)
        self.shunt = all(name in db for name in SHUNT)
        names = {n for u in self.units for n in u.cells + u.temps + list(u.optional.values())}
        self.reads = frozenset(names) | (frozenset(SHUNT) if self.shunt else frozenset()) | frozenset(
            ("par.soc_mismatch_a", "par.soc_mismatch_s"))

    def scan(self, ctx: ScanContext) -> None:
        write = ctx.write
        online = [u for u in self.units if self._answers(ctx, u)]
        write("bms.count", len(self.units))
        write("bms.online", len(online))
        write("alarm.bms_missing", len(online) < len(self.units))
        values = ctx.values
        for flag, tag in FLAGS:  # all must allow, and some BMS must be there
            allowed = bool(online)
            for unit in online:
                flag_tag = unit.optional.get(flag)
                if flag_tag is not None and not values[flag_tag]:
                    allowed = False
                    break
            write(tag, allowed)

        cells = [v for u in online for v in u.cell_tags.current(ctx)]
        temps = [v for u in online for v in u.temp_tags.current(ctx)]
        self._write_or_bad(ctx, "bat.cell_v_max", max(cells) if cells else None)
        self._write_or_bad(ctx, "bat.cell_v_min", min(cells) if cells else None)
        self._write_or_bad(ctx, "bat.temp_max", max(temps) if temps else None)
        self._write_or_bad(ctx, "bat.temp_min", min(temps) if temps else None)

        voltage = self._voltage(ctx, online)
        current = self._current(ctx, online)
        self._write_or_bad(ctx, "bat.voltage", voltage)
        self._write_or_bad(ctx, "bat.current", current)
        self._write_or_bad(ctx, "bat.power", voltage * current if voltage is not None and current is not None
                           else None)
        soc = self._soc(ctx, online)
        if soc is not None:
            write("bms.soc", soc)

    @staticmethod
    def _answers(ctx: ScanContext, unit: BmsUnit) -> bool:
        """Online: every cell, sensor and flag is a reading."""
        return readings(unit.required_tags.quality(ctx), unit.required_tags.current(ctx))

    def _voltage(self, ctx: ScanContext, online: list[BmsUnit]) -> float | None:
        if self.shunt and reading(ctx, "shunt.voltage"):
            return ctx["shunt.voltage"]
        good = [ctx[u.optional["voltage"]] for u in online
                if "voltage" in u.optional and reading(ctx, u.optional["voltage"])]
        if good:  # parallel batteries: the bank voltage is their average
            return sum(good) / len(good)
        if online:  # a series string of cells is the sum of its cells
            return sum(ctx[c] for c in online[0].cells)
        return None

    def _current(self, ctx: ScanContext, online: list[BmsUnit]) -> float | None:
        good = [ctx[u.optional["current"]] for u in online
                if "current" in u.optional and reading(ctx, u.optional["current"])]
        bms = sum(good) if good and len(good) == len(self.units) else None  # every pack's current, or no sum
        shunt = ctx["shunt.current"] if self.shunt and reading(ctx, "shunt.current") else None
        if shunt is not None and bms is not None:  # set after par.soc_mismatch_s apart, cleared after as long agreeing
            self.mismatch.update(abs(shunt - bms) > ctx["par.soc_mismatch_a"], ctx.dt, ctx["par.soc_mismatch_s"])
        ctx.write("alarm.soc_sensor_mismatch", self.mismatch.state)
        if shunt is not None and not self.mismatch.state:
            return shunt
        return sum(good) if good else None

    @staticmethod
    def _soc(ctx: ScanContext, online: list[BmsUnit]) -> float | None:
        weighted = total = 0.0
        for unit in online:
            soc_tag = unit.optional.get("soc")
            if soc_tag is None or not reading(ctx, soc_tag):
                continue
            cap_tag = unit.optional.get("capacity_ah")
            capacity = ctx[cap_tag] if cap_tag else 1.0
            weighted += ctx[soc_tag] * capacity
            total += capacity
        return weighted / total if total > 0 else None

    def _write_or_bad(self, ctx: ScanContext, name: str, value: float | None) -> None:
        if value is not None:
            ctx.write(name, value)
        else:
            # A derived value without a GOOD source must not look fresh: it turns BAD until the next write.
            # Safe to do in place: this block runs first, before anyone reads these tags in this scan.
            ctx.invalidate(name)
