"""The /metrics endpoint: names in base units, values, qualities, runtime families, commit-time snapshots.

Scrapes go over a real socket to an endpoint on an ephemeral port while a scan runs on the simulated clock;
``promtool check metrics`` lints a live scrape when promtool is installed.
"""

from __future__ import annotations

import gzip
import logging
import math
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.app import Controller
from runtime.clock import SimClock
from runtime.metrics import MetricsExporter, attach, build_plan, metric_name
from runtime.metrics.exporter import ScrapeLimit
from runtime.mqtt.bridge import Bridge
from runtime.mqtt.settings import MqttSettings
from runtime.program import Program, ScanContext
from runtime.scan import Scan
from runtime.server.protocol import ServerStats
from runtime.tags import Quality, TagDB, TagDef, TagType

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")

TAGS = (
    TagDef("bat.voltage", TagType.FLOAT, "V", "pack voltage"),
    TagDef("bat.current", TagType.FLOAT, "A", "battery current, + = charging"),
    TagDef("bat.power", TagType.FLOAT, "kW", "battery power"),
    TagDef("bat.soc", TagType.FLOAT, "%", "state of charge"),
    TagDef("bat.temp_max", TagType.FLOAT, "degC", "warmest cell"),
    TagDef("bat.cell_v_min", TagType.FLOAT, "mV", "lowest cell"),
    TagDef("soc.residual_kwh", TagType.FLOAT, "kWh", "energy left"),
    TagDef("bms.charge_allowed", TagType.BOOL, "", "BMS allows charging"),
    TagDef("bms.online", TagType.INT, "count", "BMS units answering"),
    TagDef("cmd.mode", TagType.ENUM, "", "operating mode", access="rw", values=("auto", "off", "hold")),
    TagDef("interlock.trips", TagType.INT, "count", "protection trips", retain=True),
    TagDef("par.unload_delay_s", TagType.FLOAT, "s", "unload settle time", access="rw", retain=True),
    TagDef("grid.power", TagType.FLOAT, "W", "grid power"),
    TagDef("shunt.voltage", TagType.FLOAT, "V", "shunt voltage"),
    TagDef("internal.scratch", TagType.FLOAT, "", "not for Prometheus", metric=False),
    TagDef("sfc.unload.step", TagType.ENUM, "", "active step", values=("idle", "wait", "discharge")),
    TagDef("sfc.unload.step_time", TagType.FLOAT, "s", "time in the step"),
    TagDef("sfc.unload.held", TagType.BOOL, "", "held safe"),
    TagDef("dev.bms1.up", TagType.BOOL, "", "bms1 answers"),
    TagDef("dev.bms1.errors", TagType.INT, "count", "all errors"),
    TagDef("dev.bms1.errors_timeout", TagType.INT, "count", "timeouts"),
    TagDef("dev.bms1.errors_decode", TagType.INT, "count", "decode errors"),
    TagDef("dev.bms1.last_good", TagType.FLOAT, "s", "last good read, epoch seconds"),
    TagDef("dev.meter.up", TagType.BOOL, "", "meter answers"),
    TagDef("dev.meter.errors", TagType.INT, "count", "all errors"),
    TagDef("alarm.cell_high", TagType.BOOL, "", "a cell is high"),
)


class Writer(Program):
    """Writes whatever the test put in ``next`` (once), and raises while ``fail`` is set."""

    def __init__(self, name: str, writes: tuple[str, ...]) -> None:
        self.name = name
        self.writes = frozenset(writes)
        self.next: dict[str, Any] = {}
        self.fail = False
        self.during: Callable[[ScanContext], None] | None = None

    def scan(self, ctx: ScanContext) -> None:
        for tag, value in self.next.items():
            ctx.write(tag, value)
        self.next = {}
        if self.during is not None:
            self.during(ctx)
        if self.fail:
            raise RuntimeError("broken on purpose")


@dataclass
class Rig:
    scan: Scan
    exporter: MetricsExporter
    writer: Writer
    stats: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def db(self) -> TagDB:
        return self.scan.db

    def text(self, path: str = "/metrics") -> str:
        with urllib.request.urlopen(self.exporter.url.replace("/metrics", path), timeout=5) as response:
            return response.read().decode()

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """{(sample name, labels): value} of one scrape."""
        out = {}
        for family in text_string_to_metric_families(self.text()):
            for sample in family.samples:
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return out


