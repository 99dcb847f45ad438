"""Prometheus exposition: tag values, qualities and the controller's own figures on ``/metrics``.

The scan never waits for a scrape. ``MetricsExporter.observe`` runs in the commit phase of every scan: it counts
the scan's lateness and duration into histogram buckets kept in plain Python (one bisect and two additions) and,
at most once per ``snapshot_interval`` of scan time, swaps in a new ``Snapshot`` (copies of the value and quality
dicts plus the bucket counts). The HTTP thread reads only the newest snapshot, one reference: a scrape shows the
image of one commit, never a staged value and never a half-finished scan.

A scrape must be cheap, as it shares the GIL with the scan: the labelled runtime families go through a
prometheus_client custom collector, while the one-family-per-tag bulk is written from lines prepared once per
tag (``TagText``), about ten times faster than building a prometheus_client object per sample.

Names follow the Prometheus conventions. A tag becomes ``battplc_`` + its name with dots as underscores + its
base unit: V and mV -> ``_volts``, A/mA -> ``_amperes``, W/kW -> ``_watts``, Wh/kWh -> ``_joules``, Ah/mAh ->
``_coulombs``, % -> ``_percent``, degC -> ``_celsius``, s/ms/min/h/day -> ``_seconds``, Hz -> ``_hertz``,
ohm/mohm -> ``_ohms``, values scaled to match. A last name part that spells the tag's unit is dropped
(``par.unload_settle_s`` -> ``battplc_par_unload_settle_seconds``); other parts that abbreviate a unit are
spelled out (``par.current_ramp_a_s`` -> ``battplc_par_current_ramp_a_second_amperes``). Booleans are 0/1
gauges; enums are the gauge of their code, the codes listed in the HELP text. A read-only, retained integer tag
with unit ``count`` counts events over the battery's life and is a counter (``_total``, e.g.
``interlock.trips``); other counts, measured anew at each start (``bms.online``), are gauges. A tag with quality
BAD or INIT shows NaN (there is no reading to trust), and ``battplc_tag_quality{tag}`` tells why (0 GOOD,
1 STALE, 2 BAD, 3 INIT). Tags declared with ``metric: false`` are left out.

Runtime namespaces have families with labels instead of one family per tag:

- ``scan.*``: ``battplc_scans_total``, ``battplc_scan_overruns_total``, ``battplc_scan_skipped_slots_total``,
  ``battplc_scan_period_seconds``, histograms ``battplc_scan_duration_seconds`` and
  ``battplc_scan_lateness_seconds``
- ``sfc.<chart>.step`` / ``.step_time`` / ``.held``: ``battplc_sfc_step{chart,step}`` (1 for the active step,
  0 for the others), ``battplc_sfc_step_code{chart}``, ``battplc_sfc_initial_step_active{chart}``,
  ``battplc_sfc_step_time_seconds{chart}``, ``battplc_sfc_held{chart}``
- ``dev.<device>.up`` / ``.errors`` / ``.errors.<kind>`` or ``.errors_<kind>`` / ``.last_good``:
  ``battplc_device_up{device}``, ``battplc_device_errors_total{device,kind}`` (kind ``all`` when the device has
  no per-kind counters), ``battplc_device_last_good_timestamp_seconds{device}``
- ``prog.<program>.fault`` / ``.faults``: ``battplc_program_fault{program}``,
  ``battplc_program_faults_total{program}``
- ``alarm.<name>`` (booleans): ``battplc_alarm_active{alarm}``
- the Modbus server's ``stats`` (see ``server_families``): ``battplc_modbus_requests_total`` and friends
"""

from __future__ import annotations

import gzip
import logging
import math
import re
import socket
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from runtime.tags import Quality, TagDef, TagType

log = logging.getLogger("battplc.metrics")

PREFIX = "battplc_"
DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 9108
SNAPSHOT_INTERVAL = 0.1  # s of scan time between snapshots: a dict copy per 100 ms, not per 10 ms scan
# Scan duration and start lateness, seconds: from well under a 10 ms period to several 1 s periods.
SCAN_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


