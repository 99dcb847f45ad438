"""Scenario files for ``battplc sim``: what the plant starts as, what the weather and the house do, what goes
wrong when, and what the run must show.

Format (every key but ``duration`` optional; unknown keys are errors, reported as file:line like the config)::

    name: sunny summer day                 # default: the file name
    description: ...
    start: 2026-06-21T00:00:00             # local wall time of the site at t = 0
    duration: 24h
    scan: 1s                               # scan period of this run (default: the site's)
    site: ..                               # folder with tags.yaml and io_map.yaml, relative to THIS file
                                           # (default: the repository root)
    plant: {soc: 50, temperature: 20, ambient: 20, cell_spread_mv: 10, high_cell: 3}
    pv: {clear_sky: {peak: 3000, sunrise: "05:30", sunset: "21:30", clouds: 0.3}}
    house: [["00:00", 150], ["07:00", 600], ["08:00", 250]]
    ambient: [["00:00", 12], ["14:00", 24]]
    events:
      - {at: 10h, fault: {device: bms1, kind: offline, for: 5min}}
      - {at: 12h, write: {cmd.battery_off: 1}}
    trace_every: 10s
    expect: {safety_violations: 0, energy_charged_kwh: {min: 1}}
    checks:
      - {at: 12h10s, tag: charger.enable, eq: false}
      - {from: 10h30s, to: 10h5min, tag: inverter.enable, eq: false}

``plant``: ``soc`` in percent, ``temperature`` (pack, degC), ``ambient`` (degC, when no ``ambient``
profile is given), ``high_cell`` as a cell number 1..N (that cell sits higher and has less capacity),
``seed``, and any other field of ``tools.plantsim.model.PlantConfig`` by its name (``cell_spread_mv``,
``capacity_ah``, ``heater_w``, ``bms_protect``, ...).

Profiles (``pv``, ``house``, ``ambient``): a number; a list of ``["HH:MM", value]`` points interpolated
linearly and repeated daily; ``{points: [...], hold: true}`` to hold each value until the next point; and for
``pv`` also ``{clear_sky: {peak, sunrise, sunset, clouds}}`` (clouds 0..1).

Events: ``at`` is a duration from the start. ``fault`` makes a device of io_map.yaml (its name, or an
unambiguous prefix: ``bms`` for ``bms1``) ``offline`` (no answer), ``timeout`` (answers too late) or
``garbage`` (exception responses, corrupt frames) for ``for`` (default: the rest of the run). A sensor fault
names the input ``tag`` it distorts and a ``value``: ``offset`` (+value), ``gain`` (x value), ``stuck``,
``drift`` (+value per hour), ``noise`` (sigma), ``bitflip`` (bit number of the raw register or field), e.g.
``{device: shunt, kind: offset, tag: shunt.current, value: 3}`` (see ``tools/plantsim/plant/sensors.py``). ``write`` is
a SCADA write of one or more tags: refused like the server refuses it (read-only tag, outside min..max) and
otherwise applied at the next scan's latch. ``plant`` changes plant inputs outside the controller's reach,
e.g. ``{at: 2h, plant: {ambient: -5}}`` pins the ambient from then on; ``pack_off: 2`` takes pack 2's
cable off the bus (``pack_on: 2`` puts it back).

``expect`` bounds keys of the summary: a number (exact) or ``{min, max}``. ``checks`` bound a tag's value
(``eq``, in the tag's type: true, 0, an enum name; ``min``/``max`` for numbers) at the first scan at or after
``at``, or at every scan from ``from`` to ``to``. ``battplc sim`` exits 1 when one is missed, and the test
suite runs every shipped scenario and judges them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigError, ConfigErrors, did_you_mean
from runtime.config.schema import (
    MISSING,
    Composite,
    Errors,
    Invalid,
    ListOf,
    MapOf,
    Optional,
    Required,
    Schema,
    Where,
    any_of,
    boolean,
    check,
    duration,
    int_range,
    number,
    number_range,
    one_of,
    positive_duration,
    scalar,
    string,
    tag_name,
    where_of,
)
from runtime.config.yamlloc import LocDict, LocList, load_file
from runtime.site import REPO_ROOT
from tools.plantsim import profiles
from tools.plantsim.model import PlantConfig
from tools.plantsim.plant.sensors import SENSOR_KINDS

FAULT_KINDS = ("offline", "timeout", "garbage")


# ---- small validators ----------------------------------------------------------------------------------

def start_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise Invalid(f"expected a local date and time like 2026-06-21T00:00:00, got {value!r}")


def time_of_day(value: Any) -> float:
    try:
        return profiles.clock_seconds(string(value))
    except ValueError as exc:
        raise Invalid(str(exc)) from None


class Point(Composite):
    """One ``["HH:MM", value]`` pair of a profile."""

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:
        if not isinstance(value, list) or len(value) != 2:
            errors.add(where, f'expected a pair ["HH:MM", number], got {value!r}')
            return MISSING
        tod = check(time_of_day, value[0], where, errors)
        amount = check(number, value[1], where, errors)
        return MISSING if MISSING in (tod, amount) else (tod, amount)


POINTS = ListOf(Point(), min_len=1)
CLEAR_SKY = Schema({
    Required("peak"): number_range(0, None),
    Required("sunrise"): time_of_day,
    Required("sunset"): time_of_day,
    Optional("clouds", default=0.0): number_range(0, 1),
})


class ProfileSpec(Composite):
    """A number, a list of points, ``{points, hold}`` or (PV only) ``{clear_sky: {...}}``."""

    def __init__(self, sky: bool = False) -> None:
        fields: dict[Any, Any] = {Optional("points"): POINTS, Optional("hold", default=False): boolean}
        if sky:
            fields[Optional("clear_sky")] = CLEAR_SKY
        self.mapping = Schema(fields)
        self.sky = sky

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return ("constant", float(value))
        if isinstance(value, list):
            pts = POINTS.walk(value, where, errors)
            return MISSING if pts is MISSING or MISSING in pts else ("points", pts, False)
        if isinstance(value, dict):
            spec = self.mapping.walk(value, where, errors)
            if spec is MISSING:
                return MISSING
            kinds = [k for k in ("points", "clear_sky") if k in spec]
            if len(kinds) != 1:
                errors.add(where, f"give exactly one of {' or '.join(['points', 'clear_sky'][:1 + self.sky])}")
                return MISSING
            if kinds[0] == "clear_sky":
                return MISSING if spec["clear_sky"] is MISSING else ("clear_sky", spec["clear_sky"])
            pts = spec["points"]
            return MISSING if pts is MISSING or MISSING in pts else ("points", pts, spec["hold"])
        shapes = "a number, a list of [\"HH:MM\", value] points" + (" or {clear_sky: ...}" if self.sky else "")
        errors.add(where, f"expected {shapes}, got {value!r}")
        return MISSING


def _plant_fields() -> dict[Any, Any]:
    """Every PlantConfig field by name (numbers and booleans), with the scenario's own units for a few."""
    fields: dict[Any, Any] = {}
    for f in dataclasses.fields(PlantConfig):
        if f.name in ("soc", "temperature_c", "ambient_c", "high_cell", "seed"):
            continue
        fields[Optional(f.name)] = boolean if f.type == "bool" else number
    fields[Optional("soc")] = number_range(0, 100)
    fields[Optional("temperature")] = number
    fields[Optional("ambient")] = number
    fields[Optional("high_cell")] = int_range(1, 64)
    fields[Optional("seed")] = int_range(0, 2**31)
    return fields


