"""Benchmark of device recovery: how long after a Modbus device answers again its inputs are GOOD.

One device as the default site configures its units (poll 1 s, timeout 500 ms, one retry), a stock pymodbus
server on loopback, a ``DriverManager`` latched every 10 ms. Two outages, each held long enough for any
backoff to grow: the device *hangs* (the connection stays, requests get no answer) and the device is *gone*
(the server stops: connections refused), then it answers again. The figure is the time from the device
answering again to its input being GOOD and ``dev.<name>.up`` true in the image, the worst of the trials;
the reference is the poll period (the goal: back within two of them).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from runtime.config.schema import Errors
from runtime.drivers.config import load_io_map
from runtime.drivers.manager import DriverManager
from runtime.tags import Quality, TagDB, TagDef, TagType
from tools.bench.figures import Figure

BENCH = "recovery"
POLL = 1.0
TAG = "dev_value"


class Device:
    """A pymodbus server on its own loop thread that can hang (answer nothing) or go away and come back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hanging = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: Any = None

    async def _action(self, *args: Any) -> None:
        while self.hanging:
            await asyncio.sleep(0.005)

    def start(self) -> None:
        async def start() -> None:
            device = SimDevice(1, simdata=[SimData(0, values=[1234] * 4, datatype=DataType.REGISTERS)],
                               action=self._action)
            self._server = ModbusTcpServer([device], address=("127.0.0.1", self.port))
            await self._server.serve_forever(background=True)
        asyncio.run_coroutine_threadsafe(start(), self._loop).result(5)

    def stop(self) -> None:
        async def stop() -> None:
            await self._server.shutdown()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)

    def close(self) -> None:
        self.hanging = False
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manager_for(port: int, folder: Path) -> tuple[DriverManager, TagDB]:
    db = TagDB()
    db.declare(TagDef(TAG, TagType.INT))
    io_map = folder / "io_map.yaml"
    io_map.write_text(f"devices:\n  unit:\n    driver: modbus_tcp\n    host: 127.0.0.1\n    port: {port}\n"
                      f"    poll: {POLL}s\n    timeout: 500ms\n    retries: 1\n    stale_after: 2.4s\n"
                      f"    inputs: [{{tag: {TAG}, address: 0}}]\n")
    errors = Errors()
    devices = load_io_map(io_map, db, errors)
    assert not errors, errors
    return DriverManager(devices, db), db


def wait_for(manager: DriverManager, db: TagDB, up: bool, timeout: float) -> float | None:
    """Latch every 10 ms until the device is up (or down); the seconds it took, None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        manager.latch(db, time.monotonic())
        good = db.quality[TAG] is Quality.GOOD and db.values["dev.unit.up"]
        if good == up:
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def trial(kind: str, outage: float) -> float:
    """One outage of ``kind`` (hang | gone) lasting ``outage`` s; seconds from the device's return to GOOD."""
    port = free_port()
    device = Device(port)
    device.start()
    with tempfile.TemporaryDirectory() as folder:
        manager, db = manager_for(port, Path(folder))
        manager.start()
        try:
            if wait_for(manager, db, True, 10.0) is None:
                raise RuntimeError("the device never came up")
            if kind == "hang":
                device.hanging = True
            else:
                device.stop()
            wait_for(manager, db, False, 10.0)
            end = time.monotonic() + outage
            while time.monotonic() < end:
                manager.latch(db, time.monotonic())
                time.sleep(0.05)
            if kind == "hang":
                device.hanging = False
            else:
                device.start()
            back = wait_for(manager, db, True, 60.0)
        finally:
            manager.stop()
            device.close()
    return back if back is not None else float("inf")


def run(quick: bool) -> list[Figure]:
    outages = (5.0,) if quick else (9.0, 17.0, 25.0)
    figures = []
    for kind, what in (("hang", "hung device answers again"), ("gone", "refused connection accepted again")):
        times = [trial(kind, outage) for outage in outages]
        figures.append(Figure(
            BENCH, f"recovery after a {what}", max(times), "s", reference=POLL,
            reference_name="poll period", goal="<= 2 poll periods",
            note=f"worst of outages of {', '.join(f'{o:g}' for o in outages)} s: "
                 f"{', '.join(f'{t:.2f}' for t in times)} s"))
    return figures


if __name__ == "__main__":
    import sys
    for figure in run(quick="--quick" in sys.argv):
        print(figure.line())