# ---- names and units ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BaseUnit:
    """How a tags.yaml unit is exposed: the base-unit suffix, the factor to it, and names that spell it."""

    suffix: str
    scale: float = 1.0
    spellings: tuple[str, ...] = ()  # last name parts that already say the unit and are dropped


UNITS: dict[str, BaseUnit] = {
    "": BaseUnit(""),
    "count": BaseUnit(""),
    "V": BaseUnit("volts", 1.0, ("v", "volt", "volts")),
    "mV": BaseUnit("volts", 0.001, ("mv",)),
    "A": BaseUnit("amperes", 1.0, ("amp", "amps", "amperes")),  # not "a": that is phase a as often as amperes
    "mA": BaseUnit("amperes", 0.001, ("ma",)),
    "W": BaseUnit("watts", 1.0, ("w", "watts")),
    "kW": BaseUnit("watts", 1000.0, ("kw",)),
    "Wh": BaseUnit("joules", 3600.0, ("wh",)),
    "kWh": BaseUnit("joules", 3.6e6, ("kwh",)),
    "Ah": BaseUnit("coulombs", 3600.0, ("ah",)),
    "mAh": BaseUnit("coulombs", 3.6, ("mah",)),
    "%": BaseUnit("percent", 1.0, ("pct", "percent")),
    "degC": BaseUnit("celsius", 1.0, ("c", "degc", "celsius")),
    "s": BaseUnit("seconds", 1.0, ("s", "sec", "secs", "seconds")),
    "ms": BaseUnit("seconds", 0.001, ("ms",)),
    "min": BaseUnit("seconds", 60.0, ("min", "mins", "minutes")),
    "h": BaseUnit("seconds", 3600.0, ("h", "hours")),
    "day": BaseUnit("seconds", 86400.0, ("d", "days")),  # not "day": "last_day" names a date
    "Hz": BaseUnit("hertz", 1.0, ("hz",)),
    "ohm": BaseUnit("ohms", 1.0, ("ohm", "ohms")),
    "mohm": BaseUnit("ohms", 0.001, ("mohm",)),
}

# Suffixes Prometheus reserves for counters, histograms and summaries; a gauge must not end with one.
_RESERVED_ENDINGS = ("_total", "_count", "_sum", "_bucket", "_created", "_info")
# Name parts promtool reads as abbreviated units, spelled out (par.current_ramp_a_s: "amperes a second").
_SPELLED_OUT = {"s": "second", "sec": "second", "ms": "millisecond", "us": "microsecond", "ns": "nanosecond",
                "m": "minute", "h": "hour", "d": "day", "b": "byte", "kb": "kilobyte", "mb": "megabyte",
                "gb": "gigabyte", "tb": "terabyte", "pb": "petabyte"}
_NOT_NAME = re.compile(r"[^a-z0-9_]+")


def base_unit(unit: str) -> BaseUnit:
    """The exposure of a tags.yaml unit (an unknown unit is shown as is, without a suffix)."""
    return UNITS.get(unit, UNITS[""])


def is_counter(tag: TagDef) -> bool:
    """A read-only, retained integer with unit ``count`` counts events over the battery's life and only grows.

    (``interlock.trips`` is one; ``bms.online`` is not retained, it is measured anew: a gauge.)
    """
    return tag.type == TagType.INT and tag.unit == "count" and tag.access == "ro" and tag.retain


def metric_name(tag: TagDef) -> str:
    """The exposed family name of a tag (counters end in ``_total``)."""
    unit = base_unit(tag.unit)
    parts = [p for p in _NOT_NAME.sub("_", tag.name.lower().replace(".", "_")).split("_") if p]
    if is_counter(tag) and parts[-1:] == ["total"]:
        parts.pop()
    if len(parts) > 1 and parts[-1] in unit.spellings:
        parts.pop()
    parts = [_SPELLED_OUT.get(part, part) for part in parts]
    if unit.suffix:
        parts.append(unit.suffix)
    name = PREFIX + "_".join(parts)
    if is_counter(tag):
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


# ---- histograms counted on the scan thread --------------------------------------------------------------

