"""Scenario files (tools/plantsim/scenario.py) and their profiles: valid files load, and every mistake is
reported as file:line with the key path and what is allowed, like the site config."""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from pathlib import Path

import pytest

from runtime.cli import main
from runtime.config.errors import ConfigErrors
from runtime.site import REPO_ROOT, load_site
from runtime.tags import TagDB
from tools.plantsim import profiles
from tools.plantsim.scenario import bind_site, load_scenario

ISSUE_EXAMPLE = """\
start: 2026-06-21T00:00:00     # local wall time of the site
duration: 24h
scan: 1s                       # scan period for this run
site: {site}
plant: {{soc: 50, temperature: 20, ambient: 20, cell_spread_mv: 10}}
pv: {{clear_sky: {{peak: 3000, sunrise: "05:30", sunset: "21:30"}}}}
house: [["00:00", 150], ["07:00", 600], ["08:00", 250], ["18:00", 900], ["23:00", 200]]
ambient: [["00:00", 12], ["14:00", 24]]   # optional; a number or points
events:
  - {{at: 10h, fault: {{device: bms, kind: offline, for: 5min}}}}   # kinds: offline, timeout, garbage
  - {{at: 12h, write: {{cmd.battery_off: 1}}}}                     # as a SCADA write
  - {{at: 13h, write: {{par.unload_start_import_w: 300}}}}
trace_every: 10s
"""


@pytest.fixture(scope="module")
def site_db() -> tuple[list[str], TagDB]:
    site, db, _, _ = load_site(REPO_ROOT, with_programs=False)
    return [d.name for d in site.devices], db


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_of_the_issue_loads_and_binds(tmp_path: Path, site_db: tuple[list[str], TagDB]) -> None:
    scenario = load_scenario(write(tmp_path, ISSUE_EXAMPLE.format(site=REPO_ROOT)))
    assert scenario.start == datetime(2026, 6, 21) and scenario.duration == 86400 and scenario.scan == 1.0
    assert scenario.site == REPO_ROOT and scenario.plant.soc == 0.5 and scenario.plant.ambient_c == 20
    assert [e.kind for e in scenario.events] == ["fault", "write", "write"]
    events = bind_site(scenario, *site_db)
    assert events[0].data == ("bms1", "offline", 300.0, None, 0.0)  # `bms` names the one BMS of the site
    assert scenario.pv(12 * 3600) > 2500 and scenario.pv(3 * 3600) == 0
    assert scenario.house(7 * 3600) == 600 and scenario.ambient(14 * 3600) == 24


def test_site_is_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    path = write(tmp_path / "scenarios", "duration: 1h\nsite: ..\n")
    assert load_scenario(path).site == tmp_path.resolve()
    assert load_scenario(write(tmp_path, "duration: 1h\n")).site == REPO_ROOT


def test_plant_keys_reach_the_plant_config(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "duration: 1h\nplant: {soc: 80, temperature: -5, high_cell: 3, "
                                             "bms_protect: false, heater_w: 200, seed: 7}\n"))
    plant = scenario.plant
    assert (plant.soc, plant.temperature_c, plant.high_cell, plant.bms_protect, plant.heater_w, plant.seed) == \
        (0.8, -5.0, 2, False, 200.0, 7)


