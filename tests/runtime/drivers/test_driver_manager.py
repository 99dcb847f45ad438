"""Tests for runtime/drivers/manager.py: the latch (qualities, staleness), fail-safe on a program fault, and
the Controller extension hook end to end (site folder -> drivers -> scan -> fail-safe at stop)."""

from __future__ import annotations

import shutil
from pathlib import Path

from driver_helpers import (
    FIXTURES,
    Behaviour,
    Harness,
    ServerThread,
    fixture_db,
    load_map,
    wait_until,
    write_map,
)

from runtime.drivers.manager import DriverManager
from runtime.tags import Quality, TagDef, TagType

GOOD, STALE, BAD, INIT = Quality.GOOD, Quality.STALE, Quality.BAD, Quality.INIT


def test_latch_applies_the_newest_reads_with_their_quality_and_stamp() -> None:
    db = fixture_db()
    manager = DriverManager([], db)
    manager.declare("block", ["t.u16", "t.i16"], stale_after=1.0)
    db.quality["t.u16"] = db.quality["t.i16"] = INIT

    manager.latch(db, 10.0)
    assert db.quality["t.u16"] is INIT  # nothing read yet, nothing changes

    manager.publish("block", {"t.u16": 1, "t.i16": -1}, 10.0)
    manager.publish("block", {"t.u16": 2, "t.i16": -2}, 10.5)  # newer read of the same block wins
    manager.health("dev", {"dev.x.errors": 3})
    manager.latch(db, 10.6)
    assert (db.values["t.u16"], db.quality["t.u16"], db.stamp["t.u16"]) == (2, GOOD, 10.5)
    assert db.values["dev.x.errors"] == 3

    manager.publish("block", {"t.u16": 5}, 11.0)  # t.i16 could not be decoded
    manager.latch(db, 11.0)
    assert (db.values["t.u16"], db.quality["t.u16"]) == (5, GOOD)
    assert (db.values["t.i16"], db.quality["t.i16"]) == (-2, BAD)  # last valid value kept, flagged

    manager.latch(db, 11.9)
    assert db.quality["t.u16"] is GOOD
    manager.latch(db, 12.1)  # nothing fresh for more than stale_after
    assert db.quality["t.u16"] is STALE and db.quality["t.i16"] is BAD  # BAD stays BAD

    manager.publish("block", {}, 12.2)  # a failed read
    manager.latch(db, 12.2)
    assert db.quality["t.u16"] is BAD and db.values["t.u16"] == 5
    manager.publish("block", {"t.u16": 6, "t.i16": -6}, 12.3)
    manager.latch(db, 12.3)
    assert db.quality["t.u16"] is GOOD and db.quality["t.i16"] is GOOD


def test_outputs_go_failsafe_while_their_program_is_faulted(server: ServerThread, tmp_path: Path) -> None:
    db = fixture_db()
    db.declare(TagDef("prog.p.fault", TagType.BOOL))
    devices = load_map(write_map(tmp_path, "io_map_full.yaml", {"port: 5502": f"port: {server.port}"}), db)
    h = Harness(devices, db, owners={"o.cyc": ["prog.p.fault"], "o.sp": ["prog.p.fault"]})
    try:
        assert wait_until(lambda: server.get(1, 3, 202) == [7])
        db.values["o.cyc"] = 9
        h.manager.commit({"o.cyc": 9}, db)
        assert wait_until(lambda: server.get(1, 3, 202) == [9])

        db.values["prog.p.fault"] = True  # the owner raised: the next latch sends the fail-safe values
        h.latch()
        assert wait_until(lambda: server.get(1, 3, 202) == [0])  # the point's failsafe
        assert server.get(1, 3, 200) == [500]  # no point failsafe: the tag's safe value (its default)
        h.manager.commit({"o.cyc": 11}, db)  # while faulted, image changes do not reach the device
        h.until(lambda db: False, 0.3)  # a few cyclic polls
        assert server.get(1, 3, 202) == [0]

        db.values["prog.p.fault"] = False
        db.values["o.cyc"] = 11
        h.latch()
        assert wait_until(lambda: server.get(1, 3, 202) == [11])
    finally:
        h.stop()


FOLLOW = '''"""Test program: copies the meter reading to a setpoint while it is GOOD."""

from runtime.program import FunctionBlock, ScanContext


class Follow(FunctionBlock):
    reads = ("t.u16",)
    writes = ("o.sp",)

    def scan(self, ctx: ScanContext) -> None:
        if ctx.ok("t.u16"):
            ctx.write("o.sp", ctx["t.u16"] / 100)
'''


def test_controller_attaches_drivers_and_leaves_outputs_failsafe(server: ServerThread, behaviour: Behaviour,
                                                                 tmp_path: Path) -> None:
    from runtime.app import Controller

    site = tmp_path / "site"
    (site / "programs").mkdir(parents=True)
    (site / "programs" / "follow.py").write_text(FOLLOW)
    tags = (FIXTURES / "tags.yaml").read_text().replace("  watchdog: false\n", "  watchdog: false\n"
                                                        "  programs: [follow]\n")
    (site / "tags.yaml").write_text(tags)
    shutil.copy(write_map(tmp_path, "io_map_full.yaml", {"port: 5502": f"port: {server.port}"}),
                site / "io_map.yaml")

    controller = Controller(site, period=0.02)
    manager = controller.parts["drivers"]
    assert isinstance(manager, DriverManager) and manager in controller.scan.ports and manager.running
    controller.run(duration=1.0)
    assert not manager.running
    written = [values for fc, address, values in behaviour.writes if (fc, address) == (6, 200)]
    assert [432] in written  # t.u16 = 4321 -> o.sp 43.21 V -> raw 432, written on change
    assert written[-1] == [500] and server.get(1, 3, 200) == [500]  # fail-safe at stop
    assert controller.db.values["dev.meter.up"] is True


def test_attach_without_devices_starts_nothing() -> None:
    from types import SimpleNamespace

    from runtime.drivers.manager import attach

    controller = SimpleNamespace(site=SimpleNamespace(devices=[]), parts={})
    assert attach(controller) is None and controller.parts == {}
