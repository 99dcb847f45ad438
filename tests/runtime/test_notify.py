"""Tests for runtime/notify.py against a fake systemd: a datagram socket in tmp_path or in the abstract namespace."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.notify import StatusReporter, SystemdNotifier, WatchdogKicker, watchdog_interval


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind("\0" + socket_path[1:] if socket_path.startswith("@") else socket_path)
        self._socket.setblocking(False)

    def received(self) -> list[str]:
        """Every datagram that arrived since the last call."""
        messages = []
        while True:
            try:
                messages.append(self._socket.recv(4096).decode())
            except BlockingIOError:
                return messages

    def close(self) -> None:
        self._socket.close()


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    if request.param == "path":
        socket_path = str(tmp_path / "notify")
    else:
        socket_path = f"@battplc-test-{os.getpid()}-{id(request)}"
    fake = FakeSystemd(socket_path)
    yield fake
    fake.close()


def test_ready_status_stopping(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier(systemd.socket_path)

    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("scan 100 ms, 3 devices up")
    assert notifier.stopping()
    assert systemd.received() == ["READY=1", "STATUS=scan 100 ms, 3 devices up", "STOPPING=1"]


def test_status_stays_one_line(systemd: FakeSystemd) -> None:
    SystemdNotifier(systemd.socket_path).status("device down:\nbms1")

    assert systemd.received() == ["STATUS=device down: bms1"]


def test_watchdog_kicker_sends_once_per_interval(systemd: FakeSystemd) -> None:
    kicker = WatchdogKicker(SystemdNotifier(systemd.socket_path), interval_s=5.0)
    sent_at = []

    for scan in range(250):  # 25 s of 100 ms scans on a fake monotonic clock
        now = 1000.0 + scan * 0.1
        if kicker.kick(now):
            sent_at.append(round(now - 1000.0, 1))

    assert sent_at == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert systemd.received() == ["WATCHDOG=1"] * 5


def test_watchdog_kicker_sends_one_kick_after_a_stall(systemd: FakeSystemd) -> None:
    kicker = WatchdogKicker(SystemdNotifier(systemd.socket_path), interval_s=5.0)

    assert [kicker.kick(now) for now in (0.0, 17.0, 17.1, 21.9, 22.0)] == [True, True, False, False, True]
    assert len(systemd.received()) == 3


def test_environment_socket_is_read_when_the_notifier_is_made(
    systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.socket_path)

    SystemdNotifier().ready()

    assert systemd.received() == ["READY=1"]


def test_no_socket_is_a_silent_no_op(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    for notifier in (SystemdNotifier(), SystemdNotifier(None), SystemdNotifier("")):
        assert not notifier.enabled
        assert not notifier.ready()
        assert not notifier.status("x")
        assert not notifier.watchdog()
        assert not notifier.stopping()
        kicker = WatchdogKicker(notifier, interval_s=5.0)
        assert kicker.interval_s is None
        assert not kicker.kick(0.0)
    assert caplog.records == []


def test_kicker_without_interval_never_kicks(systemd: FakeSystemd) -> None:
    kicker = WatchdogKicker(SystemdNotifier(systemd.socket_path), interval_s=None)

    assert not any(kicker.kick(float(now)) for now in range(100))
    assert systemd.received() == []


def test_send_error_is_logged_once_and_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens"))

    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.status("still here")

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nobody-listens" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4242"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4243"}, None),  # inherited from a parent: not ours
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-1"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_watchdog_interval_checks_own_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    assert watchdog_interval() == 5.0


def test_status_reporter_sends_a_line_per_interval_built_only_when_due(systemd: FakeSystemd) -> None:
    built = []

    def line() -> str:
        built.append(1)
        return f"mode auto; unload idle; scan 1.00 ms, 0 overruns, {len(built)} scans"

    reporter = StatusReporter(SystemdNotifier(systemd.socket_path), line, interval_s=5.0)
    sent = [reporter.report(t) for t in (0.0, 1.0, 4.9, 5.0, 7.0, 10.5)]
    assert sent == [True, False, False, True, False, True]
    assert len(built) == 3
    assert systemd.received() == [f"STATUS=mode auto; unload idle; scan 1.00 ms, 0 overruns, {n} scans"
                                  for n in (1, 2, 3)]


def test_status_reporter_without_systemd_never_builds_a_line(tmp_path: Path) -> None:
    reporter = StatusReporter(SystemdNotifier(None), lambda: pytest.fail("built a line"), interval_s=5.0)
    assert not reporter.report(100.0)


def test_the_controller_status_line(tmp_path: Path) -> None:
    from datetime import datetime

    from runtime.app import Controller
    from runtime.clock import SimClock
    from runtime.site import REPO_ROOT

    controller = Controller(REPO_ROOT, clock=SimClock(datetime(2026, 6, 1, 12)), services=False,
                            overrides={"retain": {"path": str(tmp_path / "retain.json")}})
    controller.scan.step()
    line = controller.status_line()
    assert line.startswith("mode auto; keep idle, ballast idle, load idle, unload idle; scan ")
    assert line.endswith(" ms, 0 overruns, 1 scans")
