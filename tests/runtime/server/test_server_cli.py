"""Tests for runtime/server/cli.py: ``battplc regmap``, ``get`` and ``set`` against a running server."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from server_helpers import make_server, sim_scan

from runtime.cli import main
from runtime.server import Server
from runtime.site import REPO_ROOT
from runtime.tags import Quality, TagDB


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_regmap_markdown_and_csv(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "regmap", str(site_dir))
    assert status == 0
    assert "| holding | 102-103 | par.energy | int32 | 1 | Wh | rw | -100000..100000 |" in out
    status, out, _ = run(capsys, "regmap", str(site_dir), "--format", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["tag"] for r in rows][:4] == ["io.alarm", "io.relay", "io.pump", "io.door"]
    assert len(rows) == 16 + 6  # the site's mapped tags and the controller's scan.* figures
    assert {r["tag"]: r["address"] for r in rows}["scan.count"] == "10000-10001"


def test_regmap_of_the_default_site(capsys: pytest.CaptureFixture[str]) -> None:
    if not (REPO_ROOT / "tags.yaml").is_file():
        pytest.skip("the repository has no default site tags.yaml yet")
    status, out, err = run(capsys, "regmap")
    assert status == 0, err
    assert out.count("\n| ") >= 2


def test_regmap_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tags.yaml").write_text("tags:\n  a.x: {type: int, modbus: {address: 1, dtype: int32}}\n"
                                        "  a.y: {type: int, modbus: {address: 2}}\n")
    status, _, err = run(capsys, "regmap", str(tmp_path))
    assert status == 2  # CONFIG_INVALID
    assert "tags.yaml:3: tags.a.y.modbus.address: register 2 is already used by 'a.x'" in err


@pytest.fixture
def target(server: Server, site_dir: Path) -> list[str]:
    return ["--dir", str(site_dir), "--port", str(server.address[1])]


def test_get_prints_values_with_units(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "get", *target, "bat.voltage", "bat.current", "stat.count", "bms.state",
                         "io.alarm", "par.limit")
    assert status == 0
    assert out.splitlines() == ["bat.voltage = 53.25 V", "bat.current = -12.3 A", "stat.count = 3000000000 count",
                                "bms.state = fault", "io.alarm = 1", "par.limit = 50 A"]


def test_set_lands_at_the_next_scan(target: list[str], server: Server, db: TagDB,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "set", *target, "par.voltage", "55.5", "cmd.mode", "hold", "io.relay", "on",
                         "par.energy", "-70000")
    assert status == 0, out
    assert out.splitlines()[0] == "par.voltage <- 55.5: accepted, lands at the next scan"
    assert db["par.voltage"] == 52.0
    sim_scan(db, server).step()
    assert (db["par.voltage"], db["cmd.mode"], db["io.relay"], db["par.energy"]) == (55.5, 3, True, -70000)
    server.settle()
    status, out, _ = run(capsys, "get", *target, "cmd.mode", "par.energy")
    assert out.splitlines() == ["cmd.mode = hold", "par.energy = -70000 Wh"]


def test_get_names_the_quality_and_prints_no_number_without_a_reading(target: list[str], server: Server,
                                                                      db: TagDB,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db.quality.update({"bat.voltage": Quality.STALE, "bat.soc": Quality.INIT, "io.alarm": Quality.BAD})
    sim_scan(db, server).step()
    server.settle()
    status, out, err = run(capsys, "get", *target, "bat.voltage", "bat.soc", "io.alarm", "bat.current")
    assert status == 0 and "battplc get:" not in err  # a tag without a reading is an answer, not a failure
    assert out.splitlines() == ["bat.voltage = 53.25 V (STALE)", "bat.soc = no reading (INIT)",
                                "io.alarm = no reading (BAD)", "bat.current = -12.3 A"]


def test_get_reads_what_it_can_and_names_the_rest(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # This server's image has no scan: scan.count is in the site's map but the server refuses it (02).
    status, out, err = run(capsys, "get", *target, "bat.soc", "bat.sco", "internal.x", "scan.count", "bat.current")
    assert status == 1  # some tags failed ...
    assert out.splitlines() == ["bat.soc = 87.5 %", "bat.current = -12.3 A"]  # ... the others are printed
    assert [line for line in err.splitlines() if line.startswith("battplc")] == [
        "battplc get: bat.sco: unknown tag (did you mean 'bat.soc'?)",
        "battplc get: internal.x: has no modbus mapping (not served; see battplc regmap)",
        "battplc get: scan.count: read refused with exception 02 (illegal address: no such tag there, or the tag "
        "is read-only)"]


@pytest.mark.parametrize(("argv", "message"), [
    (["par.voltage", "70"], "par.voltage: 70 is outside 40..60"),
    (["bat.voltage", "50"], "bat.voltage is read-only"),
    (["nope.x", "1"], "tag 'nope.x' has no modbus mapping"),
    (["par.offset", "1.5"], "expected a whole number"),
    (["par.offset", "many"], "par.offset: expected a number, got 'many'"),
    (["cmd.mode", "turbo"], "'turbo' is not one of auto, off, force_charge, hold"),
    (["par.offset"], "TAG VALUE pairs"),
])
def test_set_refuses_locally_with_a_reason(target: list[str], argv: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "set", *target, *argv)
    assert status == 1
    assert message in err


def test_server_refusal_shows_the_exception_code(db: TagDB, site_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    server = make_server(db, unit_id=5, wrong_unit="exception")
    try:
        status, _, err = run(capsys, "get", "--dir", str(site_dir), "--port", str(server.address[1]), "--unit", "1",
                             "bat.soc")
    finally:
        server.stop()
    assert status == 1
    assert "bat.soc: read refused with exception 11 (no answer from that unit id)" in err


def test_get_without_a_server(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = make_server(TagDB())
    port = server.address[1]
    server.stop()
    status, _, err = run(capsys, "get", "--dir", str(site_dir), "--port", str(port), "bat.soc")
    assert status == 1
    assert "cannot connect to 127.0.0.1:" in err
