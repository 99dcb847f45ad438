"""What the operator page shows, taken off the scan: a sampled copy of the image, 24 h trends, and the live
message every open page receives.

The scan thread only runs ``Sampler.observe`` (a time check each scan; a dict copy of values and qualities once
per ``SAMPLE_PERIOD`` of scan time, and one row into the trend buffer every ``TREND_PERIOD``). Everything else
(JSON, chart explanations) is built on the web's own thread from the newest sample, once per second however many
pages are open.

Trends: a fixed ring of ``TREND_SLOTS`` rows (24 h at one row per 10 s) of float32 per trend tag plus a float64
time column, allocated at start and never grown: 8640 x (8 + 4 x tags) bytes, 380,160 bytes for the nine main tags.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.sfc.model import ChartDecl
from runtime.sfc.why import UNKNOWN, ChartWhy, Part, explain
from runtime.tags import Quality, TagDB, TagDef, TagType

SAMPLE_PERIOD = 1.0  # s of scan time between two samples of the image for the page
TREND_PERIOD = 10.0  # s between two trend rows
TREND_SLOTS = int(24 * 3600 / TREND_PERIOD)
# The main tags, trended when the site has them (in this order on the page).
TREND_TAGS = ("bat.soc", "bat.power", "pv.power", "house.power", "grid.power", "bat.voltage", "bat.cell_v_max",
              "bat.cell_v_min", "bat.temp_max")


@dataclass(frozen=True)
class Sample:
    """The image at one scan, as the page sees it."""

    t: float  # scan clock, s
    at: str  # site wall time, ISO 8601
    count: int
    values: dict[str, Any]
    quality: dict[str, Quality]


class Trends:
    """A bounded ring of rows (time, one float32 per tag); the oldest row is overwritten when full."""

    def __init__(self, tags: Iterable[str], slots: int = TREND_SLOTS) -> None:
        self.tags = tuple(tags)
        self.slots = slots
        self.times = array("d", [math.nan]) * slots
        self.columns = [array("f", [math.nan]) * slots for _ in self.tags]
        self.rows = 0  # rows ever written
        self.lock = threading.Lock()

    @property
    def bytes(self) -> int:
        """Memory held by the ring, fixed at start."""
        return self.times.itemsize * self.slots + sum(c.itemsize * self.slots for c in self.columns)

    def add(self, t: float, values: Mapping[str, Any], quality: Mapping[str, Quality]) -> None:
        """One row; a value that is not GOOD (or not a number) is a gap, not a point."""
        slot = self.rows % self.slots
        with self.lock:
            self.times[slot] = t
            for column, name in zip(self.columns, self.tags, strict=True):
                value = values[name]
                good = quality.get(name, Quality.GOOD) == Quality.GOOD and isinstance(value, (int, float))
                column[slot] = float(value) if good else math.nan
            self.rows += 1

    def series(self, every: float = 0.0) -> dict[str, Any]:
        """The rows oldest first, as {"t": [...], tag: [...]}; ``every`` > 0 keeps one row per that many seconds."""
        with self.lock:
            count = min(self.rows, self.slots)
            start = self.rows - count
            order = [(start + i) % self.slots for i in range(count)]
            kept: list[int] = []
            last = -math.inf
            for slot in order:
                if self.times[slot] - last >= every - 1e-6:
                    kept.append(slot)
                    last = self.times[slot]
            out: dict[str, Any] = {"t": [round(self.times[s], 1) for s in kept]}
            for column, name in zip(self.columns, self.tags, strict=True):
                out[name] = [None if math.isnan(column[s]) else round(column[s], 4) for s in kept]
        return out


class Sampler:
    """Scan observer: keeps the newest ``Sample`` and feeds the trends (see the module docstring)."""

    def __init__(self, db: TagDB, sample_period: float = SAMPLE_PERIOD, trend_period: float = TREND_PERIOD) -> None:
        self.db = db
        self.sample_period = sample_period
        self.trend_period = trend_period
        self.trends = Trends(name for name in TREND_TAGS if name in db.defs)
        self.sample: Sample | None = None
        self.fresh = threading.Condition()
        self._next_sample = -math.inf
        self._next_trend = -math.inf

    def observe(self, scan: Any) -> None:
        t = scan.ctx.t
        if t < self._next_sample:
            return
        # A microsecond early, so float sums of periods do not skip a due sample (as the metrics exporter).
        self._next_sample = t + self.sample_period - 1e-6
        values, quality = self.db.snapshot()
        self.sample = Sample(t, scan.ctx.now.isoformat(timespec="seconds"), scan.count, values, quality)
        if t >= self._next_trend:
            self._next_trend = t + self.trend_period - 1e-6
            self.trends.add(t, values, quality)
        with self.fresh:
            self.fresh.notify_all()


# ---- JSON for the page --------------------------------------------------------------------------------------

def json_value(tag: TagDef, value: Any) -> Any:
    """A value as the page shows it: enum names, booleans as 0/1, floats to 5 significant digits."""
    if tag.type == TagType.ENUM:
        return tag.format(value)
    if tag.type == TagType.BOOL:
        return 1 if value else 0
    if isinstance(value, float):
        return float(f"{value:.5g}") if math.isfinite(value) else None
    return value


def tag_meta(tag: TagDef, writable: bool) -> dict[str, Any]:
    """What the page needs to know of a tag once."""
    return {"name": tag.name, "type": tag.type, "unit": tag.unit, "description": tag.description,
            "min": tag.min, "max": tag.max, "values": list(tag.values), "writable": writable}


class SampleView:
    """A ``why.Snapshot`` over a Sample: enum values by name, a chart's step and its ``step_time``."""

    def __init__(self, db: TagDB, sample: Sample) -> None:
        self.defs = db.defs
        self.sample = sample

    def value(self, name: str) -> Any:
        if name in ("now_h", "weekday", "dt"):
            return UNKNOWN
        if name not in self.sample.values:
            return UNKNOWN
        tag = self.defs[name]
        value = self.sample.values[name]
        return tag.format(value) if tag.type == TagType.ENUM else value

    def good(self, tag: str) -> Any:
        quality = self.sample.quality.get(tag)
        return UNKNOWN if quality is None else quality == Quality.GOOD

    def step(self, chart: str) -> tuple[str | None, Any]:
        step = self.value(f"sfc.{chart}.step")
        return (None if step is UNKNOWN else step), self.value(f"sfc.{chart}.step_time")


