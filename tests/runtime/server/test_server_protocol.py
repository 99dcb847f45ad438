"""Tests for runtime/server/protocol.py at the PDU level (no sockets): function code -> table -> tag, every
exception code, write logging, and writes landing at the next scan's latch (simulated clock)."""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from server_helpers import BackgroundScan, make_server, sim_scan

from runtime.program import Program, ScanContext
from runtime.server import Server
from runtime.tags import Quality, TagDB

CLIENT = "192.0.2.7:50000"


@pytest.fixture
def offline(db: TagDB) -> Server:
    """A server that is not listening: its handler answers PDUs directly."""
    return Server(db, {})


def ask(server: Server, pdu: bytes, unit: int = 1) -> bytes | None:
    return server.handler.handle(unit, pdu, CLIENT)


def read(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


def write16(address: int, *words: int) -> bytes:
    return struct.pack(f">BHHB{len(words)}H", 0x10, address, len(words), 2 * len(words), *words)


def float32(value: float) -> tuple[int, int]:
    return struct.unpack(">HH", struct.pack(">f", value))


def exception(fc: int, code: int) -> bytes:
    return bytes((fc | 0x80, code))


# ---- reads ----------------------------------------------------------------------------------------------------

def test_ro_numbers_read_as_input_and_holding_registers_alike(offline: Server) -> None:
    as_input = ask(offline, read(0x04, 0, 9))
    as_holding = ask(offline, read(0x03, 0, 9))
    assert as_input is not None and as_holding is not None
    assert as_input[1:] == as_holding[1:] and as_input[:2] == b"\x04\x12"
    registers = as_input[2:]
    assert struct.unpack(">hH", registers[:4]) == (-123, 875)  # scale 0.1
    assert struct.unpack(">iIf", registers[4:16]) == (-123456, 3_000_000_000, 53.25)
    assert registers[16:18] == b"\x00\x02"  # enum as its code


def test_ro_bits_read_as_discrete_inputs_and_coils(offline: Server) -> None:
    assert ask(offline, read(0x02, 0, 1)) == b"\x02\x01\x01"
    assert ask(offline, read(0x01, 0, 4)) == b"\x01\x01\x01"  # alarm on, relay off, pump off, door off
    assert ask(offline, read(0x02, 1, 1)) == exception(0x02, 2)  # an rw bit is a coil, not a discrete input


def test_rw_registers_are_holding_only(offline: Server) -> None:
    assert ask(offline, read(0x03, 101, 1)) == b"\x03\x02" + struct.pack(">H", 5000)  # par.limit 50 x 100
    assert ask(offline, read(0x04, 101, 1)) == exception(0x04, 2)


@pytest.mark.parametrize(("pdu", "code"), [
    (read(0x03, 0, 0), 3), (read(0x03, 0, 126), 3), (read(0x03, 0, 2000), 3), (read(0x01, 0, 0), 3),
    (read(0x01, 0, 2001), 3), (read(0x01, 0, 2000), 2), (read(0x03, 9, 1), 2), (read(0x03, 8, 2), 2),
    (read(0x03, 65535, 2), 2), (read(0x04, 65535, 1), 2), (b"\x03\x00\x00\x00", 3), (b"\x03", 3),
    (read(0x03, 0, 9) + b"\x00", 3),
])
def test_bad_reads_get_their_exception(offline: Server, pdu: bytes, code: int) -> None:
    assert ask(offline, pdu) == exception(pdu[0], code)


def test_reading_one_word_of_a_32_bit_value_is_allowed(offline: Server) -> None:
    assert ask(offline, read(0x04, 7, 1)) == b"\x04\x02" + struct.pack(">f", 53.25)[2:]


@pytest.mark.parametrize("fc", [0x00, 0x07, 0x08, 0x0B, 0x11, 0x14, 0x16, 0x17, 0x2B, 0x41, 0x42, 0x43, 0x44,
                                0x45, 0x5A, 0x7F, 0x81])
def test_unknown_function_codes_answer_01(offline: Server, fc: int) -> None:
    assert ask(offline, bytes((fc, 0, 0, 0, 1))) == exception(fc, 1)


def test_wrong_unit_is_ignored_or_answered_0b(db: TagDB) -> None:
    assert ask(Server(db, {"unit_id": 3}), read(0x03, 0, 1), unit=1) is None
    server = Server(db, {"unit_id": 3, "wrong_unit": "exception"})
    assert ask(server, read(0x03, 0, 1), unit=1) == exception(0x03, 0x0B)
    assert server.stats.wrong_unit == 1


# ---- writes ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pdu", "code"), [
    (struct.pack(">BHH", 0x06, 0, 1), 2),          # read-only register
    (struct.pack(">BHH", 0x06, 50, 1), 2),         # unmapped register
    (struct.pack(">BHH", 0x06, 102, 1), 3),        # half of an int32
    (struct.pack(">BHH", 0x06, 100, 2000), 3),     # par.offset max 1000
    (struct.pack(">BHh", 0x06, 100, -1001), 3),    # par.offset min -1000
    (struct.pack(">BHH", 0x06, 101, 10001), 3),    # par.limit 100.01 A > max 100
    (struct.pack(">BHH", 0x06, 108, 4), 3),        # enum code 4 does not exist
    (write16(103, 1, 2), 3),                        # starts in the middle of par.energy
    (write16(101, 100, 0), 3),                      # ends in the middle of par.energy
    (write16(100, 1, 100, 0, 1, 0), 3),             # ends in the middle of par.count
    (write16(106, *float32(float("nan"))), 3),      # not a number
    (write16(106, *float32(70.0)), 3),              # par.voltage max 60
    (write16(107, 1, 2), 3),                        # the low word of par.voltage and beyond
    (write16(108, 0, 0), 2),                        # 109 is unmapped
    (write16(65535, 1, 2), 2),                      # past the end of the address space
    (struct.pack(">BHHB", 0x10, 100, 2, 2) + b"\x00\x01\x00\x01", 3),  # byte count does not match
    (struct.pack(">BHHB", 0x10, 100, 0, 0), 3),    # zero registers
    (struct.pack(">BHH", 0x05, 1, 0x1234), 3),     # a coil is 0xFF00 or 0x0000
    (struct.pack(">BHH", 0x05, 0, 0xFF00), 2),     # read-only bit
    (struct.pack(">BHH", 0x05, 9, 0xFF00), 2),     # unmapped bit
    (struct.pack(">BHHBB", 0x0F, 2, 2, 1, 3), 2),  # coils 2 and 3: 3 is read-only
    (struct.pack(">BHHBB", 0x0F, 1, 9, 1, 3), 3),  # 9 coils need 2 bytes
    (b"\x06\x00\x64", 3),                           # truncated PDU
])
def test_refused_writes_get_their_exception_and_queue_nothing(offline: Server, pdu: bytes, code: int) -> None:
    assert ask(offline, pdu) == exception(pdu[0], code)
    assert len(offline.port) == 0


