"""The scan loop on a simulated clock: absolute deadlines, overruns, phase order, fault isolation."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from runtime.clock import SimClock
from runtime.program import Program, ScanContext, TagGroup
from runtime.scan import Scan
from runtime.tags import Quality, TagDB, TagDef, TagType


class Probe(Program):
    """A program that records when it ran and optionally burns simulated time or raises."""

    def __init__(self, name: str, log: list[str], writes: tuple[str, ...] = (),
                 body: Callable[[ScanContext], None] | None = None) -> None:
        self.name = name
        self.log = log
        self.writes = frozenset(writes)
        self.body = body

    def scan(self, ctx: ScanContext) -> None:
        self.log.append(self.name)
        if self.body:
            self.body(ctx)


def make_db(*names: str, safe: Any = 0.0) -> TagDB:
    return TagDB.from_defs(TagDef(n, TagType.FLOAT, default=5.0, safe=safe) for n in names)


def test_deadlines_are_absolute_no_drift_over_100k_scans() -> None:
    clock = SimClock(monotonic=1000.0)
    rng = random.Random(7)
    work = Probe("work", [], body=lambda ctx: clock.advance(rng.uniform(0.0, 0.009)))
    scan = Scan(make_db(), [work], clock, period=0.01)
    starts: list[float] = []
    scan.observers.append(lambda s: starts.append(s.ctx.t))
    scan.run(max_scans=100_000)
    assert scan.overruns == 0
    # Every scan starts exactly on its slot: t0 + k*P, however long the previous scan took.
    assert starts[-1] == pytest.approx(1000.0 + 99_999 * 0.01, abs=1e-6)
    assert max(abs(t - (1000.0 + k * 0.01)) for k, t in enumerate(starts)) < 1e-6


def test_overrun_is_counted_and_skips_to_next_free_slot_without_burst() -> None:
    clock = SimClock()
    durations = iter([0.001, 0.035, 0.001, 0.001, 0.012, 0.001])
    work = Probe("work", [], body=lambda ctx: clock.advance(next(durations)))
    scan = Scan(make_db(), [work], clock, period=0.01)
    starts: list[float] = []
    scan.observers.append(lambda s: starts.append(round(s.ctx.t, 6)))
    scan.run(max_scans=6)
    # The scan in slot 1 ends at 0.045: slots 2-4 are gone, the next start is slot 5 (0.05), never a burst.
    # The scan in slot 7 (0.07) ends at 0.082: slot 8 is skipped, next start 0.09.
    assert starts == [0.0, 0.01, 0.05, 0.06, 0.07, 0.09]
    assert scan.overruns == 2
    assert scan.skipped == 4
    assert scan.db["scan.overruns"] == 2


def test_lateness_and_duration_are_tags() -> None:
    clock = SimClock()
    scan = Scan(make_db(), [Probe("p", [], body=lambda ctx: clock.advance(0.002))], clock, period=0.1)
    scan.run(max_scans=3)
    assert scan.db["scan.duration"] == pytest.approx(0.002)
    assert scan.db["scan.lateness"] == pytest.approx(0.0)
    assert scan.db["scan.count"] == 3
    assert scan.figures()["scans"] == 3


def test_programs_run_in_declared_order_and_interlocks_last() -> None:
    log: list[str] = []
    db = make_db("out")
    programs = [Probe("b", log), Probe("a", log), Probe("c", log)]
    scan = Scan(db, programs, SimClock(), 0.1, interlocks=Probe("interlocks", log))
    scan.run(max_scans=2)
    assert log == ["b", "a", "c", "interlocks"] * 2


def test_interlocks_have_the_final_word() -> None:
    db = make_db("charger.current_sp")
    wants = Probe("load", [], ("charger.current_sp",), lambda ctx: ctx.write("charger.current_sp", 160.0))

    def clamp(ctx: ScanContext) -> None:
        ctx.write("charger.current_sp", min(ctx.staged("charger.current_sp"), 50.0))

    guard = Probe("interlocks", [], ("charger.current_sp",), clamp)
    scan = Scan(db, [wants], SimClock(), 0.1, interlocks=guard)
    scan.run(max_scans=1)
    # shutdown drives outputs safe; look at what the scan committed
    assert scan.last_changed["charger.current_sp"] == 50.0


def test_a_raising_program_is_isolated() -> None:
    log: list[str] = []
    db = make_db("a.out", "c.out", safe=-1.0)

    def broken(ctx: ScanContext) -> None:
        ctx.write("a.out", 99.0)  # a partial write before failing must not survive
        raise ZeroDivisionError("boom")

    programs = [Probe("a", log, ("a.out",), broken),
                Probe("b", log),
                Probe("c", log, ("c.out",), lambda ctx: ctx.write("c.out", 7.0))]
    scan = Scan(db, programs, SimClock(), 0.1)
    for _ in range(3):
        scan.wait()
        scan.step()
    assert log == ["a", "b", "c"] * 3
    assert db["a.out"] == -1.0  # safe value, not the partial write
    assert db["c.out"] == 7.0
    assert db["prog.a.fault"] is True and db["prog.a.faults"] == 3
    assert db["prog.c.fault"] is False and db["prog.c.faults"] == 0


def test_retained_state_without_a_safe_value_holds_through_a_fault_and_the_stop() -> None:
    db = TagDB.from_defs([TagDef("e.total", TagType.FLOAT, retain=True),
                          TagDef("e.mode", TagType.FLOAT, retain=True, safe=-1.0),  # declared safe: it goes there
                          TagDef("e.rate", TagType.FLOAT)])
    step = {"n": 0}

    def counter(ctx: ScanContext) -> None:
        step["n"] += 1
        for name in ("e.total", "e.mode", "e.rate"):
            ctx.write(name, 10.0 * step["n"])
        if step["n"] == 3:
            raise RuntimeError("counting went wrong")

    scan = Scan(db, [Probe("e", [], ("e.total", "e.mode", "e.rate"), counter)], SimClock(), 0.1)
    for _ in range(2):
        scan.step()
    scan.step()  # raises after staging 30.0 everywhere
    assert (db["e.total"], db["e.mode"], db["e.rate"]) == (20.0, -1.0, 0.0)  # held, safe, safe
    scan.step()
    scan.shutdown()
    assert (db["e.total"], db["e.mode"], db["e.rate"]) == (40.0, -1.0, 0.0)


def test_fault_is_logged_once_and_recovery_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    fail = {"on": True}

    def flaky(ctx: ScanContext) -> None:
        if fail["on"]:
            raise RuntimeError("sensor math")

    scan = Scan(make_db(), [Probe("flaky", [], body=flaky)], SimClock(), 0.1)
    for _ in range(5):
        scan.step()
    fail["on"] = False
    scan.step()
    errors = [r for r in caplog.records if "flaky raised" in r.getMessage()]
    assert len(errors) == 1
    assert any("runs again after 5" in r.getMessage() for r in caplog.records)
    assert scan.db["prog.flaky.fault"] is False


def test_writing_an_output_not_owned_is_a_fault() -> None:
    db = make_db("x")
    rogue = Probe("rogue", [], (), lambda ctx: ctx.write("x", 1.0))
    scan = Scan(db, [rogue], SimClock(), 0.1)
    scan.step()
    assert db["prog.rogue.fault"] is True
    assert db["x"] == 5.0


def test_stop_ends_after_the_current_scan_and_outputs_go_safe() -> None:
    db = make_db("out", safe=0.0)
    holder: dict[str, Scan] = {}

    def drive(ctx: ScanContext) -> None:
        ctx.write("out", 42.0)
        if ctx.count == 4:
            holder["scan"].stop()

    scan = Scan(db, [Probe("p", [], ("out",), drive)], SimClock(), 0.1)
    holder["scan"] = scan
    committed: list[dict[str, Any]] = []

    class Port:
        def latch(self, db: TagDB, now: float) -> None:
            pass

        def commit(self, changed: dict[str, Any], db: TagDB) -> None:
            committed.append(dict(changed))

    scan.ports.append(Port())
    scan.run()
    assert scan.count == 5
    assert committed[0] == {"out": 42.0}
    assert committed[-1] == {"out": 0.0}  # the fail-safe value reaches the ports at stop
    assert db["out"] == 0.0


def test_latch_happens_before_programs_and_image_is_stable_during_scan() -> None:
    db = TagDB.from_defs([TagDef("in.v", TagType.FLOAT)])
    seen: list[tuple[float, Quality]] = []

    class Port:
        n = 0

        def latch(self, db: TagDB, now: float) -> None:
            self.n += 1
            db.set_input("in.v", float(self.n), Quality.GOOD, now)

        def commit(self, changed: dict[str, Any], db: TagDB) -> None:
            pass

    scan = Scan(db, [Probe("p", [], body=lambda ctx: seen.append((ctx["in.v"], ctx.quality["in.v"])))],
                SimClock(), 0.1, ports=[Port()])
    scan.run(max_scans=3)
    assert seen == [(1.0, Quality.GOOD), (2.0, Quality.GOOD), (3.0, Quality.GOOD)]


def test_dt_and_now_come_from_the_clock() -> None:
    from datetime import datetime

    clock = SimClock(start=datetime(2026, 6, 21, 12, 0, 0))
    seen: list[tuple[float, datetime]] = []
    scan = Scan(make_db(), [Probe("p", [], body=lambda ctx: seen.append((ctx.dt, ctx.now)))], clock, 0.5)
    scan.run(max_scans=3)
    assert [round(dt, 6) for dt, _ in seen] == [0.5, 0.5, 0.5]
    assert seen[2][1] == datetime(2026, 6, 21, 12, 0, 1)


def test_run_for_a_duration_counts_slots() -> None:
    scan = Scan(make_db(), [], SimClock(), 0.01)
    scan.run(duration=60.0)
    assert scan.count == 6000


def test_image_commit_reports_changes_only() -> None:
    db = TagDB.from_defs([TagDef("a", TagType.INT), TagDef("b", TagType.BOOL)])
    db.stage("a", 0)
    db.stage("b", True)
    assert db.commit(1.0) == {"b": True}
    assert db["b"] is True


def test_staged_reads_see_earlier_writes_and_fall_back_to_the_image() -> None:
    db = TagDB.from_defs([TagDef("a", TagType.FLOAT, default=1.0), TagDef("b", TagType.FLOAT, default=2.0),
                          TagDef("c", TagType.FLOAT, default=3.0)])
    ctx = ScanContext(db)
    group = TagGroup(("a", "b", "c"))
    assert (ctx.staged("a"), group.staged(ctx)) == (1.0, (1.0, 2.0, 3.0))
    db.stage("b", 20.0)
    assert ctx.staged("b") == 20.0 and db.staged_value("b") == 20.0 and "a" not in db.staged
    assert group.staged(ctx) == (1.0, 20.0, 3.0) and group.current(ctx) == (1.0, 2.0, 3.0)
    db.quality["c"] = Quality.BAD
    assert group.quality(ctx) == (Quality.GOOD, Quality.GOOD, Quality.BAD)
    assert TagGroup(("b",)).staged(ctx) == (20.0,) and TagGroup(()).current(ctx) == ()
    with pytest.raises(KeyError):
        ctx.staged("nowhere")
    db.commit(1.0)
    assert ctx.staged("b") == 20.0 and not db.staged


def test_commit_counts_nan_and_a_bad_quality_as_changes() -> None:
    db = TagDB.from_defs([TagDef("x", TagType.FLOAT), TagDef("y", TagType.FLOAT)])
    db.quality["y"] = Quality.BAD
    db.stage("x", float("nan"))
    db.stage("y", 0.0)  # the same value, but it becomes GOOD
    assert set(db.commit(2.0)) == {"x", "y"} and db.quality["y"] is Quality.GOOD and db.stamp["y"] == 2.0