class Buckets:
    """A histogram counted by the scan thread without locks: one bisect and two additions per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float] = SCAN_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left puts a value equal to a bound into that bound's bucket, as "le" means.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def frozen(self) -> FrozenBuckets:
        return FrozenBuckets(self.bounds, tuple(self.counts), self.total)


@dataclass(frozen=True)
class FrozenBuckets:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds, self.counts, strict=False):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        buckets.append(("+Inf", cumulative + self.counts[-1]))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.total, unit="seconds")


# ---- the snapshot -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """The image and the scan figures as they were at one commit; read by the HTTP thread only."""

    values: dict[str, Any]
    quality: dict[str, Quality]
    scans: int
    overruns: int
    skipped: int
    period: float
    duration: FrozenBuckets
    lateness: FrozenBuckets


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
    declared: int = 0


RUNTIME_FAMILIES = frozenset(PREFIX + n for n in (
    "scans_total", "scan_overruns_total", "scan_skipped_slots_total", "scan_period_seconds",
    "scan_duration_seconds", "scan_lateness_seconds", "tag_quality", "sfc_step", "sfc_step_code",
    "sfc_initial_step_active", "sfc_step_time_seconds", "sfc_held", "device_up", "device_errors_total",
    "device_last_good_timestamp_seconds", "program_fault", "program_faults_total", "alarm_active",
    "modbus_requests_total",
))


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
    parts = tag.name.split(".")
    head, last = parts[0], parts[-1]
    if head == "scan":
        return True  # the scan's figures come from the Scan itself
    if head == "alarm" and len(parts) > 1 and tag.is_bool:
        plan.alarms[".".join(parts[1:])] = tag.name
        return True
    if head == "sfc" and len(parts) == 3 and last in ("step", "step_time", "held"):
        chart = plan.charts.setdefault(parts[1], Chart(parts[1]))
        if last == "step" and tag.type == TagType.ENUM:
            chart.step_tag, chart.steps, chart.initial = tag.name, tag.values, tag.initial
        elif last == "step_time":
            chart.time_tag, chart.time_scale = tag.name, base_unit(tag.unit).scale
        elif last == "held" and tag.is_bool:
            chart.held_tag = tag.name
        else:
            return False
        return True
    if head == "prog" and len(parts) == 3 and last in ("fault", "faults"):
        plan.programs.setdefault(parts[1], {})[last] = tag.name
        return True
    if head == "dev" and len(parts) >= 3:
        return _device_tag(plan, tag, parts)
    return False


def _device_tag(plan: Plan, tag: TagDef, parts: list[str]) -> bool:
    what = parts[2]
    if what == "up" and len(parts) == 3:
        _device(plan, parts[1]).up_tag = tag.name
    elif what == "last_good" and len(parts) == 3:
        device = _device(plan, parts[1])
        device.last_good_tag, device.last_good_scale = tag.name, base_unit(tag.unit).scale
    elif what == "errors" and len(parts) == 3:
        _device(plan, parts[1]).errors_tag = tag.name
    elif what == "errors" and len(parts) == 4:
        _device(plan, parts[1]).error_kinds[parts[3]] = tag.name
    elif what.startswith("errors_") and len(parts) == 3:
        _device(plan, parts[1]).error_kinds[what.removeprefix("errors_")] = tag.name
    else:
        return False
    return True


def _device(plan: Plan, name: str) -> Device:
    return plan.devices.setdefault(name, Device(name))


# ---- the per-tag families, as text --------------------------------------------------------------------------

_NO_READING = frozenset((Quality.BAD, Quality.INIT))
_QUALITY_HELP = "Quality of each exported tag: 0 GOOD, 1 STALE, 2 BAD, 3 INIT"


class TagText:
    """Renders one family per tag plus ``battplc_tag_quality`` in the text format, from prepared lines.

    This is most of a scrape (two lines per tag), so it skips prometheus_client's per-sample objects and
    formatting: about 1 ms for 1,000 tags instead of about 15 ms, GIL time the scan no longer waits for.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._rows = [(t.tag, t.head, t.scale, f'{PREFIX}tag_quality{{tag="{_label(t.tag)}"}} ')
                      for t in plan.tags]
        self._quality = {q: f"{int(q)}\n" for q in Quality}

    def render(self, snap: Snapshot) -> str:
        values, quality, codes = snap.values, snap.quality, self._quality
        samples: list[str] = []
        qualities = [f"# HELP {PREFIX}tag_quality {_QUALITY_HELP}\n# TYPE {PREFIX}tag_quality gauge\n"]
        for tag, head, scale, quality_line in self._rows:
            value = values.get(tag)
            if value is None:  # declared after this snapshot was taken
                continue
            q = quality[tag]
            samples.append(head + ("NaN\n" if q in _NO_READING else _number(float(value) * scale) + "\n"))
            qualities.append(quality_line + codes[q])
        return "".join(samples) + ("".join(qualities) if len(qualities) > 1 else "")


