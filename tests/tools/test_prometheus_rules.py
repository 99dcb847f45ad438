"""Prometheus alert rules, their unit tests, the scrape example and the Grafana dashboard.

promtool lints and runs the rule tests when it is installed. Without it, the checks that need no tool still
run: every alert has a test that makes it fire, and every metric the rules and the dashboard query is one the
exporter really serves for the default site.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from runtime.clock import SimClock
from runtime.events import is_step_tag
from runtime.metrics import MetricsExporter, metric_name
from runtime.mqtt.bridge import Bridge
from runtime.mqtt.settings import MqttSettings
from runtime.scan import Scan
from runtime.server.protocol import ServerStats
from runtime.site import load_site
from runtime.tags import TagDef, TagType

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "tools" / "prometheus"
DASHBOARD = REPO / "tools" / "grafana" / "battplc.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
METRIC = re.compile(r"\bbattplc_[a-z0-9_]+")

# DESIGN.md's public tags: the dashboard must show every one of them.
PUBLIC_TAGS = ("bat.voltage", "bat.current", "bat.power", "bat.soc", "bat.cell_v_max", "bat.cell_v_min",
               "bat.temp_max", "bat.temp_min", "bms.charge_allowed", "bms.discharge_allowed", "grid.power",
               "pv.power", "house.power", "charger.enable", "charger.voltage_sp", "charger.current_sp",
               "inverter.enable", "inverter.power", "heater.enable", "fan.enable", "limits.cvl", "limits.ccl",
               "limits.dcl", "cmd.mode")
RUNTIME_PANELS = ("battplc_sfc_step", "battplc_sfc_step_time_seconds", "battplc_scan_duration_seconds_bucket",
                  "battplc_scan_lateness_seconds_bucket", "battplc_scan_overruns_total", "battplc_scans_total",
                  "battplc_device_up", "battplc_program_fault", "battplc_alarm_active", "battplc_tag_quality")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


@pytest.mark.interop
@needs_promtool
def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.interop
@needs_promtool
def test_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.interop
@needs_promtool
def test_scrape_example_is_a_valid_prometheus_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_that_makes_it_fire_and_one_that_does_not() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())
    cases = [case for group in tests["tests"] for case in group["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts == fires
    assert alerts == quiet
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


@pytest.fixture(scope="module")
def served(labels: dict[str, set[str]]) -> set[str]:
    """Every sample name the exporter serves for the default site."""
    return set(labels)


@pytest.fixture(scope="module")
def labels() -> dict[str, set[str]]:
    """Every sample name the exporter serves for the default site (with a chart, until its charts land), with
    the label names its samples carry."""
    site, db, programs, interlocks = load_site(REPO)
    if not any(is_step_tag(tag) for tag in db.defs.values()):
        db.declare(TagDef("sfc.unload.step", TagType.ENUM, values=("idle", "discharge")))
        db.declare(TagDef("sfc.unload.step_time", TagType.FLOAT, "s"))
        db.declare(TagDef("sfc.unload.held", TagType.BOOL))
    scan = Scan(db, programs, SimClock(), site.scan_period, interlocks=interlocks)
    stats = ServerStats(requests=3, connections_peak=2)
    stats.exceptions["ILLEGAL_ADDRESS"] += 1
    stats.requests_by_function[("read_input_registers", "ok")] += 3
    bridge = Bridge(db, MqttSettings(host="127.0.0.1", port=1, topic_prefix="battplc/t", client_id="t"), "t")
    bridge.stats.commands["refused"] += 1
    exporter = MetricsExporter(scan, server_stats=lambda: stats, process_metrics=False, mqtt_bridge=lambda: bridge)
    text = exporter.render().decode()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_alert_rules_query_only_metrics_the_exporter_serves(served: set[str]) -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    used = {name for group in rules["groups"] for rule in group["rules"] for name in METRIC.findall(rule["expr"])}
    assert used and not used - served


def test_dashboard_queries_only_metrics_the_exporter_serves(served: set[str]) -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert used and not used - served


LEGEND_LABEL = re.compile(r"{{\s*([a-zA-Z_]+)\s*}}")
BY = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")


def test_dashboard_legends_name_labels_their_series_have(labels: dict[str, set[str]]) -> None:
    """A legend {{function}} on a metric without that label shows an empty name: every legend label must be
    one the queried metric carries, or one the query groups by."""
    dashboard = json.loads(DASHBOARD.read_text())
    wrong = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr, legend = target["expr"], target.get("legendFormat", "")
            grouped = BY.findall(expr)
            have = ({name.strip() for name in grouped[0].split(",")} if grouped
                    else {"instance", "job"}.union(*(labels.get(m, set()) for m in METRIC.findall(expr))))
            missing = set(LEGEND_LABEL.findall(legend)) - have
            if missing:
                wrong.append(f"{panel['title']}: {expr} has no {sorted(missing)}")
    assert wrong == []


def test_dashboard_covers_the_public_tags_and_the_runtime() -> None:
    site, db, _, _ = load_site(REPO, with_programs=False)
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    missing = {tag for tag in PUBLIC_TAGS if metric_name(db.define(tag)) not in used}
    assert not missing
    assert not set(RUNTIME_PANELS) - used


def test_dashboard_is_importable() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "battplc"
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "instance"}
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and all('instance=~"$instance"' in t["expr"] for t in panel["targets"])
