"""The schema of tags.yaml: the ``site`` section and the tag database, with their cross-field rules."""

from __future__ import annotations

from typing import Any

from runtime.config.mqtt_schema import MQTT
from runtime.config.schema import (
    MISSING,
    Errors,
    Invalid,
    ListOf,
    MapOf,
    Optional,
    Required,
    Schema,
    Where,
    boolean,
    duration,
    duration_range,
    host,
    identifier,
    int_range,
    integer,
    network,
    nonzero_number,
    number,
    one_of,
    port,
    positive_duration,
    role,
    scalar,
    string,
    tag_name,
)
from runtime.config.units import UNITS
from runtime.tags import DECLARED_ADDRESSES, AlarmSpec, ModbusMap, TagDef, TagType

DTYPES = ("bool", "int16", "uint16", "int32", "uint32", "float32")
DTYPE_RANGE = {"int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-2**31, 2**31 - 1),
               "uint32": (0, 2**32 - 1)}

MODBUS = Schema({
    Required("address"): int_range(0, 65535),
    Optional("dtype"): one_of(*DTYPES),
    Optional("scale", default=1.0): nonzero_number,
})

PRIORITIES = ("low", "medium", "high")
ALARM = Schema({
    Optional("priority", default="medium"): one_of(*PRIORITIES),
    Optional("latching", default=False): boolean,
})

TAG = Schema({
    Required("type"): one_of(*TagType.ALL),
    Optional("unit", default=""): one_of(*UNITS),
    Optional("description", default=""): string,
    Optional("default"): scalar,
    Optional("retain", default=False): boolean,
    Optional("access", default="ro"): one_of("ro", "rw"),
    Optional("min"): number,
    Optional("max"): number,
    Optional("values"): ListOf(identifier, min_len=1),
    Optional("modbus"): MODBUS,
    Optional("metric", default=True): boolean,
    Optional("safe"): scalar,
    Optional("arbitration"): ListOf(identifier, min_len=1),  # charts that may drive it, highest priority first
    Optional("alarm"): ALARM,  # only on a bool alarm.<name> tag: its priority and latching
})

def spin_duration(value: Any) -> float:
    """How long before a scan's deadline the loop polls the clock instead of sleeping (0..5 ms)."""
    seconds = duration(value)
    if seconds > 0.005:
        raise Invalid(f"{value!r} is too long a spin; allowed 0..5ms (it costs CPU every scan)")
    return seconds


def writer(value: Any) -> str:
    """Who may write: a network (clients without TLS) or ``role:NAME`` (a TLS client certificate with OU=NAME)."""
    try:
        return role(value) if isinstance(value, str) and value.startswith("role:") else network(value)
    except Invalid:
        raise Invalid(f"{value!r} is neither a network like 192.168.1.0/24 (clients without TLS) nor role:NAME "
                      f"(TLS clients whose certificate has OU=NAME)") from None


def writer_group(value: Any) -> str:
    """A tag group of server.writers: the first word of tag names (par, cmd, alarm, ...) or '*' for the rest."""
    if value == "*":
        return value
    value = identifier(value)
    if "-" in value:
        raise Invalid(f"{value!r} is not a tag group; write the first word of tag names (par, cmd, alarm) or '*'")
    return value


# 1 ms is as fast as a Python scan can be asked to run; a scan slower than a minute no longer controls anything.
SCAN_PERIOD_RANGE = (0.001, 60.0)
scan_period = duration_range(*SCAN_PERIOD_RANGE)


SERVER = Schema({
    Optional("enabled", default=True): boolean,
    Optional("listen", default="127.0.0.1"): host,
    Optional("port", default=5020): port,
    Optional("unit_id", default=1): int_range(0, 247),
    Optional("wrong_unit", default="ignore"): one_of("ignore", "exception"),
    Optional("allow", default=lambda: ["127.0.0.0/8", "::1/128"]): ListOf(network),
    Optional("max_connections", default=8): int_range(1, 1000),
    Optional("max_connections_per_client", default=4): int_range(1, 1000),
    Optional("idle_timeout", default=60.0): positive_duration,
    Optional("frame_timeout", default=2.0): duration_range(0.1, 60.0),
    Optional("writers"): MapOf(writer_group, ListOf(writer)),
    Optional("tls"): Schema({
        Required("port"): port,
        Required("cert"): string,
        Required("key"): string,
        Optional("ca"): string,
        Optional("only", default=False): boolean,
    }),
})