PLANT = Schema(_plant_fields())
FAULT = Schema({
    Required("device"): string,
    Required("kind"): one_of(*FAULT_KINDS, *SENSOR_KINDS),
    Optional("tag"): tag_name,
    Optional("value"): number,
    Optional("for"): positive_duration,
})
PLANT_EVENT = Schema({Optional("ambient"): number, Optional("pv"): number, Optional("house"): number,
                      Optional("pack_off"): int_range(1, 64), Optional("pack_on"): int_range(1, 64)})
EVENT = Schema({
    Required("at"): duration,
    Optional("fault"): FAULT,
    Optional("write"): MapOf(tag_name, scalar),
    Optional("plant"): PLANT_EVENT,
})
CHECK = Schema({
    Optional("at"): duration,
    Optional("from"): duration,
    Optional("to"): duration,
    Required("tag"): tag_name,
    Optional("eq"): scalar,
    Optional("min"): number,
    Optional("max"): number,
})
BOUND = any_of(number, Schema({Optional("min"): number, Optional("max"): number}),
               describe="a number or {min, max}")
SCENARIO = Schema({
    Optional("name"): string,
    Optional("description", default=""): string,
    Optional("start", default=datetime(2026, 6, 21)): start_time,
    Required("duration"): positive_duration,
    Optional("scan"): positive_duration,
    Optional("site"): string,
    Optional("plant", default=dict): PLANT,
    Optional("pv", default=("constant", 0.0)): ProfileSpec(sky=True),
    Optional("house", default=("constant", 300.0)): ProfileSpec(),
    Optional("ambient"): ProfileSpec(),
    Optional("events", default=list): ListOf(EVENT),
    Optional("trace_every", default=10.0): positive_duration,
    Optional("expect", default=dict): MapOf(string, BOUND),
    Optional("checks", default=list): ListOf(CHECK),
})


