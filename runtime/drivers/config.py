"""io_map.yaml: the devices of a site and how their registers or fields map to tags.

``load_io_map(path, db, errors)`` validates the file against tags.yaml (every error with file:line and key
path, all collected), declares the health tags of every device and sets every device input to INIT.

Reference, key by key::

    devices:                 mapping: device name -> device. The name is lower-case letters, digits and '_'
                             (it becomes part of tag names: dev.<name>.up).
      <name>:
        driver:              required. modbus_tcp | modbus_rtu | vedirect (the ``Driver`` records of
                             runtime/drivers/<file>.py, listed in ``DRIVERS`` below)

        <the driver's own keys: connection and polling; see the driver's file>

        stale_after:         an input with no fresh value for this long turns STALE, default 2.4s;
                             must be longer than poll
        backoff:             reconnect delays after a connection (TCP, serial port) fails or cannot be made
          initial:           first delay, default 1s; doubles after each failure
          max:               cap, default 30s; never longer than the poll period (1s for VE.Direct), so
                             a device that answers again is read again within two poll periods
                             (devices sharing a connection reconnect together, with the smallest values).
                             A device that stops answering on a live connection is not backed off but
                             probed: one short request per poll period, a full poll once it answers.

        inputs:              list of points read from the device; each tag may be fed by one point only
          - tag:             required. a tag of tags.yaml
            <the driver's point keys (register, field...; scale and offset): see the driver's file>
            scale:           where a driver has one: value = raw * scale + offset; not 0, finite, and fine
                             enough for the tag's min..max: at least 10 steps over the range (100 for an
                             output), and an output's whole range within its raw type (checked here for
                             every driver: ``PointRules.scale``)
            range:           [low, high]: the values a real reading can have, in the tag's unit (after
                             scale and offset), e.g. [0, 5] for a cell's volts. A reading outside is
                             implausible. Numeric tags only; optional (no check)
            max_rate:        the largest change per second a real reading can make, in the tag's unit,
                             e.g. 0.2 for a cell (V/s). Compared with the last plausible reading, and over
                             at least one poll period (a step change lands within one poll). Optional.
                             An implausible reading (range or max_rate) is not taken: the tag turns BAD
                             (value kept) and dev.<name>.errors_implausible counts it; a bit flipped on
                             the wire with the framing intact is caught this way, and never makes a tag
                             GOOD. The shipped io_map.yaml declares both for cells, temperatures,
                             currents, pack voltage and SoC.

        outputs:             list of points written to the device (drivers that take writes)
          - tag:             required. a tag of tags.yaml (any access; normally a program's output);
                             a tag is either read from or written to devices
            failsafe:        value written when the runtime stops or a program that writes the tag
                             faults; default: the tag's safe value (tags.yaml ``safe``, else its default)
            <the driver's point keys: see the driver's file>

Health tags declared for every device (read-only; a tags.yaml entry of the same name and type wins):
``dev.<name>.up`` (bool, the last poll read every block), ``dev.<name>.reachable`` (bool, the last request
got an answer, good or not: false after a timeout or a refused or lost connection, and before the first
answer), ``dev.<name>.errors`` (int, all failed
requests/frames), ``dev.<name>.errors_timeout``, ``_refused`` (connect/open failed or connection lost),
``_exception`` (Modbus exception answer), ``_decode`` (short or malformed answer, bad checksum, truncated
frame), ``dev.<name>.errors_implausible`` (readings refused by ``range``/``max_rate``; not part of
``.errors``, which counts failed requests and frames), and ``dev.<name>.last_good`` (float, seconds since the
epoch of the last good read, 0 if none). With a device that takes outputs, ``alarm.output_device_down``
(bool): a device with outputs is not reachable after a failure; the charts writing to it hold their safe step
meanwhile (runtime/sfc/load.py).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigErrors, allowed, did_you_mean
from runtime.config.schema import (
    MISSING,
    Composite,
    Errors,
    Given,
    Invalid,
    ListOf,
    MapOf,
    Optional,
    Required,
    Schema,
    Where,
    number,
    one_of,
    positive_duration,
    string,
    where_of,
)
from runtime.config.yamlloc import load_file
from runtime.drivers import modbus, vedirect
from runtime.drivers.base import DeviceConfig, Driver
from runtime.drivers.state import Plausible, health_tags, output_alarm_tag
from runtime.tags import Quality, TagDB, TagDef, TagType

# Every driver, one line per driver module: io_map.yaml's ``driver:`` picks one by name.
DRIVERS: dict[str, Driver] = {d.name: d for d in (*modbus.DRIVERS, vedirect.DRIVER)}

_DEVICE_FIELDS = frozenset(f.name for f in dataclasses.fields(DeviceConfig))
_GENERIC_KEYS = ("driver", "stale_after", "backoff", "inputs", "outputs")
INPUT_STEPS, OUTPUT_STEPS = 10, 100  # distinct raw steps a point's scale must give over its tag's min..max


# ---- small validators --------------------------------------------------------------------------------------

_DEVICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def device_name(value: Any) -> str:
    value = string(value)
    if not _DEVICE_NAME.match(value):
        raise Invalid(f"{value!r} is not a device name; use lower-case letters, digits and '_' "
                      f"(it becomes part of tag names like dev.{value.lower().replace('-', '_')}.up)")
    return value


def value_range(value: Any) -> tuple[float, float]:
    """``[low, high]``: two finite numbers, low below high."""
    if not isinstance(value, list) or len(value) != 2:
        raise Invalid(f"expected [low, high], got {value!r}")
    low, high = number(value[0]), number(value[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise Invalid(f"expected [low, high] with finite numbers and low < high, got {value!r}")
    return low, high


def rate(value: Any) -> float:
    """A positive, finite change per second."""
    value = number(value)
    if not math.isfinite(value) or value <= 0:
        raise Invalid(f"expected a positive change per second, got {value!r}")
    return value


# Keys every driver's input points take, beside its own (``Driver.input_schema``).
PLAUSIBLE_KEYS = {Optional("range"): value_range, Optional("max_rate"): rate}

# ---- schemas -----------------------------------------------------------------------------------------------

BACKOFF = Schema({
    Optional("initial", default=DeviceConfig.backoff_initial): positive_duration,
    Optional("max", default=DeviceConfig.backoff_max): positive_duration,
})


def device_schema(driver: Driver) -> Schema:
    """The common keys of every device, the driver's own keys and its point lists."""
    keys = {
        Required("driver"): one_of(*DRIVERS),
        Optional("stale_after", default=DeviceConfig.stale_after): positive_duration,
        Optional("backoff", default=lambda: {"initial": DeviceConfig.backoff_initial,
                                             "max": DeviceConfig.backoff_max}): BACKOFF,
        **driver.keys,
        Optional("inputs", default=list): ListOf(Schema({**driver.input_schema.fields, **PLAUSIBLE_KEYS})),
    }
    if driver.output_schema is not None:
        keys[Optional("outputs", default=list)] = ListOf(driver.output_schema)
    return Schema(keys)