BAD = [
    ("start: 2026-06-21\n", 1, "", "missing required key 'duration'"),
    ("duration: 1h\ndurration: 2h\n", 2, "durration", "did you mean 'duration'"),
    ("duration: soon\n", 1, "duration", "is not a duration"),
    ("duration: 1h\nstart: yesterday\n", 2, "start", "expected a local date and time"),
    ("duration: 1h\npv: [[\"25:00\", 100]]\n", 2, "pv[0]", "between 00:00 and 24:00"),
    ("duration: 1h\npv: [[\"07:00\"]]\n", 2, "pv[0]", 'expected a pair ["HH:MM", number]'),
    ("duration: 1h\npv: {clear_sky: {peak: 3000, sunrise: \"05:30\"}}\n", 2, "pv.clear_sky",
     "missing required key 'sunset'"),
    ("duration: 1h\npv: {clear_sky: {peak: 3000, sunrise: \"05:30\", sunset: \"21:30\", clouds: 2}}\n", 2,
     "pv.clear_sky.clouds", "out of range"),
    ("duration: 1h\nhouse: {clear_sky: {peak: 1, sunrise: \"05:30\", sunset: \"21:30\"}}\n", 2, "house.clear_sky",
     "unknown key 'clear_sky'"),
    ("duration: 1h\nambient: warm\n", 2, "ambient", "expected a number, a list of"),
    ("duration: 1h\nplant: {soc: 150}\n", 2, "plant.soc", "out of range"),
    ("duration: 1h\nplant: {temprature: 5}\n", 2, "plant.temprature", "did you mean 'temperature'"),
    ("duration: 1h\nplant: {high_cell: 9}\n", 2, "plant", "high_cell 9 is not one of 1..8"),
    ("duration: 1h\nevents:\n  - {at: 10min, fault: {device: bms1, kind: smoke}}\n", 3,
     "events[0].fault.kind", "'smoke' is not allowed"),
    ("duration: 1h\nevents:\n  - {at: 10min}\n", 3, "events[0]", "exactly one of fault, write or plant"),
    ("duration: 1h\nevents:\n  - {at: 2h, write: {cmd.battery_off: true}}\n", 3, "events[0]",
     "not before the end of the run"),
    ("duration: 1h\nchecks:\n  - {at: 10min, tag: bat.soc}\n", 3, "checks[0]", "needs a bound"),
    ("duration: 1h\nchecks:\n  - {at: 10min, from: 5min, tag: bat.soc, min: 1}\n", 3, "checks[0]",
     "either `at` or both"),
    ("duration: 1h\nexpect: {safety_violations: lots}\n", 2, "expect.safety_violations", "a number or {min, max}"),
    ("duration: 1h\nduration: 2h\n", 2, "duration", "duplicate key"),
    ("duration: 1h\nevents: [\n", 3, "", "YAML syntax"),
    ("duration: 1h\nevents:\n  - {at: soon, write: {cmd.battery_off: true}}\n  - {at: 1min, plant: {pv: 1}}\n", 3,
     "events[0].at", "is not a duration"),
]