def one(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def rig() -> Iterator[Rig]:
    db = TagDB.from_defs(TAGS)
    writer = Writer("writer", ("bat.voltage", "bat.current", "bat.power", "bat.soc", "bat.temp_max",
                               "bat.cell_v_min", "soc.residual_kwh", "bms.charge_allowed", "bms.online",
                               "cmd.mode", "interlock.trips", "grid.power", "alarm.cell_high"))
    scan = Scan(db, [writer], SimClock(), 0.1)
    stats: dict[tuple[str, str], int] = {}
    exporter = MetricsExporter(scan, snapshot_interval=0.0, server_stats=lambda: stats)
    rig = Rig(scan, exporter, writer, stats)
    scan.observers.append(exporter.observe)
    exporter.serve("127.0.0.1", 0)
    yield rig
    exporter.stop()


def run(rig: Rig, scans: int = 1, **writes: Any) -> None:
    rig.writer.next = {name.replace("__", "."): value for name, value in writes.items()}
    rig.scan.run(max_scans=rig.scan.count + scans)


# ---- names ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tag", "expected"), [
    (TagDef("bat.voltage", TagType.FLOAT, "V"), "battplc_bat_voltage_volts"),
    (TagDef("bat.cell_v_max", TagType.FLOAT, "V"), "battplc_bat_cell_v_max_volts"),
    (TagDef("bat.current", TagType.FLOAT, "A"), "battplc_bat_current_amperes"),
    (TagDef("bms1.cell_mv", TagType.FLOAT, "mV"), "battplc_bms1_cell_volts"),
    (TagDef("bat.power", TagType.FLOAT, "W"), "battplc_bat_power_watts"),
    (TagDef("par.unload_start_import_w", TagType.FLOAT, "W"), "battplc_par_unload_start_import_watts"),
    (TagDef("soc.residual_kwh", TagType.FLOAT, "kWh"), "battplc_soc_residual_joules"),
    (TagDef("soc.charge_ah", TagType.FLOAT, "Ah"), "battplc_soc_charge_coulombs"),
    (TagDef("bat.soc", TagType.FLOAT, "%"), "battplc_bat_soc_percent"),
    (TagDef("soc.imbalance_pct", TagType.FLOAT, "%"), "battplc_soc_imbalance_percent"),
    (TagDef("bat.temp_min", TagType.FLOAT, "degC"), "battplc_bat_temp_min_celsius"),
    (TagDef("par.unload_max_time_s", TagType.FLOAT, "s"), "battplc_par_unload_max_time_seconds"),
    (TagDef("par.poll_ms", TagType.FLOAT, "ms"), "battplc_par_poll_seconds"),
    (TagDef("shunt.ttg", TagType.FLOAT, "min"), "battplc_shunt_ttg_seconds"),
    (TagDef("par.balance_interval_days", TagType.INT, "day"), "battplc_par_balance_interval_seconds"),
    (TagDef("limits.balance_last_day", TagType.INT, "day"), "battplc_limits_balance_last_day_seconds"),
    (TagDef("par.current_ramp_a_s", TagType.FLOAT, "A"), "battplc_par_current_ramp_amperes_per_second"),
    (TagDef("par.cvl_ramp_v_s", TagType.FLOAT, "V"), "battplc_par_cvl_ramp_volts_per_second"),
    (TagDef("energy.pv_total", TagType.FLOAT, "kWh", retain=True), "battplc_energy_pv_joules_total"),
    (TagDef("energy.pv_today", TagType.FLOAT, "kWh", retain=True), "battplc_energy_pv_today_joules"),
    (TagDef("energy.offset_total", TagType.FLOAT, "kWh", access="rw", retain=True),
     "battplc_energy_offset_total_joules"),  # writable: not a counter
    (TagDef("phase.current_a", TagType.FLOAT, "A"), "battplc_phase_current_a_amperes"),
    (TagDef("bms.charge_allowed", TagType.BOOL), "battplc_bms_charge_allowed"),
    (TagDef("cmd.mode", TagType.ENUM, values=("auto", "off")), "battplc_cmd_mode"),
    (TagDef("interlock.trips", TagType.INT, "count", retain=True), "battplc_interlock_trips_total"),
    (TagDef("pump.starts_total", TagType.INT, "count", retain=True), "battplc_pump_starts_total"),
    (TagDef("bms.online", TagType.INT, "count"), "battplc_bms_online"),
    (TagDef("bms.count", TagType.INT, "count"), "battplc_bms_count_value"),
    (TagDef("par.cells_series", TagType.INT, "count", access="rw", retain=True), "battplc_par_cells_series"),
    (TagDef("Odd.Name-x", TagType.FLOAT), "battplc_odd_name_x"),
])
def test_metric_names_follow_prometheus_conventions(tag: TagDef, expected: str) -> None:
    assert metric_name(tag) == expected


