"""Home Assistant MQTT discovery: which entity each public tag becomes, decided by type, access, unit and name.

Nothing is declared per tag: a new tag (an energy counter, an alarm) gets its entity from these rules.

    ro bool                      binary_sensor (alarm.* -> device_class problem, *.enable -> running)
    writable bool cmd.* / *ack   button (a pulse: pressing it writes 1)
    writable enum cmd.* with all button writing "all" (cmd.alarm_ack: acknowledge every alarm)
    other writable bool          switch
    ro enum                      sensor, device_class enum with the options
    writable enum                select (cmd.mode)
    ro number                    sensor with unit, device_class by unit, state_class measurement; an energy
                                 counter (Wh/kWh, retained or named like *_charged, *_import, *_total,
                                 *energy*) and a retained event count are total_increasing
    writable number              number with min/max/step (step = one register count)

"Writable" is the Modbus server's whitelist: an rw tag with a register. Config topics follow FACTS:
``<discovery_prefix>/<component>/<node_id>/<object_id>/config``; an empty retained config removes an entity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from runtime.server.regmap import Point
from runtime.tags import TagDef, TagType

HA_UNITS = {"degC": "°C", "ohm": "Ω", "mohm": "mΩ", "day": "d", "count": ""}
UNIT_CLASS = {"V": "voltage", "mV": "voltage", "A": "current", "mA": "current", "W": "power", "kW": "power",
              "degC": "temperature", "Hz": "frequency", "s": "duration", "ms": "duration", "min": "duration",
              "h": "duration", "day": "duration"}
ENERGY_UNITS = ("Wh", "kWh")
# Last name part of a lifetime energy counter ("energy.charged_kwh", "grid.import_total", "pv.energy").
COUNTER_NAME = re.compile(r"(^|_)(energy|charged|discharged|charge|discharge|import|export|imported|exported|"
                          r"in|out|total|produced|consumed)(_k?wh)?$")
BUTTON_NAME = re.compile(r"(^cmd\.|(^|[._])ack(nowledge)?(_all)?$)")
_OBJECT = re.compile(r"[^a-zA-Z0-9_-]+")
FLOAT_LIMIT = 1e9  # HA number min/max for a float32 register without tag limits


@dataclass(frozen=True)
class Entity:
    """One discovery config: where it goes and what it says."""

    component: str
    object_id: str
    config: dict[str, Any]

    def topic(self, discovery_prefix: str, node_id: str) -> str:
        return f"{discovery_prefix}/{self.component}/{node_id}/{self.object_id}/config"


@dataclass(frozen=True)
class Topics:
    """The topics of one site under its prefix."""

    prefix: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def result(self) -> str:
        return f"{self.prefix}/result"

    def state(self, tag: str) -> str:
        return f"{self.prefix}/state/{tag}"

    def quality(self, tag: str) -> str:
        return f"{self.prefix}/quality/{tag}"

    def command(self, tag: str) -> str:
        return f"{self.prefix}/set/{tag}"

    @property
    def commands(self) -> str:
        return f"{self.prefix}/set/+"


def node_id(site_name: str) -> str:
    return _OBJECT.sub("_", site_name)


def object_id(tag: str) -> str:
    return _OBJECT.sub("_", tag.replace(".", "_"))


def device(site_name: str, description: str, version: str) -> dict[str, Any]:
    """The one HA device all of a site's entities belong to."""
    return {"identifiers": [f"battplc_{node_id(site_name)}"], "name": f"battplc {site_name}",
            "manufacturer": "battplc", "model": description or "soft PLC", "sw_version": version}


def is_energy_counter(tag: TagDef) -> bool:
    """A lifetime energy counter (HA energy dashboard): Wh/kWh, read-only, retained or named like one."""
    last = tag.name.rsplit(".", 1)[-1]
    return tag.unit in ENERGY_UNITS and tag.access == "ro" and (tag.retain or bool(COUNTER_NAME.search(last)))


def is_event_counter(tag: TagDef) -> bool:
    """A retained read-only count of events (interlock.trips): only grows, as Prometheus counters."""
    return tag.type == TagType.INT and tag.unit == "count" and tag.access == "ro" and tag.retain


