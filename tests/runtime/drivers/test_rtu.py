"""Modbus RTU over a serial line: a pymodbus RTU server on one end of a pty pair, the driver on the other.

The line is two ptys joined by a pump thread (Python's pty module, always available); the same test runs
over a socat pty pair when socat is installed, to prove nothing depends on our pump.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from driver_helpers import Harness, PtyPair, ServerThread, fixture_db, load_map, wait_until, write_map
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from runtime.tags import Quality

BUS = """devices:
  bms:
    driver: modbus_rtu
    port: {path}
    baud: 115200
    unit: 3
    poll: 100ms
    timeout: 200ms
    retries: 1
    stale_after: 1s
    backoff: {{initial: 100ms, max: 300ms}}
    inputs:
      - {{tag: bms.cell1_v, address: 0, scale: 0.001}}
      - {{tag: bms.soc, address: 0x53}}
    outputs:
      - {{tag: o.sp, address: 0x60, scale: 0.1}}
  meter:
    driver: modbus_rtu
    port: {path}
    baud: 115200
    unit: 4
    poll: 100ms
    timeout: 200ms
    stale_after: 1s
    backoff: {{initial: 100ms, max: 300ms}}
    inputs:
      - {{tag: t.i16, address: 0, type: int16}}
"""


def bus_devices() -> list[SimDevice]:
    bms = [SimData(0, values=[3312] + [0] * 0x52 + [87] + [0] * 0x10, datatype=DataType.REGISTERS)]
    return [SimDevice(3, simdata=bms), SimDevice(4, simdata=[SimData(0, values=[65535], datatype=DataType.REGISTERS)])]


def rtu_server(path: str):
    return lambda devices, trace: ModbusSerialServer(devices, framer=FramerType.RTU, port=path, baudrate=115200,
                                                     trace_connect=trace)


@pytest.fixture(params=["pty", "socat"])
def line(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "pty":
        pair = PtyPair()
        yield pair.paths[0], pair.paths[1]
        pair.close()
        return
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat is not installed; the pty-module variant of this test covers RTU")
    a, b = tmp_path / "a", tmp_path / "b"
    proc = subprocess.Popen([socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: a.exists() and b.exists(), 5)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


def test_rtu_bus_reads_writes_and_survives_a_silent_server(line: tuple[str, str], tmp_path: Path) -> None:
    server_end, driver_end = line
    server = ServerThread(bus_devices, factory=rtu_server(server_end))
    server.start()
    db = fixture_db()
    h = Harness(load_map(write_map(tmp_path, BUS.format(path=driver_end)), db), db)
    try:
        assert h.until(lambda db: all(db.quality[t] is Quality.GOOD for t in ("bms.cell1_v", "bms.soc", "t.i16")))
        assert db.values["bms.cell1_v"] == pytest.approx(3.312) and db.values["bms.soc"] == 87
        assert db.values["t.i16"] == -1
        h.manager.commit({"o.sp": 54.5}, db)
        assert wait_until(lambda: server.get(3, 3, 0x60) == [545])

        server.stop()  # the bus goes quiet: requests time out, both devices go BAD
        assert h.until(lambda db: db.quality["bms.soc"] is Quality.BAD and db.quality["t.i16"] is Quality.BAD)
        assert db.values["dev.bms.errors_timeout"] >= 1 and db.values["bms.soc"] == 87
        time.sleep(0.3)
        server.start()
        assert h.until(lambda db: db.quality["bms.soc"] is Quality.GOOD and db.quality["t.i16"] is Quality.GOOD)
        assert db.values["dev.bms.up"] and db.values["dev.meter.up"]
    finally:
        h.stop()
        server.close()
