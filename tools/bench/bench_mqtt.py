"""Benchmark of the MQTT bridge: its CPU while it publishes every tag once a second, and what it costs the scan.

A 10 ms scan of the default site's tags (a tenth of the floats change every scan) runs in real time, in
alternating slices of the same run: without MQTT (the reference) and with the bridge publishing every public
tag, value and quality, to a local mosquitto once a second (full refresh every second: the worst case of the
settings). The bridge's CPU is the thread CPU time of its publisher and paho's network thread while on.
"""

from __future__ import annotations

import getpass
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from runtime.clock import RealClock
from runtime.mqtt.bridge import Bridge
from runtime.mqtt.settings import MqttSettings
from runtime.scan import Scan
from runtime.site import REPO_ROOT, load_site
from runtime.tags import TagDB, TagType
from tools.bench.bench_metrics import Churn  # the same changing image the metrics bench scrapes
from tools.bench.figures import Figure

BENCH = "mqtt"
PERIOD = 0.01
SWITCH_INTERVAL = 0.0005  # the GIL switch interval the service runs with (runtime.app.Controller)


def site_db() -> tuple[TagDB, list[str]]:
    """The default site's tags and the read-only floats the churn writes."""
    _, db, _, _ = load_site(REPO_ROOT, with_programs=False)
    return db, [t.name for t in db.defs.values() if t.type == TagType.FLOAT and t.access == "ro"]


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


def scan_round(db: TagDB, floats: list[str], seconds: float, bridge: Bridge | None, lateness: list[float]) \
        -> Scan:
    """One real-time run of the 10 ms scan, handing snapshots to ``bridge`` if given; lateness recorded."""
    scan = Scan(db, [Churn(floats)], RealClock(), PERIOD)
    scan.observers.append(lambda s: lateness.append(s.db.values["scan.lateness"]))
    if bridge is not None:
        scan.ports.append(bridge.commands.writes)
        scan.observers.append(bridge.observe)
    scan.run(duration=seconds)
    return scan


def percentile(data: list[float], p: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def run(quick: bool) -> list[Figure]:
    """All figures; ``quick`` finishes in about 15 s."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("mqtt: skipped: mosquitto not installed (apt-get install mosquitto)", file=sys.stderr)
        return []
    seconds, rounds = (8.0, 4) if quick else (40.0, 20)  # 2 s slices: load changes on the machine hit both alike
    db, floats = site_db()
    off: list[float] = []
    on: list[float] = []
    overruns = {"off": 0, "on": 0}
    cpu = 0.0
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    with tempfile.TemporaryDirectory() as directory:
        broker, port = start_broker(Path(directory))
        settings = MqttSettings(host="127.0.0.1", port=port, topic_prefix="bench/site", client_id="bench",
                                min_interval=1.0, refresh=1.0)
        bridge = Bridge(db, settings, "bench")
        bridge.start()
        try:
            deadline = time.monotonic() + 10
            while not bridge.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            # Off and on alternate in slices, so a change of the machine's load hits both alike.
            for _ in range(rounds):
                overruns["off"] += scan_round(db, floats, seconds / rounds, None, off).overruns
                before = thread_cpu(bridge.threads)
                overruns["on"] += scan_round(db, floats, seconds / rounds, bridge, on).overruns
                cpu += thread_cpu(bridge.threads) - before
        finally:
            bridge.stop()
            broker.terminate()
            broker.wait(10)
            sys.setswitchinterval(previous)
    public = sum(1 for t in db.defs.values() if t.metric)
    note = (f"{PERIOD * 1000:g} ms scan, {public} public tags, value+quality each, full refresh every 1 s; "
            f"{bridge.stats.published} messages; off/on alternating in {rounds} slices of {seconds / rounds:g} s")
    reference = "same scan, MQTT off"
    return [
        Figure(BENCH, "bridge CPU, all tags once a second", cpu / seconds * 100, "% of a core", goal="<= 5 %",
               note=note),
        Figure(BENCH, "scan lateness p99 with MQTT on", percentile(on, 99) * 1000, "ms",
               percentile(off, 99) * 1000, reference, goal="<= 1.2x off", note=note),
        Figure(BENCH, "scan lateness p50 with MQTT on", percentile(on, 50) * 1000, "ms",
               percentile(off, 50) * 1000, reference, note=note),
        Figure(BENCH, "overruns with MQTT on", overruns["on"], "scans", overruns["off"], reference,
               note=f"of {len(on)} and {len(off)} scans"),
    ]
