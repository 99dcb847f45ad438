"""Benchmark of the device drivers: 20 Modbus TCP devices x 100 registers polled every 100 ms on loopback.

Figures: CPU share of the driver's I/O thread while it polls, the reads per second it sustains against the
configured rate, and the lateness and duration of a 10 ms scan on the real clock while it polls, against
the same scan with no devices in the same run.

The comparison is interleaved, as in bench_modbus: the run is cut into slots and the slots alternate
between "polling" (a DriverManager for the 20 devices is attached to the scan) and "no devices" (it is
detached and stopped), so both sides see the same machine noise. The first ``GUARD`` seconds of every
slot (a manager starting or stopping) count for neither side. The 20 simulated devices are stock pymodbus
``ModbusTcpServer`` s with a 100-register ``SimData`` block, in a separate process so their work never
competes with the scan for the GIL. Scan and drivers run at the thread switch interval the controller
sets for service use.

    python -m tools.bench.bench_io serve 20 100   # the device process: prints its ports, serves until stdin closes
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any

from runtime.clock import RealClock
from runtime.config.schema import Errors
from runtime.drivers.config import load_io_map
from runtime.drivers.manager import DriverManager
from runtime.scan import Scan
from runtime.site import REPO_ROOT
from runtime.tags import TagDB, TagDef, TagType
from tools.bench.figures import Figure

BENCH = "io"
DEVICES = 20
REGISTERS = 100
POLL = 0.100
SCAN_PERIOD = 0.010
SERVICE_SWITCH_INTERVAL = 0.0005  # what runtime.app.Controller sets for service use
GUARD = 0.5  # s at the start of a slot that count for neither side
NO_DEVICES = "same scan, no devices (interleaved slots)"


# ---- the simulated devices (a separate process) -------------------------------------------------------------

def serve(count: int, registers: int) -> None:
    """Serve ``count`` devices on free loopback ports; print the ports as JSON; stop when stdin closes."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def main() -> None:
        servers = []
        for i in range(count):
            device = SimDevice(1, simdata=[SimData(0, values=[(i * 1000 + r) % 65536 for r in range(registers)],
                                                   datatype=DataType.REGISTERS)])
            server = ModbusTcpServer(device, address=("127.0.0.1", 0))
            await server.serve_forever(background=True)
            servers.append(server)
        ports = [s.transport.sockets[0].getsockname()[1] for s in servers]
        print(json.dumps(ports), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for server in servers:
            await server.shutdown()

    asyncio.run(main())


def start_devices(count: int, registers: int) -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen([sys.executable, "-m", "tools.bench.bench_io", "serve", str(count), str(registers)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the simulated devices did not start")
    return proc, json.loads(line)


# ---- the site under test ----------------------------------------------------------------------------------

def site(ports: list[int], folder: Path) -> tuple[TagDB, list[Any]]:
    """A tag db and the io_map devices (loaded through load_io_map) for one tag per register."""
    db = TagDB.from_defs(TagDef(f"b.d{d:02d}.r{r:03d}", TagType.INT) for d in range(len(ports))
                         for r in range(REGISTERS))
    lines = ["devices:"]
    for d, port in enumerate(ports):
        lines += [f"  d{d:02d}:", "    driver: modbus_tcp", "    host: 127.0.0.1", f"    port: {port}",
                  f"    poll: {POLL}", "    timeout: 500ms", "    inputs:"]
        lines += [f"      - {{tag: b.d{d:02d}.r{r:03d}, address: {r}}}" for r in range(REGISTERS)]
    path = folder / "io_map.yaml"
    path.write_text("\n".join(lines) + "\n")
    errors = Errors()
    devices = load_io_map(path, db, errors)
    if errors:
        raise RuntimeError("\n".join(str(e) for e in errors))
    return db, devices


class CountingManager(DriverManager):
    """The real manager, counting the blocks its links deliver."""

    reads = 0

    def publish(self, key: Any, values: Any, stamp: float) -> None:
        if values:
            self.reads += 1
        super().publish(key, values, stamp)


class Switch:
    """The scan's port: forwards to the attached manager, or does nothing (no devices)."""

    def __init__(self) -> None:
        self.target: DriverManager | None = None

    def latch(self, db: TagDB, now: float) -> None:
        target = self.target
        if target is not None:
            target.latch(db, now)

    def commit(self, changed: Any, db: TagDB) -> None:
        target = self.target
        if target is not None:
            target.commit(changed, db)


def thread_cpu(thread: threading.Thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def process_cpu(pid: int) -> float:
    """CPU seconds of another process (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# ---- the run --------------------------------------------------------------------------------------------

def measure(slots: int, slot_seconds: float) -> dict[str, Any]:
    proc, ports = start_devices(DEVICES, REGISTERS)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(SERVICE_SWITCH_INTERVAL)
    try:
        with tempfile.TemporaryDirectory() as folder:
            db, devices = site(ports, Path(folder))
        switch = Switch()
        scan = Scan(db, [], RealClock(), SCAN_PERIOD, ports=[switch])
        starts, lateness, durations = array("d"), array("d"), array("d")

        def observe(s: Scan) -> None:
            starts.append(s.ctx.t)
            lateness.append(s.db.values["scan.lateness"])
            durations.append(s.clock.monotonic() - s.ctx.t)

        scan.observers.append(observe)
        runner = threading.Thread(target=scan.run, kwargs={"duration": slots * 2 * slot_seconds + 1.0},
                                  name="scan")
        runner.start()
        windows: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        cpu = wall = devices_cpu = 0.0
        reads = 0
        for k in range(2 * slots):
            polling = k % 2 == 0
            slot_start = time.monotonic()
            manager = None
            if polling:
                manager = CountingManager(devices, db)
                manager.start()
                switch.target = manager
            time.sleep(max(0.0, slot_start + GUARD - time.monotonic()))
            t0 = time.monotonic()
            if manager is not None:
                assert manager.thread is not None
                cpu0, reads0, devices0 = thread_cpu(manager.thread), manager.reads, process_cpu(proc.pid)
            time.sleep(max(0.0, slot_start + slot_seconds - time.monotonic()))
            t1 = time.monotonic()
            windows[polling].append((t0, t1))
            if manager is not None:
                assert manager.thread is not None
                cpu += thread_cpu(manager.thread) - cpu0
                reads += manager.reads - reads0
                devices_cpu += process_cpu(proc.pid) - devices0
                wall += t1 - t0
                switch.target = None
                manager.stop()
        scan.stop()
        runner.join(10)
    finally:
        sys.setswitchinterval(old_interval)
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    def side(polling: bool) -> dict[str, list[float]]:
        late, dur = [], []
        for i, start in enumerate(starts):
            if any(a <= start < b for a, b in windows[polling]):
                late.append(lateness[i] * 1000)
                dur.append(durations[i] * 1000)
        return {"lateness": late, "duration": dur}

    return {"on": side(True), "off": side(False), "cpu_share": cpu / wall * 100, "reads_per_s": reads / wall,
            "devices_cpu_share": devices_cpu / wall * 100, "overruns": scan.overruns, "wall": wall}


def late_by_a_period(lateness_ms: list[float]) -> int:
    """Scans that started a whole period or more after their deadline (woken that late from their sleep)."""
    return sum(1 for x in lateness_ms if x >= SCAN_PERIOD * 1000)


def run(quick: bool) -> list[Figure]:
    slots, slot_seconds = (5, 2.0) if quick else (15, 3.0)
    m = measure(slots, slot_seconds)
    on, off = m["on"], m["off"]
    what = f"{DEVICES} dev x {REGISTERS} regs @ {POLL * 1000:g} ms"
    note = (f"{slots}+{slots} interleaved slots of {slot_seconds:g} s; {len(on['lateness'])} scans polling, "
            f"{len(off['lateness'])} without; 10 ms scan, switch interval {SERVICE_SWITCH_INTERVAL * 1000:g} ms")
    figures = [
        Figure(BENCH, f"I/O thread CPU, {what}", m["cpu_share"], "% of a core", goal="<= 25 % of one core",
               note=f"thread CPU time of the driver's asyncio thread / wall time, polling slots only; the "
                    f"simulated devices' process took {m['devices_cpu_share']:.0f} % of a core on the same machine"),
        Figure(BENCH, f"reads sustained, {what}", m["reads_per_s"], "reads/s",
               reference=DEVICES / POLL, reference_name="configured rate", goal=">= 0.95x configured",
               lower_is_better=False),
    ]
    for key in ("p50", "p99", "max"):
        p = {"p50": 50, "p99": 99, "max": 100}[key]
        figures.append(Figure(
            BENCH, f"scan lateness {key} while polling", percentile(on["lateness"], p), "ms",
            reference=percentile(off["lateness"], p), reference_name=NO_DEVICES,
            goal="p99 <= 2x no devices" if key == "p99" else "", note=note if key == "p50" else ""))
    figures.append(Figure(
        BENCH, "scan duration p99 while polling (latch of 2000 tags)", percentile(on["duration"], 99), "ms",
        reference=percentile(off["duration"], 99), reference_name=NO_DEVICES))
    figures.append(Figure(
        BENCH, "scans started >= 1 period late while polling", late_by_a_period(on["lateness"]), "scans",
        reference=late_by_a_period(off["lateness"]), reference_name=NO_DEVICES,
        note=f"whole run: {m['overruns']} overruns counted by the scan (a scan that ran past its slot)"))
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        for figure in run(quick="--quick" in sys.argv):
            print(figure.line())
