"""``battplc replay`` (tools/plantsim/replay.py): a recording drives the plant, the KPI table comes out
byte-identical for the same input, ``--set`` runs a what-if beside it, and bad input stops before any run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.site import REPO_ROOT
from tools.plantsim.plant.config import PlantConfig
from tools.plantsim.recording import load_recording
from tools.plantsim.replay import KPIS, Replay, scenario_for
from tools.plantsim.scenario import load_scenario
from tools.plantsim.sim import AlarmMarks, Simulation

EXAMPLE = REPO_ROOT / "examples" / "recordings" / "broken_clouds_day.csv"


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six hours of the shipped day from 06:00 (sun, clouds, the house), as its own recording."""
    lines = EXAMPLE.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("time,"))
    rows = [line for line in lines[header + 1:] if 6 * 3600 <= float(line.split(",")[0]) <= 12 * 3600]
    path = tmp_path_factory.mktemp("replay") / "morning.csv"
    path.write_text("\n".join([lines[header], *rows]) + "\n")
    return path


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", "replay", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def test_the_same_recording_gives_byte_identical_output(morning: Path, tmp_path: Path) -> None:
    first = replay(str(morning), "--scan", "5s", "--json", str(tmp_path / "kpi.json"))
    second = replay(str(morning), "--scan", "5s")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"replay of {morning}: 6.00 h from 2026-06-21 06:00, 5 s scan")
    assert [line.split("  ")[0] for line in lines[2:]] == [
        f"{k.label} ({k.unit})" if k.unit else k.label for k in KPIS]
    kpis = json.loads((tmp_path / "kpi.json").read_text())["as configured"]
    assert kpis["safety_violations"] == 0 and kpis["throughput_kwh"] > 0.5  # the battery worked on the sun


def test_what_if_runs_twice_side_by_side_with_the_difference(morning: Path) -> None:
    done = replay(str(morning), "--scan", "5s", "--set", "par.ccl_max_c=0.05")
    assert done.returncode == 0, done.stderr
    head, *rows = done.stdout.splitlines()[1:]
    assert head.split() == ["KPI", "as", "configured", "par.ccl_max_c=0.05", "difference"]
    throughput = next(r for r in rows if r.startswith("battery throughput")).split()
    base, changed, diff = (float(v.replace(",", "")) for v in throughput[-3:])
    assert changed < base and diff == pytest.approx(changed - base, abs=0.0015)  # 16 A instead of 160 A


@pytest.mark.parametrize("sets, message", [
    (["par.charge_temp_mni=5"], "--set: par.charge_temp_mni: not a parameter of the site (did you mean "
                                "'par.charge_temp_min'?)"),
    (["par.charge_temp_min=500"], "--set: par.charge_temp_min: 500 is outside"),
    (["par.charge_temp_min"], "--set: par.charge_temp_min: expected par.NAME=VALUE"),
    (["bat.soc=5"], "--set: bat.soc: not a parameter of the site"),
])
def test_a_bad_set_stops_before_any_run(morning: Path, sets: list[str], message: str) -> None:
    done = replay(str(morning), *[a for s in sets for a in ("--set", s)])
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "event=step" not in done.stderr  # nothing ran
    assert done.stdout == ""


def test_a_bad_recording_is_a_file_line_error(tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("time,pv.power,house.power\n0,0,300\n600,100,300\n300,100,300\n")
    done = replay(str(path))
    assert done.returncode == 2 and f"{path}:4: time: time 300 s is not after" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_recording_drives_the_plant(morning: Path) -> None:
    rec = load_recording(morning)
    scenario = scenario_for(rec, REPO_ROOT, 10.0, PlantConfig())
    run = Replay(scenario)
    run.run()
    plant = run.simulation.plant
    last = rec.pv[-2]  # the plant's last step began one scan before the end
    assert plant.pv_power == pytest.approx(last.value, rel=0.05)
    assert scenario.start.hour == 6 and run.simulation.duration == rec.duration


def test_a_streamed_trace_is_byte_identical_to_one_kept_in_memory(tmp_path: Path) -> None:
    scenario = load_scenario(REPO_ROOT / "scenarios" / "kettle_evening.yaml")
    kept = Simulation(scenario, duration=1800.0)
    kept.run()
    kept.trace.write_csv(tmp_path / "kept.csv")
    streamed = Simulation(load_scenario(scenario.path), duration=1800.0, trace_to=tmp_path / "streamed.csv")
    streamed.run()
    assert streamed.trace.rows == []
    assert (tmp_path / "streamed.csv").read_bytes() == (tmp_path / "kept.csv").read_bytes()


def test_the_alarms_raised_count_each_rise_past_its_quiet_scans() -> None:
    """The replay's alarms raised are the simulation's (AlarmMarks): scans where no alarm moved take the
    one-comparison path; a rise, a fall and a second rise still count."""
    simulation = Simulation(load_scenario(REPO_ROOT / "scenarios" / "sunny_summer_day.yaml"))
    marks = simulation.scan.observers[-1]
    assert isinstance(marks, AlarmMarks)
    values = simulation.db.values
    name = marks.names[0]
    rises = 0
    for on in (False, False, True, True, False, True, False, False):
        values[name] = on
        marks(simulation.scan)
        rises = sum(1 for mark in simulation.marks if mark.kind == "alarm")
    assert rises == 2
