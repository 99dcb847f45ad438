"""The plan: which family every exported tag goes to, built once from the tag definitions.

Tags of the runtime's own parts (``runtime/names.py``: programs, charts, devices, alarm states; plus ``scan.*``
and ``alarm.*``) go to labelled families; every other tag gets a family of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from runtime.config.units import base_unit
from runtime.metrics.names import RUNTIME_FAMILIES, describe, is_counter, metric_name
from runtime.names import ALARMS, CHART, DEVICE, PROGRAM, owned
from runtime.tags import TagDef, TagType

log = logging.getLogger("battplc.metrics")


# ---- what each tag becomes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TagMetric:
    """One tag exported as its own family, with its text lines prepared once."""

    tag: str
    name: str
    help: str
    scale: float
    counter: bool

    @property
    def head(self) -> str:
        """HELP and TYPE lines and the sample name, ready for the value."""
        kind = "counter" if self.counter else "gauge"
        text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.name} {text}\n# TYPE {self.name} {kind}\n{self.name} "


@dataclass
class Chart:
    name: str
    step_tag: str = ""
    steps: tuple[str, ...] = ()
    initial: int = 0
    time_tag: str = ""
    time_scale: float = 1.0
    held_tag: str = ""


@dataclass
class Device:
    name: str
    up_tag: str = ""
    reachable_tag: str = ""
    errors_tag: str = ""
    error_kinds: dict[str, str] = field(default_factory=dict)  # kind -> tag
    last_good_tag: str = ""
    last_good_scale: float = 1.0


@dataclass
class Plan:
    """Which family every exported tag goes to; built once from the tag definitions."""

    tags: list[TagMetric] = field(default_factory=list)
    charts: dict[str, Chart] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    programs: dict[str, dict[str, str]] = field(default_factory=dict)  # program -> {"fault"/"faults": tag}
    alarms: dict[str, str] = field(default_factory=dict)  # alarm label -> tag
    alarm_states: dict[str, str] = field(default_factory=dict)  # alarm label -> alarms.<alarm>.state
    alarm_raised: dict[str, str] = field(default_factory=dict)  # alarm label -> alarms.<alarm>.raised
    declared: int = 0


def build_plan(defs: Iterable[TagDef]) -> Plan:
    """Sort tags into the runtime families and the per-tag families; warn about names that collide."""
    plan = Plan()
    taken: dict[str, str] = {name: "the runtime" for name in RUNTIME_FAMILIES}
    for tag in defs:
        plan.declared += 1
        if not tag.metric or _runtime_tag(plan, tag):
            continue
        name = metric_name(tag)
        stem = name.removesuffix("_total")
        owner = taken.get(name) or taken.get(stem)
        if owner is not None:
            log.warning("metrics: tag %s would be exported as %s, which %s already uses; left out",
                        tag.name, name, owner)
            continue
        taken[name] = taken[stem] = f"tag {tag.name}"
        unit = base_unit(tag.unit)
        plan.tags.append(TagMetric(tag.name, name, describe(tag), unit.scale, is_counter(tag)))
    return plan


def _runtime_tag(plan: Plan, tag: TagDef) -> bool:
    """File a tag of a runtime namespace into its labelled family; False for an ordinary tag."""
    head, _, rest = tag.name.partition(".")
    if head == "scan":
        return True  # the scan's figures come from the Scan itself
    if head == "alarm" and rest and tag.is_bool:
        plan.alarms[rest] = tag.name
        return True
    part = owned(tag.name)
    if part is None:
        return False
    if part.namespace == CHART:
        return _chart_tag(plan, tag, part.owner, part.what)
    if part.namespace == PROGRAM and part.what in ("fault", "faults"):
        plan.programs.setdefault(part.owner, {})[part.what] = tag.name
        return True
    if part.namespace == DEVICE:
        return _device_tag(plan, tag, part.owner, part.what)
    if part.namespace == ALARMS and part.what in ("state", "raised"):
        (plan.alarm_states if part.what == "state" else plan.alarm_raised)[part.owner] = tag.name
        return True
    return False


def _chart_tag(plan: Plan, tag: TagDef, name: str, what: str) -> bool:
    if what not in ("step", "step_time", "held"):
        return False
    chart = plan.charts.setdefault(name, Chart(name))
    if what == "step" and tag.type == TagType.ENUM:
        chart.step_tag, chart.steps, chart.initial = tag.name, tag.values, tag.initial
    elif what == "step_time":
        chart.time_tag, chart.time_scale = tag.name, base_unit(tag.unit).scale
    elif what == "held" and tag.is_bool:
        chart.held_tag = tag.name
    else:
        return False
    return True


def _device_tag(plan: Plan, tag: TagDef, name: str, what: str) -> bool:
    kind = what.removeprefix("errors_") if what.startswith("errors_") else what.removeprefix("errors.")
    if what in ("up", "reachable", "last_good", "errors"):
        device = _device(plan, name)
        if what == "up":
            device.up_tag = tag.name
        elif what == "reachable":
            device.reachable_tag = tag.name
        elif what == "last_good":
            device.last_good_tag, device.last_good_scale = tag.name, base_unit(tag.unit).scale
        else:
            device.errors_tag = tag.name
    elif kind != what and "." not in kind:  # errors_<kind> as the drivers declare it, or errors.<kind>
        _device(plan, name).error_kinds[kind] = tag.name
    else:
        return False
    return True


def _device(plan: Plan, name: str) -> Device:
    return plan.devices.setdefault(name, Device(name))
