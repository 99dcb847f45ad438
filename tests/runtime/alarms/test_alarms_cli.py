"""runtime/alarms/cli.py: ``battplc alarms`` against the default site's controller running on free ports."""

from __future__ import annotations

import time

import pytest

from runtime.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def wait_for_alarm(live, name: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not live.controller.db.values[f"alarm.{name}"]:
        assert time.monotonic() < deadline, f"alarm.{name} never came"
        time.sleep(0.05)


def test_list_ack_shelve_and_refusals_over_modbus(live_controller, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    target = live_controller.target
    wait_for_alarm(live_controller, "input_bad")  # every device is unreachable: the inputs are BAD
    status, out, err = run(capsys, "alarms", *target)
    assert status == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}
    assert lines["input_bad"][1:4] == ["high", "on", "active_unacknowledged"]
    assert lines["cell_high"][1:4] == ["high", "off", "normal"]
    assert lines["unload_start_failed"][1] == "low"

    status, out, _ = run(capsys, "alarms", *target, "--ack", "cell_high")
    assert status == 1
    assert out.strip() == ("acknowledge cell_high: refused, there is nothing to acknowledge (cell_high is normal); "
                           "nothing changed")
    status, out, _ = run(capsys, "alarms", *target, "--ack", "input_bad")
    assert (status, out.strip()) == (0, "acknowledge input_bad: done")
    assert live_controller.controller.db.values["alarms.input_bad.state"] == 2

    status, out, _ = run(capsys, "alarms", *target, "--shelve", "input_bad", "2h")
    assert (status, out.strip()) == (0, "shelve for 2h input_bad: done")
    assert live_controller.controller.alarms.manager.alarms["input_bad"].state.label == "shelved"
    status, out, _ = run(capsys, "alarms", *target, "--unshelve", "input_bad")
    assert status == 0

    status, _, err = run(capsys, "alarms", *target, "--ack", "nonsense")
    assert status == 1
    assert "no alarm 'nonsense'; alarms: input_bad, cell_high" in err

    status, _, err = run(capsys, "alarms", *target, "--shelve", "input_bad", "2d")
    assert status == 1
    assert "at most 24h" in err


def test_journal_from_the_retained_file(live_controller, capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    wait_for_alarm(live_controller, "input_bad")
    live_controller.stop()  # close() writes the journal a last time
    site = tmp_path / "site"
    site.mkdir()
    (site / "tags.yaml").write_text(
        f"site:\n  application: programs\n  retain: {{path: {tmp_path / 'var' / 'retain.json'}}}\ntags: {{}}\n")
    status, out, err = run(capsys, "alarms", "--journal", "5", "--dir", str(site))
    assert status == 0, err
    assert "input_bad: normal -> active-unacknowledged (condition)" in out
