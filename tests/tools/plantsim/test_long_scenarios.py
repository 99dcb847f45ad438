"""The long scenarios (scenarios/long/: a June week) at their own scan, with zero safety violations and
their `expect` bounds; they take minutes, so they run in `make test-all` (and CI), not in `make test`."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.site import REPO_ROOT
from tools.plantsim.scenario import Scenario, load_scenario
from tools.plantsim.sim import Simulation

LONG = sorted((REPO_ROOT / "scenarios" / "long").glob("*.yaml"))

pytestmark = pytest.mark.long


@pytest.fixture(scope="module", params=LONG, ids=[p.stem for p in LONG])
def run(request: pytest.FixtureRequest) -> tuple[Scenario, dict[str, Any]]:
    scenario = load_scenario(request.param)
    return scenario, Simulation(scenario).run()


def test_no_safety_violation(run: tuple[Scenario, dict[str, Any]]) -> None:
    assert run[1]["safety_violations"] == 0


def test_expectations_hold(run: tuple[Scenario, dict[str, Any]]) -> None:
    scenario, summary = run
    assert scenario.check_expectations(summary) + summary["checks_failed"] == []