def part_json(part: Part) -> dict[str, Any]:
    result = part.result
    return {"text": part.text, "result": None if result is UNKNOWN else bool(result), "shown": part.shown,
            "joined_by": part.joined_by, "parts": [part_json(p) for p in part.parts]}


def why_json(why: ChartWhy) -> dict[str, Any]:
    return {"chart": why.chart, "step": why.step, "since_s": None if why.since_s is UNKNOWN else why.since_s,
            "description": why.description,
            "enabled": part_json(why.enabled) if why.enabled is not None else None,
            "transitions": [{"label": tw.transition.label, "target": tw.transition.target,
                             "condition": part_json(tw.condition)} for tw in why.transitions]}


def live_message(db: TagDB, sample: Sample, charts: Iterable[ChartDecl], alarms: list[dict[str, Any]],
                 writes: dict[str, Any]) -> dict[str, Any]:
    """What every open page receives once per second: all values, the qualities that are not GOOD, each
    chart's active step, the alarms. (The why of the transitions is asked for by the charts page only.)"""
    defs = db.defs
    view = SampleView(db, sample)
    steps = []
    for decl in charts:
        step, since = view.step(decl.name)
        steps.append({"chart": decl.name, "step": step, "since_s": None if since is UNKNOWN else since})
    return {
        "t": round(sample.t, 3), "at": sample.at, "scans": sample.count,
        "values": {name: json_value(defs[name], value) for name, value in sample.values.items()},
        "quality": {name: q.name for name, q in sample.quality.items() if q != Quality.GOOD},
        "charts": steps,
        "alarms": alarms,
        "writes": writes,
    }


def why_message(db: TagDB, sample: Sample, charts: Iterable[ChartDecl]) -> list[dict[str, Any]]:
    """Each chart's active step and the why of every transition leaving it, part by part."""
    view = SampleView(db, sample)
    return [why_json(explain(decl, view)) for decl in charts]
