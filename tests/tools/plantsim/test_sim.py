"""`battplc sim` mechanics (tools/plantsim/sim.py, cli.py, plot.py) on short runs of the default site: the
trace, the summary, SCADA writes as the server takes them, device faults, plant events, checks, the plot."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.cli import main
from runtime.site import REPO_ROOT
from runtime.tags import Quality
from tools.plantsim.scenario import load_scenario
from tools.plantsim.sim import PUBLIC_TAGS, Simulation

BASE = f"""\
start: 2026-06-21T12:00:00
scan: 1s
site: {REPO_ROOT}
plant: {{soc: 50, temperature: 20, ambient: 20}}
pv: 2000
house: 400
trace_every: 30s
"""

SUMMARY_KEYS = {"scans", "overruns", "wall_s", "energy_charged_kwh", "energy_discharged_kwh", "grid_import_kwh",
                "grid_export_kwh", "cell_v_min", "cell_v_max", "temp_min", "temp_max", "safety_violations",
                "interlock_trips", "step_time_s"}


def scenario_file(tmp_path: Path, extra: str, duration: str = "10min") -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(BASE + f"duration: {duration}\n" + extra, encoding="utf-8")
    return path


def simulate(tmp_path: Path, extra: str = "", duration: str = "10min") -> Simulation:
    simulation = Simulation(load_scenario(scenario_file(tmp_path, extra, duration)))
    simulation.run()
    return simulation


def test_summary_has_every_key_of_the_issue(tmp_path: Path) -> None:
    simulation = simulate(tmp_path)
    summary = simulation.summary()
    assert SUMMARY_KEYS <= set(summary)
    assert summary["scans"] == 600 and summary["overruns"] == 0
    assert summary["grid_export_kwh"] > 0 or summary["energy_charged_kwh"] > 0  # 1.6 kW of surplus went somewhere
    assert summary["cell_v_min"] <= summary["cell_v_max"] and summary["temp_min"] <= summary["temp_max"]
    charts = {name.split(".")[1] for name in simulation.db.defs if name.startswith("sfc.") and
              name.endswith(".step")}
    assert set(summary["step_time_s"]) == charts
    for steps in summary["step_time_s"].values():
        assert sum(steps.values()) == pytest.approx(600.0)
    json.dumps(summary)  # it must serialize as is


def test_trace_has_time_every_public_tag_and_every_chart_step(tmp_path: Path) -> None:
    simulation = simulate(tmp_path)
    out = tmp_path / "trace.csv"
    simulation.trace.write_csv(out)
    rows = list(csv.DictReader(out.open()))
    header = list(rows[0])
    assert header[0] == "time" and set(PUBLIC_TAGS) <= set(header)
    steps = [c for c in header if c.startswith("sfc.") and c.endswith(".step")]
    assert {c.split(".")[1] for c in steps} >= {"load", "keep", "ballast", "unload"}
    assert [float(r["time"]) for r in rows[:3]] == [0.0, 30.0, 60.0] and len(rows) == 20
    assert all(r["sfc.unload.step"] and not r["sfc.unload.step"][0].isdigit() for r in rows)  # step names
    assert float(rows[-1]["pv.power"]) == pytest.approx(2000.0, abs=0.01)


def test_scada_writes_land_at_the_next_latch_and_bad_ones_are_refused(tmp_path: Path) -> None:
    extra = """events:
  - {at: 2min, write: {par.unload_start_import_w: 300, cmd.mode: hold}}
  - {at: 3min, write: {bat.soc: 10}}                      # read-only
  - {at: 4min, write: {par.unload_start_import_w: -5}}    # below min
