"""Tests for runtime/drivers/base.py: backoff, health counters, and the in-process port on a simulated clock."""

from __future__ import annotations

import logging

import pytest
from driver_helpers import DT, FIXTURES, fixture_db, holding_image, load_map, regs

from runtime.clock import SimClock
from runtime.drivers.base import Backoff, DeviceConfig, Health, LinkContext
from runtime.drivers.codec import DecodeError, InputPoint
from runtime.drivers.inline import InlinePort
from runtime.drivers.modbus import Device, SyncPoller
from runtime.drivers.state import health_tags
from runtime.program import FunctionBlock, ScanContext
from runtime.scan import Scan
from runtime.tags import Quality, TagDB, TagDef, TagType


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


class Recorder:
    """A Sink that keeps the health snapshots."""

    def __init__(self) -> None:
        self.snapshots: list[dict] = []

    def declare(self, key: object, tags: object, stale_after: float) -> None: ...

    def publish(self, key: object, values: object, stamp: float) -> None: ...

    def health(self, device: str, values: dict) -> None:
        self.snapshots.append(values)


def test_health_counts_by_kind_and_logs_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "battplc.drivers")
    sink = Recorder()
    health = Health("bms", LinkContext(sink, wall=lambda: 1234.5))
    health.fail("timeout", "no answer")
    health.fail("timeout", "no answer")
    health.fail("exception", "code 2")
    assert caplog.text.count("device bms") == 1
    health.good()
    assert sink.snapshots[-1] == {"dev.bms.up": True, "dev.bms.reachable": True, "dev.bms.errors": 3,
                                  "dev.bms.last_good": 1234.5,
                               "dev.bms.errors_timeout": 2, "dev.bms.errors_refused": 0,
                               "dev.bms.errors_exception": 1, "dev.bms.errors_decode": 0}
    assert "device bms is back after 3 error(s)" in caplog.text


class SetpointFromMeter(FunctionBlock):
    reads = ("t.u16",)
    writes = ("o.sp",)

    def scan(self, ctx: ScanContext) -> None:
        ctx.write("o.sp", ctx["t.u16"] / 100)


def test_inline_port_polls_and_commits_without_threads_or_sockets() -> None:
    db = fixture_db()
    meter = load_map(FIXTURES / "io_map_full.yaml", db)[0]
    banks = {"holding": holding_image(), "input": [555, *regs(1.5, DT.FLOAT32)], "coil": [True] * 8,
             "discrete": [True] * 8}
    reads: list[float] = []
    failing = {"on": False}
    clock = SimClock()

    def read(unit: int, table: str, address: int, count: int) -> list:
        if failing["on"]:
            raise TimeoutError("device off")
        reads.append(clock.monotonic())
        return banks[table][address:address + count]

    written = []

    def write(unit: int, table: str, address: int, values: list) -> None:
        written.append((table, address, values))
        banks[table][address:address + len(values)] = values

    port = InlinePort([SyncPoller(Device(meter, db.defs), read, write)])
    scan = Scan(db, [SetpointFromMeter("follow")], clock, 0.05, ports=[port])
    scan.run(max_scans=10)  # 0.5 s of plant time, no sleeping
    assert db.quality["t.u32_le"] is Quality.GOOD and db.values["t.u32_le"] == 0xCAFEBABE
    assert len(reads) == 5 * 5  # five requests per poll, a poll every 100 ms (every other 50 ms scan)
    assert ("holding", 200, [432]) in written  # o.sp = 43.21 V, committed inline
    assert banks["holding"][200] == 500  # and its safe value (the default 50 V) when the scan stopped

    failing["on"] = True
    scan.run(max_scans=13)
    assert db.quality["t.u16"] is Quality.BAD and db.values["t.u16"] == 4321
    assert port.failures["meter"] >= 1


class ScriptedPoller:
    """A poller whose polls follow a script: a dict of values, or an exception to raise."""

    def __init__(self, config: DeviceConfig, script: list) -> None:
        self.config = config
        self.script = script

    def poll(self) -> dict:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def commit(self, outputs: object) -> None: ...