METRICS = Schema({
    Optional("enabled", default=True): boolean,
    Optional("listen", default="127.0.0.1"): host,
    Optional("port", default=9108): port,
    Optional("max_scrapes_per_s", default=20): int_range(1, 1000),
})

WEB = Schema({
    Optional("enabled", default=True): boolean,
    Optional("listen", default="127.0.0.1"): host,
    Optional("port", default=8480): port,
    Optional("token_file"): string,  # writes are enabled only with a token, read from this file
})

RETAIN = Schema({
    Optional("path", default="var/retain.json"): string,
    Optional("period", default=5.0): positive_duration,
})

SITE = Schema({
    Optional("name", default="site"): identifier,
    Optional("description", default=""): string,
    Optional("scan_period", default=0.1): scan_period,
    Optional("scan_spin", default=0.0003): spin_duration,
    Optional("application"): identifier,  # a program folder whose tags.yaml gives the scan order and the tags
    Optional("programs", default=list): ListOf(identifier),
    Optional("interlocks"): identifier,
    Optional("server", default=lambda: SERVER({})): SERVER,
    Optional("metrics", default=lambda: METRICS({})): METRICS,
    Optional("retain", default=lambda: RETAIN({})): RETAIN,
    Optional("web", default=lambda: WEB({})): WEB,
    Optional("watchdog", default=True): boolean,
    Optional("mqtt"): MQTT,  # absent: no MQTT bridge
})

# What a site may change of a tag its programs declare; everything else is the application's contract.
OVERRIDABLE = ("default", "min", "max", "description")


def _not_overridable(value: Any) -> Any:
    raise Invalid(f"only {', '.join(OVERRIDABLE)} of an application tag may be overridden by a site; the rest "
                  "(type, unit, access, retain, modbus, ...) is the programs' contract in their tags.yaml")


OVERRIDE = Schema({
    Optional("default"): scalar,
    Optional("min"): number,
    Optional("max"): number,
    Optional("description"): string,
}, extra=_not_overridable)

# A site's tags.yaml: its settings, its own tags (devices, extras) and overrides of its programs' tags.
TAGS_FILE = Schema({
    Optional("site", default=lambda: SITE({})): SITE,
    Optional("tags", default=dict): MapOf(tag_name, TAG),
    Optional("overrides", default=dict): MapOf(tag_name, OVERRIDE),
})

# programs/tags.yaml: the tag contract of the programs in that folder, and the scan order of the application
# they form (what a site with `application:` runs).
CONTRACT_FILE = Schema({
    Optional("programs", default=list): ListOf(identifier),
    Optional("interlocks"): identifier,
    Required("tags"): MapOf(tag_name, TAG),
})


# ---- cross-field rules: one small function each ----------------------------------------------------------

def _check_enum(t: dict, where: Where, errors: Errors) -> None:
    if t["type"] == TagType.ENUM and not t.get("values"):
        errors.add(where, "an enum tag needs 'values', the list of its names")
    if t["type"] != TagType.ENUM and t.get("values"):
        errors.add(where, f"'values' is only for enum tags, this one is {t['type']}")


def _check_range(t: dict, where: Where, errors: Errors) -> None:
    lo, hi = t.get("min"), t.get("max")
    if lo is not None and hi is not None and lo is not MISSING and hi is not MISSING and lo > hi:
        errors.add(where, f"min {lo:g} is greater than max {hi:g}")
    if t["type"] in (TagType.BOOL, TagType.ENUM) and (lo is not None or hi is not None):
        errors.add(where, f"min/max do not apply to {t['type']} tags")


