"""Fixtures for the Modbus server tests (helpers live in server_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient
from server_helpers import RO_VALUES, SITE_YAML, make_server

from runtime.server import Server
from runtime.site import load_site
from runtime.tags import TagDB


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "tags.yaml").write_text(SITE_YAML)
    return tmp_path


@pytest.fixture
def db(site_dir: Path) -> TagDB:
    _, db, _, _ = load_site(site_dir, with_programs=False)
    db.values.update(RO_VALUES)
    return db


@pytest.fixture
def server(db: TagDB) -> Iterator[Server]:
    server = make_server(db, idle_timeout=1.0, max_connections=8)
    yield server
    server.stop()


@pytest.fixture
def client(server: Server) -> Iterator[ModbusTcpClient]:
    host, port = server.address
    client = ModbusTcpClient(host, port=port, timeout=2, retries=0)
    assert client.connect()
    yield client
    client.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures of the 10 ms scan that ran beside the server during each hostile-input case."""
    from server_helpers import SCAN_FIGURES

    if not SCAN_FIGURES:
        return
    terminalreporter.section("scan beside the Modbus server under hostile input (10 ms, real clock)")
    terminalreporter.write_line(f"{'case':42s} {'s':>5s} {'scans':>6s} {'overruns':>8s} {'late p50':>9s} "
                                f"{'p99':>7s} {'max ms':>7s}")
    for name, seconds, f in SCAN_FIGURES:
        terminalreporter.write_line(f"{name[:42]:42s} {seconds:5.2f} {f['scans']:6.0f} {f['overruns']:8.0f} "
                                    f"{f['lateness_p50_ms']:9.3f} {f['lateness_p99_ms']:7.3f} "
                                    f"{f['lateness_max_ms']:7.3f}")