def test_runtime_namespaces_and_hidden_tags_get_no_family_of_their_own() -> None:
    plan = build_plan(TAGS)
    exported = {entry.tag for entry in plan.tags}
    assert "internal.scratch" not in exported
    assert not {t for t in exported if t.split(".")[0] in ("sfc", "dev", "alarm", "scan", "prog")}
    assert set(plan.charts) == {"unload"} and set(plan.devices) == {"bms1", "meter"}
    assert plan.alarms == {"cell_high": "alarm.cell_high"}


def test_a_name_taken_twice_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    twins = (TagDef("a.x_y", TagType.FLOAT, "V"), TagDef("a_x.y", TagType.FLOAT, "V"),
             TagDef("tag.quality", TagType.FLOAT))
    with caplog.at_level(logging.WARNING, "battplc.metrics"):
        plan = build_plan(twins)
    assert [entry.tag for entry in plan.tags] == ["a.x_y"]
    assert "a_x.y would be exported as battplc_a_x_y_volts, which tag a.x_y already uses" in caplog.text
    assert "tag.quality would be exported as battplc_tag_quality, which the runtime already uses" in caplog.text


# ---- a live scrape ----------------------------------------------------------------------------------------

def test_scrape_shows_values_in_base_units_with_help(rig: Rig) -> None:
    run(rig, bat__voltage=26.5, bat__current=-12.25, bat__power=1.2, bat__soc=55.0, bat__temp_max=21.5,
        bat__cell_v_min=3281.0, soc__residual_kwh=2.0, bms__charge_allowed=True, bms__online=2, cmd__mode=2,
        interlock__trips=3, grid__power=-40.0)
    s = rig.samples()
    assert one(s, "battplc_bat_voltage_volts") == 26.5
    assert one(s, "battplc_bat_current_amperes") == -12.25
    assert one(s, "battplc_bat_power_watts") == pytest.approx(1200.0)
    assert one(s, "battplc_bat_soc_percent") == 55.0
    assert one(s, "battplc_bat_temp_max_celsius") == 21.5
    assert one(s, "battplc_bat_cell_v_min_volts") == pytest.approx(3.281)
    assert one(s, "battplc_soc_residual_joules") == pytest.approx(7.2e6)
    assert one(s, "battplc_bms_charge_allowed") == 1.0
    assert one(s, "battplc_bms_online") == 2.0
    assert one(s, "battplc_cmd_mode") == 2.0
    assert one(s, "battplc_interlock_trips_total") == 3.0
    assert one(s, "battplc_grid_power_watts") == -40.0
    assert not [key for key in s if "scratch" in key[0]]
    text = rig.text()
    assert "# HELP battplc_bat_power_watts battery power (tag bat.power; kW exported in watts)" in text
    assert "# HELP battplc_cmd_mode operating mode (tag cmd.mode; codes 0=auto, 1=off, 2=hold)" in text
    assert "# TYPE battplc_interlock_trips_total counter" in text
    assert "# TYPE battplc_bms_online gauge" in text


