"""Helpers for the driver tests: a pymodbus server on loopback in its own thread, pty pairs, tag databases.

(A uniquely named module, not conftest.py: several test folders have a conftest and tests import these.)
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from runtime.config.schema import Errors
from runtime.drivers.base import DeviceConfig
from runtime.drivers.config import load_io_map
from runtime.drivers.manager import DriverManager
from runtime.site import load_tag_table
from runtime.tags import TagDB

FIXTURES = Path(__file__).parent / "fixtures"
DT = ModbusTcpClient.DATATYPE


def regs(value: Any, datatype: Any, word_order: str = "big") -> list[int]:
    """Registers of a value, encoded by pymodbus (an implementation independent of ours)."""
    return ModbusTcpClient.convert_to_registers(value, datatype, word_order=word_order)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# ---- a Modbus server on loopback -------------------------------------------------------------------------

class Behaviour:
    """What the simulated device does with a request: answer, stay silent, or answer with an exception."""

    def __init__(self) -> None:
        self.silent = False
        self.exception: ExcCodes | None = None
        self.requests = 0
        self.writes: list[tuple[int, int, list[Any]]] = []  # (function code, address, values)

    async def action(self, function_code: int, start: int, address: int, count: int, registers: list[int],
                     values: Any) -> ExcCodes | None:
        self.requests += 1
        while self.silent:
            await asyncio.sleep(0.01)
        if self.exception is None and values is not None:
            self.writes.append((function_code, address, list(values)))
        return self.exception


class ServerThread:
    """A pymodbus server (new SimDevice datastore) on its own loop thread; stop and start at will.

    TCP on a free loopback port by default; ``factory(devices, trace_connect)`` makes another kind.
    """

    def __init__(self, devices: Callable[[], list[SimDevice]],
                 factory: Callable[[list[SimDevice], Callable[[bool], None]], Any] | None = None) -> None:
        self.make_devices = devices
        self.port = free_port()
        self.factory = factory or (lambda devs, trace: ModbusTcpServer(devs, address=("127.0.0.1", self.port),
                                                                       trace_connect=trace))
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: Any = None

    def _run(self, coro: Any, timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _trace_connect(self, connected: bool) -> None:
        if connected:
            self.connections += 1

    def start(self) -> None:
        async def start() -> None:
            self._server = self.factory(self.make_devices(), self._trace_connect)
            await self._server.serve_forever(background=True)
        self._run(start())

    def stop(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                await self._server.shutdown()
                self._server = None
        self._run(stop())

    def get(self, unit: int, function_code: int, address: int, count: int = 1) -> list[Any]:
        assert self._server is not None
        return self._run(self._server.async_getValues(unit, function_code, address, count))

    def set(self, unit: int, function_code: int, address: int, values: list[Any]) -> None:
        assert self._server is not None
        self._run(self._server.async_setValues(unit, function_code, address, values))

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def holding_image() -> list[int]:
    """Holding registers 0..299 of the 'meter' device in io_map_full.yaml."""
    image = [0] * 300
    image[0] = 4321
    image[1:2] = regs(-1234, DT.INT16)
    image[2:4] = regs(0x12345678, DT.UINT32)
    image[4:6] = regs(-100000, DT.INT32)
    image[6:8] = regs(3.5, DT.FLOAT32)
    image[8:10] = regs(0xCAFEBABE, DT.UINT32, "little")
    image[10:12] = regs(-7, DT.INT32, "little")
    image[12:14] = regs(-2.25, DT.FLOAT32, "little")
    image[14:15] = regs(1234, DT.INT16)
    image[15] = 0x8008  # bits 3 and 15
    image[100] = 77
    return image


EXPECTED_FULL = {
    "t.u16": 4321, "t.i16": -1234, "t.u32": 0x12345678, "t.i32": -100000, "t.f32": 3.5,
    "t.u32_le": 0xCAFEBABE, "t.i32_le": -7, "t.f32_le": -2.25, "t.scaled": 11.34, "t.bit3": True,
    "t.bit15": True, "t.far": 77, "t.in_u16": 555, "t.in_f32": 1.5, "t.coil": True, "t.disc": True,
}


def meter_devices(behaviour: Behaviour | None = None, unit2: Behaviour | None = None) -> Callable[[], list[SimDevice]]:
    def make() -> list[SimDevice]:
        blocks = (
            [SimData(0, values=[True] + [False] * 31, datatype=DataType.BITS)],
            [SimData(0, values=[False, False, True] + [False] * 13, datatype=DataType.BITS)],
            [SimData(0, values=holding_image(), datatype=DataType.REGISTERS)],
            [SimData(0, values=[555, *regs(1.5, DT.FLOAT32), 0], datatype=DataType.REGISTERS)],
        )
        second = [SimData(0, values=[22, 0], datatype=DataType.REGISTERS)]
        return [SimDevice(1, simdata=blocks, action=behaviour.action if behaviour else None),
                SimDevice(2, simdata=second, action=unit2.action if unit2 else None)]
    return make


# ---- tag databases and io maps ---------------------------------------------------------------------------

def fixture_db() -> TagDB:
    return TagDB.from_defs(load_tag_table(FIXTURES).tags)


def load_map(path: Path, db: TagDB) -> list[DeviceConfig]:
    errors = Errors()
    devices = load_io_map(path, db, errors)
    assert not errors, "\n".join(str(e) for e in errors)
    return devices


def write_map(tmp_path: Path, source: str | Path, replace: dict[str, str] | None = None) -> Path:
    """An io_map in tmp_path from a fixture file name or YAML text, with text replacements."""
    text = (FIXTURES / source).read_text() if isinstance(source, str) and source.endswith(".yaml") \
        else str(source)
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    path = tmp_path / "io_map.yaml"
    path.write_text(text)
    return path


class Harness:
    """A started DriverManager over a tag db, latched from the test thread like a scan would."""

    def __init__(self, devices: list[DeviceConfig], db: TagDB, **kwargs: Any) -> None:
        self.db = db
        self.manager = DriverManager(devices, db, **kwargs)
        self.manager.start()

    def latch(self) -> TagDB:
        self.manager.latch(self.db, time.monotonic())
        return self.db

    def until(self, condition: Callable[[TagDB], bool], timeout: float = 5.0) -> bool:
        return wait_until(lambda: condition(self.latch()), timeout)

    def stop(self) -> None:
        self.manager.stop()


# ---- serial lines over ptys ------------------------------------------------------------------------------

class PtyPair:
    """Two pty slaves joined back to back by a pump thread: a null-modem cable between two serial ports."""

    def __init__(self) -> None:
        self._masters: list[int] = []
        self._slaves: list[int] = []
        self.paths: list[str] = []
        for _ in range(2):
            master, slave = pty.openpty()
            tty.setraw(slave)  # no line discipline: bytes pass unchanged
            self._masters.append(master)
            self._slaves.append(slave)  # kept open so the master never reads EIO while no one has the port
            self.paths.append(os.ttyname(slave))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        a, b = self._masters
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(b if fd == a else a, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in self._masters + self._slaves:
            os.close(fd)


class PtyLine:
    """One pty: the test writes to the master, the driver opens ``path`` like a serial port."""

    def __init__(self) -> None:
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