def _check_value(t: dict, key: str, where: Where, errors: Errors) -> None:
    """default/safe must fit the type and lie within min..max."""
    value = t.get(key)
    if value is None or value is MISSING:
        return
    kind = t["type"]
    ok = {
        TagType.BOOL: isinstance(value, bool),
        TagType.INT: isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer(),
        TagType.FLOAT: isinstance(value, (int, float)) and not isinstance(value, bool),
        TagType.ENUM: value in (t.get("values") or ()),
    }[kind]
    if not ok:
        what = f"one of {', '.join(t.get('values') or ())}" if kind == TagType.ENUM else f"a {kind}"
        errors.add(where, f"{key} {value!r} is not {what}")
        return
    lo, hi = t.get("min"), t.get("max")
    if kind in (TagType.INT, TagType.FLOAT) and lo is not MISSING and hi is not MISSING:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            errors.add(where, f"{key} {value!r} is outside min..max "
                              f"({'' if lo is None else f'{lo:g}'}..{'' if hi is None else f'{hi:g}'})")


def is_alarm_tag(name: str, kind: str) -> bool:
    """``alarm.<name>`` of type bool: a condition the alarm manager annunciates."""
    return name.startswith("alarm.") and name.count(".") == 1 and kind == TagType.BOOL


def _check_alarm(name: str, t: dict, where: Where, errors: Errors) -> None:
    if t.get("alarm") and not is_alarm_tag(name, t["type"]):
        errors.add(where, "'alarm' (priority, latching) is only for a bool tag named alarm.<name>, "
                          f"this one is {t['type']} {name!r}")


def _alarm_spec(name: str, t: dict) -> AlarmSpec | None:
    if not is_alarm_tag(name, t["type"]):
        return None
    spec = t.get("alarm") or {}
    return AlarmSpec(spec.get("priority", "medium"), spec.get("latching", False))


def _check_modbus(t: dict, where: Where, errors: Errors) -> None:
    mb = t.get("modbus")
    if not mb or mb is MISSING:
        return
    dtype = mb.get("dtype") or ("bool" if t["type"] == TagType.BOOL else "uint16")
    if (dtype == "bool") != (t["type"] == TagType.BOOL):
        errors.add(where, f"dtype {dtype!r} does not fit a {t['type']} tag; "
                          f"{'use dtype bool' if t['type'] == TagType.BOOL else 'use a register type'}")
    width = 2 if dtype in ("int32", "uint32", "float32") else 1
    if mb["address"] is not MISSING and mb["address"] + width > DECLARED_ADDRESSES:
        errors.add(where, f"a {dtype} at address {mb['address']} runs past {DECLARED_ADDRESSES - 1}: tags.yaml maps "
                          f"to 0..{DECLARED_ADDRESSES - 1}; the addresses above hold the runtime's tags and the "
                          "quality registers (README: Register map)")
    mb["dtype"] = dtype
    scale = mb.get("scale", 1.0)
    if scale is MISSING or dtype == "bool":
        return
    at = Where(where.file, where.line, f"{where.path}.modbus.scale")
    if scale <= 0:
        errors.add(at, f"scale {scale:g} must be greater than 0 (value = register x scale)")
        return
    _check_scale(t, scale, DTYPE_RANGE.get(dtype), dtype, at, errors)


def _check_scale(t: dict, scale: float, rng: tuple[int, int] | None, dtype: str, where: Where, errors: Errors) -> None:
    """`scale` means value = register x scale (as in io_map.yaml, Home Assistant and evcc): the register must hold
    the tag's whole range, with at least one step, and a file written when it meant register = value x scale is
    told what to change."""
    if t["type"] == TagType.FLOAT and scale > 1:
        errors.add(where, f"scale {scale:g} makes one register count {scale:g} {t['unit'] or 'units'}; scale means "
                          f"value = register x scale, so a value sent in hundredths is scale: 0.01 (a file "
                          f"written for the old meaning, register = value x scale, writes scale: {1 / scale:g} "
                          f"instead of {scale:g})")
        return
    lo, hi = (t.get(k) for k in ("min", "max"))
    for key, v in (("min", lo), ("max", hi)):
        if rng and v is not None and v is not MISSING and not rng[0] <= round(v / scale) <= rng[1]:
            errors.add(where, f"{key} {v:g} / scale {scale:g} does not fit {dtype} ({rng[0]}..{rng[1]})")
    if lo is not None and hi is not None and lo is not MISSING and hi is not MISSING and hi - lo < scale:
        errors.add(where, f"scale {scale:g} cannot represent min..max ({lo:g}..{hi:g}): one register step is wider "
                          f"than the range; use a finer scale such as {_finer(hi - lo):g}")


