"""Recordings for ``battplc replay`` (tools/plantsim/recording.py): the three formats load, and every bad
recording is a file:line error saying what is wrong, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.config.errors import ConfigErrors
from runtime.site import REPO_ROOT
from tools.plantsim.recording import Sample, load_recording, series
from tools.plantsim.weather import synthetic_year, write_csv

EXAMPLE = REPO_ROOT / "examples" / "recordings" / "broken_clouds_day.csv"
GOOD = "time,pv.power,house.power,ambient\n0,0,300,12\n600,1500,400,14\n1200,2500,350,15\n"


def errors_of(tmp_path: Path, text: str, name: str = "day.csv", **kwargs: float) -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigErrors) as caught:
        load_recording(path, **kwargs)
    return [str(e) for e in caught.value.errors]


def test_a_measurement_csv_loads_and_interpolates(tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("# a comment\n" + GOOD)
    rec = load_recording(path)
    assert rec.duration == 1200.0 and rec.ambient is not None
    pv = series(rec.pv)
    assert pv(300.0) == 750.0 and pv(900.0) == 2000.0 and pv(5000.0) == 2500.0 and pv(0.0) == 0.0


def test_a_series_gives_the_fresh_floats_in_any_order() -> None:
    """The cached segment (tried first) and a jump (a new segment) give the interpolation's very floats."""
    samples = [Sample(0.0, 10.0), Sample(600.0, 1234.5), Sample(1200.0, 7.25), Sample(1500.0, 333.3)]
    profile = series(samples)

    def fresh(t: float) -> float:
        if t < 0.0 or t >= 1500.0:
            return 10.0 if t < 0.0 else 333.3
        k = max(i for i, s in enumerate(samples) if s.t <= t)
        a, b = samples[k], samples[k + 1]
        return a.value + (b.value - a.value) * (t - a.t) / (b.t - a.t)

    times = [k * 3.7 for k in range(500)] + [-5.0, 1499.9, 1500.0, 9000.0, 599.99, 600.0, 0.0, 1200.0, 17.0]
    for t in times:
        assert profile(t) == fresh(t), t


def test_kw_header_and_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("time,pv.power[kW],house.power\n2026-06-21T06:00:00,0.5,300\n2026-06-21T06:10:00,1.25,310\n")
    rec = load_recording(path)
    assert rec.start.hour == 6 and [s.t for s in rec.pv] == [0.0, 600.0] and rec.pv[1].value == 1250.0
    assert rec.ambient is None


def test_the_shipped_recording_loads() -> None:
    rec = load_recording(EXAMPLE)
    assert len(rec.pv) == 1440 and rec.duration == 86340.0 and max(s.value for s in rec.pv) > 1000


def test_a_battplc_trace_loads(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("time,bat.soc,pv.power,house.power,sfc.keep.step,plant.ambient\n"
                    "0,50,0,250,idle,15\n10,50,100,250,charge,15.1\n")
    rec = load_recording(path)
    assert rec.pv[1].value == 100.0 and rec.ambient is not None and rec.ambient[1].value == 15.1


def test_a_prometheus_range_export_loads(tmp_path: Path) -> None:
    def series(name: str, values: list[float]) -> dict:
        return {"metric": {"__name__": name, "instance": "plc:9108"},
                "values": [[1781913600 + 60 * i, str(v)] for i, v in enumerate(values)]}
    doc = {"status": "success", "data": {"resultType": "matrix", "result": [
        series("battplc_pv_power_watts", [0, 800, 1600]), series("battplc_house_power_watts", [300, 320, 340]),
        series("battplc_scan_duration_seconds", [0.001, 0.001, 0.001])]}}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    rec = load_recording(path)
    assert [s.t for s in rec.house] == [0.0, 60.0, 120.0] and rec.pv[2].value == 1600.0 and rec.ambient is None


@pytest.mark.parametrize("text, expected", [
    ("time,pv.power,house.power\n0,0,300\n60,100,300\n60,200,300\n",
     "day.csv:4: time: time 60 s is not after the previous sample's 60 s: times must increase"),
    ("time,pv.power,house.power\n0,0,300\n120,100,300\n60,200,300\n",
     "day.csv:4: time: time 60 s is not after the previous sample's 120 s"),
    ("time,pv.power,house.power\n0,0,300\n600,100,300\n5000,200,300\n",
     "day.csv:4: time: a gap of 4400 s since the previous sample (line 3); at most 900 s"),
    ("time,pv.power,house.power\n0,0.1,300\n60,2.5,300\n",
     "day.csv:2: pv.power: the highest pv.power is 2.5 W: that is kW, not W"),
    ("time,pv.power[MW],house.power\n0,0,300\n60,2,300\n",
     "day.csv:1: pv.power[MW]: unit 'MW' is not one of W, kW"),
    ("time,pv.power,house.power,ambient\n0,0,300,293\n60,200,300,294\n",
     "day.csv:2: ambient: 293 is not an ambient in degC"),
    ("time,pv.power,house.power\n0,0,300\n60,,300\n",
     "day.csv:3: pv.power: no value (a gap in the recording)"),
    ("time,pv.power,house.power\n0,0,300\n60,abc,300\n",
     "day.csv:3: pv.power: 'abc' is not a number"),
    ("time,pv.power,house.power\n0,0,-300\n60,100,300\n",
     "day.csv:2: house.power: -300 W: house.power is never negative"),
    ("time,pv.power\n0,0\n60,100\n",
     "day.csv:1: no column 'house.power'"),
    ("time,pv.power,house.power\nyesterday,0,300\n",
     "day.csv:2: time: 'yesterday' is neither seconds nor a date-time"),
])
def test_bad_recordings_name_file_line_and_what_is_wrong(tmp_path: Path, text: str, expected: str) -> None:
    errors = errors_of(tmp_path, text)
    assert any(expected in e for e in errors), errors


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "time,pv.power,house.power\n0,0,300\n60,x,300\n120,100,y\n")
    assert [e.split(": ")[0][-9:] for e in errors] == ["day.csv:3", "day.csv:4"], errors
    errors = errors_of(tmp_path, "time,pv.power,house.power\n0,0,300\n60,50,300\n30,100,300\n9000,100,300\n")
    assert [e.split(": ")[0][-9:] for e in errors] == ["day.csv:4", "day.csv:5"], errors


def test_a_prometheus_export_without_the_series_says_which(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}))
    errors = errors_of(tmp_path, path.read_text(), name="export.json")
    assert any("no series for pv.power, house.power" in e and "battplc_pv_power_watts" in e for e in errors)


def test_a_prometheus_sample_that_is_no_number_names_its_place(tmp_path: Path) -> None:
    doc = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "battplc_pv_power_watts"}, "values": [[1, "0"], [61, "NaN"]]},
        {"metric": {"__name__": "battplc_house_power_watts"}, "values": [[1, "300"], [61, "310"]]}]}}
    errors = errors_of(tmp_path, json.dumps(doc), name="export.json")
    assert any("export.json: data.result[0].values[1]: expected [timestamp, \"number\"], got [61, 'NaN']" in e
               for e in errors), errors


def test_the_synthetic_year_is_deterministic_and_loads_back(tmp_path: Path) -> None:
    a, b = synthetic_year(days=3), synthetic_year(days=3)
    assert a.pv == b.pv and a.house == b.house and a.ambient == b.ambient
    assert synthetic_year(days=3, seed=5).pv != a.pv
    write_csv(a, tmp_path / "year.csv")
    back = load_recording(tmp_path / "year.csv")
    assert back.pv == a.pv and back.duration == 3 * 86400 - 600
