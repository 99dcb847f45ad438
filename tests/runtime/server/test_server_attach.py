"""Tests for runtime.server.attach: the controller's extension hook."""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from runtime.app import Controller
from runtime.clock import SimClock
from runtime.config.tags_schema import SERVER
from runtime.server import Server, attach


def controller(site_dir: Path, **server: Any) -> Controller:
    return Controller(site_dir, clock=SimClock(), services=False,
                      overrides={"server": SERVER({"port": 0, **server})})


def test_attach_wires_the_server_into_the_scan(site_dir: Path) -> None:
    plc = controller(site_dir)
    stop = attach(plc)
    assert stop is not None
    try:
        server = plc.parts["server"]
        assert isinstance(server, Server) and server.running
        assert server.port in plc.scan.ports and server.observe in plc.scan.observers
        client = ModbusTcpClient("127.0.0.1", port=server.address[1], timeout=2, retries=0)
        assert client.connect()
        assert not client.write_registers(106, list(struct.unpack(">HH", struct.pack(">f", 44.0))),
                                          device_id=1).isError()
        plc.scan.step()
        assert plc.db["par.voltage"] == 44.0
        server.settle()
        back = client.read_holding_registers(106, count=2, device_id=1)
        assert client.convert_from_registers(back.registers, client.DATATYPE.FLOAT32) == 44.0
        client.close()
    finally:
        stop()
    assert not server.running


def test_disabled_server_is_not_attached(site_dir: Path) -> None:
    plc = controller(site_dir, enabled=False)
    assert attach(plc) is None
    assert "server" not in plc.parts and plc.scan.ports == []


def test_a_server_that_cannot_listen_does_not_stop_the_controller(site_dir: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    first = controller(site_dir)
    stop = attach(first)
    assert stop is not None
    try:
        second = controller(site_dir, port=first.parts["server"].address[1])
        assert attach(second) is None
        assert "server" not in second.parts
        assert any(r.levelno == logging.ERROR and "Modbus server not started" in r.getMessage()
                   for r in caplog.records)
        second.scan.step()  # control goes on without SCADA access
    finally:
        stop()
