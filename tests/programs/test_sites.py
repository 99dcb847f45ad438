"""The battery application as shipped: both sites check, their parameters agree, the 12.8 V example
simulates, and the programs keep the rules of the room (no clock of their own, every parameter a tag)."""

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
    order = "aggregate, soc, limits, keep, ballast, load, unload, schedule, interlocks (interlocks)"
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


def test_the_example_declares_the_same_application_tags_with_its_own_bank() -> None:
    def application(site: Path) -> dict[str, tuple]:
        tags = load_site(site, with_programs=False)[0].tags
        prefixes = ("par.", "cmd.", "limits.", "alarm.", "interlock.", "soc.", "schedule.", "keep.", "load.",
                    "ballast.", "unload.")
        return {t.name: (t.type, t.unit, t.access, t.retain, t.modbus, t.min, t.max) for t in tags
                if t.name.startswith(prefixes)}

    root, example = application(ROOT), application(EXAMPLE)
    assert root == example
    defaults = {t.name: t.default for t in load_site(EXAMPLE, with_programs=False)[0].tags}
    assert (defaults["par.cells_series"], defaults["par.capacity_ah"]) == (4, 200)


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