"""
    simulation = simulate(tmp_path, extra)
    db = simulation.db
    assert db.values["par.unload_start_import_w"] == 300 and db.defs["cmd.mode"].format(db.values["cmd.mode"]) == "hold"
    summary = simulation.summary()
    assert (summary["scada_writes_accepted"], summary["scada_writes_refused"]) == (2, 2)


def test_a_write_is_not_seen_before_the_scan_after_it(tmp_path: Path) -> None:
    simulation = Simulation(load_scenario(scenario_file(
        tmp_path, "events:\n  - {at: 5s, write: {par.unload_start_import_w: 321}}\n", "10s")))
    seen = []
    simulation.scan.observers.append(lambda scan: seen.append(scan.db.values["par.unload_start_import_w"]))
    simulation.run()
    assert seen[4] != 321 and seen[5] == 321  # queued before the scan at 5 s, latched by it


def test_a_device_fault_makes_its_tags_bad_for_its_duration(tmp_path: Path) -> None:
    extra = "events:\n  - {at: 1min, fault: {device: meter, kind: timeout, for: 30s}}\n"
    simulation = Simulation(load_scenario(scenario_file(tmp_path, extra, "2min")))
    qualities = []
    simulation.scan.observers.append(lambda scan: qualities.append(scan.db.quality["grid.power"]))
    simulation.run()
    bad = [i for i, q in enumerate(qualities) if q is Quality.BAD]
    assert bad == list(range(60, 90))
    assert simulation.summary()["failed_polls"]["meter"] == 30


def test_plant_events_pin_inputs(tmp_path: Path) -> None:
    simulation = simulate(tmp_path, "events:\n  - {at: 1min, plant: {pv: 0, house: 50, ambient: -10}}\n", "3min")
    assert simulation.plant.ambient_c == -10 and simulation.plant.pv_power == 0
    assert simulation.db.values["pv.power"] == pytest.approx(0.0)


def test_checks_pass_and_fail_with_file_and_line(tmp_path: Path) -> None:
    extra = """checks:
  - {at: 1min, tag: pv.power, min: 1999, max: 2001}
  - {from: 1min, to: 2min, tag: house.power, max: 100}
  - {at: 2min, tag: cmd.mode, eq: auto}
"""
    summary = simulate(tmp_path, extra, "3min").summary()
    assert summary["checks_passed"] == 2
    [failure] = summary["checks_failed"]
    assert failure.startswith(f"{tmp_path / 'scenario.yaml'}:")
    assert "house.power <= 100 from 60 s to 120 s: was 400.0 at 60 s" in failure


def test_the_sim_command_writes_trace_summary_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file(tmp_path, "expect: {safety_violations: 0}\n", "20min")
    outputs = [tmp_path / n for n in ("t.csv", "s.json", "p.png")]
    argv = ["sim", "--scenario", str(path), "--trace", str(outputs[0]), "--summary", str(outputs[1]),
            "--plot", str(outputs[2]), "--progress"]
    assert main(argv) == 0
    assert outputs[0].read_text().startswith("time,")
    assert json.loads(outputs[1].read_text())["scans"] == 1200
    assert outputs[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and outputs[2].stat().st_size > 20_000
    captured = capsys.readouterr()
    assert "1200 scans" in captured.out and "sim [" in captured.err  # the progress bar was asked for


def test_missed_expectations_fail_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file(tmp_path, "expect: {scans: 5, safety_violations: {max: 0}}\n", "1min")
    assert main(["sim", "--scenario", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:" in err and "expect.scans: 60, expected = 5" in err
    assert main(["sim", "--scenario", str(path), "--duration", "30s"]) == 0  # shortened: not judged


def test_a_sensor_offset_lasts_exactly_its_window(tmp_path: Path) -> None:
    """bms1 reports cell 1 half a volt high from 2 min for 3 min: the controller's max cell shows it in that
    window and only then (a valid frame, a wrong value)."""
    path = tmp_path / "offset.yaml"
    path.write_text(BASE.replace("trace_every: 30s", "trace_every: 1s") + "duration: 10min\nevents:\n"
                    "  - {at: 2min, fault: {device: bms1, kind: offset, tag: bms1.cell_1, value: 0.5, for: 3min}}\n",
                    encoding="utf-8")
    simulation = Simulation(load_scenario(path))
    simulation.run()
    trace = simulation.trace
    shown, true, times = trace.column("bat.cell_v_max"), trace.column("plant.cell_v_max"), trace.column("time")
    lifted = [t for t, s, v in zip(times, shown, true, strict=True) if s is not None and s - v > 0.4]
    # polled at the scan after the fault starts, gone at the scan after it ends
    assert lifted and min(lifted) <= 122 and 298 <= max(lifted) <= 301
    assert all(120 <= t <= 301 for t in lifted)


def test_a_sensor_fault_needs_a_tag_and_a_device_fault_takes_none(tmp_path: Path) -> None:
    from runtime.config.errors import ConfigErrors

    for fault in ("{device: bms1, kind: offset, value: 1}", "{device: bms1, kind: offline, tag: bms1.cell_1}"):
        path = scenario_file(tmp_path, f"events:\n  - {{at: 1min, fault: {fault}}}\n")
        with pytest.raises(ConfigErrors, match="tag"):
            Simulation(load_scenario(path))


def test_soc_error_moves_with_a_wrong_capacity(tmp_path: Path) -> None:
    """par.capacity_ah at half the truth: the displayed SoC runs away from the plant's while it charges."""
    good = simulate(tmp_path).summary()
    bad = simulate(tmp_path, "events:\n  - {at: 1s, write: {par.capacity_ah: 160}}\n").summary()
    assert good["soc_error_max_pts"] < 0.5
    assert bad["soc_error_max_pts"] > 1.5 and abs(bad["soc_error_end_pts"]) > 1.5


