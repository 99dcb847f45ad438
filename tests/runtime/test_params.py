"""runtime/params.py: ``battplc params export|import|reset`` on a stopped site's retain file and --live over
Modbus; an import is checked whole (file:line, type, range) and changes nothing when anything is wrong."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from live_helpers import free_port

from runtime.cli import main


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site running the shipped application, its retain file and server port its own."""
    (tmp_path / "tags.yaml").write_text(
        f"site:\n  application: programs\n  retain: {{path: {tmp_path / 'var' / 'retain.json'}}}\n"
        f"  server: {{port: {free_port()}}}\ntags: {{}}\n")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def retained(site: Path) -> dict:
    return json.loads((site / "var" / "retain.json").read_text())["values"]


def test_export_edit_import_round_trip(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "params", "export", "--dir", str(site))
    assert status == 0
    assert "par.max_soc: 100.0  # %, 10..100, default 100.0" in out.splitlines()
    edited = site / "mine.yaml"
    edited.write_text(out.replace("par.max_soc: 100.0", "par.max_soc: 90"))
    status, out, err = run(capsys, "params", "import", str(edited), "--dir", str(site))
    assert status == 0, err
    assert "(1 changed: par.max_soc)" in out
    assert retained(site)["par.max_soc"] == 90.0
    status, out, _ = run(capsys, "params", "export", "--dir", str(site))
    assert "par.max_soc: 90.0  #" in out


def test_a_bad_file_is_refused_whole_with_file_and_line(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = site / "bad.yaml"
    bad.write_text("par.min_soc: 15\npar.max_soc: 150\npar.min_sco: 10\npar.charge1_enable: 3\n")
    status, _, err = run(capsys, "params", "import", str(bad), "--dir", str(site))
    assert status == 1
    assert f"{bad}:2: par.max_soc: 150 is outside 10..100 %" in err
    assert f"{bad}:3: par.min_sco: not a parameter of this site (did you mean 'par.min_soc'?)" in err
    assert f"{bad}:4: par.charge1_enable: 3 is not true or false" in err
    assert "3 error(s); nothing was written" in err
    assert not (site / "var" / "retain.json").exists(), "the valid first line was not written either"


def test_reset_needs_yes_and_restores_the_defaults(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "one.yaml").write_text("par.max_soc: 80\n")
    assert run(capsys, "params", "import", str(site / "one.yaml"), "--dir", str(site))[0] == 0
    status, _, err = run(capsys, "params", "reset", "--dir", str(site))
    assert status == 1 and "add --yes" in err
    assert retained(site)["par.max_soc"] == 80.0
    assert run(capsys, "params", "reset", "--yes", "--dir", str(site))[0] == 0
    assert retained(site)["par.max_soc"] == 100.0


def test_the_retain_file_is_left_alone_while_a_controller_runs(live_controller, capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
                                                               tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "tags.yaml").write_text(f"site:\n  application: programs\n  server: {{port: {live_controller.port}}}\n"
                                    f"  retain: {{path: {tmp_path / 'other.json'}}}\ntags: {{}}\n")
    (site / "one.yaml").write_text("par.max_soc: 80\n")
    status, _, err = run(capsys, "params", "import", str(site / "one.yaml"), "--dir", str(site))
    assert status == 1
    assert "a controller answers on 127.0.0.1:" in err and "use --live" in err

    status, out, err = run(capsys, "params", "import", str(site / "one.yaml"), "--live", *live_controller.target)
    assert status == 0, err
    db = live_controller.controller.db
    deadline_scans = live_controller.controller.scan.count + 50
    while db.values["par.max_soc"] != 80.0:
        assert live_controller.controller.scan.count < deadline_scans, "the write never landed"
        time.sleep(0.01)
    status, out, _ = run(capsys, "params", "export", "--live", *live_controller.target)
    assert "par.max_soc: 80.0  #" in out
