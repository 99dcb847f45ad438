"""A recorded day for ``battplc replay``: PV production, house load and (optionally) ambient over time.

Three formats, told apart by the file:

- a battplc trace CSV (``battplc sim --trace``): ``time`` in seconds from the start, ``pv.power``,
  ``house.power`` and ``plant.ambient``;
- a CSV of measurements: ``time`` (seconds since midnight, as in a trace, or an ISO date-time like
  2026-06-21T06:00:00; the run starts at the first sample),
  ``pv.power`` and ``house.power`` in W (a header may name the unit: ``pv.power[kW]``), optional ``ambient``
  in degC. Lines starting with ``#`` are comments;
- a Prometheus range-query export (``curl .../api/v1/query_range?...``, JSON): the series of ``pv.power``
  and ``house.power`` by their battplc metric names (``battplc_pv_power_watts``), optional a series whose
  name contains ``ambient``; timestamps are read as the local time of the machine replaying.

Everything wrong is collected and reported as ``file:line: column: what is wrong`` (``file: path`` in JSON):
unsorted or repeated times, gaps longer than ``max_gap`` seconds, values that are no numbers, negative power,
values in the wrong unit (a PV or house power whose day peak is below 30 looks like kW; an ambient above 60
looks like kelvin or fahrenheit).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigError, ConfigErrors
from tools.plantsim.profiles import Profile, segment

DEFAULT_START = datetime(2026, 6, 21)
DEFAULT_MAX_GAP = 900.0
COLUMNS = {"pv": "pv.power", "house": "house.power", "ambient": "ambient"}
# accepted spellings of each column in a CSV header (a trace names the true ambient plant.ambient)
ALIASES = {"pv.power": "pv", "house.power": "house", "ambient": "ambient", "plant.ambient": "ambient"}
POWER_UNITS = {"w": 1.0, "kw": 1000.0}
KW_SUSPECT = 30.0  # a day whose power never exceeds this many "W" was written in kW
AMBIENT_MAX = 60.0  # degC; above it the column is kelvin or fahrenheit


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the recording's start
    value: float


@dataclass
class Recording:
    """The recorded series, each as (seconds since ``start``, value) samples sorted by time."""

    path: Path
    start: datetime
    pv: list[Sample]
    house: list[Sample]
    ambient: list[Sample] | None

    @property
    def duration(self) -> float:
        return max(self.pv[-1].t, self.house[-1].t)


def series(samples: list[Sample]) -> Profile:
    """A recorded series as a profile ``f(t)``: linear between samples, held before the first and after the
    last. The simulation asks in increasing time, so the segment of the previous call is kept (closure cells:
    this runs every plant step and in the no-battery pass of a replay)."""
    ts, vs = [s.t for s in samples], [s.value for s in samples]
    first, last = ts[0], ts[-1]
    t0 = t1 = math.nan  # no segment yet: every comparison with NaN is false
    v0 = rise = span = 0.0

    def profile(t: float) -> float:
        nonlocal t0, t1, v0, rise, span
        if not t0 <= t < t1:
            if t < first:
                return vs[0]
            if t >= last:
                return vs[-1]
            t0, t1, v0, rise, span = segment(ts, vs, t)
        return v0 + rise * (t - t0) / span

    return profile


def load_recording(path: Path | str, max_gap: float = DEFAULT_MAX_GAP,
                   metric_names: dict[str, str] | None = None) -> Recording:
    """Read a recording; ConfigErrors with every problem found. ``metric_names``: Prometheus series name ->
    "pv" / "house" (default: battplc's names for pv.power and house.power)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(str(path), 0, "", f"cannot read the recording: {exc}")]) from None
    if text.lstrip().startswith("{"):
        columns, start, wheres = _from_prometheus(path, text, metric_names or PROMETHEUS_NAMES)
    else:
        columns, start, wheres = _from_csv(path, text)
    errors = _check(path, columns, wheres, max_gap)
    if errors:
        raise ConfigErrors(errors)
    return Recording(path, start, columns["pv"], columns["house"], columns.get("ambient"))


# ---- CSV ------------------------------------------------------------------------------------------------

Wheres = dict[str, list[tuple[int, str]]]  # column -> (line, where) per sample, for errors


def _from_csv(path: Path, text: str) -> tuple[dict[str, list[Sample]], datetime, Wheres]:
    errors: list[ConfigError] = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ConfigErrors([ConfigError(str(path), 0, "", "empty recording: no header, no samples")])
    header_line, header = lines[0]
    names = next(csv.reader([header]))
    index: dict[str, tuple[int, float]] = {}  # column -> (position, scale to W)
    bad_units: set[str] = set()
    for position, raw in enumerate(names):
        name, unit = _name_unit(raw.strip())
        column = "time" if name == "time" else ALIASES.get(name)
        if column is None:
            continue  # a trace has many more columns
        scale = 1.0
        if column in ("pv", "house"):
            if unit.lower() not in POWER_UNITS:
                errors.append(ConfigError(str(path), header_line, raw,
                                          f"unit {unit!r} is not one of W, kW"))
                bad_units.add(column)
                continue
            scale = POWER_UNITS[unit.lower()]
        elif column == "ambient" and unit not in ("", "C", "degC"):
            errors.append(ConfigError(str(path), header_line, raw, f"unit {unit!r}: ambient is in degC"))
            bad_units.add(column)
            continue
        if name == "ambient":  # a measured ambient wins over a trace's plant.ambient
            index[column] = (position, scale)
        else:
            index.setdefault(column, (position, scale))
    for column in ("time", "pv", "house"):
        if column not in index and column not in bad_units:
            errors.append(ConfigError(str(path), header_line, "", f"no column {COLUMNS.get(column, column)!r}; "
                                      "a recording needs time, pv.power, house.power (and optional ambient)"))
    if errors:
        raise ConfigErrors(errors)
    columns: dict[str, list[Sample]] = {c: [] for c in index if c != "time"}
    wheres: Wheres = {c: [] for c in columns}
    start: datetime | None = None
    time_at, _ = index["time"]
    for n, line in lines[1:]:
        cells = next(csv.reader([line]))
        if len(cells) != len(names):
            errors.append(ConfigError(str(path), n, "", f"{len(cells)} fields, the header has {len(names)}"))
            continue
        t, start, problem = _time(cells[time_at].strip(), start)
        if problem:
            errors.append(ConfigError(str(path), n, "time", problem))
            continue
        for column, (position, scale) in index.items():
            if column == "time":
                continue
            raw = cells[position].strip()
            try:
                value = float(raw) * scale
            except ValueError:
                errors.append(ConfigError(str(path), n, names[position],
                                          f"{raw!r} is not a number" if raw else "no value (a gap in the recording)"))
                continue
            if not math.isfinite(value):
                errors.append(ConfigError(str(path), n, names[position], f"{raw!r} is not a finite number"))
                continue
            columns[column].append(Sample(t, value))
            wheres[column].append((n, names[position]))
    if errors:
        raise ConfigErrors(errors)
    if start is None:  # times in seconds since midnight of the recorded day: the run starts at the first one
        first = min(samples[0].t for samples in columns.values() if samples)
        start = DEFAULT_START + timedelta(seconds=first)
        columns = {c: [Sample(s.t - first, s.value) for s in samples] for c, samples in columns.items()}
    return columns, start, wheres


def _name_unit(raw: str) -> tuple[str, str]:
    """'pv.power[kW]' -> ('pv.power', 'kW'); no brackets: the unit is W (or degC)."""
    if raw.endswith("]") and "[" in raw:
        name, _, unit = raw[:-1].partition("[")
        return name.strip(), unit.strip()
    return raw, "W" if ALIASES.get(raw) in ("pv", "house") else ""


def _time(raw: str, start: datetime | None) -> tuple[float, datetime | None, str]:
    """(seconds since the start, the start, problem): seconds are taken as they are; date-times count from
    the first one."""
    try:
        return float(raw), start, ""
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw).replace(tzinfo=None)
    except ValueError:
        return 0.0, start, f"{raw!r} is neither seconds nor a date-time like 2026-06-21T06:00:00"
    if start is None:
        start = moment
    return (moment - start).total_seconds(), start, ""


