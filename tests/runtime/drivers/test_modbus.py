"""Modbus TCP driver over real loopback sockets against a pymodbus server (SimDevice datastore).

Covers decoding of every data type through the wire, one connection for two unit ids, outputs (on change,
cyclic, lookup, fail-safe at stop), and every fault: server killed and restarted under a running scan,
silence (STALE then BAD), exception answers, short and garbage answers, refused connections with backoff,
and a dead device that must not slow down a live one.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from pathlib import Path

import pytest
from driver_helpers import (
    DT,
    EXPECTED_FULL,
    Behaviour,
    Harness,
    ServerThread,
    fixture_db,
    free_port,
    load_map,
    regs,
    wait_until,
    write_map,
)
from pymodbus.constants import ExcCodes

from runtime.clock import RealClock
from runtime.scan import Scan
from runtime.tags import Quality, TagDB

GOOD, STALE, BAD = Quality.GOOD, Quality.STALE, Quality.BAD


def all_good(db: TagDB, tags: object = EXPECTED_FULL) -> bool:
    return all(db.quality[t] is GOOD for t in tags)


def meter_map(tmp_path: Path, port: int, **overrides: str) -> Path:
    replace = {"port: 5502": f"port: {port}"}
    replace.update(overrides)
    return write_map(tmp_path, "io_map_full.yaml", replace)


@pytest.fixture
def harness(server: ServerThread, tmp_path: Path):
    db = fixture_db()
    h = Harness(load_map(meter_map(tmp_path, server.port), db), db)
    yield h
    h.stop()


def test_every_data_type_over_tcp_and_one_connection_for_two_units(harness: Harness, server: ServerThread) -> None:
    assert harness.until(all_good)
    db = harness.db
    for tag, expected in EXPECTED_FULL.items():
        assert db.values[tag] == pytest.approx(expected), tag
        assert type(db.values[tag]) is type(db.defs[tag].initial), tag
    assert harness.until(lambda db: db.quality["t.unit2"] is GOOD and db.values["dev.second.up"])
    assert db.values["t.unit2"] == 22
    assert db.values["dev.meter.up"] is True and db.values["dev.meter.errors"] == 0
    assert abs(db.values["dev.meter.last_good"] - time.time()) < 5
    assert server.connections == 1  # unit 1 and unit 2 behind one gateway share the connection


def test_outputs_on_change_cyclic_lookup_and_failsafe_at_stop(harness: Harness, server: ServerThread,
                                                              behaviour: Behaviour) -> None:
    # At connect every output gets its current image value.
    assert wait_until(lambda: server.get(1, 3, 200, 3) == [500, 333, 7])
    harness.manager.commit({"o.sp": 53.2, "o.enable": True, "o.pwm_v": 14.2, "o.i32": -5, "bat.soc": 1}, harness.db)
    assert wait_until(lambda: server.get(1, 3, 200, 6) == [532, 800, 7, 0, *regs(-5, DT.INT32, "little")])
    assert server.get(1, 1, 10) == [True]

    server.set(1, 6, 202, [99])  # somebody overwrites the cyclic setpoint ...
    server.set(1, 6, 200, [1])  # ... and the on-change one
    assert wait_until(lambda: server.get(1, 3, 202) == [7])  # rewritten at the next poll
    time.sleep(0.3)
    assert server.get(1, 3, 200) == [1]  # written on change only

    behaviour.writes.clear()
    harness.stop()
    # Fail-safe: o.sp has none, so its tag's safe value (the default 50 V); o.pwm_v the tag's safe 12 V -> raw 0.
    assert server.get(1, 3, 200, 3) == [500, 0, 0]
    assert server.get(1, 1, 10) == [False]
    assert {(fc, address) for fc, address, _ in behaviour.writes} >= {(6, 200), (6, 201), (6, 202), (5, 10)}


def test_server_killed_and_restarted_under_a_running_scan(harness: Harness, server: ServerThread) -> None:
    db = harness.db
    period = 0.02
    scan = Scan(db, [], RealClock(), period, ports=[harness.manager])
    seen: list[tuple[int, Quality, int]] = []
    scan.observers.append(lambda s: seen.append((s.count, s.db.quality["t.u16"], s.db.values["t.u16"])))
    runner = threading.Thread(target=scan.run)
    runner.start()
    try:
        assert wait_until(lambda: seen and seen[-1][1] is GOOD)
        server.stop()
        assert wait_until(lambda: seen[-1][1] is BAD)
        assert seen[-1][2] == 4321  # the last valid value is kept, flagged BAD
        time.sleep(0.5)  # a few reconnect attempts with backoff
        server.start()
        assert wait_until(lambda: seen[-1][1] is GOOD)
        time.sleep(0.2)
    finally:
        scan.stop()
        runner.join(5)
    qualities = [q for _, q, _ in seen]
    first_bad = qualities.index(BAD)
    assert GOOD in qualities[:first_bad] and qualities[-1] is GOOD
    assert db.values["dev.meter.errors_refused"] >= 2 and db.values["dev.meter.up"] is True
    # The scan ran on while the device went away and came back (qualities seen above); how well it kept its
    # period is measured in `make bench` (bench_io), not asserted here where other load would fail it.


def test_silent_device_goes_stale_then_bad_then_good(server: ServerThread, behaviour: Behaviour,
                                                     tmp_path: Path) -> None:
    db = fixture_db()
    path = meter_map(tmp_path, server.port, **{"timeout: 300ms": "timeout: 1s", "stale_after: 1s": "stale_after: 300ms"})
    h = Harness(load_map(path, db)[:1], db)
    try:
        assert h.until(all_good)
        behaviour.silent = True
        start = time.monotonic()
        assert h.until(lambda db: db.quality["t.u16"] is STALE)
        stale_at = time.monotonic() - start
        assert h.until(lambda db: db.quality["t.u16"] is BAD)
        bad_at = time.monotonic() - start
        assert 0.2 < stale_at < bad_at
        assert db.values["t.u16"] == 4321 and db.values["dev.meter.errors_timeout"] >= 1
        assert db.values["dev.meter.up"] is False
        behaviour.silent = False
        assert h.until(all_good)
    finally:
        behaviour.silent = False
        h.stop()


def test_a_hung_device_is_probed_and_back_at_once_whatever_its_backoff(server: ServerThread, behaviour: Behaviour,
                                                                       tmp_path: Path) -> None:
    """Backoff (30 s here) is for connections; a device that stops answering on a live one is probed each poll."""
    db = fixture_db()
    path = meter_map(tmp_path, server.port, **{"backoff: {initial: 100ms, max: 400ms}": "backoff: {initial: 30s, max: 60s}"})
    h = Harness(load_map(path, db)[:1], db)
    try:
        assert h.until(all_good)
        behaviour.silent = True
        assert h.until(lambda db: db.values["dev.meter.errors_timeout"] >= 3)  # probes keep coming while it hangs
        assert db.values["alarm.output_device_down"] is True  # the meter takes outputs here
        writes = len(behaviour.writes)
        behaviour.silent = False
        assert h.until(all_good)  # the old 30 s backoff would still be waiting
        assert h.until(lambda db: db.values["alarm.output_device_down"] is False)
        assert len(behaviour.writes) > writes  # and its outputs were written again on its return
    finally:
        behaviour.silent = False
        h.stop()


def test_exception_answers_turn_tags_bad_and_are_counted(harness: Harness, behaviour: Behaviour) -> None:
    assert harness.until(all_good)
    behaviour.exception = ExcCodes.DEVICE_BUSY
    assert harness.until(lambda db: db.quality["t.u16"] is BAD and db.values["dev.meter.errors_exception"] >= 5)
    db = harness.db
    assert db.values["t.u16"] == 4321 and db.values["dev.meter.errors_timeout"] == 0
    assert db.values["dev.meter.up"] is False
    behaviour.exception = None
    assert harness.until(all_good)


class RawServer:
    """A TCP peer speaking just enough Modbus to misbehave: short answers, garbage, or nothing at all."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop).result(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _proto, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                if self.mode == "silent":
                    continue
                if self.mode == "garbage":
                    writer.write(b"\x13\x37not modbus at all\r\n")
                else:  # short: one register fewer than asked for
                    count = struct.unpack(">H", pdu[3:5])[0] - 1
                    body = bytes([pdu[0], 2 * count]) + b"\x00\x01" * count
                    writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