def test_quality_is_exported_and_values_without_a_reading_are_nan(rig: Rig) -> None:
    db = rig.db
    db.set_input("grid.power", 350.0, Quality.STALE, 1.0)  # old but real: the value stays
    db.set_input("bat.voltage", 26.1, Quality.BAD, 1.0)  # device down: the last value is not shown
    db.set_input("shunt.voltage", 0.0, Quality.INIT, 0.0)  # never read
    run(rig)
    s = rig.samples()
    assert one(s, "battplc_tag_quality", tag="bat.soc") == Quality.GOOD
    assert one(s, "battplc_tag_quality", tag="grid.power") == Quality.STALE
    assert one(s, "battplc_tag_quality", tag="bat.voltage") == Quality.BAD
    assert one(s, "battplc_tag_quality", tag="shunt.voltage") == Quality.INIT
    assert one(s, "battplc_grid_power_watts") == 350.0
    assert math.isnan(one(s, "battplc_bat_voltage_volts"))
    assert math.isnan(one(s, "battplc_shunt_voltage_volts"))
    assert ("battplc_tag_quality", frozenset({("tag", "internal.scratch")})) not in s


def test_scan_figures_and_histograms(rig: Rig) -> None:
    run(rig, scans=25)
    s = rig.samples()
    assert one(s, "battplc_scans_total") == 25
    assert one(s, "battplc_scan_overruns_total") == 0
    assert one(s, "battplc_scan_skipped_slots_total") == 0
    assert one(s, "battplc_scan_period_seconds") == 0.1
    assert one(s, "battplc_scan_lateness_seconds_count") == 25
    assert one(s, "battplc_scan_lateness_seconds_bucket", le="0.0001") == 25  # SimClock: never late
    assert one(s, "battplc_scan_lateness_seconds_bucket", le="+Inf") == 25
    assert one(s, "battplc_scan_duration_seconds_count") == 24  # each scan's duration counts at the next
    buckets = [v for (name, _), v in s.items() if name == "battplc_scan_duration_seconds_bucket"]
    assert len(buckets) == 16 and max(buckets) == 24


def test_charts_devices_programs_alarms_and_server_counters(rig: Rig) -> None:
    db = rig.db
    rig.stats.update({("read_holding_registers", "ok"): 41, ("write_register", "illegal_value"): 2})
    db.values.update({"sfc.unload.step": 2, "sfc.unload.step_time": 75.5, "sfc.unload.held": False,
                      "dev.bms1.up": True, "dev.bms1.errors": 9, "dev.bms1.errors_timeout": 7,
                      "dev.bms1.errors_decode": 2, "dev.bms1.last_good": 1.7e9, "dev.meter.up": False,
                      "dev.meter.errors": 4})
    rig.writer.fail = True
    run(rig, alarm__cell_high=True)
    s = rig.samples()
    assert one(s, "battplc_sfc_step", chart="unload", step="discharge") == 1
    assert one(s, "battplc_sfc_step", chart="unload", step="idle") == 0
    assert one(s, "battplc_sfc_step_code", chart="unload") == 2
    assert one(s, "battplc_sfc_initial_step_active", chart="unload") == 0
    assert one(s, "battplc_sfc_step_time_seconds", chart="unload") == 75.5
    assert one(s, "battplc_sfc_held", chart="unload") == 0
    assert one(s, "battplc_device_up", device="bms1") == 1
    assert one(s, "battplc_device_up", device="meter") == 0
    assert one(s, "battplc_device_errors_total", device="bms1", kind="timeout") == 7
    assert one(s, "battplc_device_errors_total", device="bms1", kind="decode") == 2
    assert one(s, "battplc_device_errors_total", device="meter", kind="all") == 4
    assert ("battplc_device_errors_total", frozenset({("device", "bms1"), ("kind", "all")})) not in s
    assert one(s, "battplc_device_last_good_timestamp_seconds", device="bms1") == 1.7e9
    assert one(s, "battplc_program_fault", program="writer") == 1
    assert one(s, "battplc_program_faults_total", program="writer") == 1
    # the faulty program's alarm write was replaced by its safe value
    assert one(s, "battplc_alarm_active", alarm="cell_high") == 0
    assert one(s, "battplc_modbus_requests_total", function="read_holding_registers", result="ok") == 41
    assert one(s, "battplc_modbus_requests_total", function="write_register", result="illegal_value") == 2
    rig.writer.fail = False
    run(rig, alarm__cell_high=True)
    s = rig.samples()
    assert one(s, "battplc_alarm_active", alarm="cell_high") == 1
    assert one(s, "battplc_program_fault", program="writer") == 0