def test_accepted_writes_echo_and_wait_for_the_latch(offline: Server, db: TagDB) -> None:
    assert ask(offline, struct.pack(">BHh", 0x06, 100, -5)) == struct.pack(">BHh", 0x06, 100, -5)
    pdu = write16(102, *struct.unpack(">HH", struct.pack(">i", -99999)),
                  *struct.unpack(">HH", struct.pack(">I", 4_000_000_000)))
    assert ask(offline, pdu) == pdu[:5]
    assert ask(offline, struct.pack(">BHH", 0x05, 2, 0xFF00)) == struct.pack(">BHH", 0x05, 2, 0xFF00)
    assert ask(offline, struct.pack(">BHHBB", 0x0F, 1, 2, 1, 0b01)) == struct.pack(">BHH", 0x0F, 1, 2)
    assert ask(offline, struct.pack(">BHH", 0x06, 108, 3)) is not None
    assert db["par.offset"] == 0 and len(offline.port) == 5  # nothing changed yet
    offline.port.latch(db, now=12.5)
    assert (db["par.offset"], db["par.energy"], db["par.count"]) == (-5, -99999, 4_000_000_000)
    assert (db["io.pump"], db["io.relay"], db["cmd.mode"]) == (False, True, 3)  # FC15 wrote pump off again
    assert db.quality["par.energy"] is Quality.GOOD and db.stamp["par.energy"] == 12.5


def test_every_write_is_logged_with_client_tag_old_and_new(offline: Server,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="battplc.server")
    ask(offline, struct.pack(">BHH", 0x06, 101, 2550))
    ask(offline, struct.pack(">BHH", 0x06, 101, 20000))
    ask(offline, struct.pack(">BHH", 0x06, 0, 7))
    ask(offline, struct.pack(">BHH", 0x06, 50, 7))
    accepted, too_big, read_only, unmapped = caplog.records[-4:]
    assert accepted.levelno == logging.INFO
    assert accepted.getMessage() == (f"write accepted from {CLIENT}: par.limit 50 -> 25.5 (holding 101; lands at "
                                     "the next scan)")
    assert too_big.levelno == logging.WARNING
    assert too_big.getMessage() == f"write refused from {CLIENT}: par.limit 50 -> 200: outside 0..100 (exception 03)"
    assert "bat.current -12.3 -> 0x0007: read-only (exception 02)" in read_only.getMessage()
    assert "holding 50: no tag at holding 50 (exception 02)" in unmapped.getMessage()
    assert offline.stats.writes_accepted == 1 and offline.stats.writes_refused == 3