ONE_DEVICE = """devices:
  {name}:
    driver: modbus_tcp
    host: 127.0.0.1
    port: {port}
    poll: 100ms
    timeout: {timeout}
    retries: 0
    stale_after: 1s
    backoff: {{initial: 100ms, max: 400ms}}
    inputs:
      - {{tag: {tag}, address: 0, type: uint32}}
"""


@pytest.mark.parametrize(("mode", "kind"), [("short", "decode"), ("garbage", "timeout")])
def test_short_and_garbage_answers(mode: str, kind: str, tmp_path: Path) -> None:
    peer = RawServer(mode)
    db = fixture_db()
    text = ONE_DEVICE.format(name="odd", port=peer.port, timeout="200ms", tag="t.u32")
    h = Harness(load_map(write_map(tmp_path, text), db), db)
    try:
        assert h.until(lambda db: db.values[f"dev.odd.errors_{kind}"] >= 2)
        assert db.quality["t.u32"] is BAD and db.values["dev.odd.up"] is False
    finally:
        h.stop()
        peer.close()


def test_dead_devices_never_delay_a_live_one(server: ServerThread, tmp_path: Path) -> None:
    """A silent peer and a refused port on their own connections; the live device keeps its 100 ms poll."""
    silent = RawServer("silent")
    closed = free_port()
    text = (ONE_DEVICE.format(name="silent", port=silent.port, timeout="500ms", tag="t.u32")
            + ONE_DEVICE.format(name="gone", port=closed, timeout="500ms", tag="t.i32").replace("devices:\n", "")
            + ONE_DEVICE.format(name="live", port=server.port, timeout="500ms", tag="t.u16").replace("devices:\n", ""))
    db = fixture_db()
    started = time.monotonic()
    h = Harness(load_map(write_map(tmp_path, text), db), db)
    try:
        assert h.until(lambda db: db.values["dev.live.up"])
        stamps = set()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            h.latch()
            stamps.add(db.stamp["t.u16"])
            time.sleep(0.01)
        assert len(stamps) >= 12  # ~15 polls in 1.5 s at 100 ms
        assert db.quality["t.u32"] is BAD and db.values["dev.silent.errors_timeout"] >= 2
        refused = db.values["dev.gone.errors_refused"]
        # Reconnects back off (0.1, 0.2 s ...) but never wait longer than the 100 ms poll: it keeps trying,
        # never more than once per poll period (a busy machine only makes fewer attempts).
        assert 3 <= refused <= (time.monotonic() - started) / 0.1 + 1, refused
        assert db.quality["t.i32"] is BAD and db.quality["t.u16"] is GOOD
    finally:
        h.stop()
        silent.close()