def test_server_counters_object_gives_one_family_per_field(rig: Rig) -> None:
    @dataclass
    class Stats:
        requests: int = 12
        exceptions: Counter = field(default_factory=lambda: Counter({"ILLEGAL_ADDRESS": 3}))
        writes_refused: int = 1

    stats = Stats()
    rig.exporter.server_stats = lambda: stats
    run(rig)
    s = rig.samples()
    assert one(s, "battplc_modbus_requests_total") == 12
    assert one(s, "battplc_modbus_exceptions_total", kind="illegal_address") == 3
    assert one(s, "battplc_modbus_writes_refused_total") == 1


def test_gzip_and_unknown_paths(rig: Rig) -> None:
    run(rig)
    request = urllib.request.Request(rig.exporter.url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"battplc_scans_total 1.0" in gzip.decompress(response.read())
    with pytest.raises(urllib.error.HTTPError) as error:
        rig.text("/secrets")
    assert error.value.code == 404


@pytest.mark.interop
@needs_promtool
def test_promtool_check_metrics_reports_nothing_on_a_live_scrape(rig: Rig) -> None:
    rig.db.set_input("bat.voltage", 26.1, Quality.BAD, 1.0)
    rig.stats[("read_input_registers", "ok")] = 5
    run(rig, scans=5, bat__soc=40.0, interlock__trips=1)
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=rig.text(), capture_output=True, text=True,
                            timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# ---- snapshots --------------------------------------------------------------------------------------------

def test_a_scrape_sees_committed_values_only(rig: Rig) -> None:
    """A scrape in the middle of a scan (after a write was staged, before commit) shows the last commit."""
    run(rig, bat__soc=40.0)
    seen: list[float] = []

    def scrape_mid_scan(ctx: ScanContext) -> None:
        ctx.db.values["bat.voltage"] = 99.0  # even a raw change of the image mid-scan is not visible
        seen.append(one(rig.samples(), "battplc_bat_soc_percent"))
        seen.append(one(rig.samples(), "battplc_bat_voltage_volts"))

    rig.writer.during = scrape_mid_scan
    run(rig, bat__soc=41.0)
    rig.writer.during = None
    assert seen == [40.0, 0.0]
    s = rig.samples()
    assert (one(s, "battplc_bat_soc_percent"), one(s, "battplc_bat_voltage_volts")) == (41.0, 99.0)


def test_snapshots_are_taken_at_most_every_interval_of_scan_time() -> None:
    db = TagDB.from_defs(TAGS)
    scan = Scan(db, [], SimClock(), 0.01)
    exporter = MetricsExporter(scan, snapshot_interval=0.1, process_metrics=False)
    scan.observers.append(exporter.observe)
    taken = exporter.snapshots
    scan.run(max_scans=100)
    assert exporter.snapshots - taken == 10
    assert exporter.snapshot.scans == 91  # the newest snapshot is of scan 91 (scans 1, 11, ..., 91)
    assert exporter.lateness.frozen().counts[0] == 100  # the histograms still count every scan


def test_tags_declared_later_appear_in_the_next_snapshot(rig: Rig) -> None:
    run(rig)
    rig.db.declare(TagDef("late.power", TagType.FLOAT, "W", "declared by a service after start", default=5.0))
    assert ("battplc_late_power_watts", frozenset()) not in rig.samples()  # the snapshot predates it
    run(rig)
    assert one(rig.samples(), "battplc_late_power_watts") == 5.0


# ---- as a controller extension ----------------------------------------------------------------------------

@pytest.fixture
def demo_site(tmp_path: Path) -> Path:
    site = tmp_path / "demo"
    shutil.copytree(REPO / "examples" / "demo", site, ignore=shutil.ignore_patterns("var"))
    return site


def controller(site: Path, metrics: dict[str, Any]) -> Controller:
    overrides = {"metrics": metrics, "server": {"enabled": False}, "web": {"enabled": False}}
    return Controller(site, clock=SimClock(), overrides=overrides)


def test_attach_serves_a_running_controller(demo_site: Path) -> None:
    plant = controller(demo_site, {"enabled": True, "listen": "127.0.0.1", "port": 0})
    try:
        plant.scan.run(max_scans=30)
        exporter = plant.parts["metrics"]
        url = exporter.url
        assert exporter.observe in plant.scan.observers
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        assert "battplc_scans_total 30.0" in text
        assert "battplc_demo_ticks_total 30.0" in text  # retained ro count: a counter
        assert "battplc_par_blink_period_seconds 1.0" in text
        if PROMTOOL:
            result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                                    timeout=30)
            assert (result.returncode, result.stdout + result.stderr) == (0, "")
    finally:
        plant.close()
    with pytest.raises(OSError):  # close() stopped the endpoint
        urllib.request.urlopen(url, timeout=2)