def _number(value: float) -> str:
    text = repr(value)
    return floatToGoString(value) if "n" in text else text  # only nan and inf contain an "n"


def _label(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


# ---- the labelled runtime families, through prometheus_client ----------------------------------------------

StatsSource = Callable[[], Any]  # the Modbus server's counters (see server_families), None without a server


class RuntimeCollector(Collector):
    """Scan figures, charts, devices, programs, alarms and server requests: a few families with labels."""

    def __init__(self, exporter: MetricsExporter) -> None:
        self._exporter = exporter
        self._stats_failing = False

    def collect(self) -> Iterator[Metric]:
        exporter = self._exporter
        snap, plan = exporter.snapshot, exporter.plan().plan
        yield from _scan_families(snap)
        yield from _chart_families(snap, plan)
        yield from _device_families(snap, plan)
        yield from _program_families(snap, plan)
        yield from _alarm_families(snap, plan)
        stats = exporter.server_stats()
        if stats is None:
            return
        try:
            families = list(server_families(stats))
        except (RuntimeError, TypeError, ValueError) as error:  # changed while copied, or an unknown shape
            if not self._stats_failing:
                log.warning("metrics: cannot read the Modbus server's counters (%s)", error)
            self._stats_failing = True
            return
        self._stats_failing = False
        yield from families


def server_families(stats: Any) -> Iterator[Metric]:
    """The Modbus server's counters, read without a lock from its thread (each copy is one C-level call).

    A mapping {(function, result): count} becomes ``battplc_modbus_requests_total{function,result}``. An object
    of counters (runtime.server's ``ServerStats``) becomes one counter per number field,
    ``battplc_modbus_<field>_total``, and one with a ``kind`` label per mapping field (exceptions by code).
    """
    if isinstance(stats, Mapping):
        family = CounterMetricFamily(PREFIX + "modbus_requests", "Modbus server requests by function and result",
                                     labels=["function", "result"])
        for key, count in sorted(dict(stats).items(), key=lambda item: str(item[0])):
            if isinstance(key, tuple) and len(key) == 2 and _is_number(count):
                family.add_metric([str(key[0]), str(key[1])], float(count))
        if family.samples:
            yield family
        return
    for field_name, value in sorted(dict(vars(stats)).items()):
        name = PREFIX + "modbus_" + _NOT_NAME.sub("_", field_name.lower()).removesuffix("_total")
        documentation = f"Modbus server: {field_name.replace('_', ' ')}"
        if _is_number(value):
            yield CounterMetricFamily(name, documentation, value=float(value))
        elif isinstance(value, Mapping):
            counts = dict(value)
            # (function, result) keys: requests by function and result; other keys: a plain kind.
            pairs = bool(counts) and all(isinstance(k, tuple) and len(k) == 2 for k in counts)
            family = CounterMetricFamily(name, documentation, labels=["function", "result"] if pairs else ["kind"])
            for key, count in sorted(counts.items(), key=lambda item: str(item[0])):
                if _is_number(count):
                    labels = [str(k) for k in key] if pairs else [str(getattr(key, "name", key)).lower()]
                    family.add_metric(labels, float(count))
            if family.samples:
                yield family


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scan_families(snap: Snapshot) -> Iterator[Metric]:
    yield CounterMetricFamily(PREFIX + "scans", "Scans run since start", value=snap.scans)
    yield CounterMetricFamily(PREFIX + "scan_overruns", "Scans that ran past their slot", value=snap.overruns)
    yield CounterMetricFamily(PREFIX + "scan_skipped_slots", "Scan slots skipped after overruns",
                              value=snap.skipped)
    yield GaugeMetricFamily(PREFIX + "scan_period", "Configured scan period", value=snap.period, unit="seconds")
    yield snap.duration.family(PREFIX + "scan_duration", "Scan duration, latch to commit")
    yield snap.lateness.family(PREFIX + "scan_lateness", "Scan start minus its deadline")


def _chart_families(snap: Snapshot, plan: Plan) -> Iterator[Metric]:
    values = snap.values
    step = GaugeMetricFamily(PREFIX + "sfc_step", "1 for the active step of each chart, 0 for its other steps",
                             labels=["chart", "step"])
    code = GaugeMetricFamily(PREFIX + "sfc_step_code",
                             "Code of the active step (its index in the chart's steps)", labels=["chart"])
    initial = GaugeMetricFamily(PREFIX + "sfc_initial_step_active",
                                "1 while the chart rests in its initial step", labels=["chart"])
    step_time = GaugeMetricFamily(PREFIX + "sfc_step_time_seconds",
                                  "Time since the active step became active", labels=["chart"], unit="seconds")
    held = GaugeMetricFamily(PREFIX + "sfc_held",
                             "1 while the chart is held in its safe step (an input not GOOD)", labels=["chart"])
    for chart in plan.charts.values():
        active = values.get(chart.step_tag)
        if active is not None:
            for index, name in enumerate(chart.steps):
                step.add_metric([chart.name, name], 1.0 if index == active else 0.0)
            code.add_metric([chart.name], active)
            initial.add_metric([chart.name], 1.0 if active == chart.initial else 0.0)
        seconds = values.get(chart.time_tag)
        if seconds is not None:
            step_time.add_metric([chart.name], float(seconds) * chart.time_scale)
        if (value := values.get(chart.held_tag)) is not None:
            held.add_metric([chart.name], float(value))
    yield from (family for family in (step, code, initial, step_time, held) if family.samples)


def _device_families(snap: Snapshot, plan: Plan) -> Iterator[Metric]:
    values = snap.values
    up = GaugeMetricFamily(PREFIX + "device_up", "1 while the device answers", labels=["device"])
    errors = CounterMetricFamily(PREFIX + "device_errors", "Device errors by kind (kind all: not told apart)",
                                 labels=["device", "kind"])
    last_good = GaugeMetricFamily(PREFIX + "device_last_good_timestamp_seconds",
                                  "Time of the device's last good read", labels=["device"], unit="seconds")
    for device in plan.devices.values():
        if (value := values.get(device.up_tag)) is not None:
            up.add_metric([device.name], float(value))
        if device.error_kinds:
            for kind, tag in device.error_kinds.items():
                if (value := values.get(tag)) is not None:
                    errors.add_metric([device.name, kind], float(value))
        elif (value := values.get(device.errors_tag)) is not None:
            errors.add_metric([device.name, "all"], float(value))
        if (value := values.get(device.last_good_tag)) is not None:
            last_good.add_metric([device.name], float(value) * device.last_good_scale)
    yield from (family for family in (up, errors, last_good) if family.samples)


def _program_families(snap: Snapshot, plan: Plan) -> Iterator[Metric]:
    values = snap.values
    fault = GaugeMetricFamily(PREFIX + "program_fault", "1 while the program raises (its outputs are safe)",
                              labels=["program"])
    faults = CounterMetricFamily(PREFIX + "program_faults", "Scans in which the program raised",
                                 labels=["program"])
    for program, tags in plan.programs.items():
        if (value := values.get(tags.get("fault", ""))) is not None:
            fault.add_metric([program], float(value))
        if (value := values.get(tags.get("faults", ""))) is not None:
            faults.add_metric([program], float(value))
    yield from (family for family in (fault, faults) if family.samples)


def _alarm_families(snap: Snapshot, plan: Plan) -> Iterator[Metric]:
    family = GaugeMetricFamily(PREFIX + "alarm_active", "1 while the alarm is raised", labels=["alarm"])
    for alarm, tag in plan.alarms.items():
        if (value := snap.values.get(tag)) is not None:
            family.add_metric([alarm], float(value))
    if family.samples:
        yield family


# ---- the exporter -----------------------------------------------------------------------------------------

class MetricsExporter:
    """Snapshots a scan at commit time and serves the newest snapshot on an HTTP endpoint.

    Register ``observe`` as a scan observer. ``render`` is one scrape's body; ``serve`` starts the endpoint on
    its own threads and ``stop`` ends it.
    """

    def __init__(self, scan: Any, snapshot_interval: float = SNAPSHOT_INTERVAL,
                 server_stats: StatsSource | None = None, process_metrics: bool = True) -> None:
        self.scan = scan
        self.snapshot_interval = snapshot_interval
        self.server_stats: StatsSource = server_stats or (lambda: None)
        self.duration = Buckets()
        self.lateness = Buckets()
        self.snapshots = 0
        self._next_snapshot = -math.inf
        self.snapshot = self._take()
        self._text: TagText | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RuntimeCollector(self))
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- scan thread --------------------------------------------------------------------------------------

    def observe(self, scan: Any) -> None:
        """Scan observer (commit phase): count the figures every scan, swap in a snapshot when one is due."""
        values = scan.db.values
        self.lateness.observe(values["scan.lateness"])
        if scan.count > 1:
            # scan.duration is measured after the observers ran, so it still holds the previous scan's.
            self.duration.observe(values["scan.duration"])
        started = scan.ctx.t
        if started >= self._next_snapshot:
            # A microsecond early, so float sums of periods (0.1 + 0.2 > 0.3) do not skip a due snapshot.
            self._next_snapshot = started + self.snapshot_interval - 1e-6
            self.snapshot = self._take()  # one reference assignment: the HTTP thread sees old or new, whole

    def _take(self) -> Snapshot:
        scan = self.scan
        values, quality = scan.db.snapshot()
        self.snapshots += 1
        return Snapshot(values, quality, scan.count, scan.overruns, scan.skipped, scan.period,
                        self.duration.frozen(), self.lateness.frozen())

    # ---- HTTP threads -------------------------------------------------------------------------------------

    def plan(self) -> TagText:
        """The prepared exposition of the current tag definitions (redone when a service declared more)."""
        text, defs = self._text, self.scan.db.defs
        if text is None or text.plan.declared != len(defs):
            text = self._text = TagText(build_plan(list(defs.values())))
        return text

    def render(self) -> bytes:
        """One scrape: the text exposition format (version 0.0.4) of the newest snapshot."""
        tags = self.plan().render(self.snapshot)
        return generate_latest(self.registry) + tags.encode()

    def serve(self, listen: str = DEFAULT_LISTEN, port: int = DEFAULT_PORT) -> tuple[str, int]:
        """Start the HTTP endpoint on a daemon thread; return the address it listens on (port 0 picks one)."""
        self._server = _Server((listen, port), self)
        # serve_forever looks for shutdown() between requests every poll interval: 0.1 s makes stop() quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="metrics-http",
                                        daemon=True)
        self._thread.start()
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the metrics endpoint is not running")
        host, port = self._server.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def stop(self) -> None:
        """Stop the endpoint (the observer keeps counting harmlessly if the scan still runs)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], exporter: MetricsExporter) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.exporter = exporter
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that connects and sends nothing does not keep a thread forever

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        body = self.server.exporter.render()
        headers = {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: %s %s", self.address_string(), format % args)


def attach(controller: Any) -> Callable[[], None] | None:
    """Controller extension: serve /metrics when ``site.metrics.enabled``; return the stop callable.

    A port that cannot be bound is logged and the controller runs on without metrics: monitoring must never
    keep the battery from being controlled.
    """
    settings = controller.site.settings.metrics
    if not settings.enabled:
        return None
    listen, port = settings.listen, settings.port

    def server_stats() -> Any:
        return getattr(controller.parts.get("server"), "stats", None)

    exporter = MetricsExporter(controller.scan, server_stats=server_stats)
    try:
        exporter.serve(listen, port)
    except OSError as error:
        log.error("metrics: cannot listen on %s:%s (%s); running without /metrics", listen, port,
                  error.strerror or error)
        return None
    controller.scan.observers.append(exporter.observe)
    controller.parts["metrics"] = exporter
    log.info("metrics: serving %s", exporter.url)
    return exporter.stop