def test_inline_port_publishes_device_health_like_the_drivers() -> None:
    db = TagDB()
    for tag in (*health_tags("meter"), TagDef("m.a", TagType.INT), TagDef("m.b", TagType.INT)):
        db.declare(tag)
    config = DeviceConfig("meter", "modbus_tcp", poll=1.0, inputs=(InputPoint("m.a"), InputPoint("m.b", address=1)))
    poller = ScriptedPoller(config, [{"m.a": 1, "m.b": 2}, TimeoutError("late"), DecodeError("short"),
                                     {"m.a": 3}, Exception("exception 4"), {"m.a": 5, "m.b": 6}])
    port = InlinePort([poller], epoch=1_000_000.0)
    health = {kind: f"dev.meter.errors_{kind}" for kind in ("timeout", "refused", "exception", "decode")}
    port.latch(db, 10.0)
    assert db.values["dev.meter.up"] is True and db.values["dev.meter.last_good"] == 1_000_010.0
    for second in (11.0, 12.0, 13.0, 14.0):  # a timeout, a short answer, a point left out, an exception answer
        port.latch(db, second)
        assert db.values["dev.meter.up"] is False
    assert {kind: db.values[tag] for kind, tag in health.items()} == {"timeout": 1, "refused": 0, "exception": 1,
                                                                      "decode": 2}
    assert db.values["dev.meter.errors"] == 4 and port.failures == {"meter": 3}
    assert db.values["dev.meter.last_good"] == 1_000_010.0  # a partial poll is no good read
    port.latch(db, 15.0)
    assert db.values["dev.meter.up"] is True and db.values["dev.meter.last_good"] == 1_000_015.0
    assert db.quality["m.a"] is Quality.GOOD and db.values["m.b"] == 6


def test_inline_port_without_health_tags_declared_leaves_them_out() -> None:
    db = TagDB()
    db.declare(TagDef("m.a", TagType.INT))
    config = DeviceConfig("meter", "modbus_tcp", inputs=(InputPoint("m.a"),))
    InlinePort([ScriptedPoller(config, [{"m.a": 1}])]).latch(db, 0.0)
    assert set(db.values) == {"m.a"}


class FlakyWriter:
    """A poller that always reads, but whose writes fail while ``down``; it records what it was sent."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.down = False
        self.sent: list[dict] = []

    def poll(self) -> dict:
        return {"c.v": 1}

    def commit(self, outputs: dict) -> None:
        mine = {k: v for k, v in outputs.items() if k in ("c.sp", "c.on")}
        if not mine:
            return
        if self.down:
            raise ConnectionRefusedError("charger offline")
        self.sent.append(mine)


def test_a_failed_write_is_counted_not_raised_and_outputs_are_sent_again_after_recovery() -> None:
    from runtime.drivers.codec import OutputPoint

    db = TagDB()
    for tag in (*health_tags("charger"), TagDef("c.v", TagType.INT), TagDef("c.sp", TagType.FLOAT),
                TagDef("c.on", TagType.BOOL)):
        db.declare(tag)
    config = DeviceConfig("charger", "modbus_tcp", poll=1.0, inputs=(InputPoint("c.v"),),
                          outputs=(OutputPoint("c.sp"), OutputPoint("c.on", "coil", 0, "bit")))
    writer = FlakyWriter(config)
    port = InlinePort([writer])
    port.latch(db, 0.0)
    writer.down = True
    db.values.update({"c.sp": 28.4, "c.on": True})
    port.commit({"c.sp": 28.4}, db)  # must not raise into the scan
    assert db.values["dev.charger.up"] is False and db.values["dev.charger.errors_refused"] == 1
    writer.down = False
    port.latch(db, 1.0)  # the next good poll: every output goes out again, not only the one that failed
    assert writer.sent == [{"c.sp": 28.4, "c.on": True}]
    assert db.values["dev.charger.up"] is True


def test_inline_commit_hands_changed_outputs_only_to_the_devices_that_take_them() -> None:
    from runtime.drivers.codec import OutputPoint

    db = TagDB()
    for tag in (TagDef("c.v", TagType.INT), TagDef("c.sp", TagType.FLOAT), TagDef("m.a", TagType.INT)):
        db.declare(tag)
    charger = FlakyWriter(DeviceConfig("charger", "modbus_tcp", inputs=(InputPoint("c.v"),),
                                       outputs=(OutputPoint("c.sp"),)))
    meter = FlakyWriter(DeviceConfig("meter", "modbus_tcp", inputs=(InputPoint("m.a"),)))
    meter.commit = lambda outputs: pytest.fail(f"the meter takes no outputs, yet was handed {outputs}")
    port = InlinePort([charger, meter])
    port.commit({"c.sp": 28.4, "m.a": 3}, db)
    assert charger.sent == [{"c.sp": 28.4}]
