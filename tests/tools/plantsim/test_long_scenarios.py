"""The long scenarios (scenarios/long/: a June week) at their own scan, with zero safety violations and
their `expect` bounds; they take minutes, so they run in `make test-all` (and CI), not in `make test`."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.site import REPO_ROOT
from tools.plantsim.scenario import Scenario, load_scenario
from tools.plantsim.sim import Simulation

LONG = sorted((REPO_ROOT / "scenarios" / "long").glob("*.yaml"))
# issue 14's targets that today's programs miss, with the measured figure (strict: a fix flips them)
EXPECTED_TO_FAIL: dict[str, str] = {
    "june_week": "issue 14: displayed SoC -4.9 points off the truth at the end, 4.97 at worst (targets 3 and 4)",
}

pytestmark = pytest.mark.long


@pytest.fixture(scope="module", params=LONG, ids=[p.stem for p in LONG])
def run(request: pytest.FixtureRequest) -> tuple[Scenario, dict[str, Any]]:
    scenario = load_scenario(request.param)
    return scenario, Simulation(scenario).run()


def test_no_safety_violation(run: tuple[Scenario, dict[str, Any]]) -> None:
    assert run[1]["safety_violations"] == 0


def test_expectations_hold(run: tuple[Scenario, dict[str, Any]], request: pytest.FixtureRequest) -> None:
    scenario, summary = run
    reason = EXPECTED_TO_FAIL.get(scenario.path.stem)
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    assert scenario.check_expectations(summary) + summary["checks_failed"] == []