# ---- the loaded scenario -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    at: float
    kind: str  # "fault", "write" or "plant"
    data: Any  # fault: (device, kind, seconds or None, tag or None, value); write: {tag: value}; plant: {input: value}
    where: Where


@dataclass(frozen=True)
class Check:
    """A tag's value at a moment (``start == end``) or over every scan of a window must hold a bound."""

    start: float
    end: float
    tag: str
    eq: Any  # None, or the value (coerced to the tag's type by ``bind_site``)
    min: float | None
    max: float | None
    where: Where

    def holds(self, value: Any) -> bool:
        if self.eq is not None and value != self.eq:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        when = f"at {self.start:g} s" if self.start == self.end else f"from {self.start:g} s to {self.end:g} s"
        bounds = [f"= {self.eq!r}"] if self.eq is not None else []
        bounds += [f">= {self.min:g}"] if self.min is not None else []
        bounds += [f"<= {self.max:g}"] if self.max is not None else []
        return f"{self.tag} {' and '.join(bounds)} {when}"


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    start: datetime
    duration: float
    scan: float | None
    site: Path
    plant: PlantConfig
    specs: tuple[Any, Any, Any]  # validated pv, house, ambient profile specs
    events: list[Event] = field(default_factory=list)
    trace_every: float = 10.0
    expect: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    where: dict[str, Where] = field(default_factory=dict)  # file:line of top-level keys, for late checks
    pv: profiles.Profile = field(init=False, repr=False)  # the profiles over seconds since ``start``
    house: profiles.Profile = field(init=False, repr=False)
    ambient: profiles.Profile = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pv, self.house, self.ambient = self.profiles_at(_seconds_of_day(self.start))

    def profiles_at(self, start_tod: float) -> tuple[profiles.Profile, profiles.Profile, profiles.Profile]:
        """PV, house and ambient as functions of seconds since a start at ``start_tod`` seconds of day."""
        seed = self.plant.seed
        return tuple(_profile(spec, start_tod, seed + i) for i, spec in enumerate(self.specs))  # type: ignore[return-value]

    def check_expectations(self, summary: dict[str, Any]) -> list[str]:
        """Human lines for every ``expect`` bound the summary misses (empty when all hold)."""
        failed = []
        for key, bound in self.expect.items():
            where = self.where.get(f"expect.{key}")
            at = f"{where.file}:{where.line}: " if where else ""
            if key not in summary:
                failed.append(f"{at}expect.{key}: the summary has no {key!r}{did_you_mean(key, summary)}")
                continue
            value = summary[key]
            lo, hi = (bound, bound) if isinstance(bound, float) else (bound.get("min"), bound.get("max"))
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                want = f"= {lo:g}" if lo == hi else f"in {'' if lo is None else f'{lo:g}'}..{'' if hi is None else f'{hi:g}'}"
                failed.append(f"{at}expect.{key}: {value:g}, expected {want}")
        return failed


def _seconds_of_day(moment: datetime) -> float:
    return moment.hour * 3600.0 + moment.minute * 60.0 + moment.second


def _profile(spec: Any, start_tod: float, seed: int) -> profiles.Profile:
    if spec[0] == "constant":
        return profiles.constant(spec[1])
    if spec[0] == "points":
        return profiles.points(spec[1], start_tod, hold=spec[2])
    sky = spec[1]
    return profiles.clear_sky(sky["peak"], sky["sunrise"], sky["sunset"], start_tod, sky["clouds"], seed)


