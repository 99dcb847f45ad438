"""The plant in real time on real transports: what ``make run`` (``battplc demo``) talks to.

One asyncio loop in its own thread runs everything of the plant side, so plant, banks and servers never race:

- the plant steps every ``step`` seconds of wall time, with the scenario's PV, house and ambient profiles
  laid over the local time of day;
- one pymodbus TCP server per host:port of io_map.yaml (several unit ids behind one port are one gateway),
  built on pymodbus's ``SimDevice``/``SimData`` datastore; its ``action`` hook answers every read from the
  device's ``RegisterBank`` and hands every write to it, so pymodbus never holds a copy of the truth;
- each VE.Direct device writes its two text blocks once a second to the master side of a pty; the slave
  side (``PlantServer.serial_ports[name]``) is what the runtime opens as the serial port.

Faults on the wire: ``offline`` swallows the answer (the client times out); ``timeout`` holds the answer for
three times the device's timeout and then drops it (a late answer must not pass for a later request's); ``garbage`` answers exception 4 and, every other time, a frame whose byte count
and data are one register short. A faulted shunt sends nothing (offline, timeout) or corrupt blocks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import tty
from collections.abc import Callable
from functools import partial
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from runtime.drivers.base import DeviceConfig
from runtime.drivers.config import link_key
from tools.plantsim.devices import PlantDevices, RegisterBank, ShuntFrames
from tools.plantsim.model import Plant

log = logging.getLogger("battplc.plant")

_TABLE_OF_FUNCTION = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding",
                      16: "holding", 22: "holding", 23: "holding", 4: "input"}
_UNUSED = 65520  # where an empty table's placeholder block sits, far from any mapped address


def sim_device(bank: RegisterBank, action: Callable[..., Any]) -> SimDevice:
    """A pymodbus SimDevice with one block per table covering the bank's mapped addresses."""
    spans = bank.spans()
    blocks: list[list[SimData]] = []
    for table in ("coil", "discrete", "holding", "input"):
        first, end = spans.get(table, (_UNUSED, _UNUSED + 1))
        if table in ("coil", "discrete"):
            blocks.append([SimData(first, values=[False] * (end - first), datatype=DataType.BITS)])
        elif table in spans:
            blocks.append([SimData(first, count=end - first, datatype=DataType.REGISTERS)])
        else:
            blocks.append([SimData(first, count=1, datatype=DataType.INVALID)])
    return SimDevice(id=bank.config.unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]),
                     action=action)


class PlantServerError(RuntimeError):
    """The plant could not serve its devices (a port taken, an address not on this machine)."""


