"""Bad retain files at start (runtime/retain.py, runtime/app.py): the controller always starts.

A file that does not fit the tags exactly (a 5,000-digit number, `true` for a float, NaN, a huge integer, an
enum code a newer tags.yaml dropped, a value outside min..max, a cut-short file) is passed over for `.bak`,
then for the defaults; either way with a log line and alarm.retain_lost raised.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from runtime.app import Controller
from runtime.retain import RetainStore, check_values, resolve_path, values_crc, writable_problem
from runtime.tags import TagDef, TagType

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFS = {
    "bat.soc_charge": TagDef("bat.soc_charge", TagType.FLOAT, retain=True, min=0, max=1000),
    "par.count": TagDef("par.count", TagType.INT, retain=True),
    "par.flag": TagDef("par.flag", TagType.BOOL, retain=True),
    "cmd.mode": TagDef("cmd.mode", TagType.ENUM, retain=True, values=("auto", "off")),
}
GOOD = {"bat.soc_charge": 120.5, "par.count": 3, "par.flag": True, "cmd.mode": 1}


def write(path: Path, values: Any, crc: Any = None, text: str | None = None) -> None:
    """A retain document as the runtime writes it, with a valid crc unless told otherwise."""
    if text is None:
        document = {"version": 1, "saved_at": "2026-12-01T00:00:00+00:00", "values": values,
                    "crc": values_crc(values) if crc is None else crc}
        text = json.dumps(document)
    path.write_text(text)


BAD_FILES = [
    ("true for a float", lambda p: write(p, {**GOOD, "bat.soc_charge": True})),
    ("a string for an int", lambda p: write(p, {**GOOD, "par.count": "3"})),
    ("a huge integer for a float", lambda p: write(p, {**GOOD, "bat.soc_charge": 10**400})),
    ("NaN", lambda p: write(p, {**GOOD, "bat.soc_charge": float("nan")})),
    ("outside min..max", lambda p: write(p, {**GOOD, "bat.soc_charge": 5000.0})),
    ("an enum code tags.yaml no longer has", lambda p: write(p, {**GOOD, "cmd.mode": 7})),
    ("1 for a bool", lambda p: write(p, {**GOOD, "par.flag": 1})),
    ("5,000 digits", lambda p: write(p, None, text='{"version": 1, "values": {"par.count": ' + "9" * 5000 + '}}')),
    ("1e999", lambda p: write(p, None, text='{"version": 1, "values": {"bat.soc_charge": 1e999}, "crc": 0}')),
    ("truncated", lambda p: write(p, None, text=json.dumps({"version": 1, "values": GOOD})[:30])),
    ("another format version", lambda p: write(p, None, text=json.dumps({"version": 2, "values": GOOD}))),
    ("values not a mapping", lambda p: write(p, [1, 2])),
    ("binary", lambda p: p.write_bytes(os.urandom(300))),
]


@pytest.mark.parametrize("name, make_bad", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_bad_main_file_falls_back_to_bak_then_to_defaults(tmp_path: Path, name: str, make_bad: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "retain.json"
    backup = tmp_path / "retain.json.bak"
    make_bad(path)
    write(backup, GOOD)
    store = RetainStore(path)
    assert store.load(check_values(DEFS)) == GOOD
    assert store.fallback and "retain.json.bak" in store.fallback
    assert any("using previous copy" in r.getMessage() for r in caplog.records)

    make_bad(backup)
    store = RetainStore(path)
    assert store.load(check_values(DEFS)) == {}
    assert store.fallback and store.fallback.endswith("defaults")


def test_names_no_longer_declared_are_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "retain.json"
    write(path, {**GOOD, "par.renamed_long_ago": 4.0})
    store = RetainStore(path)
    assert store.load(check_values(DEFS))["par.count"] == 3 and store.fallback is None


def site_with_retain(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for name in ("tags.yaml", "io_map.yaml"):
        (site / name).write_text((REPO_ROOT / name).read_text())
    return site


def test_the_controller_starts_on_defaults_with_the_alarm_raised(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    site = site_with_retain(tmp_path)
    (site / "var").mkdir()
    (site / "var" / "retain.json").write_text('{"version": 1, "values": {"bat.soc_charge": ' + "9" * 5000 + "}}")
    caplog.set_level(logging.WARNING)
    controller = Controller(site, services=False)
    assert controller.db.values["alarm.retain_lost"] is True
    assert any("using defaults" in r.getMessage() for r in caplog.records)
    controller.scan.step()  # scans run


def test_a_good_file_leaves_the_alarm_off(tmp_path: Path) -> None:
    site = site_with_retain(tmp_path)
    assert Controller(site, services=False).db.values["alarm.retain_lost"] is False  # first start: no file


def test_relative_paths_live_in_the_state_directory_under_systemd(tmp_path: Path) -> None:
    assert resolve_path("var/retain.json", tmp_path, {}) == tmp_path / "var/retain.json"
    assert resolve_path("retain.json", tmp_path, {"STATE_DIRECTORY": "/var/lib/battplc"}) == \
        Path("/var/lib/battplc/retain.json")
    assert resolve_path("/srv/r.json", tmp_path, {"STATE_DIRECTORY": "/var/lib/battplc"}) == Path("/srv/r.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: nothing is read-only to it")
def test_a_read_only_retain_folder_is_named(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        assert "not writable" in (writable_problem(tmp_path / "var" / "retain.json") or "")
    finally:
        tmp_path.chmod(0o700)


def test_a_retain_path_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    assert "is not a folder" in (writable_problem(tmp_path / "blocker" / "retain.json") or "")
    assert writable_problem(tmp_path / "var" / "retain.json") is None


def test_check_warns_when_retained_values_cannot_be_saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import main

    site = site_with_retain(tmp_path)
    (site / "var").write_text("a file where the retain folder should be")
    assert main(["check", str(site)]) == 0
    err = capsys.readouterr().err
    assert f"{site / 'tags.yaml'}: warning: site.retain.path: {site / 'var'} is not a folder" in err
