"""Tests for runtime/web: the trend ring, alarms from the page, and the HTTP server's checks (read-only without a
token, CSRF, Host, refusals through the Modbus write path that change nothing), over a Controller on the
simulated clock (the demo site: a blinking lamp and a traffic light chart)."""

from __future__ import annotations

import fnmatch
import http.client
import json
import logging
import shutil
import socket
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.app import Controller
from runtime.clock import SimClock
from runtime.tags import Quality
from runtime.web import read_token
from runtime.web.live import Trends

REPO = Path(__file__).resolve().parents[3]
TOKEN = "fedcba9876543210fedcba9876543210"
WRITABLE = ("par.blink_period", "par.traffic_red_s", "demo.traffic_mode")


# ---- the trend ring -----------------------------------------------------------------------------------------

def test_trends_keep_the_newest_rows_in_fixed_memory() -> None:
    trends = Trends(["a", "b"], slots=5)
    size = trends.bytes
    for i in range(12):
        trends.add(float(i), {"a": i, "b": "text"}, {"a": Quality.BAD if i == 9 else Quality.GOOD})
    series = trends.series()
    assert series["t"] == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert series["a"] == [7.0, 8.0, None, 10.0, 11.0]  # a BAD value is a gap
    assert series["b"] == [None] * 5  # not a number: a gap, not an error
    assert trends.bytes == size == 5 * 8 + 2 * 5 * 4


def test_trends_thin_to_one_row_per_interval() -> None:
    trends = Trends(["a"], slots=100)
    for i in range(30):
        trends.add(i * 10.0, {"a": i}, {})
    assert trends.series(every=60)["t"] == [0.0, 60.0, 120.0, 180.0, 240.0]


# ---- packaging -------------------------------------------------------------------------------------------

def test_static_assets_ship_as_package_data() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assets = sorted((REPO / "runtime" / "web" / "static").iterdir())
    assert [a.name for a in assets] == ["app.css", "app.js", "index.html"]
    for asset in assets:
        assert any(fnmatch.fnmatch(asset.name, pattern) for pattern in patterns), asset.name


# ---- the token ----------------------------------------------------------------------------------------------

def test_token_file_must_exist_and_be_long_enough(tmp_path: Path) -> None:
    assert read_token(tmp_path / "none")[0] is None
    (tmp_path / "short").write_text("abc\n")
    assert "at least 16" in read_token(tmp_path / "short")[1]
    (tmp_path / "good").write_text(f"  {TOKEN}\n")
    assert read_token(tmp_path / "good") == (TOKEN.encode(), "")


# ---- over HTTP ------------------------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "demo"
    shutil.copytree(REPO / "examples" / "demo", site, ignore=shutil.ignore_patterns("var"))
    (site / "web.token").write_text(TOKEN)
    return site


def start(site: Path, web: dict[str, Any], server: dict[str, Any] | None = None) -> Controller:
    overrides = {"server": {"port": 0, **(server or {})}, "metrics": {"enabled": False}, "web": {"port": 0, **web}}
    controller = Controller(site, clock=SimClock(), overrides=overrides)
    scans(controller, 20)
    return controller


def scans(plc: Controller, count: int) -> None:
    """``count`` scans on the simulated clock (not scan.run, which ends with outputs safe)."""
    for _ in range(count):
        plc.scan.wait()
        plc.scan.step()


@pytest.fixture
def plc(site: Path) -> Iterator[Controller]:
    controller = start(site, {"token_file": "web.token"})
    try:
        yield controller
    finally:
        controller.close()


def request(plc: Controller, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
            token: str | None = TOKEN) -> tuple[int, Any]:
    host, port = plc.parts["web"].address
    connection = http.client.HTTPConnection(host, port, timeout=5)
    sent = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        sent["X-Battplc-Token"] = token
    sent.update(headers or {})
    connection.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=sent)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(data) if kind == "application/json" else data


def settle(plc: Controller) -> None:
    scans(plc, 2)


def test_page_and_meta_are_served(plc: Controller) -> None:
    status, page = request(plc, "GET", "/")
    assert status == 200 and b'<script src="app.js">' in page
    status, meta = request(plc, "GET", "/api/meta")
    tags = {t["name"]: t for t in meta["tags"]}
    assert tags["par.blink_period"]["writable"] and not tags["demo.ticks"]["writable"]
    assert meta["writes"]["enabled"] and [c["name"] for c in meta["charts"]] == ["traffic"]


