"""Hostile input over raw sockets. After each case: the server still answers, a 10 ms scan on the real clock
running beside it kept its period (its figures are printed at the end of the run), and no tag changed except
through valid writes."""

from __future__ import annotations

import random
import socket
import struct
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from server_helpers import (
    RO_VALUES,
    SCAN_FIGURES,
    SERVICE_SWITCH_INTERVAL,
    BackgroundScan,
    make_server,
    user_values,
)

from runtime.server import Server
from runtime.tags import TagDB

IDLE = 0.5
CAP = 8
# How long a test waits for something that must happen before it calls it a hang: generous, so a machine
# busy with other work passes; these bound a wait, they do not measure speed.
HANG_GUARD = 30.0


def frame(pdu: bytes, unit: int = 1, tid: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Frames:
    """Response frames (MBAP + PDU) from a socket, one at a time, however they arrive."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> bytes:
        while len(self.buffer) < 6 or len(self.buffer) < 6 + struct.unpack(">H", self.buffer[4:6])[0]:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buffer += chunk
        size = 6 + struct.unpack(">H", self.buffer[4:6])[0]
        reply, self.buffer = self.buffer[:size], self.buffer[size:]
        return reply


def receive_frame(sock: socket.socket) -> bytes:
    """The one response frame a single request gets."""
    return Frames(sock).next()


def exchange(sock: socket.socket, pdu: bytes, tid: int = 1) -> bytes:
    """Send one request, return the response PDU (after checking the echoed MBAP)."""
    sock.sendall(frame(pdu, tid=tid))
    reply = receive_frame(sock)
    assert reply[:4] == struct.pack(">HH", tid, 0) and reply[6] == 1
    return reply[7:]


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@dataclass
class Harness:
    server: Server
    scan: BackgroundScan
    db: TagDB
    before: dict[str, Any]
    started: float

    def assert_healthy(self, name: str, allow_valid_writes: bool = False) -> None:
        # The server still answers, with the right values.
        host, port = self.server.address
        client = ModbusTcpClient(host, port=port, timeout=2, retries=0)
        assert client.connect()
        try:
            response = client.read_input_registers(6, count=2, device_id=1)
            assert not response.isError(), response
            assert client.convert_from_registers(response.registers, client.DATATYPE.FLOAT32) == 53.25
        finally:
            client.close()
        # The scan kept running; how well it kept its period (overruns, lateness) is a figure, printed at the
        # end of the run and measured against a same-run reference in `make bench` (bench_modbus), never
        # asserted here: a machine busy with something else would fail it.
        figures = self.scan.figures()
        SCAN_FIGURES.append((name, time.monotonic() - self.started, figures))
        assert figures["scans"] > 0, figures
        # No tag changed except through valid writes.
        after = user_values(self.db)
        changed = {n for n in after if after[n] != self.before[n]}
        if allow_valid_writes:
            for tag_name in changed:
                tag = self.db.define(tag_name)
                assert tag.access == "rw" and tag.modbus is not None and tag.in_range(after[tag_name]), tag_name
            assert not changed or self.server.stats.writes_accepted > 0
        else:
            assert changed == set()
        assert {n: after[n] for n in RO_VALUES} == RO_VALUES


@pytest.fixture
def harness(db: TagDB) -> Iterator[Harness]:
    # The GIL switch interval the controller sets in service (runtime.app); here the hostile clients are
    # threads of the same process too, which a real attacker would not be.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SERVICE_SWITCH_INTERVAL)
    server = make_server(db, idle_timeout=IDLE, max_connections=CAP, max_connections_per_client=CAP)
    try:
        with BackgroundScan(db, server) as scan:
            time.sleep(0.05)
            yield Harness(server, scan, db, user_values(db), time.monotonic())
    finally:
        server.stop()
        sys.setswitchinterval(previous)


def test_truncated_mbap_header(harness: Harness) -> None:
    with connect(harness.server) as sock:  # a few bytes, then gone
        sock.sendall(b"\x00\x01\x00")
    with connect(harness.server) as sock:  # a few bytes, then silence: dropped at the idle timeout
        sock.sendall(b"\x00\x01\x00\x00\x00")
        assert closed_by_server(sock, IDLE + HANG_GUARD)
    harness.assert_healthy("truncated MBAP header")


@pytest.mark.parametrize(("header", "why"), [
    (struct.pack(">HHHB", 1, 0, 0, 1), "length 0"),
    (struct.pack(">HHHB", 1, 0, 1, 1), "length 1: no function code"),
    (struct.pack(">HHHB", 1, 0, 300, 1) + b"\x03" * 299, "length 300 > 254"),
    (struct.pack(">HHHB", 1, 0, 0xFFFF, 1), "length 65535"),
    (struct.pack(">HHHB", 1, 7, 6, 1) + b"\x03\x00\x00\x00\x01", "protocol id 7"),
])
def test_impossible_headers_close_the_connection_at_once(harness: Harness, header: bytes, why: str) -> None:
    with connect(harness.server) as sock:
        sock.sendall(header)
        assert closed_by_server(sock, HANG_GUARD), why
    assert harness.server.stats.frames_malformed >= 1
    harness.assert_healthy(f"bad header: {why}")


def test_length_field_longer_than_the_data_waits_then_drops(harness: Harness) -> None:
    with connect(harness.server) as sock:
        sock.sendall(struct.pack(">HHHB", 1, 0, 200, 1) + b"\x03\x00\x00\x00\x01")
        sock.settimeout(IDLE / 2)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # no answer to half a frame
        assert closed_by_server(sock, IDLE + HANG_GUARD)
    harness.assert_healthy("length field longer than the data")


def test_length_field_shorter_than_the_pdu(harness: Harness) -> None:
    with connect(harness.server) as sock:
        # The header claims 3 bytes (unit, function, one byte): the server sees a truncated read (03), then
        # the leftover bytes as the start of the next frame, which never completes.
        sock.sendall(struct.pack(">HHHB", 9, 0, 3, 1) + b"\x03\x00\x00\x00\x01")
        reply = receive_frame(sock)
        assert reply[7:] == b"\x83\x03"
    harness.assert_healthy("length field shorter than the PDU")


def test_zero_and_2000_register_reads(harness: Harness) -> None:
    with connect(harness.server) as sock:
        for fc in (0x01, 0x02, 0x03, 0x04):
            assert exchange(sock, struct.pack(">BHH", fc, 0, 0)) == bytes((fc | 0x80, 3))
            assert exchange(sock, struct.pack(">BHH", fc, 0, 2001 if fc < 3 else 2000)) == bytes((fc | 0x80, 3))
        assert exchange(sock, struct.pack(">BHH", 0x03, 0, 125))[:2] == b"\x83\x02"  # legal count, gap
        assert exchange(sock, struct.pack(">BHH", 0x03, 0, 9))[:2] == b"\x03\x12"  # same connection still serves
    harness.assert_healthy("0 and 2000 register reads")


def test_writes_past_the_end(harness: Harness) -> None:
    with connect(harness.server) as sock:
        assert exchange(sock, struct.pack(">BHHB4s", 0x10, 65535, 2, 4, b"\x00\x01\x00\x02")) == b"\x90\x02"
        assert exchange(sock, struct.pack(">BHH", 0x06, 65535, 1)) == b"\x86\x02"
        assert exchange(sock, struct.pack(">BHHBB", 0x0F, 65530, 8, 1, 0xFF)) == b"\x8f\x02"
        assert exchange(sock, struct.pack(">BHHB", 0x10, 65500, 123, 246) + bytes(246)) == b"\x90\x02"
        assert exchange(sock, struct.pack(">BHHB", 0x10, 100, 0, 0)) == b"\x90\x03"
    harness.assert_healthy("writes past the end")


def test_unknown_function_codes(harness: Harness) -> None:
    supported = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10}
    with connect(harness.server) as sock:
        for tid, fc in enumerate(range(256)):
            if fc not in supported:
                assert exchange(sock, bytes((fc, 0, 0, 0, 1)), tid=tid) == bytes((fc | 0x80, 1)), hex(fc)
    assert harness.server.stats.exceptions[1] == 256 - len(supported)
    harness.assert_healthy("unknown function codes")


def test_silent_client_is_dropped(harness: Harness) -> None:
    started = time.monotonic()
    with connect(harness.server) as sock:
        assert closed_by_server(sock, IDLE + HANG_GUARD)
    assert time.monotonic() - started >= IDLE * 0.9  # not before its idle timeout
    assert harness.server.stats.connections_idle_closed >= 1
    harness.assert_healthy("silent client")


def test_trickling_client_is_dropped_too(harness: Harness) -> None:
    with connect(harness.server) as sock:
        deadline = time.monotonic() + IDLE + HANG_GUARD
        closed = False
        for byte in struct.pack(">HHHB", 1, 0, 254, 1) + bytes(253):
            try:
                sock.sendall(bytes((byte,)))
            except OSError:
                closed = True
                break
            if closed_by_server(sock, 0.05) or time.monotonic() > deadline:
                closed = True
                break
        assert closed
    harness.assert_healthy("trickling client")


def test_200_parallel_connections_against_the_cap(harness: Harness) -> None:
    def open_one(_: int) -> socket.socket | None:
        try:
            return connect(harness.server)
        except OSError:
            return None

    stats = harness.server.stats
    with ThreadPoolExecutor(max_workers=50) as pool:
        socks = [sock for sock in pool.map(open_one, range(200)) if sock is not None]
    try:
        answered = closed = 0
        for tid, sock in enumerate(socks):
            try:
                sock.sendall(frame(struct.pack(">BHH", 0x03, 0, 1), tid=tid))
                sock.settimeout(1.0)
                assert receive_frame(sock)[7] == 0x03
                answered += 1
            except (OSError, ConnectionError):
                closed += 1  # refused over the cap (or, past the backlog's SYN retries, dropped as idle)
        assert answered + closed == len(socks) >= 150
        assert CAP - stats.connections_idle_closed <= answered <= CAP
        assert stats.connections_peak == CAP  # never more than the cap open at once
        assert stats.connections_refused >= len(socks) - CAP - stats.connections_idle_closed
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + 2
    while harness.server.gate.connections and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)  # slots are released as the server sees the closes
    assert not harness.server.gate.connections  # type: ignore[union-attr]
    harness.assert_healthy("200 parallel connections")


def test_client_that_never_reads_its_answers(harness: Harness) -> None:
    request = frame(struct.pack(">BHH", 0x03, 0, 9))
    with connect(harness.server) as sock:
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + IDLE + HANG_GUARD
        dropped = False
        while time.monotonic() < deadline and not dropped:
            try:
                sent += sock.send(request * 256)
            except BlockingIOError:
                time.sleep(0.01)  # the server stopped reading: its answers are not being taken
            except OSError:
                dropped = True  # the idle sweep aborted it: no complete request was read for IDLE seconds
        assert sent > 0 and dropped
    harness.assert_healthy("client that never reads")


FUZZ_FUNCTIONS = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10, 0x08, 0x2B, 0x41, 0x00, 0x80, 0xFF)


def test_fuzz_well_framed_requests(harness: Harness) -> None:
    """Random PDUs in valid MBAP frames: every request to our unit gets exactly one answer, in order, either
    its function code or an exception 01/02/03; requests to other units get none."""
    rng = random.Random(20261120)
    deadline = time.monotonic() + HANG_GUARD
    answered = 0
    with connect(harness.server) as sock:
        replies = Frames(sock)
        for batch in range(40):
            frames, expected = [], []
            for i in range(50):
                tid = batch * 50 + i
                function = rng.choice(FUZZ_FUNCTIONS) if rng.random() < 0.9 else rng.randrange(256)
                pdu = bytes((function,)) + rng.randbytes(rng.choice((0, 1, 4, 4, 4, 5, 6, 8, 20, 252)))
                unit = 1 if rng.random() < 0.9 else rng.choice((0, 2, 255))
                frames.append(frame(pdu, unit=unit, tid=tid))
                if unit == 1:
                    expected.append((tid, function))
            sock.sendall(b"".join(frames))
            for tid, function in expected:
                assert time.monotonic() < deadline, "the server stopped answering"
                reply = replies.next()
                assert struct.unpack(">HHHB", reply[:7])[::3] == (tid, 1)
                assert reply[7] == function or (reply[7] == function | 0x80 and reply[8] in (1, 2, 3)), reply.hex()
                answered += 1
    assert answered > 1500
    harness.assert_healthy("fuzz: well-framed random PDUs", allow_valid_writes=True)


def test_fuzz_raw_bytes(harness: Harness) -> None:
    """Random bytes and headers that lie about anything, each on its own short connection."""
    rng = random.Random(802)
    gate = harness.server.gate
    assert gate is not None
    deadline = time.monotonic() + HANG_GUARD
    bad_headers = 0
    for case in range(600):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randrange(1, 300))
        else:
            pdu = bytes((rng.choice(FUZZ_FUNCTIONS),)) + rng.randbytes(rng.randrange(0, 12))
            data = struct.pack(">HHHB", rng.randrange(65536), rng.choice((0, 0, 1, 0xFFFF)),
                               rng.choice((0, 1, 2, len(pdu) + 1, rng.randrange(65536))), rng.randrange(256)) + pdu
        if len(data) >= 6 and (data[2:4] != b"\x00\x00" or not 2 <= struct.unpack(">H", data[4:6])[0] <= 254):
            bad_headers += 1
        with connect(harness.server) as sock:
            sock.sendall(data)
        # One connection at a time, so the cap never refuses one: this case is about bytes, not slots.
        while harness.server.stats.connections_accepted < case + 1 or gate.connections:
            assert time.monotonic() < deadline, "the server did not take the connection"
            time.sleep(0.0005)
    time.sleep(0.2)
    assert harness.server.stats.frames_malformed >= bad_headers > 100
    assert harness.server.stats.connections_refused == 0
    harness.assert_healthy("fuzz: raw bytes and lying headers", allow_valid_writes=True)