SCHEMAS = {name: device_schema(driver) for name, driver in DRIVERS.items()}


class ByDriver(Composite):
    """A device mapping, checked against the schema of its ``driver``."""

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:
        if not isinstance(value, dict):
            errors.add(where, f"expected a mapping with a 'driver' key, got {value!r}")
            return MISSING
        if "driver" not in value:
            errors.add(where, f"missing required key 'driver'; allowed: {allowed(DRIVERS)}")
            return MISSING
        driver = value["driver"]
        if not isinstance(driver, str) or driver not in SCHEMAS:
            errors.add(where.child("driver", value),
                       f"unknown driver {driver!r}{did_you_mean(str(driver), DRIVERS)}; allowed: {allowed(DRIVERS)}")
            return MISSING
        return SCHEMAS[driver].walk(value, where, errors)


# A missing or empty `devices:` is refused: it is far more often a broken file than a site without devices.
IO_MAP = Schema({Required("devices"): Given(MapOf(device_name, ByDriver()),
                                            "write `devices: {}` for a site without devices")})


def link_key(device: DeviceConfig) -> tuple[str, ...]:
    """Devices with the same key share one connection (a TCP gateway, an RS485 bus)."""
    return DRIVERS[device.driver].link_key(device)


# ---- loading -----------------------------------------------------------------------------------------------