# ---- Prometheus -------------------------------------------------------------------------------------------

PROMETHEUS_NAMES = {"battplc_pv_power_watts": "pv", "battplc_house_power_watts": "house"}


def _from_prometheus(path: Path, text: str, names: dict[str, str]
                     ) -> tuple[dict[str, list[Sample]], datetime, Wheres]:
    def fail(where: str, message: str) -> ConfigErrors:
        return ConfigErrors([ConfigError(str(path), 0, where, message)])

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigErrors([ConfigError(str(path), exc.lineno, "", f"not JSON: {exc.msg}")]) from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise fail("data", "expected a Prometheus range-query answer: data.resultType 'matrix' with data.result")
    series: dict[str, tuple[int, list[Any]]] = {}
    for i, item in enumerate(data["result"]):
        name = str(item.get("metric", {}).get("__name__", "")) if isinstance(item, dict) else ""
        column = names.get(name) or ("ambient" if "ambient" in name else None)
        if column is None:
            continue
        if column in series:
            raise fail(f"data.result[{i}]", f"a second series for {COLUMNS[column]} ({name}); export one")
        values = item.get("values")
        if not isinstance(values, list):
            raise fail(f"data.result[{i}].values", "expected a list of [timestamp, \"value\"] pairs")
        series[column] = (i, values)
    missing = [COLUMNS[c] for c in ("pv", "house") if c not in series]
    if missing:
        raise fail("data.result", f"no series for {', '.join(missing)}; expected the metrics "
                                  f"{', '.join(n for n, c in names.items() if COLUMNS[c] in missing)}")
    stamps = [float(pair[0]) for _, values in series.values() for pair in values[:1]
              if isinstance(pair, list) and pair and isinstance(pair[0], (int, float))]
    origin = min(stamps) if stamps else 0.0
    columns: dict[str, list[Sample]] = {}
    wheres: Wheres = {}
    errors: list[ConfigError] = []
    for column, (i, values) in series.items():
        columns[column], wheres[column] = [], []
        for j, pair in enumerate(values):
            where = f"data.result[{i}].values[{j}]"
            try:
                stamp, value = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                stamp = value = math.nan
            if not (math.isfinite(stamp) and math.isfinite(value)):
                errors.append(ConfigError(str(path), 0, where, f"expected [timestamp, \"number\"], got {pair!r}"))
                continue
            columns[column].append(Sample(stamp - origin, value))
            wheres[column].append((0, where))
    if errors:
        raise ConfigErrors(errors)
    return columns, datetime.fromtimestamp(origin), wheres


