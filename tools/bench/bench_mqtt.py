"""Benchmark of the MQTT bridge: its CPU while it publishes every tag once a second, and what it costs the scan.

A 10 ms scan of the default site's tags (a tenth of the floats change every scan) runs in real time twice in
the same run: once without MQTT (the reference) and once with the bridge publishing every public tag, value
and quality, to a local mosquitto once a second (full refresh every second: the worst case of the settings).
The bridge's CPU is the thread CPU time of its publisher and paho's network thread over the run.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from runtime.clock import RealClock
from runtime.config.site import REPO_ROOT, load_site
from runtime.mqtt.bridge import Bridge
from runtime.mqtt.settings import MqttSettings
from runtime.program import FunctionBlock, ScanContext
from runtime.scan import Scan
from runtime.tags import TagType
from tools.bench.figures import Figure

BENCH = "mqtt"
PERIOD = 0.01
SWITCH_INTERVAL = 0.0005  # the GIL switch interval the service runs with (runtime.app.Controller)


class Churn(FunctionBlock):
    """Writes a new value into a tenth of the read-only float tags each scan."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("churn")
        self.names = names
        self.writes = frozenset(names)

    def scan(self, ctx: ScanContext) -> None:
        names = self.names
        for i in range(ctx.count % 10, len(names), 10):
            ctx.write(names[i], ctx.count * 0.01 + i)


def make_scan() -> Scan:
    _, db, _, _ = load_site(REPO_ROOT, with_programs=False)
    floats = [t.name for t in db.defs.values() if t.type == TagType.FLOAT and t.access == "ro"]
    return Scan(db, [Churn(floats)], RealClock(), PERIOD)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_broker(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen([mosquitto, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError("mosquitto did not start")


def thread_cpu(threads: list[threading.Thread]) -> float:
    """CPU seconds the given live threads have used (Linux per-thread clocks)."""
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for t in threads
               if t.ident is not None and t.is_alive())


def run_with_bridge(seconds: float, port: int) -> tuple[Scan, Bridge, float]:
    scan = make_scan()
    settings = MqttSettings(host="127.0.0.1", port=port, topic_prefix="bench/site", client_id="bench",
                            min_interval=1.0, refresh=1.0)
    bridge = Bridge(scan.db, settings, "bench")
    scan.ports.append(bridge.commands.writes)
    scan.observers.append(bridge.observe)
    bridge.start()
    try:
        deadline = time.monotonic() + 10
        while not bridge.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        threads = bridge.threads
        before = thread_cpu(threads)
        scan.run(duration=seconds)
        cpu = thread_cpu(threads) - before
    finally:
        bridge.stop()
    return scan, bridge, cpu


def run(quick: bool) -> list[Figure]:
    """All figures; ``quick`` finishes in about 15 s."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("mqtt: skipped: mosquitto not installed (apt-get install mosquitto)", file=sys.stderr)
        return []
    seconds = 5.0 if quick else 30.0
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    with tempfile.TemporaryDirectory() as directory:
        broker, port = start_broker(Path(directory))
        try:
            quiet = make_scan()
            quiet.run(duration=seconds)
            busy, bridge, cpu = run_with_bridge(seconds, port)
        finally:
            broker.terminate()
            broker.wait(10)
            sys.setswitchinterval(previous)
    public = sum(1 for t in busy.db.defs.values() if t.metric)
    note = (f"{PERIOD * 1000:g} ms scan, {public} public tags, value+quality each, full refresh every 1 s; "
            f"{bridge.stats.published} messages, {bridge.stats.cycles} cycles in {seconds:g} s")
    reference = "same scan, MQTT off"
    return [
        Figure(BENCH, "bridge CPU, all tags once a second", cpu / seconds * 100, "% of a core", goal="<= 5 %",
               note=note),
        Figure(BENCH, "scan lateness p99 with MQTT on", busy.lateness.percentile(99) * 1000, "ms",
               quiet.lateness.percentile(99) * 1000, reference, goal="<= 1.2x off", note=note),
        Figure(BENCH, "scan lateness p50 with MQTT on", busy.lateness.percentile(50) * 1000, "ms",
               quiet.lateness.percentile(50) * 1000, reference, note=note),
        Figure(BENCH, "overruns with MQTT on", busy.overruns, "scans", quiet.overruns, reference,
               note=f"of {busy.count} and {quiet.count} scans"),
    ]