def load_io_map(path: Path | str, db: TagDB, errors: Errors) -> list[DeviceConfig]:
    """Validate io_map.yaml against the tags in ``db``; declare health tags; inputs start INIT."""
    path = Path(path)
    try:
        raw = load_file(path)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
        return []
    doc = IO_MAP.walk(raw, where_of(raw, str(path)), errors)
    if doc is MISSING:
        return []
    raw_devices = raw.get("devices") if isinstance(raw, dict) else None
    base = where_of(raw, str(path))
    builder = _Builder(db, errors)
    devices = []
    valid = doc.get("devices")
    for name, device in (valid if isinstance(valid, dict) else {}).items():
        if device is MISSING:
            continue
        where = base.child("devices", raw).child(name, raw_devices)
        built = builder.device(name, device, raw_devices[name], where)
        if built is not None:
            devices.append(built)
    builder.check_outputs_are_not_inputs()
    if any(device.outputs for device in devices):
        try:
            db.ensure(output_alarm_tag())
        except ValueError as exc:
            errors.add(base, str(exc))
    for device in devices:
        for tag in health_tags(device.name):
            try:
                db.ensure(tag)
            except ValueError as exc:
                errors.add(Where(device.file, device.line, f"devices.{device.name}"), str(exc))
        for point in device.inputs:
            db.quality[point.tag] = Quality.INIT
    return devices


class PointRules:
    """What a driver's point builder gets: the point's place, its tag, and the generic checks it may call."""

    def __init__(self, errors: Errors, tag: TagDef, where: Where, raw: Any) -> None:
        self.errors = errors
        self.tag = tag
        self.where = where
        self.raw = raw

    def error(self, key: str | None, message: str) -> None:
        """Report at the point's line, or at its ``key``."""
        self.errors.add(self.where.child(key, self.raw) if key else self.where, message)

    def scale(self, scale: float, offset: float, output: bool, raw_range: tuple[float, float] | None = None) -> bool:
        """value = raw * scale + offset: not 0, finite, fine enough for the tag's min..max, and (for an output
        with ``raw_range``, the raw values its type holds) the whole min..max encodable."""
        if scale == 0:
            self.error("scale", "scale 0 would turn every value into the offset")
            return False
        if not math.isfinite(scale) or not math.isfinite(offset):
            self.error("scale" if not math.isfinite(scale) else "offset",
                       f"scale and offset must be finite numbers, got scale {scale} and offset {offset}")
            return False
        tag = self.tag
        if tag.type not in (TagType.INT, TagType.FLOAT) or tag.min is None or tag.max is None or tag.max <= tag.min:
            return True
        span, unit = tag.max - tag.min, f" {tag.unit}" if tag.unit else ""
        steps = OUTPUT_STEPS if output else INPUT_STEPS
        finest = 1.0 if tag.type == TagType.INT else 0.0  # an int tag needs no step finer than 1
        if abs(scale) > max(span / steps, finest):
            hint = 10 ** math.floor(math.log10(span / steps))
            self.error("scale", f"scale {scale:g} cannot represent tag {tag.name!r} ({tag.min:g}..{tag.max:g}{unit}): "
                                f"value = raw x scale, so one raw step is {abs(scale):g}{unit}, fewer than {steps} "
                                f"steps over the range (e.g. {(tag.min + tag.max) / 2:g}{unit} is raw "
                                f"{(tag.min + tag.max) / 2 / scale:g}); use scale {hint:g} or finer")
            return False
        if output and raw_range is not None:
            lo, hi = sorted(((tag.min - offset) / scale, (tag.max - offset) / scale))
            if round(lo) < raw_range[0] or round(hi) > raw_range[1]:
                self.error("scale", f"tag {tag.name!r} ({tag.min:g}..{tag.max:g}{unit}) encodes to raw {lo:g}..{hi:g} "
                                    f"with scale {scale:g}, outside the type's {raw_range[0]:g}..{raw_range[1]:g}; "
                                    f"use a coarser scale or a wider type")
                return False
        return True