def _finer(span: float) -> float:
    """A decimal scale giving at least 100 steps over ``span``."""
    step = 1.0
    while span / step < 100 and step > 1e-9:
        step /= 10
    return step


def _half_mapped(tag: TagDef, other: TagDef) -> str:
    """'; that leaves ... half mapped' when an overlap splits a 32-bit value between two tags."""
    assert tag.modbus is not None and other.modbus is not None
    if tag.modbus.address == other.modbus.address:
        return ""
    split = [t for t in (other, tag) if t.modbus is not None and t.modbus.width == 2]
    if not split:
        return ""
    return "; that leaves " + " and ".join(
        f"the {t.modbus.dtype} {t.name!r} (registers {t.modbus.address}-{t.modbus.address + 1})"
        for t in split if t.modbus is not None) + " half mapped"


def check_register_overlaps(tags: list[TagDef], errors: Errors) -> None:
    """No two tags may share a register or a bit (ro numbers are readable as holding at the same address)."""
    owner: dict[tuple[str, int], TagDef] = {}
    for tag in tags:
        if tag.modbus is None:
            continue
        space = "bit" if tag.type == TagType.BOOL else "register"
        for addr in range(tag.modbus.address, tag.modbus.address + tag.modbus.width):
            other = owner.get((space, addr))
            if other is not None:
                errors.add(Where(tag.file, tag.line, f"tags.{tag.name}.modbus.address"),
                           f"{space} {addr} is already used by {other.name!r} ({other.file}:{other.line})"
                           + _half_mapped(tag, other))
                break
            owner[(space, addr)] = tag


def build_tag(name: str, t: dict[str, Any], where: Where, declared: Where, errors: Errors) -> TagDef | None:
    """One validated tag dict as a TagDef, after its cross-field rules; problems are reported at ``where`` (a
    site's override line for an overridden tag), the TagDef remembers where it was ``declared``."""
    if t is MISSING or t.get("type") is MISSING:
        return None
    mb, names = t.get("modbus"), t.get("values")
    nested = [*(mb.values() if isinstance(mb, dict) else ()), *(names if isinstance(names, list) else ())]
    if any(v is MISSING for v in (*t.values(), *nested)):
        return None  # an invalid value was reported while walking; the cross-field rules need valid ones
    before = len(errors)
    _check_enum(t, where, errors)
    _check_range(t, where, errors)
    _check_value(t, "default", where, errors)
    _check_value(t, "safe", where, errors)
    _check_modbus(t, where, errors)
    _check_alarm(name, t, where, errors)
    mb = t.get("modbus")
    nested = [*(mb.values() if isinstance(mb, dict) else ()),
              *(t["alarm"].values() if isinstance(t.get("alarm"), dict) else ())]
    if len(errors) != before or any(v is MISSING for v in (*t.values(), *nested)):
        return None  # an invalid value was reported while walking; never build a TagDef around it
    return TagDef(
        name=name, type=t["type"], unit=t["unit"], description=t["description"], default=t.get("default"),
        retain=t["retain"], access=t["access"], min=t.get("min"), max=t.get("max"),
        values=tuple(t.get("values") or ()), metric=t["metric"], safe=t.get("safe"),
        modbus=ModbusMap(mb["address"], mb["dtype"], mb["scale"]) if mb else None,
        alarm=_alarm_spec(name, t), file=declared.file, line=declared.line,
    )


def build_tags(doc_tags: dict[str, Any], raw: Any, file: str, errors: Errors) -> list[TagDef]:
    """Turn the validated tag dicts of one file into TagDefs, applying the cross-field rules."""
    out = []
    for name, t in doc_tags.items():
        where = Where(file, raw.line_of(name) if hasattr(raw, "line_of") else 0, f"tags.{name}")
        tag = build_tag(name, t, where, where, errors)
        if tag is not None:
            out.append(tag)
    return out


__all__ = ["TAGS_FILE", "CONTRACT_FILE", "OVERRIDABLE", "SITE", "SERVER", "METRICS", "RETAIN", "build_tag",
           "build_tags", "check_register_overlaps", "UNITS", "DTYPES", "integer"]