def test_attach_does_nothing_when_disabled(demo_site: Path) -> None:
    plant = controller(demo_site, {"enabled": False})
    try:
        assert "metrics" not in plant.parts
        assert attach(plant) is None
    finally:
        plant.close()


def test_a_port_in_use_is_logged_and_the_controller_runs_on(demo_site: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, "battplc.metrics"):
            plant = controller(demo_site, {"enabled": True, "listen": "127.0.0.1", "port": port})
        try:
            assert "metrics" not in plant.parts
            assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
            plant.scan.run(max_scans=3)
            assert plant.scan.count == 3
        finally:
            plant.close()


def test_server_requests_by_function_and_result_become_labels_and_a_peak_is_a_gauge() -> None:
    from runtime.metrics import server_families
    from runtime.server.protocol import ServerStats

    stats = ServerStats()
    stats.requests = 3
    stats.connections_peak = 4
    stats.requests_by_function[("read_input_registers", "ok")] = 2
    stats.requests_by_function[("write_single_register", "illegal_value")] = 1
    families = {f.name: f for f in server_families(stats)}
    by = families["battplc_modbus_requests"]  # the labelled family stands in for the plain count (its sum)
    assert by.type == "counter"
    assert {(s.labels["function"], s.labels["result"], s.value) for s in by.samples} == {
        ("read_input_registers", "ok", 2.0), ("write_single_register", "illegal_value", 1.0)}
    assert "battplc_modbus_requests_by_function" not in families
    peak = families["battplc_modbus_connections_peak"]
    assert (peak.type, peak.samples[0].name, peak.samples[0].value) == ("gauge", "battplc_modbus_connections_peak",
                                                                       4.0)
    assert all(f.type == "counter" for name, f in families.items() if name != "battplc_modbus_connections_peak")


# ---- hostile and greedy clients --------------------------------------------------------------------------

