"""Metric names: a tag's family name and HELP text, and the families the runtime itself exports.

A tag becomes ``battplc_`` + its name with dots as underscores + its base unit (``runtime/config/units.py``); see the
package docstring for the rules.
"""

from __future__ import annotations

import re

from runtime.config.units import base_unit
from runtime.tags import TagDef, TagType

PREFIX = "battplc_"

RUNTIME_FAMILIES = frozenset(PREFIX + n for n in (
    "scans_total", "scan_overruns_total", "scan_skipped_slots_total", "scan_period_seconds",
    "scan_duration_seconds", "scan_lateness_seconds", "tag_quality", "sfc_step", "sfc_step_code",
    "sfc_initial_step_active", "sfc_step_time_seconds", "sfc_held", "device_up", "device_reachable",
    "device_errors_total", "device_last_good_timestamp_seconds", "program_fault", "program_faults_total",
    "alarm_active", "alarm_state", "alarm_raised_total", "modbus_requests_total", "modbus_connections_peak",
))


_RESERVED_ENDINGS = ("_total", "_count", "_sum", "_bucket", "_created", "_info")
# Name parts promtool reads as abbreviated units, spelled out (par.current_ramp_a_s: "amperes a second").
_SPELLED_OUT = {"s": "second", "sec": "second", "ms": "millisecond", "us": "microsecond", "ns": "nanosecond",
                "m": "minute", "h": "hour", "d": "day", "b": "byte", "kb": "kilobyte", "mb": "megabyte",
                "gb": "gigabyte", "tb": "terabyte", "pb": "petabyte"}
NOT_NAME = re.compile(r"[^a-z0-9_]+")
# A name ending in <unit>_s (par.current_ramp_a_s, par.cvl_ramp_v_s) is a rate of that unit per second. "a" is
# no spelling of amperes on its own (phase a), but it is in front of "_s".
_ABBREVIATED = {"amperes": ("a",)}


def is_counter(tag: TagDef) -> bool:
    """A read-only, retained tag that only grows over the battery's life: an integer with unit ``count``
    (``interlock.trips``) or a tag whose last name part ends in ``total`` (``energy.pv_total``, kWh).

    (``bms.online`` is not retained, it is measured anew: a gauge; ``energy.pv_today`` restarts every day: a
    gauge too.)
    """
    if tag.access != "ro" or not tag.retain:
        return False
    return (tag.type == TagType.INT and tag.unit == "count") or tag.name.rsplit(".", 1)[-1].endswith("total")


def metric_name(tag: TagDef) -> str:
    """The exposed family name of a tag (counters end in ``_total``)."""
    unit = base_unit(tag.unit)
    parts = [p for p in NOT_NAME.sub("_", tag.name.lower().replace(".", "_")).split("_") if p]
    counter = is_counter(tag)
    if counter and parts[-1:] == ["total"]:
        parts.pop()
    suffix = unit.suffix
    if len(parts) > 2 and parts[-1] == "s" and parts[-2] in unit.spellings + _ABBREVIATED.get(suffix, ()):
        parts = parts[:-2]  # a rate: par.current_ramp_a_s is amperes per second
        suffix += "_per_second"
    elif len(parts) > 1 and parts[-1] in unit.spellings:
        parts.pop()
    parts = [_SPELLED_OUT.get(part, part) for part in parts]
    if suffix:
        parts.append(suffix)
    name = PREFIX + "_".join(parts)
    if counter:
        return name + "_total"
    return name + "_value" if name.endswith(_RESERVED_ENDINGS) else name


def describe(tag: TagDef) -> str:
    """HELP text: the description, the tag it comes from, its unit and any conversion, enum codes."""
    unit = base_unit(tag.unit)
    notes = []
    if tag.unit and tag.unit != "count":
        notes.append(tag.unit if unit.scale == 1.0 else f"{tag.unit} exported in {unit.suffix}")
    if tag.type == TagType.ENUM:
        notes.append("codes " + ", ".join(f"{code}={name}" for code, name in enumerate(tag.values)))
    if tag.type == TagType.BOOL:
        notes.append("0/1")
    text = tag.description.strip()
    if text:
        notes.insert(0, f"tag {tag.name}")
    else:
        text = f"Tag {tag.name}"
    return f"{text} ({'; '.join(notes)})" if notes else text
