"""io_map.yaml: the devices of a site and how their registers or fields map to tags.

``load_io_map(path, db, errors)`` validates the file against tags.yaml (every error with file:line and key
path, all collected), declares the health tags of every device and sets every device input to INIT.

Reference, key by key::

    devices:                 mapping: device name -> device. The name is lower-case letters, digits and '_'
                             (it becomes part of tag names: dev.<name>.up).
      <name>:
        driver:              required. modbus_tcp | modbus_rtu | vedirect (picks runtime/drivers/<file>.py)

        # connection, modbus_tcp
        host:                required. IP address or host name of the device or gateway
        port:                TCP port, default 502. Devices with the same host and port share one
                             connection (a gateway with several unit ids); its requests are serialized.
        # connection, modbus_rtu and vedirect
        port:                required. serial device, e.g. /dev/ttyUSB0 (several modbus_rtu devices may
                             share a port: one RS485 bus; they must agree on baud, parity, stopbits)
        baud:                bits per second, default 9600 (modbus_rtu) or 19200 (vedirect)
        parity:              N | E | O, default N (8 data bits always)
        stopbits:            1 | 2, default 1

        # Modbus polling (modbus_tcp, modbus_rtu)
        unit:                unit id (slave id), default 1; 0..255 on TCP, 1..247 on RTU
        poll:                poll period, default 1s (a duration: 100ms, 1s, 2.5s)
        timeout:             answer timeout per request, default 1s
        retries:             extra attempts after a timeout, default 1 (exception answers are not retried)
        max_gap:             merge points of one table into one request when at most this many unused
                             registers (bits for coil/discrete) lie between them, default 8; 0 merges only
                             contiguous points. A request never exceeds 125 registers or 2000 bits.
        # all drivers
        stale_after:         an input with no fresh value for this long turns STALE, default 2.4s;
                             must be longer than poll
        timeout (vedirect):  no valid frame for this long counts a timeout and turns the inputs BAD,
                             default 3s (a SmartShunt sends a block every second)
        backoff:             reconnect delays after a device or connection fails
          initial:           first delay, default 1s; doubles after each failure
          max:               cap, default 30s
                             (devices sharing a connection reconnect together, with the smallest values)

        inputs:              list of points read from the device; each tag may be fed by one point only
          - tag:             required. a tag of tags.yaml
            # Modbus
            table:           holding | input | coil | discrete, default holding
            address:         required. 0..65535, as sent on the wire (register 40001 is holding 0)
            type:            int16 | uint16 | int32 | uint32 | float32 | bit; default uint16, and bit for
                             coil/discrete (the only type there)
            bit:             0..15, with type bit on a holding/input register: that bit of the register
            word_order:      big | little, for 32-bit types: big = high word first (default)
            scale:           value = raw * scale + offset, default 1 (a calibration factor is a scale)
            offset:          default 0
            # VE.Direct
            field:           required. V VS VM DM I P CE SOC TTG T Alarm Relay AR H1..H18
            scale:           default converts to the field's natural unit: V/VS/VM/H7/H8/H15/H16 mV -> V,
                             I mA -> A, CE/H1/H2/H3/H6 mAh -> Ah, SOC/DM permille -> %, H17/H18 -> kWh;
                             1 for the rest. Alarm and Relay are ON/OFF -> true/false (no scale).
            offset:          default 0

        outputs:             list of points written to the device (Modbus only)
          - tag:             required. a tag of tags.yaml (any access; normally a program's output)
            table:           holding | coil, default holding
            address:         required. 0..65535
            type:            int16 | uint16 | int32 | uint32 | float32 for holding (default uint16);
                             bit for coil (the default there)
            word_order:      big | little, for 32-bit types
            scale, offset:   raw = (value - offset) / scale, rounded and clamped to the type
            lookup:          instead of scale/offset: [[value, raw], ...] with increasing values; raw is
                             interpolated linearly between pairs and held flat outside (e.g. a PWM duty
                             for a charger module's voltage setpoint)
            write:           on_change (default): written when the scan commits a new value, and with
                             the image's value at start and after every reconnect; cyclic: also rewritten
                             at every poll (for devices that drop a setpoint that is not refreshed).
                             A write counts once the device confirms it; an unanswered one is retried.
            failsafe:        value written when the runtime stops or a program that writes the tag
                             faults; default: the tag's safe value (tags.yaml ``safe``, else its default)

Health tags declared for every device (read-only; a tags.yaml entry of the same name and type wins):
``dev.<name>.up`` (bool, the last poll read every block), ``dev.<name>.errors`` (int, all failed
requests/frames), ``dev.<name>.errors_timeout``, ``_refused`` (connect/open failed or connection lost),
``_exception`` (Modbus exception answer), ``_decode`` (short or malformed answer, bad checksum, truncated
frame), and ``dev.<name>.last_good`` (float, seconds since the epoch of the last good read, 0 if none).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigErrors, allowed, did_you_mean
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
    host,
    int_range,
    number,
    one_of,
    port,
    positive_duration,
    string,
    tag_name,
    where_of,
)
from runtime.config.yamlloc import load_file
from runtime.drivers.base import DeviceConfig, health_tags
from runtime.drivers.codec import BIT_TABLES, WIDTH, InputPoint, OutputPoint, fits
from runtime.drivers.vedirect import FIELDS, ONOFF_FIELDS
from runtime.tags import Quality, TagDB

# driver name -> module holding its make_links(); adding a driver adds a line here and a schema below.
DRIVERS = {
    "modbus_tcp": "runtime.drivers.modbus",
    "modbus_rtu": "runtime.drivers.modbus",
    "vedirect": "runtime.drivers.vedirect",
}
INPUT_TABLES = ("holding", "input", "coil", "discrete")
OUTPUT_TABLES = ("holding", "coil")
TYPES = tuple(WIDTH)
WORD_ORDERS = ("big", "little")
DEFAULT_STALE_AFTER = 2.4  # seed 002's staleness limit


# ---- small validators --------------------------------------------------------------------------------------

_DEVICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def device_name(value: Any) -> str:
    value = string(value)
    if not _DEVICE_NAME.match(value):
        raise Invalid(f"{value!r} is not a device name; use lower-case letters, digits and '_' "
                      f"(it becomes part of tag names like dev.{value.lower().replace('-', '_')}.up)")
    return value


def baud(value: Any) -> int:
    return int_range(300, 4_000_000)(value)


def stopbits(value: Any) -> int:
    if value not in (1, 2) or isinstance(value, bool):
        raise Invalid(f"{value!r} is not allowed; allowed: 1, 2")
    return value


def pair(value: Any) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise Invalid(f"expected a [value, raw] pair, got {value!r}")
    return number(value[0]), number(value[1])


def failsafe_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    raise Invalid(f"expected a boolean, number or enum name, got {value!r}")


# ---- schemas -----------------------------------------------------------------------------------------------

BACKOFF = Schema({
    Optional("initial", default=1.0): positive_duration,
    Optional("max", default=30.0): positive_duration,
})

_MODBUS_POINT = {
    Required("tag"): tag_name,
    Required("address"): int_range(0, 65535),
    Optional("type"): one_of(*TYPES),
    Optional("word_order"): one_of(*WORD_ORDERS),
    Optional("scale"): number,
    Optional("offset"): number,
}

MODBUS_INPUT = Schema({
    **_MODBUS_POINT,
    Optional("table", default="holding"): one_of(*INPUT_TABLES),
    Optional("bit"): int_range(0, 15),
})

MODBUS_OUTPUT = Schema({
    **_MODBUS_POINT,
    Optional("table", default="holding"): one_of(*OUTPUT_TABLES),
    Optional("write", default="on_change"): one_of("on_change", "cyclic"),
    Optional("failsafe"): failsafe_value,
    Optional("lookup"): ListOf(pair, min_len=2),
})

VEDIRECT_INPUT = Schema({
    Required("tag"): tag_name,
    Required("field"): one_of(*FIELDS),
    Optional("scale"): number,
    Optional("offset"): number,
})

_COMMON = {
    Required("driver"): one_of(*DRIVERS),
    Optional("stale_after", default=DEFAULT_STALE_AFTER): positive_duration,
    Optional("backoff", default=lambda: {"initial": 1.0, "max": 30.0}): BACKOFF,
}

_MODBUS = {
    **_COMMON,
    Optional("poll", default=1.0): positive_duration,
    Optional("timeout", default=1.0): positive_duration,
    Optional("retries", default=1): int_range(0, 10),
    Optional("max_gap", default=8): int_range(0, 124),
    Optional("inputs", default=list): ListOf(MODBUS_INPUT),
    Optional("outputs", default=list): ListOf(MODBUS_OUTPUT),
}

_SERIAL = {
    Required("port"): string,
    Optional("parity", default="N"): one_of("N", "E", "O"),
    Optional("stopbits", default=1): stopbits,
}

SCHEMAS = {
    "modbus_tcp": Schema({
        **_MODBUS,
        Required("host"): host,
        Optional("port", default=502): port,
        Optional("unit", default=1): int_range(0, 255),
    }),
    "modbus_rtu": Schema({
        **_MODBUS,
        **_SERIAL,
        Optional("baud", default=9600): baud,
        Optional("unit", default=1): int_range(1, 247),
    }),
    "vedirect": Schema({
        **_COMMON,
        **_SERIAL,
        Optional("baud", default=19200): baud,
        Optional("timeout", default=3.0): positive_duration,
        Optional("inputs", default=list): ListOf(VEDIRECT_INPUT),
    }),
}


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
        if driver not in SCHEMAS:
            errors.add(where.child("driver", value),
                       f"unknown driver {driver!r}{did_you_mean(str(driver), DRIVERS)}; allowed: {allowed(DRIVERS)}")
            return MISSING
        return SCHEMAS[driver].walk(value, where, errors)


IO_MAP = Schema({Optional("devices", default=dict): MapOf(device_name, ByDriver())})


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
    for name, device in (doc.get("devices") or {}).items():
        if device is MISSING:
            continue
        where = base.child("devices", raw).child(name, raw_devices)
        built = builder.device(name, device, raw_devices[name], where)
        if built is not None:
            devices.append(built)
    builder.check_outputs_are_not_inputs()
    for device in devices:
        for tag in health_tags(device.name):
            try:
                db.ensure(tag)
            except ValueError as exc:
                errors.add(Where(device.file, device.line, f"devices.{device.name}"), str(exc))
        for point in device.inputs:
            db.quality[point.tag] = Quality.INIT
    return devices


class _Builder:
    """Turns validated device dicts into DeviceConfigs, applying the cross-field rules (one method each)."""

    def __init__(self, db: TagDB, errors: Errors) -> None:
        self.db = db
        self.errors = errors
        self.fed: dict[str, str] = {}  # input tag -> "device at file:line" of the point feeding it
        self.written: dict[str, Where] = {}  # output tag -> where
        self.serial: dict[tuple[str, ...], DeviceConfig] = {}  # first device on each serial port

    def device(self, name: str, doc: dict, raw: Any, where: Where) -> DeviceConfig | None:
        before = len(self.errors)
        driver = doc["driver"]
        inputs = [self.input(driver, name, p, where.child("inputs", raw).child(i, raw.get("inputs")),
                             raw["inputs"][i])
                  for i, p in enumerate(_valid(doc.get("inputs"))) if p is not None]
        outputs = [self.output(p, where.child("outputs", raw).child(i, raw.get("outputs")), raw["outputs"][i])
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
        device = DeviceConfig(
            name=name, driver=driver, host=doc.get("host", ""), port=doc["port"], baud=doc.get("baud", 9600),
            parity=doc.get("parity", "N"), stopbits=doc.get("stopbits", 1), unit=doc.get("unit", 1),
            poll=doc.get("poll", 1.0), timeout=doc["timeout"], retries=doc.get("retries", 0),
            stale_after=doc["stale_after"], backoff_initial=backoff["initial"], backoff_max=backoff["max"],
            max_gap=doc.get("max_gap", 8), inputs=tuple(p for p in inputs if p is not None),
            outputs=tuple(p for p in outputs if p is not None), file=where.file, line=where.line,
        )
        return device if self.shared_port(device, raw, where) else None

    def shared_port(self, device: DeviceConfig, raw: Any, where: Where) -> bool:
        """Devices on one serial port share a bus: one line setting; VE.Direct talks alone."""
        if device.link_key[0] != "serial":
            return True
        other = self.serial.setdefault(device.link_key, device)
        if other is device:
            return True
        if "vedirect" in (device.driver, other.driver):
            self.errors.add(where.child("port", raw), f"serial port {device.port} is already used by device "
                                                      f"{other.name!r} ({other.where}); a VE.Direct port carries "
                                                      f"one device")
            return False
        line = (device.baud, device.parity, device.stopbits)
        if line != (other.baud, other.parity, other.stopbits):
            key = next((k for k in ("baud", "parity", "stopbits") if k in raw), "port")
            self.errors.add(where.child(key, raw), f"serial port {device.port} is shared with device "
                                                   f"{other.name!r} ({other.where}) at {other.baud} {other.parity} "
                                                   f"{other.stopbits}; devices on one bus must agree on baud, "
                                                   f"parity and stopbits")
            return False
        return True

    def tag(self, name: str, where: Where) -> bool:
        if name in self.db.defs:
            return True
        self.errors.add(where, f"unknown tag {name!r}{did_you_mean(name, self.db.defs)}; "
                               f"declare it in tags.yaml")
        return False

    def input(self, driver: str, device: str, p: dict, where: Where, raw: Any) -> InputPoint | None:
        tag_where = where.child("tag", raw)
        if not self.tag(p["tag"], tag_where):
            return None
        first = self.fed.get(p["tag"])
        if first is not None:
            self.errors.add(tag_where, f"tag {p['tag']!r} is already fed by {first}; "
                                       f"an input tag may be fed by one device point only")
            return None
        self.fed[p["tag"]] = f"device {device!r} at {where.file}:{where.line}"
        if driver == "vedirect":
            return self.vedirect_input(p, where, raw)
        return self.modbus_input(p, where, raw)

    def vedirect_input(self, p: dict, where: Where, raw: Any) -> InputPoint | None:
        field = p["field"]
        if field in ONOFF_FIELDS and ("scale" in p or "offset" in p):
            self.errors.add(where, f"field {field} is ON/OFF (true/false); it takes no scale or offset")
            return None
        scale = p.get("scale", FIELDS[field])
        if not self.nonzero_scale(scale, where, raw):
            return None
        return InputPoint(p["tag"], table="", field=field, scale=scale, offset=p.get("offset", 0.0),
                          line=where.line)

    def modbus_input(self, p: dict, where: Where, raw: Any) -> InputPoint | None:
        table = p["table"]
        type_ = p.get("type") or ("bit" if table in BIT_TABLES else "uint16")
        ok = self.point_type(p, type_, table, where, raw) and self.nonzero_scale(p.get("scale", 1.0), where, raw)
        if type_ == "bit":
            ok = self.bit(p, table, where, raw) and ok
        elif "bit" in p:
            self.errors.add(where.child("bit", raw), f"'bit' is only for type bit, this point is {type_}")
            ok = False
        if not ok:
            return None
        return InputPoint(p["tag"], table, p["address"], type_, p.get("bit"), p.get("word_order", "big"),
                          p.get("scale", 1.0), p.get("offset", 0.0), line=where.line)

    def point_type(self, p: dict, type_: str, table: str, where: Where, raw: Any) -> bool:
        """Type against table, 32-bit-only keys, bits without scale, and the address range."""
        ok = True
        if table in BIT_TABLES and type_ != "bit":
            self.errors.add(where.child("type", raw), f"a {table} is a single bit: use type bit, not {type_}")
            ok = False
        if "word_order" in p and WIDTH[type_] != 2:
            self.errors.add(where.child("word_order", raw), f"word_order applies to 32-bit types only, "
                                                            f"this point is {type_}")
            ok = False
        if type_ == "bit" and ("scale" in p or "offset" in p):
            self.errors.add(where, "a bit has no scale or offset")
            ok = False
        last = p["address"] + WIDTH[type_] - 1
        if last > 65535:
            self.errors.add(where.child("address", raw), f"a {type_} at address {p['address']} runs past "
                                                         f"65535 (it needs {WIDTH[type_]} registers)")
            ok = False
        return ok

    def bit(self, p: dict, table: str, where: Where, raw: Any) -> bool:
        if table in BIT_TABLES and "bit" in p:
            self.errors.add(where.child("bit", raw), f"'bit' selects a bit of a register; a {table} is "
                                                     f"already one bit, drop it")
            return False
        if table not in BIT_TABLES and "bit" not in p:
            self.errors.add(where.child("type", raw), "type bit on a register needs 'bit: 0..15'")
            return False
        return True

    def nonzero_scale(self, scale: float, where: Where, raw: Any) -> bool:
        if scale == 0:
            self.errors.add(where.child("scale", raw), "scale 0 would turn every value into the offset")
            return False
        return True

    def output(self, p: dict, where: Where, raw: Any) -> OutputPoint | None:
        tag_where = where.child("tag", raw)
        if not self.tag(p["tag"], tag_where):
            return None
        self.written.setdefault(p["tag"], tag_where)
        table = p["table"]
        type_ = p.get("type") or ("bit" if table == "coil" else "uint16")
        ok = self.point_type(p, type_, table, where, raw) and self.nonzero_scale(p.get("scale", 1.0), where, raw)
        if table == "holding" and type_ == "bit":
            self.errors.add(where.child("type", raw), "a single bit is written to a coil; write a holding "
                                                      "register as a whole (int16/uint16/...)")
            ok = False
        lookup = tuple(p.get("lookup") or ())
        if lookup:
            ok = self.lookup(lookup, type_, p, where, raw) and ok
        failsafe = p.get("failsafe")
        if failsafe is not None:
            ok = self.failsafe(p["tag"], failsafe, where.child("failsafe", raw)) and ok
        if not ok:
            return None
        return OutputPoint(p["tag"], table, p["address"], type_, p.get("word_order", "big"), p.get("scale", 1.0),
                           p.get("offset", 0.0), p["write"], failsafe, lookup, line=where.line)

    def lookup(self, lookup: tuple[tuple[float, float], ...], type_: str, p: dict, where: Where, raw: Any) -> bool:
        at = where.child("lookup", raw)
        if "scale" in p or "offset" in p:
            self.errors.add(at, "use either lookup or scale/offset, not both")
            return False
        values = [v for v, _ in lookup]
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            self.errors.add(at, f"lookup values must increase strictly, got {values}")
            return False
        bad = [r for _, r in lookup if not fits(r, type_)]
        if bad:
            self.errors.add(at, f"raw value(s) {bad} do not fit {type_}")
            return False
        return True

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