class _Endpoint:
    """One TCP port: its banks by unit id and the per-answer fault decisions for the packet hook."""

    def __init__(self) -> None:
        self.banks: dict[int, RegisterBank] = {}  # unit id -> bank
        self.next_answer = ""  # "", "drop" or "short": what the packet hook does to the next answer
        self.garbage_turn = 0
        self.server: ModbusTcpServer | None = None

    async def action(self, bank: RegisterBank, function_code: int, start_address: int, address: int,
                     count: int, registers: list[int], set_values: list[Any] | None) -> ExcCodes | None:
        """pymodbus datastore hook: fill ``registers`` from the bank, or hand a write to it."""
        fault = bank.fault
        if fault == "offline":
            self.next_answer = "drop"
            return None
        if fault == "timeout":
            # the answer comes three timeouts late; the client gave up on that request long ago, and a late
            # answer must never pass for the answer to a later request: it is sent to no one (dropped)
            await asyncio.sleep(3 * bank.config.timeout)
            self.next_answer = "drop"
        elif fault == "garbage":
            self.garbage_turn ^= 1
            if self.garbage_turn:
                return ExcCodes.DEVICE_FAILURE
            self.next_answer = "short"
        table = _TABLE_OF_FUNCTION[function_code]
        if set_values is not None:
            bank.store(table, address, list(set_values))
            return None
        if table in ("coil", "discrete"):
            bits = bank.load(table, start_address * 16, 16 * len(registers))
            for i in range(len(registers)):
                registers[i] = sum(1 << b for b in range(16) if bits[16 * i + b])
        else:
            registers[:] = bank.load(table, start_address, len(registers))
        return None

    def packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus packet hook: drop or shorten the next answer when a fault asked for it."""
        if not sending or not self.next_answer:
            return data
        what, self.next_answer = self.next_answer, ""
        if what == "drop":
            return b""
        # a read answer is MBAP (7 bytes) + function + byte count + data: cut the data short by one
        # register (one byte of bits) and keep the byte count and MBAP length consistent with it
        function = data[7]
        if function not in (1, 2, 3, 4) or len(data) < 10:
            return data
        cut = 2 if function in (3, 4) else 1
        body = data[9:9 + max(0, data[8] - cut)]
        return data[:4] + (len(body) + 3).to_bytes(2, "big") + data[6:8] + bytes([len(body)]) + body


class PlantServer:
    """Serve a plant's devices on loopback in real time until ``stop()``."""

    def __init__(self, plant: Plant, configs: list[DeviceConfig], profiles: Any = None, step: float = 0.1) -> None:
        self.plant = plant
        self.devices = PlantDevices(plant, configs)
        self.profiles = profiles  # (pv, house, ambient) callables of seconds since start; None: all quiet
        self.step = step
        self.serial_ports: dict[str, str] = {}
        self.endpoints: dict[tuple[str, int], _Endpoint] = {}
        self.events: list[tuple[float, Callable[[], None]]] = []  # (seconds from start, what to do)
        self.pinned: dict[str, float] = {}  # "pv", "house", "ambient" held at a value instead of the profile
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._ptys: dict[str, tuple[int, int]] = {}
        for name, config in self.devices.configs.items():
            device, link = self.devices.simulated[name], link_key(config)
            if isinstance(device, ShuntFrames):  # a byte stream: served on a pseudo-terminal
                master, slave = os.openpty()
                tty.setraw(slave)  # no line discipline: the bytes arrive as sent
                os.set_blocking(master, False)
                self._ptys[name] = (master, slave)
                self.serial_ports[name] = os.ttyname(slave)
            elif isinstance(device, RegisterBank) and link[0] == "tcp":  # registers behind a TCP port
                key = (config.host, int(config.port))
                self.endpoints.setdefault(key, _Endpoint())
                self.endpoints[key].banks[config.unit] = device
            else:
                log.warning("plant: %s is a %s device, not served on the wire (battplc sim serves it "
                            "in-process)", name, config.driver)

    # ---- control ----------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once every port listens (PlantServerError if one cannot be opened)."""
        self._thread = threading.Thread(target=self._main, name="plant", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise PlantServerError("the plant server did not start in time")
        if self._error is not None:
            self.stop()
            if isinstance(self._error, PlantServerError):
                raise self._error
            raise PlantServerError(f"the plant server could not start: {self._error}") from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:
                pass  # the loop already ended (it failed to start)
        if self._thread is not None:
            self._thread.join(10)
        for master, slave in self._ptys.values():
            for fd in (master, slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._ptys.clear()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the plant's loop (faults, pinned inputs from another thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    # ---- the loop ---------------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except PlantServerError as exc:
            self._error = exc
            self._ready.set()
        except BaseException as exc:  # reported to start() or logged; the thread must not die silently
            self._error = exc
            self._ready.set()
            log.exception("plant server stopped")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            for (host, port), endpoint in self.endpoints.items():
                devices = [sim_device(bank, partial(endpoint.action, bank)) for bank in endpoint.banks.values()]
                endpoint.server = ModbusTcpServer(devices, address=(host, port), trace_packet=endpoint.packet)
                try:
                    await endpoint.server.serve_forever(background=True)
                except RuntimeError:  # pymodbus: "Could not start listen"
                    endpoint.server = None
                    names = ", ".join(b.config.name for b in endpoint.banks.values())
                    raise PlantServerError(f"cannot listen on {host}:{port} for {names} (io_map.yaml): the port "
                                           f"is taken (a `make run` already going?) or the address is not "
                                           f"on this machine") from None
        except PlantServerError:
            await self._shutdown_servers()
            raise
        tasks = [asyncio.create_task(self._run_plant())]
        tasks += [asyncio.create_task(self._run_shunt(name)) for name in self._ptys]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._shutdown_servers()

    async def _shutdown_servers(self) -> None:
        for endpoint in self.endpoints.values():
            if endpoint.server is not None:
                await endpoint.server.shutdown()
                endpoint.server = None

    async def _run_plant(self) -> None:
        begin = last = time.monotonic()
        events = sorted(self.events, key=lambda e: e[0])
        while True:
            await asyncio.sleep(self.step)
            now = time.monotonic()
            t = now - begin
            while events and events[0][0] <= t:
                events.pop(0)[1]()
            if self.profiles is not None:
                pv, house, ambient = (profile(t) for profile in self.profiles)
            else:
                pv, house, ambient = 0.0, 0.0, self.plant.ambient_c
            pinned = self.pinned
            self.plant.step(now - last, pinned.get("pv", pv), pinned.get("house", house),
                            pinned.get("ambient", ambient))
            last = now

    async def _run_shunt(self, name: str) -> None:
        master, _slave = self._ptys[name]
        frames = self.devices.shunts[name]
        while True:
            data = frames.frame()
            try:
                if data:
                    os.write(master, data)
            except BlockingIOError:
                pass  # nobody reads the port and its buffer is full: a real shunt talks anyway
            await asyncio.sleep(1.0)
