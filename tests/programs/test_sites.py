"""The battery application as shipped: both sites check, the 12.8 V example takes the application's tags from
programs/tags.yaml and overrides only its bank, it simulates, and the programs keep the rules of the room (no clock of their own, every parameter a tag)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from runtime.cli import main
from runtime.site import load_site
from tools.plantsim.scenario import load_scenario
from tools.plantsim.sim import Simulation

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "12v-200ah"
PROGRAMS = ROOT / "programs"
SEED = re.compile(r"\(.*seeds? 00[0-4]")


@pytest.mark.parametrize("site", [ROOT, EXAMPLE], ids=["default", "12v-200ah"])
def test_site_checks(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(site)]) == 0
    out = capsys.readouterr().out
    order = "aggregate, soc, limits, keep, ballast, load, unload, schedule, energy, interlocks (interlocks)"
    assert f"programs: {order}" in out


def test_every_parameter_is_a_retained_rw_register_naming_its_seed() -> None:
    for site in (ROOT, EXAMPLE):
        params = [t for t in load_site(site, with_programs=False)[0].tags if t.name.startswith("par.")]
        assert len(params) > 80
        for tag in params:
            assert tag.access == "rw" and tag.retain, tag.name
            assert tag.modbus is not None and tag.modbus.address >= 1000, tag.name
            assert SEED.search(tag.description), f"{tag.name}: description names no seed"
            if tag.type in ("int", "float"):
                assert tag.min is not None and tag.max is not None, tag.name


def test_the_example_takes_the_application_tags_from_the_programs_and_overrides_only_its_bank() -> None:
    root, example = load_site(ROOT, with_programs=False)[0], load_site(EXAMPLE, with_programs=False)[0]
    contract = PROGRAMS / "tags.yaml"
    application = {t.name for t in root.tags if Path(t.file) == contract}
    assert len(application) > 140 and {t.name for t in example.tags} >= application
    assert all(Path(t.file) == contract for t in example.tags if t.name in application)
    by_name = {t.name: t for t in example.tags}
    assert (by_name["par.cells_series"].default, by_name["par.capacity_ah"].default) == (4, 200)
    assert set(example.overridden) == {"par.cells_series", "par.capacity_ah", "par.fuse_a", "bat.voltage",
                                       "charger.enable", "charger.voltage_sp", "charger.current_sp",
                                       "inverter.power_sp", "heater.enable", "fan.enable"}


def test_the_12v_example_simulates_safely() -> None:
    scenario = load_scenario(EXAMPLE / "scenarios" / "spring_day.yaml")
    summary = Simulation(scenario, duration=4 * 3600.0, scan=5.0).run()
    assert summary["safety_violations"] == 0 and summary["bms_trips"] == 0
    assert not any(summary["program_faults"].values())


@pytest.mark.parametrize("path", sorted(PROGRAMS.glob("*.py")), ids=lambda p: p.name)
def test_programs_never_read_the_clock(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & {"time", "datetime"}, path.name
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in ("time", "datetime"), path.name
        if isinstance(node, ast.Attribute):
            assert node.attr != "sleep", path.name


def test_the_programs_readme_lists_every_parameter() -> None:
    readme = (PROGRAMS / "README.md").read_text()
    params = [t.name for t in load_site(ROOT, with_programs=False)[0].tags if t.name.startswith("par.")]
    assert [name for name in params if f"`{name}`" not in readme] == []