def test_in_range_write_lands_at_the_next_scan(plc: Controller) -> None:
    status, answer = request(plc, "POST", "/api/write", {"tag": "par.blink_period", "value": 2.5})
    assert (status, answer) == (200, {"ok": True, "tag": "par.blink_period", "value": "2.5"})
    settle(plc)
    assert plc.db.values["par.blink_period"] == 2.5
    status, answer = request(plc, "POST", "/api/write", {"tag": "demo.traffic_mode", "value": "night"})
    settle(plc)
    assert status == 200 and plc.db.defs["demo.traffic_mode"].format(plc.db.values["demo.traffic_mode"]) == "night"


# (body, reason, refused by the server's request handler itself: counted in its writes_refused)
REFUSED = [
    ({"tag": "par.blink_period", "value": 100}, "outside 0.02..60", True),
    ({"tag": "par.blink_period", "value": 1e12}, "outside 0.02..60", True),  # what the register holds: 655.35
    ({"tag": "demo.ticks", "value": 3}, "read-only", True),
    ({"tag": "par.blink_period", "value": "fast"}, "expected a number", False),
    ({"tag": "demo.traffic_mode", "value": "disco"}, "'disco' is not one of off, normal, night", False),
    ({"tag": "scan.count", "value": 3}, "read-only", True),
    ({"tag": "no.such_tag", "value": 3}, "unknown tag", False),
    ({"tag": "par.blink_period"}, 'a write is {"tag": NAME, "value": VALUE}', False),
    ({"tag": "demo.walk_request", "value": [1]}, "VALUE a number, a boolean or an enum name", False),
]


@pytest.mark.parametrize(("body", "reason", "counted"), REFUSED)
def test_refused_write_says_why_and_changes_nothing(plc: Controller, body: dict[str, Any], reason: str,
                                                   counted: bool) -> None:
    before = {name: plc.db.values[name] for name in WRITABLE}
    stats = plc.parts["web"].writer.commands.stats
    refused = stats.writes_refused
    status, answer = request(plc, "POST", "/api/write", body)
    assert status in (400, 409) and reason in answer["reason"], answer
    settle(plc)
    assert {name: plc.db.values[name] for name in WRITABLE} == before
    assert stats.writes_refused == refused + counted and stats.writes_accepted == 0


@pytest.mark.parametrize(("headers", "token", "reason"), [
    ({}, None, "wrong or missing write token"),
    ({}, "x" * 32, "wrong or missing write token"),
    ({"Origin": "http://evil.example"}, TOKEN, "cross-origin request from http://evil.example refused"),
    ({"Host": "battery.evil.example"}, TOKEN, "the Host header must be an IP address or localhost"),
    ({"Content-Type": "text/plain"}, TOKEN, "a write must be sent as application/json"),
])
def test_csrf_and_token_checks_refuse_before_anything_is_staged(plc: Controller, headers: dict[str, str],
                                                                token: str | None, reason: str) -> None:
    accepted = plc.parts["web"].writer.commands.stats.writes_accepted
    status, answer = request(plc, "POST", "/api/write", {"tag": "par.blink_period", "value": 2}, headers, token)
    assert (status, answer["reason"]) == (403, reason)
    settle(plc)
    assert plc.db.values["par.blink_period"] == 1.0
    assert plc.parts["web"].writer.commands.stats.writes_accepted == accepted


def test_alarm_action_on_a_site_without_alarms_is_refused(plc: Controller) -> None:
    status, answer = request(plc, "POST", "/api/alarm", {"alarm": "hot", "action": "acknowledge"})
    assert status == 409 and answer["reason"]
    assert request(plc, "GET", "/api/journal") == (200, [])


def test_a_get_never_writes(plc: Controller) -> None:
    status, answer = request(plc, "GET", "/api/write?tag=par.blink_period&value=2")
    assert status == 404 and plc.db.values["par.blink_period"] == 1.0


def test_same_origin_write_is_accepted(plc: Controller) -> None:
    host, port = plc.parts["web"].address
    status, _ = request(plc, "POST", "/api/write", {"tag": "par.blink_period", "value": 2},
                        {"Origin": f"http://{host}:{port}"})
    assert status == 200


