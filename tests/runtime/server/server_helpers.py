"""Helpers for the Modbus server tests: a site with a tag of every data type and table, server and scan
builders, and a scan on the real clock running beside the server to show it keeps its period."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from runtime.clock import RealClock, SimClock
from runtime.program import Program
from runtime.scan import Scan
from runtime.server import Server
from runtime.tags import TagDB

SITE_YAML = """\
site:
  name: srv
  scan_period: 10ms
tags:
  io.alarm:   {type: bool, description: "ro bit", modbus: {address: 0}}
  io.relay:   {type: bool, access: rw, description: "rw bit", modbus: {address: 1}}
  io.pump:    {type: bool, access: rw, modbus: {address: 2}}
  io.door:    {type: bool, modbus: {address: 3}}
  bat.current: {type: float, unit: A, modbus: {address: 0, dtype: int16, scale: 0.1}}
  bat.soc:     {type: float, unit: "%", modbus: {address: 1, dtype: uint16, scale: 0.1}}
  bat.energy:  {type: int, unit: Wh, modbus: {address: 2, dtype: int32}}
  stat.count:  {type: int, unit: count, modbus: {address: 4, dtype: uint32}}
  bat.voltage: {type: float, unit: V, modbus: {address: 6, dtype: float32}}
  bms.state:   {type: enum, values: [init, ok, fault], modbus: {address: 8}}
  par.offset:  {type: int, access: rw, min: -1000, max: 1000, modbus: {address: 100, dtype: int16}}
  par.limit:   {type: float, unit: A, access: rw, min: 0, max: 100, default: 50, modbus: {address: 101, dtype: uint16, scale: 0.01}}
  par.energy:  {type: int, unit: Wh, access: rw, min: -100000, max: 100000, modbus: {address: 102, dtype: int32}}
  par.count:   {type: int, access: rw, min: 0, max: 4000000000, modbus: {address: 104, dtype: uint32}}
  par.voltage: {type: float, unit: V, access: rw, min: 40, max: 60, default: 52, modbus: {address: 106, dtype: float32}}
  cmd.mode:    {type: enum, access: rw, values: [auto, "off", force_charge, hold], modbus: {address: 108}}
  internal.x:  {type: int}
"""

# Values the ro tags hold during the tests (chosen to exercise sign, scale and both words of 32-bit types).
RO_VALUES = {
    "io.alarm": True, "io.door": False,
    "bat.current": -12.3, "bat.soc": 87.5, "bat.energy": -123456, "stat.count": 3_000_000_000,
    "bat.voltage": 53.25, "bms.state": 2,
}


def make_server(db: TagDB, **settings: Any) -> Server:
    server = Server(db, {"port": 0, **settings})
    server.start()
    return server


def sim_scan(db: TagDB, server: Server, programs: Iterable[Program] = ()) -> Scan:
    """A 10 ms scan on the simulated clock with the server's port and observer, driven by wait()/step()."""
    return Scan(db, programs, SimClock(), 0.01, ports=[server.port], observers=[server.observe])


class BackgroundScan:
    """A 10 ms scan on the real clock in its own thread, wired to the server like the controller does."""

    def __init__(self, db: TagDB, server: Server, programs: Iterable[Program] = ()) -> None:
        self.scan = Scan(db, programs, RealClock(), 0.01, ports=[server.port], observers=[server.observe])
        self.thread = threading.Thread(target=self.scan.run, name="test-scan", daemon=True)

    def __enter__(self) -> BackgroundScan:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.scan.stop()
        self.thread.join(timeout=5)

    def figures(self) -> dict[str, float]:
        return self.scan.figures()


def user_values(db: TagDB) -> dict[str, Any]:
    """Every tag but the scan's own statistics."""
    return {name: value for name, value in db.values.items() if not name.startswith("scan.")}


# runtime.app.Controller sets this GIL switch interval for service use (the interpreter's default is 5 ms).
SERVICE_SWITCH_INTERVAL = 0.0005

# (case, seconds the scan ran, Scan.figures()) of every hostile-input case, printed at the end of the run.
SCAN_FIGURES: list[tuple[str, float, dict[str, float]]] = []