def _plant_config(spec: dict[str, Any]) -> PlantConfig:
    values = dict(spec)
    if "soc" in values:
        values["soc"] = values["soc"] / 100.0
    if "temperature" in values:
        values["temperature_c"] = values.pop("temperature")
    if "ambient" in values:
        values["ambient_c"] = values.pop("ambient")
    if "high_cell" in values:
        values["high_cell"] = values["high_cell"] - 1
    for name in ("seed", "cells_series", "packs"):
        if name in values:
            values[name] = int(values[name])
    return PlantConfig(**values)


def _key_wheres(raw: Any, root: Where) -> dict[str, Where]:
    wheres: dict[str, Where] = {}
    if isinstance(raw, LocDict):
        for key in raw:
            wheres[key] = root.child(key, raw)
        expect = raw.get("expect")
        if isinstance(expect, LocDict):
            for key in expect:
                wheres[f"expect.{key}"] = wheres["expect"].child(key, expect)
    return wheres


def _events(doc_events: list[Any], raw: Any, root: Where) -> list[Event]:
    raw_events = raw.get("events") if isinstance(raw, LocDict) else None
    events_where = root.child("events", raw)
    out = []
    for i, event in enumerate(doc_events):
        if not _complete(event):
            continue  # its errors are already reported
        where = events_where.child(i, raw_events) if isinstance(raw_events, LocList) else events_where
        kinds = [k for k in ("fault", "write", "plant") if k in event]
        if len(kinds) != 1:
            raise _EventShape(where)
        kind = kinds[0]
        if kind == "fault":
            fault = event["fault"]
            data: Any = (fault["device"], fault["kind"], fault.get("for"), fault.get("tag"), fault.get("value", 0.0))
        else:
            data = dict(event[kind])
        out.append(Event(event["at"], kind, data, where))
    return sorted(out, key=lambda e: e.at)