def test_server_writers_authorize_the_page_by_the_browser_address(site: Path) -> None:
    # par.* only from 10/8, everything else from loopback: this browser (127.0.0.1) may set the mode, not a par.
    plc = start(site, {"token_file": "web.token"},
                server={"writers": {"par": ["10.0.0.0/8"], "*": ["127.0.0.0/8"]}})
    try:
        status, answer = request(plc, "POST", "/api/write", {"tag": "par.blink_period", "value": 2})
        assert (status, answer["reason"]) == (409, "this client may not write it (server.writers)")
        assert request(plc, "POST", "/api/write", {"tag": "demo.traffic_mode", "value": "night"})[0] == 200
        settle(plc)
        assert plc.db.values["par.blink_period"] == 1.0
    finally:
        plc.close()


def test_without_a_token_file_the_page_is_read_only(site: Path) -> None:
    plc = start(site, {})
    try:
        status, answer = request(plc, "POST", "/api/write", {"tag": "par.blink_period", "value": 2})
        assert (status, answer["reason"]) == (403, "the page is read-only: writes are enabled by site.web.token_file")
        assert not request(plc, "GET", "/api/meta")[1]["writes"]["enabled"]
    finally:
        plc.close()


def test_a_missing_token_file_is_logged_with_its_line(site: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="battplc.web"):
        plc = start(site, {"token_file": "nowhere.token"})
    try:
        assert not plc.parts["web"].writes["enabled"]
        assert "nowhere.token" in caplog.text and "read-only" in caplog.text
    finally:
        plc.close()


def test_events_stream_the_live_message(plc: Controller) -> None:
    host, port = plc.parts["web"].address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/api/events")
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    stop = threading.Event()

    def keep_scanning() -> None:  # the stream sends the next sample: keep the simulated scan going
        while not stop.is_set():
            scans(plc, 10)
            stop.wait(0.05)

    runner = threading.Thread(target=keep_scanning)
    runner.start()
    try:
        line = b""
        while not line.startswith(b"data: "):
            line = response.fp.readline()
        message = json.loads(line[6:])
    finally:
        stop.set()
        runner.join()
        connection.close()
    assert message["values"]["par.blink_period"] == 1.0 and message["values"]["demo.traffic_mode"] == "normal"
    assert [c["chart"] for c in message["charts"]] == ["traffic"]
    assert message["charts"][0]["step"] in ("red", "red_amber", "green", "amber")
    assert message["writes"]["enabled"]


def test_why_explains_each_transition_of_the_active_step(plc: Controller) -> None:
    status, whys = request(plc, "GET", "/api/why")
    assert status == 200 and [w["chart"] for w in whys] == ["traffic"]
    why = whys[0]
    step = plc.db.defs["sfc.traffic.step"].format(plc.db.values["sfc.traffic.step"])
    assert why["step"] == step and why["transitions"]
    condition = why["transitions"][0]["condition"]
    assert condition["result"] in (True, False) and condition["shown"]  # e.g. "12 >= 8"


def test_open_pages_are_capped(plc: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runtime.web.http.MAX_STREAMS", 1)
    host, port = plc.parts["web"].address
    first = http.client.HTTPConnection(host, port, timeout=5)
    first.request("GET", "/api/events")
    assert first.getresponse().status == 200
    try:
        status, answer = request(plc, "GET", "/api/events")
        assert (status, answer["reason"]) == (503, "1 pages are open already; close one")
    finally:
        first.close()


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (apt install graphviz)")
def test_chart_drawing_has_the_active_step_filled(plc: Controller) -> None:
    status, svg = request(plc, "GET", "/api/chart/traffic.svg?step=green")
    assert status == 200 and b"<svg" in svg and b"#ffd54f" in svg
    status, answer = request(plc, "GET", "/api/chart/traffic.svg?step=purple")
    assert (status, answer["reason"]) == (404, "chart traffic has no step 'purple'")
    status, answer = request(plc, "GET", "/api/chart/nope.svg")
    assert status == 404 and "charts: traffic" in answer["reason"]


def test_a_taken_port_leaves_the_controller_running_without_the_page(site: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with caplog.at_level(logging.ERROR, logger="battplc.web"):
            plc = start(site, {"port": taken.getsockname()[1]})
        try:
            assert "web" not in plc.parts and "running without the operator page" in caplog.text
        finally:
            plc.close()
