"""Benchmark of the Modbus/TCP server: read throughput against a stock pymodbus server, scan lateness under load.

Both comparisons are interleaved A/B runs, because this kind of machine (2 cores, virtualised, not
real-time) has hiccups of several milliseconds that would land in one side of a before/after comparison:
time is cut into short slots and the conditions alternate slot by slot, so both sides see the same noise.

1. Throughput: 4 load clients, each its own process (no client shares a GIL with a server), read 50 holding
   registers in a closed loop over loopback. In alternate slots they read battplc's server (a 1,000-register
   map of tags of mixed types) and a stock pymodbus 3.16 ``ModbusTcpServer`` over a plain 1,000-register
   ``SimData`` block. Each server runs on its own thread and loop in this process, as battplc's does in
   service. Goal: >= 1.5x the stock requests/s. The clients speak raw Modbus/TCP with pre-built frames
   (a pymodbus client would be the bottleneck) and check every answer's transaction id and function code.
2. Scan lateness: a 10 ms scan on the real clock with battplc's server attached (a program changes 50
   mapped tags every scan, so the image refresh runs too); the same clients load the server in alternate
   slots. Goal: p99 lateness under load <= 2x p99 without load. Three setups alternate too, to show what
   each measure buys: as in service (the controller's 0.5 ms GIL switch interval, and the server stepping
   aside around each scan), without stepping aside, and with neither (the interpreter's default 5 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from runtime.clock import RealClock
from runtime.program import Program, ScanContext
from runtime.scan import Samples, Scan
from runtime.server import Server
from runtime.site import REPO_ROOT
from runtime.tags import ModbusMap, TagDB, TagDef, TagType
from tools.bench.figures import Figure

BENCH = "modbus_server"
CLIENTS = 4
REGISTERS = 50
BLOCK = 1000
UNIT = 1
SCAN_PERIOD = 0.010
SERVICE_SWITCH_INTERVAL = 0.0005  # what runtime.app.Controller sets for service use (the default is 5 ms)
SLOT = 0.25  # seconds per A/B slot: short, so bursts of machine noise spread over both sides
GUARD = 0.02  # scan samples this close to a slot boundary are not attributed to either side
STOCK = "stock pymodbus 3.16 server"
IDLE = 0  # "port" of an idle slot


# ---- load clients (separate processes) ----------------------------------------------------------------------

def load_client(ports: Sequence[int], address: int) -> None:
    """A load process: connect to every port, say ready, read the schedule, load, report.

    Schedule on stdin: "<start> <slots>"; slot k loads ``ports[k % len(ports)]`` (0: stay idle). Report on
    stdout, per port in order: "<port> <requests> <errors> <seconds>" lines, then "end", then each port's
    latencies as raw doubles.
    """
    socks = {}
    for port in set(ports) - {IDLE}:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks[port] = sock
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    start, slots = sys.stdin.readline().split()
    start_at, slot_count = float(start), int(slots)
    expected = 9 + 2 * REGISTERS
    pdu = struct.pack(">BHH", 3, address, REGISTERS)
    latencies = {port: array("d") for port in socks}
    errors = dict.fromkeys(socks, 0)
    busy = dict.fromkeys(socks, 0.0)
    perf, monotonic = time.perf_counter, time.monotonic
    tid = 0
    for slot in range(slot_count):
        begin, end = start_at + slot * SLOT, start_at + (slot + 1) * SLOT
        port = ports[slot % len(ports)]
        while monotonic() < begin:
            time.sleep(min(0.002, max(0.0, begin - monotonic())))
        if port == IDLE:
            continue
        sock, times = socks[port], latencies[port]
        began = monotonic()
        try:
            while monotonic() < end:
                tid = (tid + 1) & 0xFFFF
                frame = struct.pack(">HHHB", tid, 0, len(pdu) + 1, UNIT) + pdu
                sent = perf()
                sock.sendall(frame)
                reply = b""
                while len(reply) < expected:
                    chunk = sock.recv(expected - len(reply))
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    reply += chunk
                    if len(reply) >= 9 and reply[7] & 0x80:
                        break
                times.append(perf() - sent)
                if reply[7] != 3 or reply[0:2] != frame[0:2]:
                    errors[port] += 1
        except OSError:
            errors[port] += 1
        busy[port] += monotonic() - began
    for sock in socks.values():
        sock.close()
    for port in socks:
        out.write(f"{port} {len(latencies[port])} {errors[port]} {busy[port]}\n".encode())
    out.write(b"end\n")
    for port in socks:
        out.write(latencies[port].tobytes())
    out.flush()


@dataclass
class Load:
    """What the clients measured against one server: requests, errors, latencies (s), loaded seconds."""

    requests: int = 0
    errors: int = 0
    latencies: array = field(default_factory=lambda: array("d"))
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Requests per second of loaded time (all clients together)."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        return _percentile(sorted(self.latencies), p)


def _percentile(ordered: Sequence[float], p: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


class Clients:
    """CLIENTS load processes following one slot schedule; ``start()`` hands out the common start instant."""

    def __init__(self, ports: Sequence[int], slots: int) -> None:
        self.ports = list(ports)
        self.slots = slots
        self.start_at = 0.0
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "tools.bench.bench_modbus", "--load-client", ",".join(map(str, ports)),
             str((i * 200) % (BLOCK - REGISTERS))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO_ROOT)
            for i in range(CLIENTS)]

    def start(self) -> float:
        for proc in self.procs:
            if proc.stdout is None or proc.stdout.readline() != b"ready\n":
                raise RuntimeError("a load client could not connect")
        self.start_at = time.monotonic() + 0.2
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{self.start_at} {self.slots}\n".encode())
            proc.stdin.flush()
        return self.start_at

    def slot_port(self, at: float) -> int | None:
        """Which port the clients load at monotonic time ``at`` (None near a slot boundary or outside)."""
        offset = at - self.start_at
        slot = math.floor(offset / SLOT)
        if not 0 <= slot < self.slots or min(offset - slot * SLOT, (slot + 1) * SLOT - offset) < GUARD:
            return None
        return self.ports[slot % len(self.ports)]

    def results(self) -> dict[int, Load]:
        loads: dict[int, Load] = {}
        for proc in self.procs:
            out, _ = proc.communicate(timeout=self.slots * SLOT + 30)
            header, _, raw = out.partition(b"end\n")
            offset = 0
            for line in header.decode().splitlines():
                port, requests, errors, seconds = line.split()
                load = loads.setdefault(int(port), Load())
                load.requests += int(requests)
                load.errors += int(errors)
                load.seconds += float(seconds) / CLIENTS
                size = 8 * int(requests)
                load.latencies.extend(array("d", raw[offset:offset + size]))
                offset += size
        return loads

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@contextlib.contextmanager
def clients(ports: Sequence[int], seconds: float) -> Iterator[Clients]:
    """Load clients cycling over ``ports`` for about ``seconds`` (whole cycles); killed on exit."""
    group = Clients(ports, max(len(ports), round(seconds / SLOT / len(ports)) * len(ports)))
    try:
        yield group
    finally:
        group.close()


# ---- the servers --------------------------------------------------------------------------------------------

def bench_tags() -> list[TagDef]:
    """A 1,000-register map like a real site's: a mix of 16- and 32-bit tags, ro and rw."""
    tags = []
    address = 0
    kinds = (("int16", TagType.INT, 1), ("uint16", TagType.INT, 1), ("float32", TagType.FLOAT, 2),
             ("int32", TagType.INT, 2))
    i = 0
    while address < BLOCK:
        dtype, kind, width = kinds[i % len(kinds)]
        tags.append(TagDef(f"bench.t{i}", kind, access="rw" if i % 5 == 0 else "ro",
                           modbus=ModbusMap(address, dtype, 0.1 if kind == TagType.FLOAT else 1.0)))
        address += width
        i += 1
    return tags


