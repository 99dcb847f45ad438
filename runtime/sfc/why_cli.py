"""``battplc why [CHART]``: what every chart of a running controller waits for, and what blocks charging and
discharging, read over Modbus/TCP like any SCADA would.

The explanation itself is ``runtime/sfc/why.py`` over a ``MappingSnapshot``; this module only gathers the values:
every tag of the controller's register map (the same map the server builds from the site's tags, runtime tags
included), with each chart's step from ``sfc.<chart>.step`` and its time from ``.step_time`` when those are on
the wire. A value that is not on the wire shows as ``?``. ``now_h`` and ``weekday`` are the reader's clock (the
controller runs in real time). ``snapshot_of_image`` makes the same snapshot from a scan's tag image, which is
how ``battplc sim --why-at`` explains a moment of a simulated day.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from runtime.names import chart_tag
from runtime.sfc.model import ChartDecl
from runtime.sfc.why import UNKNOWN, MappingSnapshot, explain, render, show
from runtime.tags import TagDB, TagDef, TagType

# What stands between the charts and the charger or inverter, read in this order (tags a site lacks are left
# out). These are the battery application's contract (programs/tags.yaml): the interlocks' verdict, the BMS's
# permission, the limits block's current and voltage limits, the schedule's windows and inhibits.
BLOCKERS = {
    "charging": ("interlock.charge_blocked", "bms.charge_allowed", "limits.ccl", "limits.cvl",
                 "schedule.charge_window", "schedule.grid_charge", "schedule.load_request", "schedule.battery_off_hold",
                 "keep.inhibited", "cmd.mode"),
    "discharging": ("interlock.discharge_blocked", "bms.discharge_allowed", "limits.dcl", "limits.discharge_latched",
                    "schedule.discharge_allowed", "schedule.soc_floor", "bat.soc", "schedule.battery_off_hold",
                    "cmd.mode"),
}


def charts_of(programs: Iterable[Any]) -> list[ChartDecl]:
    """The declarations of the charts among a site's programs, in scan order."""
    return [program.decl for program in programs if isinstance(getattr(program, "decl", None), ChartDecl)]


def snapshot(values: Mapping[str, Any], defs: Mapping[str, TagDef], charts: Iterable[ChartDecl],
             qualities: Mapping[str, str] | None = None, now: datetime | None = None) -> MappingSnapshot:
    """A snapshot from raw tag values (enum codes become names; each chart's step from its step tags)."""
    named = {name: (defs[name].values[value] if defs[name].type == TagType.ENUM and isinstance(value, int)
                    and 0 <= value < len(defs[name].values) else value)
             for name, value in values.items() if name in defs}
    if now is not None:
        named.update(now_h=now.hour + now.minute / 60 + now.second / 3600, weekday=now.weekday())
    steps = {}
    for chart in charts:
        step = named.get(chart_tag(chart.name, "step"))
        if isinstance(step, str):
            steps[chart.name] = (step, values.get(chart_tag(chart.name, "step_time"), UNKNOWN))
    return MappingSnapshot(named, dict(qualities or {}), steps)


def snapshot_of_image(db: TagDB, charts: Iterable[ChartDecl], now: datetime) -> MappingSnapshot:
    """The snapshot of a scan's committed image (values, qualities, steps) at wall time ``now``."""
    return snapshot(dict(db.values), db.defs, charts, {name: q.name for name, q in db.quality.items()}, now)


def blockers(snap: MappingSnapshot, defs: Mapping[str, TagDef]) -> str:
    """The short section: for charging and discharging, each blocking tag with its value."""
    lines = []
    for what, names in BLOCKERS.items():
        shown = [f"{name}={_value(snap.value(name), defs[name])}" for name in names if name in defs]
        line = f"what blocks {what}:"
        for item in shown or ["(the site has none of these tags)"]:
            if len(line) + 2 + len(item) > 110:  # wrap between items, never inside "28.4 V"
                lines.append(line)
                line = "   "
            line += f"  {item}"
        lines.append(line)
    return "\n".join(lines)


def _value(value: Any, tag: TagDef) -> str:
    text = show(value)
    return f"{text} {tag.unit}" if tag.unit and text != "?" and tag.unit not in ("count",) else text


def explain_site(charts: list[ChartDecl], snap: MappingSnapshot, defs: Mapping[str, TagDef],
                 only: str | None = None) -> str:
    """Every chart's explanation (or one), then what blocks charging and discharging."""
    parts = []
    for chart in (c for c in charts if only is None or c.name == only):
        text = render(explain(chart, snap))
        step = chart_tag(chart.name, "step")
        if snap.value(step) is UNKNOWN:
            text += f" ({step} is not on the wire)"
        parts.append(text)
    if only is None:
        parts.append(blockers(snap, defs))
    return "\n\n".join(parts)


def chart_choice(charts: list[ChartDecl], name: str | None) -> str | None:
    """``name`` if it is one of ``charts`` (None: all of them); a CliError naming the charts otherwise."""
    from runtime.server.cli import CliError

    if name is not None and name not in {c.name for c in charts}:
        raise CliError(f"no chart {name!r}; charts: {', '.join(c.name for c in charts) or 'none'}")
    return name


# ---- the command --------------------------------------------------------------------------------------------

def cmd_why(args: argparse.Namespace) -> int:
    from runtime.alarms.service import alarm_tags
    from runtime.server.cli import CliError, _connect, _unit, read_point
    from runtime.server.regmap import RegisterMap
    from runtime.site import load_site

    site, db, programs, _ = load_site(args.dir)
    charts = charts_of(programs)
    only = chart_choice(charts, args.chart)
    defs = {**db.defs, **{tag.name: tag for tag in alarm_tags(db.defs.values())}}
    regmap = RegisterMap.from_tags(defs.values())
    settings = site.settings.server
    client = _connect(args, settings)
    unit = _unit(args, settings)
    values: dict[str, Any] = {}
    try:
        for point in regmap:
            try:
                values[point.name] = read_point(client, point, unit)
            except CliError:
                continue  # not readable: shown as ?
    finally:
        client.close()
    if not values:
        raise CliError("the controller answered no read: is it the site's controller (--dir)?")
    print(explain_site(charts, snapshot(values, defs, charts, now=datetime.now()), defs, only))
    return 0


def register(subparsers: Any) -> None:
    """Add ``battplc why``."""
    from runtime.server.cli import _client_options, _guard

    p = subparsers.add_parser("why", help="what each chart of a running controller waits for, and what blocks "
                                          "charging and discharging (over Modbus/TCP)")
    p.add_argument("chart", nargs="?", metavar="CHART", help="explain only this chart")
    _client_options(p)
    p.set_defaults(func=_guard(cmd_why))