def _complete(value: Any) -> bool:
    """No MISSING (an already reported error) anywhere inside a validated value."""
    if value is MISSING:
        return False
    if isinstance(value, dict):
        return all(_complete(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_complete(v) for v in value)
    return True


def _checks(doc_checks: list[Any], raw: Any, root: Where, errors: Errors) -> list[Check]:
    raw_checks = raw.get("checks") if isinstance(raw, LocDict) else None
    checks_where = root.child("checks", raw)
    out = []
    for i, c in enumerate(doc_checks):
        if not _complete(c):
            continue
        where = checks_where.child(i, raw_checks) if isinstance(raw_checks, LocList) else checks_where
        if ("at" in c) == ("from" in c or "to" in c) or ("from" in c) != ("to" in c):
            errors.add(where, "a check needs either `at` or both `from` and `to`")
            continue
        if not {"eq", "min", "max"} & set(c):
            errors.add(where, "a check needs a bound: eq, min or max")
            continue
        start, end = (c["at"], c["at"]) if "at" in c else (c["from"], c["to"])
        if end < start:
            errors.add(where, f"`to` ({end:g} s) is before `from` ({start:g} s)")
            continue
        out.append(Check(start, end, c["tag"], c.get("eq"), c.get("min"), c.get("max"), where))
    return sorted(out, key=lambda c: c.start)


class _EventShape(Exception):
    def __init__(self, where: Where) -> None:
        self.where = where


def load_scenario(path: Path | str) -> Scenario:
    """Parse and validate a scenario file; raise ConfigErrors (file:line) for everything wrong in it.

    Checks that need the site (device names, tag names, the scan period) are done by ``bind_site``.
    """
    path = Path(path)
    raw = load_file(path)
    root = where_of(raw, str(path))
    errors = Errors()
    doc = SCENARIO.walk(raw, root, errors)
    if doc is MISSING:
        raise ConfigErrors(errors)
    try:
        events = _events(doc["events"], raw, root) if doc["events"] is not MISSING else []
    except _EventShape as exc:
        errors.add(exc.where, "an event needs `at` and exactly one of fault, write or plant")
        events = []
    checks = _checks(doc["checks"], raw, root, errors) if doc["checks"] is not MISSING else []
    duration_s = doc["duration"]
    if duration_s is not MISSING:
        late = [(e.where, "event", e.at) for e in events] + [(c.where, "check", c.end) for c in checks]
        for where, what, at in late:
            if at >= duration_s:
                errors.add(where, f"{what} at {at:g} s is not before the end of the run ({duration_s:g} s)")
    plant_spec = doc["plant"]
    plant = None
    if plant_spec is not MISSING and not any(v is MISSING for v in plant_spec.values()):
        try:
            plant = _plant_config(plant_spec)
        except (TypeError, ValueError) as exc:
            errors.add(root.child("plant", raw), str(exc))
        else:
            if "high_cell" in plant_spec and plant_spec["high_cell"] > plant.cells_series:
                errors.add(root.child("plant", raw),
                           f"high_cell {plant_spec['high_cell']} is not one of 1..{plant.cells_series}")
    if errors or plant is None or any(v is MISSING for v in doc.values()):
        raise ConfigErrors(errors)
    wheres = _key_wheres(raw, root)
    ambient_spec = doc.get("ambient") or ("constant", plant.ambient_c)
    site = Path(doc["site"]) if doc.get("site") else REPO_ROOT
    if not site.is_absolute():
        site = (path.parent / site).resolve()
    return Scenario(
        path=path,
        name=doc.get("name") or path.stem.replace("_", " "),
        description=doc["description"],
        start=doc["start"],
        duration=doc["duration"],
        scan=doc.get("scan"),
        site=site,
        plant=plant,
        specs=(doc["pv"], doc["house"], ambient_spec),
        events=events,
        trace_every=doc["trace_every"],
        expect=doc["expect"],
        checks=checks,
        where=wheres,
    )


def resolve_device(name: str, devices: list[str]) -> str:
    """The io_map device a fault names: exact, or the one device that starts with ``name``."""
    if name in devices:
        return name
    matches = [d for d in devices if d.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise Invalid(f"device {name!r} is ambiguous: {', '.join(matches)}")
    raise Invalid(f"no device {name!r} in io_map.yaml{did_you_mean(name, devices)}; devices: {', '.join(devices)}")


def bind_site(scenario: Scenario, devices: list[str], db: Any) -> list[Event]:
    """Events with device names resolved and written tags checked against the site, and the checks' tags
    and values bound to the site's tags (in place); ConfigErrors with file:line if anything does not fit."""
    errors: list[ConfigError] = []
    bound = []
    for event in scenario.events:
        w = event.where
        if event.kind == "fault":
            name, kind, seconds, tag, value = event.data
            try:
                name = resolve_device(name, devices)
            except Invalid as exc:
                errors.append(ConfigError(w.file, w.line, f"{w.path}.fault.device", str(exc)))
                continue
            if (kind in SENSOR_KINDS) != (tag is not None):
                errors.append(ConfigError(w.file, w.line, f"{w.path}.fault.tag",
                                          f"a {kind} fault {'needs' if kind in SENSOR_KINDS else 'takes no'} `tag`: "
                                          f"sensor faults ({', '.join(SENSOR_KINDS)}) name the tag they distort"))
                continue
            event = dataclasses.replace(event, data=(name, kind, seconds, tag, value))
        elif event.kind == "write":
            for tag, value in event.data.items():
                if tag not in db.defs:
                    errors.append(ConfigError(w.file, w.line, f"{w.path}.write",
                                              f"unknown tag {tag!r}{did_you_mean(tag, db.defs)}"))
                    continue
                try:
                    db.defs[tag].coerce(value)
                except (TypeError, ValueError) as exc:
                    errors.append(ConfigError(w.file, w.line, f"{w.path}.write.{tag}", str(exc)))
        bound.append(event)
    checks = []
    for c in scenario.checks:
        w = c.where
        if c.tag not in db.defs:
            errors.append(ConfigError(w.file, w.line, f"{w.path}.tag", f"unknown tag {c.tag!r}{did_you_mean(c.tag, db.defs)}"))
            continue
        tag = db.defs[c.tag]
        if c.eq is not None:
            try:
                c = dataclasses.replace(c, eq=tag.coerce(c.eq))
            except (TypeError, ValueError) as exc:
                errors.append(ConfigError(w.file, w.line, f"{w.path}.eq", str(exc)))
                continue
        if (c.min is not None or c.max is not None) and tag.type not in ("int", "float"):
            errors.append(ConfigError(w.file, w.line, w.path, f"min/max do not apply to {tag.type} tag {c.tag!r}; use eq"))
            continue
        checks.append(c)
    if errors:
        raise ConfigErrors(errors)
    scenario.checks = checks
    return bound
