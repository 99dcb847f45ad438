"""Benchmark of the Modbus server against hostile and careless clients (issue #16); the timing figures the
tests only bound (tests/runtime/server/test_server_hardening.py, test_server_hostile.py) are measured here.

1. Slow clients: 8 clients on 8 loopback addresses take every slot (the default max_connections 8), either
   trickling one byte of a frame every 50 ms or silent. Figure: seconds until a new client's read is
   answered, measured from the moment the slow clients hold every slot (their worst case: all fresh).
   Reference: the server's frame_timeout (2 s), after which a partial frame is closed and an unused
   connection gives its slot away.
2. Log volume: one client writes an out-of-range value to a parameter as fast as it can for 10 s. Figure:
   bytes the server logs in those 10 s. Reference, same run: the bytes had every refused write been logged
   (as before the rate limit: 11.2 MB per 10 s measured then).
3. A client that sends requests and never reads the answers, beside a 10 ms scan on the real clock.
   Figure: scan lateness p99; reference: the same scan in the seconds before that client came.
"""

from __future__ import annotations

import io
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from runtime.clock import RealClock
from runtime.events import TERMINAL_FORMAT
from runtime.scan import Scan
from runtime.server import Server
from runtime.tags import ModbusMap, TagDB, TagDef, TagType
from tools.bench.figures import Figure

BENCH = "modbus_hostile"
SLOW_CLIENTS = 8


def bench_db() -> TagDB:
    return TagDB.from_defs([
        TagDef("bat.voltage", TagType.FLOAT, modbus=ModbusMap(0, "float32")),
        TagDef("par.limit", TagType.INT, access="rw", min=0, max=100, modbus=ModbusMap(100, "int16")),
    ])


def frame(pdu: bytes, tid: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, 1) + pdu


READ = frame(struct.pack(">BHH", 0x04, 0, 2))
REFUSED_WRITE = frame(struct.pack(">BHh", 0x06, 100, 5000))  # par.limit allows 0..100


@contextmanager
def server(db: TagDB, **settings: object) -> Iterator[Server]:
    srv = Server(db, {"port": 0, **settings})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def served(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=5, source_address=("127.0.0.1", 0)) as sock:
            sock.sendall(READ)
            return len(sock.recv(64)) >= 9
    except OSError:
        return False


def new_client_wait(kind: str) -> float:
    """Seconds until a new client is served while 8 slow clients (``kind``: trickling or silent) hold the slots."""
    with server(bench_db()) as srv:
        slow = [socket.create_connection(srv.address, source_address=(f"127.0.0.{10 + i}", 0))
                for i in range(SLOW_CLIENTS)]
        stop = threading.Event()

        def trickle() -> None:
            for sock in slow:  # a header announcing 254 bytes, then one byte every 50 ms: 12 s per frame
                sock.send(struct.pack(">HHHB", 1, 0, 254, 1))
            while not stop.wait(0.05):
                for sock in slow:
                    try:
                        sock.send(b"\x03")
                    except OSError:
                        pass

        thread = threading.Thread(target=trickle, daemon=True)
        try:
            while len(srv.gate.connections) < SLOW_CLIENTS:  # type: ignore[union-attr]
                time.sleep(0.005)
            if kind == "trickling":
                thread.start()
            started = time.monotonic()
            while not served(srv.address):
                time.sleep(0.02)
            return time.monotonic() - started
        finally:
            stop.set()
            for sock in slow:
                sock.close()


def log_bytes_under_flood(seconds: float) -> tuple[float, float, int]:
    """(bytes logged, bytes had every refused write been logged, refused writes) over ``seconds``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    logger = logging.getLogger("battplc.server")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with server(bench_db()) as srv:
            with socket.create_connection(srv.address) as sock:
                stream.seek(0)
                stream.truncate()
                deadline = time.monotonic() + seconds
                batch = REFUSED_WRITE * 100
                while time.monotonic() < deadline:
                    sock.sendall(batch)
                    received = 0
                    while received < 100 * 9:  # each exception answer is 9 bytes
                        received += len(sock.recv(65536))
            refused = srv.stats.writes_refused
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [line for line in stream.getvalue().splitlines(keepends=True) if "write refused" in line]
    per_line = len(lines[0].encode()) if lines else 0
    return float(len(stream.getvalue().encode())), float(per_line * refused), refused


def scan_for(db: TagDB, srv: Server, seconds: float) -> Scan:
    """Run a 10 ms scan on the real clock, wired to the server, for ``seconds``; return it for its figures."""
    scan = Scan(db, [], RealClock(), 0.01, ports=[srv.port], observers=[srv.observe])
    runner = threading.Thread(target=scan.run, daemon=True)
    runner.start()
    time.sleep(seconds)
    scan.stop()
    runner.join(5)
    return scan


def lateness_with_a_client_that_never_reads(seconds: float) -> tuple[float, float, int]:
    """(p99 lateness ms with the client, p99 ms of the same scan before it came, overruns with it)."""
    db = bench_db()
    with server(db) as srv:
        before = scan_for(db, srv, seconds)
        stop = threading.Event()

        def flood() -> None:
            with socket.create_connection(srv.address) as sock:
                sock.setblocking(False)
                while not stop.is_set():
                    try:
                        sock.send(READ * 256)
                    except BlockingIOError:
                        time.sleep(0.01)  # the server stopped reading: its answers are not being taken
                    except OSError:
                        return  # dropped at the idle timeout

        client = threading.Thread(target=flood, daemon=True)
        client.start()
        during = scan_for(db, srv, seconds)
        stop.set()
        client.join(5)
    return during.lateness.percentile(99) * 1e3, before.lateness.percentile(99) * 1e3, during.overruns


@contextmanager
def quiet() -> Iterator[None]:
    """Keep the server's refusals out of the benchmark's output (no handler: logging would print them)."""
    logger, handler = logging.getLogger("battplc.server"), logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def run(quick: bool) -> list[Figure]:
    """The benchmark's figures; quick mode takes about 20 s."""
    with quiet():
        return measure(quick)


def measure(quick: bool) -> list[Figure]:
    figures = []
    for kind in ("trickling", "silent"):
        figures.append(Figure(BENCH, f"new client served, 8 {kind} clients holding every slot",
                              new_client_wait(kind), "s", 2.0, "frame_timeout", "<= 2 s + one sweep (0.5 s)",
                              note="from the moment the slow clients hold all 8 slots (all fresh: the worst case)"))
    seconds = 10.0
    logged, unlimited, refused = log_bytes_under_flood(seconds)
    figures.append(Figure(BENCH, "log bytes per 10 s, refused-write flood", logged, "B", unlimited,
                          "every refused write logged (before the limit)", "a few kB",
                          note=f"{refused} refused writes in {seconds:g} s"))
    p99, before, overruns = lateness_with_a_client_that_never_reads(3.0 if quick else 10.0)
    figures.append(Figure(BENCH, "scan lateness p99 at 10 ms, a client never reading", p99, "ms", before,
                          "same scan before that client", "<= 2x without it", note=f"overruns {overruns}"))
    return figures


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(figure.line())
        if figure.note:
            print(" " * 15 + figure.note)