class _Builder:
    """Turns validated device dicts into DeviceConfigs, applying the generic cross-field rules (one method each);
    the point rules of each driver are its ``input_point`` / ``output_point``."""

    def __init__(self, db: TagDB, errors: Errors) -> None:
        self.db = db
        self.errors = errors
        self.fed: dict[str, str] = {}  # input tag -> "device at file:line" of the point feeding it
        self.written: dict[str, Where] = {}  # output tag -> where
        self.links: dict[tuple[str, ...], DeviceConfig] = {}  # first device on each connection

    def device(self, name: str, doc: dict, raw: Any, where: Where) -> DeviceConfig | None:
        before = len(self.errors)
        driver = DRIVERS[doc["driver"]]
        inputs = [self.input(driver, name, p, where.child("inputs", raw).child(i, raw.get("inputs")),
                             raw["inputs"][i])
                  for i, p in enumerate(_valid(doc.get("inputs"))) if p is not None]
        plausible = {p["tag"]: Plausible(*p.get("range", (-math.inf, math.inf)), p.get("max_rate"))
                     for p in _valid(doc.get("inputs")) if p is not None and ("range" in p or "max_rate" in p)}
        outputs = [self.output(driver, p, where.child("outputs", raw).child(i, raw.get("outputs")),
                               raw["outputs"][i])
                   for i, p in enumerate(_valid(doc.get("outputs"))) if p is not None]
        if not doc.get("inputs") and not doc.get("outputs"):
            self.errors.add(where, "a device needs at least one input or output point")
        backoff = doc.get("backoff")
        if _complete(backoff) and backoff["initial"] > backoff["max"]:
            self.errors.add(where.child("backoff", raw), f"backoff initial {backoff['initial']:g}s is longer "
                                                         f"than max {backoff['max']:g}s")
        stale, poll = doc.get("stale_after"), doc.get("poll")
        if isinstance(stale, float) and isinstance(poll, float) and stale <= poll:
            self.errors.add(where.child("stale_after" if "stale_after" in raw else "poll", raw),
                            f"stale_after {stale:g}s must be longer than poll {poll:g}s, or "
                            f"every input would turn STALE between two polls")
        if len(self.errors) != before or not _complete(doc) or not _complete(backoff):
            return None
        own = {key: value for key, value in doc.items() if key not in _GENERIC_KEYS}
        device = DeviceConfig(
            name=name, driver=driver.name, stale_after=doc["stale_after"], backoff_initial=backoff["initial"],
            backoff_max=backoff["max"], inputs=tuple(p for p in inputs if p is not None),
            outputs=tuple(p for p in outputs if p is not None), plausible=plausible, file=where.file,
            line=where.line,
            options={key: value for key, value in own.items() if key not in _DEVICE_FIELDS},
            **{key: value for key, value in own.items() if key in _DEVICE_FIELDS},
        )
        return device if self.shared_link(device, raw, where) else None

    def shared_link(self, device: DeviceConfig, raw: Any, where: Where) -> bool:
        """Devices on one connection share it: a port of a driver that talks alone carries one device, and
        the devices of one serial bus agree on its line settings."""
        key = link_key(device)
        other = self.links.setdefault(key, device)
        if other is device:
            return True
        lonely = next((DRIVERS[d.driver] for d in (device, other) if not DRIVERS[d.driver].shares_link), None)
        if lonely is not None:
            self.errors.add(where.child("port", raw), f"port {device.port} is already used by device "
                                                      f"{other.name!r} ({other.where}); a {lonely.title} port "
                                                      f"carries one device")
            return False
        line = (device.baud, device.parity, device.stopbits)
        if line != (other.baud, other.parity, other.stopbits):
            key_name = next((k for k in ("baud", "parity", "stopbits") if k in raw), "port")
            self.errors.add(where.child(key_name, raw), f"serial port {device.port} is shared with device "
                                                        f"{other.name!r} ({other.where}) at {other.baud} "
                                                        f"{other.parity} {other.stopbits}; devices on one bus "
                                                        f"must agree on baud, parity and stopbits")
            return False
        return True

    def tag(self, name: str, where: Where) -> bool:
        if name in self.db.defs:
            return True
        self.errors.add(where, f"unknown tag {name!r}{did_you_mean(name, self.db.defs)}; "
                               f"declare it in tags.yaml")
        return False

    def input(self, driver: Driver, device: str, p: dict, where: Where, raw: Any) -> Any:
        tag_where = where.child("tag", raw)
        if not self.tag(p["tag"], tag_where):
            return None
        first = self.fed.get(p["tag"])
        if first is not None:
            self.errors.add(tag_where, f"tag {p['tag']!r} is already fed by {first}; "
                                       f"an input tag may be fed by one device point only")
            return None
        self.fed[p["tag"]] = f"device {device!r} at {where.file}:{where.line}"
        tag = self.db.defs[p["tag"]]
        if ("range" in p or "max_rate" in p) and tag.type not in (TagType.INT, TagType.FLOAT):
            key = "range" if "range" in p else "max_rate"
            self.errors.add(where.child(key, raw), f"{key} is for numeric tags; {tag.name!r} is {tag.type}")
            return None
        return driver.input_point(p, PointRules(self.errors, tag, where, raw))

    def output(self, driver: Driver, p: dict, where: Where, raw: Any) -> Any:
        tag_where = where.child("tag", raw)
        if not self.tag(p["tag"], tag_where):
            return None
        self.written.setdefault(p["tag"], tag_where)
        assert driver.output_point is not None  # its schema has no outputs key otherwise
        point = driver.output_point(p, PointRules(self.errors, self.db.defs[p["tag"]], where, raw))
        failsafe = p.get("failsafe")
        if failsafe is not None and not self.failsafe(p["tag"], failsafe, where.child("failsafe", raw)):
            return None
        return point

    def failsafe(self, tag: str, value: Any, where: Where) -> bool:
        tag_def = self.db.defs[tag]
        try:
            coerced = tag_def.coerce(value)
        except (TypeError, ValueError) as exc:
            self.errors.add(where, f"failsafe {value!r} does not fit tag {tag!r}: {exc}")
            return False
        if not tag_def.in_range(coerced):
            self.errors.add(where, f"failsafe {value!r} is outside the tag's min..max "
                                   f"({tag_def.min if tag_def.min is not None else ''}.."
                                   f"{tag_def.max if tag_def.max is not None else ''})")
            return False
        return True

    def check_outputs_are_not_inputs(self) -> None:
        for tag, where in self.written.items():
            if tag in self.fed:
                self.errors.add(where, f"tag {tag!r} is written to a device but also fed by {self.fed[tag]}; "
                                       f"a tag is either read from or written to devices")


def _complete(doc: Any) -> bool:
    """A validated mapping without invalid (MISSING) values."""
    return isinstance(doc, dict) and not any(v is MISSING for v in doc.values())


def _valid(items: Any) -> list[dict | None]:
    """Validated points, None in place of those with errors (so indexes still match the raw list)."""
    if not isinstance(items, list):
        return []
    return [item if _complete(item) else None for item in items]
