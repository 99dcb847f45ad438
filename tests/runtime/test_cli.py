"""The battplc command: check/tags output and exit codes, real-time run with SIGINT."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"


def test_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(DEMO)]) == 0
    assert "ok: site 'demo'" in capsys.readouterr().out


def test_check_reports_all_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tags.yaml").write_text("tags:\n  a.b: {type: floot}\n  c.d: {type: int, unit: parsec}\n")
    assert main(["check", str(tmp_path)]) == 2  # CONFIG_INVALID
    err = capsys.readouterr().err
    assert f"{tmp_path / 'tags.yaml'}:2: tags.a.b.type:" in err
    assert f"{tmp_path / 'tags.yaml'}:3: tags.c.d.unit:" in err
    assert "2 error(s)" in err and "Traceback" not in err


def test_tags_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tags", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:6] == ["name", "type", "unit", "access", "retain", "default"]
    assert "par.blink_period" in out


def test_bad_period_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(DEMO), "--period", "soon"])
    assert info.value.code == 2
    assert "not a duration" in capsys.readouterr().err


def test_run_stops_cleanly_on_sigint_with_figures(tmp_path: Path) -> None:
    site = tmp_path / "demo"
    shutil.copytree(DEMO, site, ignore=shutil.ignore_patterns("var"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "run", str(site), "--period", "10ms"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 20
    retain = site / "var" / "retain.json"
    while not retain.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "lateness p50" in out and "p99" in out and "max" in out
    assert "Traceback" not in err


# Commands that print more than a pipe holds for the repository's own site, and one short one.
PRINTING = [["tags", str(ROOT)], ["regmap", str(ROOT)], ["export", "homeassistant", str(ROOT)],
            ["check", str(DEMO)]]
IDS = ["tags", "regmap", "export", "check"]


@pytest.mark.parametrize("argv", PRINTING, ids=IDS)
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(argv: list[str]) -> None:
    """Nobody reads: the write end's reader is closed before the command starts, so every write fails with
    EPIPE, whatever the output's size (deterministic, unlike a race with head)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "runtime.cli", *argv], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (1, "")


@pytest.mark.skipif(shutil.which("head") is None, reason="no head on PATH")
@pytest.mark.parametrize("argv", PRINTING[:2], ids=IDS[:2])
def test_piped_into_head_prints_one_line_and_no_traceback(argv: list[str]) -> None:
    command = " ".join([sys.executable, "-m", "runtime.cli", *argv]) + " | head -1"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1, proc
    assert proc.stderr == ""