@pytest.mark.parametrize(("text", "line", "path", "message"), BAD, ids=[b[3][:40] for b in BAD])
def test_mistakes_are_reported_with_file_and_line(tmp_path: Path, text: str, line: int, path: str,
                                                  message: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(ConfigErrors) as caught:
        load_scenario(file)
    errors = caught.value.errors
    assert any(e.file == str(file) and e.line == line and e.path == path and message in e.message
               for e in errors), [str(e) for e in errors]


SITE_BAD = [
    ("events:\n  - {at: 10min, fault: {device: bms9, kind: offline}}\n", 3, "events[0].fault.device",
     "no device 'bms9' in io_map.yaml (did you mean 'bms1'?)"),
    ("events:\n  - {at: 10min, write: {cmd.battery_of: true}}\n", 3, "events[0].write",
     "unknown tag 'cmd.battery_of' (did you mean 'cmd.battery_off'?)"),
    ("events:\n  - {at: 10min, write: {cmd.mode: turbo}}\n", 3, "events[0].write.cmd.mode", "is not one of auto"),
    ("checks:\n  - {at: 10min, tag: bat.socc, min: 1}\n", 3, "checks[0].tag", "did you mean 'bat.soc'"),
    ("checks:\n  - {at: 10min, tag: charger.enable, min: 1}\n", 3, "checks[0]", "min/max do not apply to bool"),
]


@pytest.mark.parametrize(("text", "line", "path", "message"), SITE_BAD, ids=[b[3][:40] for b in SITE_BAD])
def test_names_are_checked_against_the_site(tmp_path: Path, site_db: tuple[list[str], TagDB], text: str, line: int,
                                            path: str, message: str) -> None:
    file = write(tmp_path, "duration: 1h\n" + text)
    scenario = load_scenario(file)
    with pytest.raises(ConfigErrors) as caught:
        bind_site(scenario, *site_db)
    assert any(e.line == line and e.path == path and message in e.message for e in caught.value.errors), \
        [str(e) for e in caught.value.errors]


def test_the_sim_command_prints_errors_without_a_traceback(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path, "duration: 1h\nplant: {soc: 150}\nevents:\n  - {at: 2h, write: {cmd.mode: off}}\n")
    assert main(["sim", "--scenario", str(file)]) == 2  # CONFIG_INVALID
    err = capsys.readouterr().err
    assert f"{file}:2: plant.soc:" in err and f"{file}:4: events[0]:" in err
    assert "2 error(s)" in err and "Traceback" not in err


# ---- profiles ---------------------------------------------------------------------------------------------

def test_points_wrap_around_midnight_and_follow_the_start_time() -> None:
    house = profiles.points([(0.0, 100.0), (12 * 3600.0, 300.0)], start_tod=18 * 3600.0)
    assert house(0) == pytest.approx(200.0)  # 18:00 is halfway from the 12:00 point back to 00:00
    assert house(6 * 3600) == pytest.approx(100.0)  # midnight
    assert house(27 * 3600) == pytest.approx(150.0)  # the next day repeats: 21:00
    held = profiles.points([(7 * 3600.0, 600.0), (8 * 3600.0, 250.0)], start_tod=0.0, hold=True)
    assert held(7.5 * 3600) == 600 and held(3 * 3600) == 250


def fresh_interpolation(daily: list[tuple[float, float]], tod: float, hold: bool) -> float:
    """The points profile's value from scratch: no cached segment (what every call computed before)."""
    ordered = sorted(daily)
    xs = [ordered[-1][0] - profiles.DAY_S] + [p[0] for p in ordered] + [ordered[0][0] + profiles.DAY_S]
    ys = [ordered[-1][1]] + [p[1] for p in ordered] + [ordered[0][1]]
    k = bisect_right(xs, tod) - 1
    return ys[k] if hold else ys[k] + (ys[k + 1] - ys[k]) * (tod - xs[k]) / (xs[k + 1] - xs[k])


@pytest.mark.parametrize("hold", [False, True])
def test_points_cached_segment_gives_the_fresh_floats_in_any_order(hold: bool) -> None:
    daily = [(0.0, 15.0), (5 * 3600.0, 13.0), (15 * 3600.0, 27.3), (23 * 3600.0 + 59 * 60, 16.1)]
    start = 7 * 3600.0 + 13.0
    profile = profiles.points(daily, start_tod=start, hold=hold)
    # forward in steps (the cached segment), then jumps back and across midnight (a new segment each time)
    times = [k * 7.3 for k in range(20000)] + [50000.0, 10.0, 90000.0, 3.0, 86400.0 - start, 0.0]
    for t in times:
        assert profile(t) == fresh_interpolation(daily, (start + t) % profiles.DAY_S, hold), t


def test_clear_sky_is_zero_at_night_peaks_at_noon_and_clouds_cut_it() -> None:
    clear = profiles.clear_sky(3000, 6 * 3600, 20 * 3600, start_tod=0.0)
    cloudy = profiles.clear_sky(3000, 6 * 3600, 20 * 3600, start_tod=0.0, clouds=0.8, seed=3)
    day = [clear(h * 3600) for h in range(24)]
    assert day[5] == 0 and day[21] == 0 and max(day) == day[13] and day[13] == pytest.approx(3000, rel=0.01)
    noon = [cloudy(13 * 3600 + m * 60) for m in range(0, 120, 5)]
    assert all(3000 * 0.2 * 0.99 <= p <= 3000 * 0.68 for p in noon)
    assert max(noon) - min(noon) > 100  # clouds come and go
    again = profiles.clear_sky(3000, 6 * 3600, 20 * 3600, start_tod=0.0, clouds=0.8, seed=3)
    assert [again(13 * 3600 + m * 60) for m in range(0, 120, 5)] == noon  # reproducible


@pytest.mark.parametrize("text", ["7:5", "24:01", "12", "ab:cd", "12:60"])
def test_bad_times_of_day(text: str) -> None:
    with pytest.raises(ValueError):
        profiles.clock_seconds(text)