# ---- checks common to every format --------------------------------------------------------------------------

def _check(path: Path, columns: dict[str, list[Sample]], wheres: Wheres, max_gap: float) -> list[ConfigError]:
    errors: list[ConfigError] = []
    for column, samples in columns.items():
        where = wheres[column]
        if len(samples) < 2:
            line = where[0][0] if where else 0
            errors.append(ConfigError(str(path), line, COLUMNS[column], "a recording needs at least two samples"))
            continue
        for k in range(1, len(samples)):
            line, key = where[k]
            key = "time" if line else key  # a CSV's columns share their times: one error, not one per column
            step = samples[k].t - samples[k - 1].t
            if step <= 0.0:
                errors.append(ConfigError(str(path), line, key,
                                          f"time {samples[k].t:g} s is not after the previous sample's "
                                          f"{samples[k - 1].t:g} s: times must increase"))
            elif step > max_gap:
                errors.append(ConfigError(str(path), line, key,
                                          f"a gap of {step:g} s since the previous sample (line "
                                          f"{where[k - 1][0]}); at most {max_gap:g} s is allowed (--max-gap)"))
        errors += _check_units(path, column, samples, where)
    return errors


def _check_units(path: Path, column: str, samples: list[Sample], where: list[tuple[int, str]]) -> list[ConfigError]:
    errors = []
    if column == "ambient":
        for (line, key), s in zip(where, samples, strict=True):
            if not -50.0 <= s.value <= AMBIENT_MAX:
                errors.append(ConfigError(str(path), line, key or "ambient",
                                          f"{s.value:g} is not an ambient in degC (-50..{AMBIENT_MAX:g}); "
                                          "kelvin or fahrenheit?"))
                break
        return errors
    for (line, key), s in zip(where, samples, strict=True):
        if s.value < -50.0:  # a meter's offset at night is a few W; more is a sign error
            errors.append(ConfigError(str(path), line, key or COLUMNS[column],
                                      f"{s.value:g} W: {COLUMNS[column]} is never negative"))
            break
    peak = max(s.value for s in samples)
    if 0.0 < peak < KW_SUSPECT:
        line, key = where[0]
        errors.append(ConfigError(str(path), line, key or COLUMNS[column],
                                  f"the highest {COLUMNS[column]} is {peak:g} W: that is kW, not W; "
                                  f"name the unit in the header ({COLUMNS[column]}[kW]) or give W"))
    return errors