def test_interlock_trips_count_a_lost_bms(tmp_path: Path) -> None:
    assert simulate(tmp_path).summary()["interlock_trips"] == 0
    lost = simulate(tmp_path, "events:\n  - {at: 3min, fault: {device: bms1, kind: offline, for: 1min}}\n")
    assert lost.summary()["interlock_trips"] >= 1


@pytest.mark.parametrize("number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_sim_writes_its_partial_trace_summary_and_plot(tmp_path: Path, number: int, status: int) -> None:
    path = scenario_file(tmp_path, "", "7d")  # far longer than the test waits
    outputs = [tmp_path / n for n in ("t.csv", "s.json", "p.png")]
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "sim", "--scenario", str(path), "--trace",
                             str(outputs[0]), "--summary", str(outputs[1]), "--plot", str(outputs[2]),
                             "--no-progress"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60  # a guard against a hang, not a figure under test
        while not (outputs[0].exists() and outputs[0].read_text().count("\n") > 20):
            assert proc.poll() is None and time.monotonic() < deadline, "the trace never streamed to disk"
            time.sleep(0.1)
        proc.send_signal(number)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, err[-2000:]
    assert "Traceback" not in err
    assert "of the simulated day; partial" in err and str(outputs[1]) in err
    summary = json.loads(outputs[1].read_text())
    rows = list(csv.reader(outputs[0].open()))
    assert 0 < summary["stopped_at_s"] < 7 * 86400
    assert len(rows) - 1 == summary["scans"] // 30 + (summary["scans"] % 30 > 0)  # every sample, no half line
    assert outputs[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_why_at_explains_the_simulated_moment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file(tmp_path, "", "1h")  # starts at 12:00
    assert main(["sim", "--scenario", str(path), "--why-at", "12:30", "--summary", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("why at 12:30 of the simulated day:\nkeep: ")
    assert "\nunload: " in out and "what blocks charging:" in out and "?" not in out.split("what blocks")[0]


def test_why_at_refuses_a_bad_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sim", "--scenario", str(scenario_file(tmp_path, "")), "--why-at", "25:00"])
    assert "'25:00' is not a time of day such as 20:15" in capsys.readouterr().err


def test_text_columns_follow_every_change_of_their_values() -> None:
    """The trace's text columns are formatted again whenever a value is another object than at the last row
    (an equal value of another type too: an int tag holding True reads 'True', not '1')."""
    from runtime.tags import TagDef, TagType
    from tools.plantsim.sim import TextColumns

    defs = {tag.name: tag for tag in (TagDef("a.on", TagType.BOOL), TagDef("a.step", TagType.ENUM, values=("idle", "run")),
                                      TagDef("a.count", TagType.INT), TagDef("a.x", TagType.FLOAT))}
    columns = TextColumns(defs, ["a.x", "a.on", "missing", "a.step", "a.count"])
    assert columns.apply((1.5, False, None, 0, 7)) == (1.5, "0", None, "idle", "7")
    assert columns.apply((2.5, False, None, 0, 7)) == (2.5, "0", None, "idle", "7")
    assert columns.apply((2.5, True, None, 0, 7)) == (2.5, "1", None, "idle", "7")
    assert columns.apply((2.5, True, None, 1, 7)) == (2.5, "1", None, "run", "7")
    assert columns.apply((2.5, True, None, 1, True)) == (2.5, "1", None, "run", "True")
    assert TextColumns(defs, ["a.x"]).apply((3.0,)) == (3.0,)
    assert TextColumns(defs, ["a.on"]).apply((1,)) == ("1",)
