"""runtime/sfc/why_cli.py: ``battplc why`` over Modbus against a running controller, and the same explanation
from a scan's image (what ``battplc sim --why-at`` prints)."""

from __future__ import annotations

from datetime import datetime

import pytest

from runtime.app import Controller
from runtime.cli import main
from runtime.clock import SimClock
from runtime.sfc.why_cli import charts_of, explain_site, snapshot_of_image
from runtime.site import REPO_ROOT


def test_why_over_modbus_shows_every_chart_and_what_blocks(live_controller, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    db = live_controller.controller.db
    status = main(["why", *live_controller.target])
    out, err = capsys.readouterr()
    assert status == 0, err
    heads = [line.split(":")[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert heads[:4] == ["keep", "ballast", "load", "unload"]
    # every device is unreachable: the interlocks block both ways and say so on the wire
    assert db.values["interlock.charge_blocked"]
    assert "what blocks charging:  interlock.charge_blocked=true" in out
    assert "what blocks discharging:  interlock.discharge_blocked=true" in out
    assert "limits.cvl=" in out and " V" in out


def test_why_one_chart_and_an_unknown_one(live_controller, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["why", "unload", *live_controller.target]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("unload: ") and "what blocks" not in out
    assert main(["why", "unlod", *live_controller.target]) == 1
    _, err = capsys.readouterr()
    assert "no chart 'unlod'; charts: keep, ballast, load, unload" in err


def test_the_image_snapshot_knows_steps_times_and_values() -> None:
    clock = SimClock(datetime(2026, 6, 1, 20, 15))
    controller = Controller(REPO_ROOT, clock=clock, services=False,
                            overrides={"retain": {"path": "/nonexistent/retain.json"}})
    scan = controller.scan
    for _ in range(20):
        scan.wait()
        scan.step()
    charts = charts_of(controller.programs)
    text = explain_site(charts, snapshot_of_image(controller.db, charts, clock.now()), controller.db.defs)
    step = controller.db.defs["sfc.unload.step"].format(controller.db.values["sfc.unload.step"])
    assert f"unload: {step} for " in text
    assert "not on the wire" not in text
    assert "T1 " in text  # the transitions out of the active step, with their conditions
    assert "what blocks charging:" in text