def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def abort_mid_request(address: tuple[str, int]) -> None:
    """Connect, send half a request line, then reset the connection (SO_LINGER 0: an RST, not a FIN)."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET /metr")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_500_aborted_requests_are_counted_without_a_traceback(rig: Rig, capfd: pytest.CaptureFixture[str],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    run(rig)
    address = rig.exporter.address
    for batch in range(10):  # in batches the endpoint catches up with, so no SYN waits in a full backlog
        for _ in range(50):
            abort_mid_request(address)
        assert wait_until(lambda batch=batch: rig.exporter.aborted >= 50 * (batch + 1))
    assert "battplc_scans_total" in rig.text()  # still serving
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert not [r for r in caplog.records if r.exc_info]


def test_scrapes_beyond_the_limit_get_429_with_retry_after(rig: Rig) -> None:
    run(rig)
    rig.exporter.limit = ScrapeLimit(2, clock=lambda: 0.0)  # two tokens, and no time passes to refill them
    rig.text()
    rig.text()
    with pytest.raises(urllib.error.HTTPError) as error:
        rig.text()
    assert (error.value.code, error.value.headers["Retry-After"]) == (429, "1")
    assert rig.exporter.limited == 1


def test_the_scrape_limit_refills_at_its_rate() -> None:
    now = [0.0]
    limit = ScrapeLimit(10, clock=lambda: now[0])
    assert sum(limit.take() for _ in range(15)) == 10  # a burst of up to one second's worth
    now[0] += 0.25
    assert sum(limit.take() for _ in range(15)) == 2  # 2.5 tokens in 0.25 s
    now[0] += 60
    assert sum(limit.take() for _ in range(15)) == 10  # never more than one second's worth


def test_a_render_waits_for_the_scan_when_it_would_cross_a_deadline(rig: Rig) -> None:
    """Steps aside near a deadline (bounded: the scan here never commits), renders at once with time left;
    and one render serves every scrape of one snapshot."""
    run(rig)
    exporter = rig.exporter
    exporter._next_deadline = time.monotonic() + 60.0
    exporter.body()
    assert exporter.steps_aside == 0
    exporter.body()  # the same snapshot: no render, so nothing to step aside for
    run(rig)
    exporter._next_deadline = time.monotonic()
    exporter.body()
    assert exporter.steps_aside == 1 and exporter.scrapes == 3


# ---- the MQTT bridge's and the Modbus server's own counters -------------------------------------------------

def counters_rig(rig: Rig) -> Bridge:
    """The rig scraping a real (unstarted) MQTT bridge and a real ServerStats, with counts in every field."""
    bridge = Bridge(rig.db, MqttSettings(host="127.0.0.1", port=1, topic_prefix="battplc/t", client_id="t"), "t")
    bridge.stats.connects, bridge.stats.disconnects, bridge.stats.cycles = 3, 2, 40
    bridge.stats.published, bridge.stats.skipped_busy, bridge.stats.entities_removed = 900, 5, 1
    bridge.stats.commands.update(accepted=4, refused=6)
    stats = ServerStats(writes_refused=7, connections_partial_closed=8, connections_evicted=9, connections_peak=2)
    rig.exporter.server_stats = lambda: stats
    rig.exporter.mqtt_bridge = lambda: bridge
    run(rig)
    return bridge


def test_mqtt_bridge_and_modbus_server_counters_are_exported(rig: Rig) -> None:
    counters_rig(rig)
    s = rig.samples()
    assert one(s, "battplc_mqtt_connected") == 0  # never started
    assert (one(s, "battplc_mqtt_connects_total"), one(s, "battplc_mqtt_disconnects_total")) == (3, 2)
    assert (one(s, "battplc_mqtt_publish_cycles_total"), one(s, "battplc_mqtt_cycles_skipped_total")) == (40, 5)
    assert one(s, "battplc_mqtt_messages_published_total") == 900
    assert one(s, "battplc_mqtt_entities_removed_total") == 1
    assert (one(s, "battplc_mqtt_commands_total", result="accepted"),
            one(s, "battplc_mqtt_commands_total", result="refused")) == (4, 6)
    assert one(s, "battplc_modbus_writes_refused_total") == 7
    assert one(s, "battplc_modbus_connections_partial_closed_total") == 8
    assert one(s, "battplc_modbus_connections_evicted_total") == 9
    assert one(s, "battplc_modbus_connections_peak") == 2


@pytest.mark.interop
@needs_promtool
def test_promtool_accepts_the_mqtt_and_modbus_counters(rig: Rig) -> None:
    counters_rig(rig)
    text = rig.text()
    assert "battplc_mqtt_commands_total{result=\"refused\"}" in text
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_a_bridge_attached_after_the_exporter_is_scraped(demo_site: Path) -> None:
    """attach() finds the bridge among the controller's parts at each scrape, whichever was attached first."""
    plant = controller(demo_site, {"enabled": True, "listen": "127.0.0.1", "port": 0})
    try:
        url = plant.parts["metrics"].url
        with urllib.request.urlopen(url, timeout=5) as response:
            assert "battplc_mqtt_" not in response.read().decode()  # no bridge: no MQTT families
        bridge = Bridge(plant.db, MqttSettings(host="127.0.0.1", port=1, topic_prefix="p", client_id="c"), "t")
        plant.parts["mqtt"] = bridge
        bridge.stats.published = 11
        plant.scan.run(max_scans=2)
        with urllib.request.urlopen(url, timeout=5) as response:
            assert "battplc_mqtt_messages_published_total 11.0" in response.read().decode()
    finally:
        plant.close()
