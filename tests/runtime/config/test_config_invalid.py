"""Invalid site configs: every error names file:line, the key path and what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runtime.config.errors import ConfigErrors
from runtime.site import load_site

BASE_TAGS = """\
site:
  name: t
  scan_period: 100ms
tags:
  bat.voltage:
    type: float
    unit: V
    modbus: {address: 0, dtype: uint16, scale: 0.01}
  par.limit:
    type: float
    unit: V
    access: rw
    default: 3.4
    min: 2.5
    max: 3.65
"""

# (name, tags.yaml text, expected line, expected key path, expected words in the message)
CASES = [
    ("unknown key with did-you-mean", BASE_TAGS + "  bat.current:\n    type: float\n    unti: A\n",
     18, "tags.bat.current.unti", ["unknown key 'unti'", "did you mean 'unit'"]),
    ("wrong type", BASE_TAGS + "  bat.current:\n    type: floot\n",
     17, "tags.bat.current.type", ["'floot' is not allowed", "did you mean 'float'"]),
    ("bad unit", BASE_TAGS + "  bat.current:\n    type: float\n    unit: Amp\n",
     18, "tags.bat.current.unit", ["'Amp' is not allowed", "allowed:"]),
    ("duplicate tag name", BASE_TAGS + "  bat.voltage:\n    type: float\n",
     16, "bat.voltage", ["duplicate key 'bat.voltage'", "first given at line 5"]),
    ("min greater than max", BASE_TAGS + "  par.x:\n    type: int\n    min: 10\n    max: 1\n",
     16, "tags.par.x", ["min 10 is greater than max 1"]),
    ("default outside range", BASE_TAGS + "  par.x:\n    type: float\n    default: 5\n    min: 0\n    max: 4\n",
     16, "tags.par.x", ["default 5 is outside min..max", "0..4"]),
    ("default of wrong type", BASE_TAGS + "  par.x:\n    type: bool\n    default: 3\n",
     16, "tags.par.x", ["default 3 is not a bool"]),
    ("enum without values", BASE_TAGS + "  cmd.mode:\n    type: enum\n",
     16, "tags.cmd.mode", ["an enum tag needs 'values'"]),
    ("enum default not a value", BASE_TAGS + "  cmd.mode:\n    type: enum\n    values: [auto, off]\n    default: hold\n",
     16, "tags.cmd.mode", ["default 'hold' is not one of auto, off"]),
    ("duplicate register address", BASE_TAGS + "  bat.current:\n    type: float\n    modbus: {address: 0}\n",
     16, "tags.bat.current.modbus.address", ["register 0 is already used by 'bat.voltage'"]),
    ("32-bit value overlapping", BASE_TAGS + "  bat.power:\n    type: float\n    modbus: {address: 1, dtype: int32}\n"
     "  bat.soc:\n    type: float\n    modbus: {address: 2}\n",
     19, "tags.bat.soc.modbus.address", ["register 2 is already used by 'bat.power'"]),
    ("register past the declared addresses", BASE_TAGS + "  bat.power:\n    type: float\n"
     "    modbus: {address: 9999, dtype: float32}\n",
     16, "tags.bat.power", ["runs past 9999", "0..9999", "quality registers"]),
    ("alarm spec on a tag that is no alarm", BASE_TAGS + "  bat.power:\n    type: float\n    alarm: {priority: high}\n",
     16, "tags.bat.power", ["'alarm' (priority, latching) is only for a bool tag named alarm.<name>"]),
    ("unknown alarm priority", BASE_TAGS + "  alarm.hot:\n    type: bool\n    alarm: {priority: urgent}\n",
     18, "tags.alarm.hot.alarm.priority", ["'urgent' is not allowed", "allowed: high, low, medium"]),
    ("bad tag name", BASE_TAGS + "  Bat-Power:\n    type: float\n",
     16, "tags.Bat-Power", ["not a tag name"]),
    ("access not ro/rw", BASE_TAGS + "  bat.power:\n    type: float\n    access: write\n",
     18, "tags.bat.power.access", ["'write' is not allowed", "ro, rw"]),
    ("bad scan period", BASE_TAGS.replace("scan_period: 100ms", "scan_period: fast"),
     3, "site.scan_period", ["'fast' is not a duration"]),
    ("spin too long", BASE_TAGS.replace("scan_period: 100ms", "scan_period: 100ms\n  scan_spin: 20ms"),
     4, "site.scan_spin", ["too long a spin", "0..5ms"]),
    ("unknown site key", BASE_TAGS.replace("  name: t\n", "  name: t\n  programms: []\n"),
     3, "site.programms", ["unknown key 'programms'", "did you mean 'programs'"]),
    ("bool dtype on a float", BASE_TAGS + "  bat.power:\n    type: float\n    modbus: {address: 5, dtype: bool}\n",
     16, "tags.bat.power", ["dtype 'bool' does not fit a float tag"]),
    ("range does not fit register", BASE_TAGS + "  par.x:\n    type: float\n    max: 1000\n"
     "    modbus: {address: 9, dtype: uint16, scale: 0.01}\n",
     16, "tags.par.x.modbus.scale", ["max 1000 / scale 0.01 does not fit uint16"]),
    ("scale in the old meaning (register = value x scale)", BASE_TAGS + "  par.x:\n    type: float\n    unit: V\n"
     "    modbus: {address: 9, dtype: uint16, scale: 100}\n",
     16, "tags.par.x.modbus.scale", ["value = register x scale", "writes scale: 0.01 instead of 100"]),
    ("scale cannot represent the range", BASE_TAGS + "  par.n:\n    type: int\n    min: 0\n    max: 5\n"
     "    modbus: {address: 9, dtype: uint16, scale: 10}\n",
     16, "tags.par.n.modbus.scale", ["cannot represent min..max (0..5)", "finer scale such as 0.01"]),
    ("yaml syntax error", BASE_TAGS + "  bat.power: {type: float\n", 17, "", ["YAML syntax"]),
    ("unknown program", BASE_TAGS.replace("  name: t\n", "  name: t\n  programs: [blinc]\n"),
     3, "site.programs[0]", ["no program 'blinc'"]),
    ("unknown application", BASE_TAGS.replace("  name: t\n", "  name: t\n  application: progs\n"),
     3, "site.application", ["no application 'progs'", "progs/tags.yaml"]),
    ("server port out of range", BASE_TAGS.replace("  name: t\n", "  name: t\n  server: {port: 70000}\n"),
     3, "site.server.port", ["70000 is out of range", "0..65535"]),
    ("bad allow network", BASE_TAGS.replace("  name: t\n", "  name: t\n  server:\n    allow: [10.0.0.300/8]\n"),
     4, "site.server.allow[0]", ["not a network"]),
    ("web port out of range", BASE_TAGS.replace("  name: t\n", "  name: t\n  web: {port: -1}\n"),
     3, "site.web.port", ["-1 is out of range", "0..65535"]),
    ("unknown web key", BASE_TAGS.replace("  name: t\n", "  name: t\n  web:\n    token: secret\n"),
     4, "site.web.token", ["unknown key 'token'", "did you mean 'token_file'"]),
]


@pytest.mark.parametrize(("text", "line", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_config_names_file_line_and_key(tmp_path: Path, text: str, line: int, path: str,
                                                words: list[str]) -> None:
    (tmp_path / "tags.yaml").write_text(textwrap.dedent(text))
    with pytest.raises(ConfigErrors) as info:
        load_site(tmp_path)
    rendered = [str(e) for e in info.value.errors]
    match = [e for e in info.value.errors if e.path == path and e.line == line]
    assert match, f"no error at line {line} for {path!r}; got: {rendered}"
    message = str(match[0])
    assert message.startswith(f"{tmp_path / 'tags.yaml'}:{line}:")
    for word in words:
        assert word in message, message


def test_all_errors_are_collected_not_just_the_first(tmp_path: Path) -> None:
    text = BASE_TAGS + "  a.b:\n    type: floot\n  c.d:\n    type: int\n    unit: parsec\n  e.f:\n    type: int\n    min: 3\n    max: 1\n"
    (tmp_path / "tags.yaml").write_text(text)
    with pytest.raises(ConfigErrors) as info:
        load_site(tmp_path)
    paths = {e.path for e in info.value.errors}
    assert {"tags.a.b.type", "tags.c.d.unit", "tags.e.f"} <= paths


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="no tags.yaml in this folder"):
        load_site(tmp_path / "nowhere")


def test_valid_config_loads(tmp_path: Path) -> None:
    (tmp_path / "tags.yaml").write_text(BASE_TAGS)
    site, db, programs, interlocks = load_site(tmp_path)
    assert site.scan_period == pytest.approx(0.1)
    assert db["par.limit"] == pytest.approx(3.4)
    assert db.define("bat.voltage").modbus_table == "input"
    assert db.define("par.limit").access == "rw"
    assert programs == [] and interlocks is None


# A site running the shipped programs: their contract (programs/tags.yaml) is merged under the site's file.
APP_SITE = "site:\n  name: t\n  programs: [aggregate]\n"
MERGE_CASES = [
    ("an application and a program list", "  application: programs\n",
     4, "site.application", ["takes its programs and interlocks from the application's tags.yaml"]),
    ("override of an unknown tag", "overrides:\n  par.cels_series: {default: 4}\n",
     5, "overrides.par.cels_series", ["no application tag 'par.cels_series'", "did you mean 'par.cells_series'"]),
    ("override of a contract key", "overrides:\n  par.cells_series:\n    default: 4\n    retain: false\n",
     7, "overrides.par.cells_series.retain", ["only default, min, max, description", "may be overridden"]),
    ("override breaks the range", "overrides:\n  par.cells_series: {default: 400}\n",
     5, "overrides.par.cells_series", ["default 400 is outside min..max"]),
    ("site tag collides with an application tag", "tags:\n  bat.voltage: {type: float, unit: V}\n",
     5, "tags.bat.voltage", ["'bat.voltage' is the application's tag", "programs/tags.yaml:", "overrides:"]),
]


@pytest.mark.parametrize(("text", "line", "path", "words"), [c[1:] for c in MERGE_CASES],
                         ids=[c[0] for c in MERGE_CASES])
def test_merge_rules_name_file_line_and_key(tmp_path: Path, text: str, line: int, path: str,
                                            words: list[str]) -> None:
    (tmp_path / "tags.yaml").write_text(APP_SITE + text)
    with pytest.raises(ConfigErrors) as info:
        load_site(tmp_path, with_programs=False)
    match = [str(e) for e in info.value.errors if e.path == path and e.line == line]
    assert match, f"no error at line {line} for {path!r}; got: {[str(e) for e in info.value.errors]}"
    assert match[0].startswith(f"{tmp_path / 'tags.yaml'}:{line}:")
    for word in words:
        assert word in match[0], match[0]


def test_an_override_changes_only_what_it_names(tmp_path: Path) -> None:
    (tmp_path / "tags.yaml").write_text(APP_SITE + "overrides:\n  par.cells_series: {default: 4}\n")
    site, db, _, _ = load_site(tmp_path, with_programs=False)
    tag = db.defs["par.cells_series"]
    assert tag.default == 4 and tag.retain and tag.access == "rw" and tag.modbus is not None
    assert tag.file.endswith("programs/tags.yaml")
    assert site.source("par.cells_series").endswith(f"overridden at {tmp_path / 'tags.yaml'}:5")