# ---- writes land at the next scan's latch, never inside a scan ------------------------------------------------

class WriterInTheMiddle(Program):
    """A program that, in its scan, makes a client write arrive (as if the server thread accepted it right
    then) and records what it sees of the tag before and after."""

    def __init__(self, server: Server) -> None:
        self.name = "probe"
        self.server = server
        self.seen: list[tuple[int, Any, Any]] = []

    def scan(self, ctx: ScanContext) -> None:
        before = ctx["par.offset"]
        if ctx.count == 3:
            assert self.server.handler.handle(1, struct.pack(">BHh", 0x06, 100, 42), CLIENT) is not None
        self.seen.append((ctx.count, before, ctx["par.offset"]))


def test_writes_land_at_the_next_latch_never_inside_a_scan(offline: Server, db: TagDB) -> None:
    probe = WriterInTheMiddle(offline)
    scan = sim_scan(db, offline, [probe])
    for _ in range(6):
        scan.wait()
        scan.step()
    # The write arrived during scan 3; scan 3 kept seeing the old value to its end, scan 4 saw the new one
    # from its start, since it was latched before any program ran.
    assert probe.seen == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 42, 42), (5, 42, 42)]
    assert db.stamp["par.offset"] == pytest.approx(0.04)  # the latch time of scan 4 on the simulated clock


def test_the_image_follows_the_committed_tags(offline: Server, db: TagDB) -> None:
    scan = sim_scan(db, offline)
    offline.observe(scan)
    db.values["bat.voltage"] = 48.5
    db.values["io.door"] = True
    assert ask(offline, read(0x04, 6, 2)) == b"\x04\x04" + struct.pack(">f", 53.25)  # not committed yet
    scan.step()
    assert ask(offline, read(0x04, 6, 2)) == b"\x04\x04" + struct.pack(">f", 48.5)
    assert ask(offline, read(0x02, 3, 1)) == b"\x02\x01\x01"


# ---- the server steps aside for scans on the real clock --------------------------------------------------------

class Busy(Program):
    """A program that takes 3 ms, longer than the loop's timer jitter (epoll counts whole milliseconds)."""

    name = "busy"

    def scan(self, ctx: ScanContext) -> None:
        end = time.perf_counter() + 0.003
        while time.perf_counter() < end:
            pass


def test_server_steps_aside_for_real_time_scans_only(db: TagDB) -> None:
    server = make_server(db)
    try:
        with BackgroundScan(db, server, [Busy()]):
            time.sleep(0.3)
        assert server.stats.steps_aside >= 10  # about one per 10 ms scan
        steps = server.stats.steps_aside
        scan = sim_scan(db, server)
        for _ in range(20):
            scan.wait()
            scan.step()
        server.settle()
        assert server.stats.steps_aside == steps  # simulated time: nothing to step aside for
    finally:
        server.stop()


def test_a_stopped_scan_never_holds_the_server_back(db: TagDB) -> None:
    server = make_server(db)
    try:
        with BackgroundScan(db, server):
            time.sleep(0.1)
        client = ModbusTcpClient("127.0.0.1", port=server.address[1], timeout=2, retries=0)
        assert client.connect()
        worst = 0.0
        for _ in range(50):
            started = time.monotonic()
            assert not client.read_holding_registers(0, count=9, device_id=1).isError()
            worst = max(worst, time.monotonic() - started)
        client.close()
        assert worst < 0.1  # the last planned pause ends at most QUIET_LIMIT after a deadline that passed
    finally:
        server.stop()


def test_requests_are_counted_by_function_and_result(offline: Server) -> None:
    ask(offline, read(4, 0, 1))
    ask(offline, read(4, 0, 1))
    ask(offline, read(3, 60000, 1))
    ask(offline, bytes([0x41]))
    ask(offline, read(4, 0, 1), unit=9)
    by = offline.stats.requests_by_function
    assert by[("read_input_registers", "ok")] == 2
    assert by[("read_holding_registers", "illegal_address")] == 1
    assert by[("other", "illegal_function")] == 1
    assert by[("read_input_registers", "no_answer")] == 1