def entity(tag: TagDef, point: Point | None, topics: Topics, dev: dict[str, Any]) -> Entity:
    """The entity of a public tag; ``point`` is its register when the tag is writable (else None)."""
    base: dict[str, Any] = {
        "name": tag.name,
        "unique_id": f"{dev['identifiers'][0]}_{object_id(tag.name)}",
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": dev,
    }
    if tag.name.startswith("par."):
        base["entity_category"] = "config"
    elif tag.name.startswith(("scan.", "dev.", "prog.")):
        base["entity_category"] = "diagnostic"
    state = {"state_topic": topics.state(tag.name)}
    command = {"command_topic": topics.command(tag.name)}
    component, extra = _kind(tag, point, state, command)
    return Entity(component, object_id(tag.name), {**base, **extra})


def _kind(tag: TagDef, point: Point | None, state: dict[str, str], command: dict[str, str]) \
        -> tuple[str, dict[str, Any]]:
    writable = point is not None
    if tag.type == TagType.BOOL:
        if writable and BUTTON_NAME.search(tag.name):
            return "button", {**command, "payload_press": "1"}
        onoff = {"payload_on": "1", "payload_off": "0"}
        if writable:
            return "switch", {**state, **command, **onoff, "state_on": "1", "state_off": "0"}
        return "binary_sensor", {**state, **onoff, **_bool_class(tag)}
    if tag.type == TagType.ENUM:
        if writable and BUTTON_NAME.search(tag.name) and "all" in tag.values:
            return "button", {**command, "payload_press": "all"}  # cmd.alarm_ack: acknowledge every alarm
        if writable:
            return "select", {**state, **command, "options": list(tag.values)}
        return "sensor", {**state, "device_class": "enum", "options": list(tag.values)}
    measured = {**state, **unit_fields(tag)}
    if writable:
        assert point is not None
        low, high = _limits(tag, point)
        return "number", {**measured, **command, "min": low, "max": high, "step": resolution(point),
                          "mode": "box"}
    return "sensor", {**measured, "state_class": "total_increasing"
                      if is_energy_counter(tag) or is_event_counter(tag) else "measurement"}


def _bool_class(tag: TagDef) -> dict[str, str]:
    if tag.name.startswith("alarm."):
        return {"device_class": "problem"}
    if tag.name.endswith(".enable"):
        return {"device_class": "running"}
    return {}


def unit_fields(tag: TagDef) -> dict[str, str]:
    out = {}
    unit = HA_UNITS.get(tag.unit, tag.unit)
    if unit:
        out["unit_of_measurement"] = unit
    if tag.unit in ENERGY_UNITS:
        out["device_class"] = "energy" if is_energy_counter(tag) else "energy_storage"
    elif tag.unit == "%" and tag.name.rsplit(".", 1)[-1].endswith("soc"):
        out["device_class"] = "battery"
    elif tag.unit in UNIT_CLASS:
        out["device_class"] = UNIT_CLASS[tag.unit]
    return out


def resolution(point: Point) -> float:
    """The value of one raw count of a register (the finest step a write can land); 1 for whole numbers."""
    if point.tag.type != TagType.FLOAT:
        return 1
    if point.dtype == "float32":
        return 0.001
    return abs(point.decode((1).to_bytes(2 * point.width, "big")))


def _limits(tag: TagDef, point: Point) -> tuple[float, float]:
    """min/max of a number entity: the tag's limits, else what its register can hold."""
    if point.dtype == "float32":
        raw_low, raw_high = -FLOAT_LIMIT, FLOAT_LIMIT
    else:
        bits = 16 * point.width
        signed = point.dtype.startswith("int")
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        raw_low, raw_high = (_decoded(point, lo, signed), _decoded(point, hi, signed))
    low = tag.min if tag.min is not None else min(raw_low, raw_high)
    high = tag.max if tag.max is not None else max(raw_low, raw_high)
    return low, high


def _decoded(point: Point, raw: int, signed: bool) -> float:
    try:
        return float(point.decode(raw.to_bytes(2 * point.width, "big", signed=signed)))
    except ValueError:  # a whole-number tag whose scale makes this raw value fractional
        return float(raw)