class Churn(Program):
    """Changes the given tags every scan, so the server's image refresh runs every scan."""

    def __init__(self, names: list[str]) -> None:
        self.name = "churn"
        self.writes = frozenset(names)
        self._names = names

    def scan(self, ctx: ScanContext) -> None:
        for name in self._names:
            ctx.write(name, (ctx[name] + 1) % 1000)


class StockServer:
    """pymodbus's own TCP server over a plain 1,000-register SimData block, on its own thread and loop."""

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="stock-pymodbus",
                                        daemon=True)

    async def _main(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        device = SimDevice(id=UNIT, simdata=[SimData(0, count=BLOCK, values=0, datatype=DataType.REGISTERS)])
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        self.port = server.transport.sockets[0].getsockname()[1]
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await server.shutdown()

    def __enter__(self) -> StockServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stock pymodbus server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


@contextlib.contextmanager
def battplc_server(db: TagDB) -> Iterator[Server]:
    """battplc's server over ``db`` on a free loopback port."""
    server = Server(db, {"port": 0, "max_connections": 16})
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- runs ---------------------------------------------------------------------------------------------------

def throughput(seconds: float) -> tuple[Load, Load]:
    """(battplc, stock) loads, from alternating slots."""
    with battplc_server(TagDB.from_defs(bench_tags())) as server, StockServer() as stock:
        ours_port = server.address[1]
        with clients([ours_port, stock.port], seconds) as group:
            group.start()
            loads = group.results()
    return loads[ours_port], loads[stock.port]


@dataclass(frozen=True)
class Setup:
    """One way of running the server beside the scan."""

    label: str
    switch_interval: float
    step_aside: bool


SETUPS = (
    Setup("as in service: switch interval 0.5 ms, server steps aside for the scan", SERVICE_SWITCH_INTERVAL, True),
    Setup("server does not step aside (switch interval 0.5 ms)", SERVICE_SWITCH_INTERVAL, False),
    Setup("neither: default 5 ms switch interval, no stepping aside", 0.005, False),
)


@dataclass
class Lateness:
    """Scan-start lateness samples (s) under load by setup, and without load (all setups pooled: without
    clients the setup makes no difference, and the larger sample makes a steadier baseline)."""

    loaded: dict[Setup, Samples]
    unloaded: Samples = field(default_factory=Samples)
    overruns: int = 0
    load: Load = field(default_factory=Load)


def lateness(seconds: float, setups: Sequence[Setup] = SETUPS) -> Lateness:
    """A 10 ms scan with the server attached; clients load it in every other slot, and the setup changes
    every two slots, so every (setup, load) pair is sampled all through the run, ``seconds`` per setup."""
    tags = bench_tags()
    db = TagDB.from_defs(tags)
    result = Lateness(loaded={setup: Samples() for setup in setups})
    previous = sys.getswitchinterval()
    with battplc_server(db) as server, clients([server.address[1], IDLE], seconds * len(setups)) as group:
        scan = Scan(db, [Churn([t.name for t in tags[:50]])], RealClock(), SCAN_PERIOD, ports=[server.port],
                    observers=[server.observe])
        end = group.start() + group.slots * SLOT
        try:
            while scan.clock.monotonic() < end:
                scan.wait()
                deadline = scan.deadline
                setup = setups[(max(0, math.floor((deadline - group.start_at) / SLOT)) // 2) % len(setups)]
                if sys.getswitchinterval() != setup.switch_interval:
                    sys.setswitchinterval(setup.switch_interval)
                server.step_aside = setup.step_aside
                scan.step()
                port = group.slot_port(deadline)
                if port is not None:
                    (result.loaded[setup] if port != IDLE else result.unloaded).add(db.values["scan.lateness"])
        finally:
            sys.setswitchinterval(previous)
        result.overruns = scan.overruns
        result.load = group.results()[server.address[1]]
    return result


def run(quick: bool) -> list[Figure]:
    """The benchmark's figures; quick mode takes about 35 s."""
    ours, stock = throughput(4.0 if quick else 20.0)
    figures = [
        Figure(BENCH, f"reads/s, {CLIENTS} clients x {REGISTERS} registers", ours.rate, "req/s", stock.rate, STOCK,
               ">= 1.5x stock", lower_is_better=False,
               note=f"alternating {SLOT:g} s slots; {ours.requests} vs {stock.requests} requests, "
                    f"errors {ours.errors}/{stock.errors}"),
        Figure(BENCH, "read latency p50", ours.percentile(50) * 1e3, "ms", stock.percentile(50) * 1e3, STOCK),
        Figure(BENCH, "read latency p99", ours.percentile(99) * 1e3, "ms", stock.percentile(99) * 1e3, STOCK),
    ]
    late = lateness(8.0 if quick else 40.0)
    base = late.unloaded
    for setup in SETUPS:
        samples = late.loaded[setup]
        figures.append(Figure(
            BENCH, f"scan lateness p99 at 10 ms under load; {setup.label}", samples.percentile(99) * 1e3, "ms",
            base.percentile(99) * 1e3, "same scan, alternate slots without load", "<= 2x no load",
            note=f"p50 {samples.percentile(50) * 1e3:.3f} vs {base.percentile(50) * 1e3:.3f} ms, max "
                 f"{samples.max() * 1e3:.2f} vs {base.max() * 1e3:.2f} ms, {len(samples)} vs {len(base)} scans"))
    figures[-1].note += f"; overruns {late.overruns}; load {late.load.rate:.0f} req/s while loaded"
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load-client"]:
        load_client([int(p) for p in sys.argv[2].split(",")], int(sys.argv[3]))
        sys.exit(0)
    for figure in run(quick="--quick" in sys.argv):
        print(figure.line())
        if figure.note:
            print(" " * 15 + figure.note)
