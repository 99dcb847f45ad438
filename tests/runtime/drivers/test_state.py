"""Tests for runtime/drivers/state.py: read groups (qualities, staleness, plausibility), health counters, the output
devices alarm."""

from __future__ import annotations

import pytest

from runtime.drivers.state import (
    DECODE,
    TIMEOUT,
    DeviceAges,
    HealthCounters,
    OutputDevicesWatch,
    Plausibility,
    Plausible,
    ReadGroup,
    health_tags,
)
from runtime.tags import Quality, TagDB, TagDef, TagType


def db_with(*names: str) -> TagDB:
    db = TagDB()
    for name in names:
        db.declare(TagDef(name, TagType.FLOAT), Quality.INIT)
    return db


def test_a_complete_read_is_good_a_partial_one_leaves_the_rest_bad_with_their_values() -> None:
    db = db_with("a", "b")
    group = ReadGroup(("a", "b"), stale_after=2.0)
    group.latch(db, {"a": 1.0, "b": 2.0}, 10.0)
    assert (db.values["a"], db.quality["a"], db.stamp["b"]) == (1.0, Quality.GOOD, 10.0)
    group.latch(db, {"a": 3.0}, 11.0)
    assert (db.values["a"], db.quality["a"]) == (3.0, Quality.GOOD)
    assert (db.values["b"], db.quality["b"], db.stamp["b"]) == (2.0, Quality.BAD, 10.0)
    assert group.fresh == 11.0


def test_good_values_turn_stale_after_stale_after_and_a_fresh_read_makes_them_good_again() -> None:
    db = db_with("a", "b")
    group = ReadGroup(("a", "b"), stale_after=2.0)
    group.age(db.quality, 100.0)  # nothing read yet: INIT stays INIT
    assert db.quality["a"] is Quality.INIT
    group.latch(db, {"a": 1.0}, 10.0)  # b BAD, a GOOD
    group.age(db.quality, 12.0)
    assert db.quality["a"] is Quality.GOOD  # exactly stale_after: still fresh
    group.age(db.quality, 12.5)
    assert (db.quality["a"], db.quality["b"]) == (Quality.STALE, Quality.BAD)
    group.latch(db, {"a": 2.0, "b": 2.0}, 13.0)
    group.age(db.quality, 13.5)
    assert (db.quality["a"], db.quality["b"]) == (Quality.GOOD, Quality.GOOD)


def test_health_counts_by_kind_under_the_declared_tag_names() -> None:
    health = HealthCounters("meter")
    assert health.count_good(5.0) is True  # down (never read) -> up
    assert health.count_good(6.0) is False
    health.count_failure(TIMEOUT)
    health.count_failure(DECODE)
    health.count_failure(TIMEOUT)
    snapshot = health.snapshot()
    # dev.meter.age is not the link's to publish (DeviceAges keeps it current at every latch), nor
    # errors_implausible (counted where readings are latched, by Plausibility)
    assert set(snapshot) == {tag.name for tag in health_tags("meter")} - {"dev.meter.age", "dev.meter.errors_implausible"}
    assert snapshot["dev.meter.up"] is False and snapshot["dev.meter.errors"] == 3
    assert (snapshot["dev.meter.errors_timeout"], snapshot["dev.meter.errors_decode"]) == (2, 1)
    assert snapshot["dev.meter.last_good"] == 6.0


def test_device_age_counts_from_the_last_good_read_and_says_never() -> None:
    db = TagDB.from_defs([*health_tags("meter"), *health_tags("shunt")])
    ages = DeviceAges(["meter", "shunt", "undeclared"], db)
    db.values["dev.meter.last_good"] = 1000.0
    ages.update(db.values, 1012.5)
    assert db.values["dev.meter.age"] == 12.5
    assert db.values["dev.shunt.age"] == -1.0  # never read
    ages.update(db.values, 990.0)  # the wall clock stepped back: no negative age
    assert db.values["dev.meter.age"] == 0.0


def checked_group(db: TagDB, limits: dict[str, Plausible], poll: float = 1.0) -> tuple[ReadGroup, Plausibility]:
    checks = Plausibility("bms", limits, poll)
    return ReadGroup(tuple(name for name in db.defs if not name.startswith("dev.")), 5.0, checks), checks


@pytest.mark.parametrize("reading", [-0.1, 5.2, float("inf")])
def test_a_reading_outside_its_range_is_bad_counted_and_keeps_the_last_value(reading: float) -> None:
    db = db_with("cell", "temp", "dev.bms.errors_implausible")
    group, checks = checked_group(db, {"cell": Plausible(0.0, 5.0)})
    group.latch(db, {"cell": 3.3, "temp": 20.0}, 1.0)
    group.latch(db, {"cell": reading, "temp": 21.0}, 2.0)
    assert (db.values["cell"], db.quality["cell"]) == (3.3, Quality.BAD)
    assert (db.values["temp"], db.quality["temp"]) == (21.0, Quality.GOOD)
    assert checks.refused == 1 and db.values["dev.bms.errors_implausible"] == 1
    assert group.fresh == 2.0  # the device answered: BAD for the nonsense, not STALE


def test_a_bit_flipped_cell_is_refused_by_max_rate_and_the_next_true_reading_is_good() -> None:
    db = db_with("cell")
    group, checks = checked_group(db, {"cell": Plausible(0.0, 5.0, max_rate=0.2)})
    group.latch(db, {"cell": 3.300}, 1.0)
    group.latch(db, {"cell": 3.300 + 0.512}, 2.0)  # bit 9 of the mV register flipped: in range, but a jump
    assert (db.values["cell"], db.quality["cell"]) == (3.300, Quality.BAD)
    group.latch(db, {"cell": 3.302}, 3.0)  # compared with the last plausible reading, 2 s earlier
    assert (db.values["cell"], db.quality["cell"]) == (3.302, Quality.GOOD)
    assert checks.refused == 1


def test_max_rate_is_judged_over_at_least_one_poll_and_a_real_jump_is_believed_once_time_allows_it() -> None:
    db = db_with("cell")
    group, _ = checked_group(db, {"cell": Plausible(max_rate=0.2)}, poll=1.0)
    group.latch(db, {"cell": 3.30}, 10.0)
    group.latch(db, {"cell": 3.45}, 10.1)  # a step 0.1 s after the last read: within 0.2 V over one poll
    assert db.quality["cell"] is Quality.GOOD
    group.latch(db, {"cell": 4.05}, 11.1)  # +0.6 V in 1 s: refused
    group.latch(db, {"cell": 4.05}, 12.1)  # +0.6 V in 2 s: still refused
    assert db.quality["cell"] is Quality.BAD
    group.latch(db, {"cell": 4.05}, 13.2)  # +0.6 V in 3.1 s is 0.19 V/s: a real change, now believed
    assert (db.values["cell"], db.quality["cell"]) == (4.05, Quality.GOOD)


def test_a_repeated_reading_stays_plausible_and_moves_the_stamp_max_rate_is_judged_from() -> None:
    db = db_with("cell")
    group, checks = checked_group(db, {"cell": Plausible(0.0, 5.0, max_rate=0.2)})
    group.latch(db, {"cell": 3.30}, 1.0)
    group.latch(db, {"cell": 3.30}, 10.0)  # the same reading again: plausible without a new judgement
    assert db.quality["cell"] is Quality.GOOD
    group.latch(db, {"cell": 3.80}, 11.0)  # +0.5 V in 1 s since the repeat (not 10 s since the first): refused
    assert (db.values["cell"], db.quality["cell"]) == (3.30, Quality.BAD)
    assert checks.refused == 1


def test_the_same_read_handed_again_moves_the_stamps_without_judging_and_a_changed_one_is_judged() -> None:
    """An inline poller hands its very mapping again when nothing changed: the group then skips the checks
    but the stamp max_rate is judged from moves on, exactly as a judged repeat would move it."""
    db = db_with("cell", "temp")
    group, checks = checked_group(db, {"cell": Plausible(0.0, 5.0, max_rate=0.2)})
    read = {"cell": 3.30, "temp": 20.0}
    group.latch(db, read, 1.0)
    group.latch(db, read, 10.0)  # the same mapping: only the stamps move
    assert (db.quality["cell"], db.stamp["cell"], group.fresh) == (Quality.GOOD, 10.0, 10.0)
    group.latch(db, {"cell": 3.80, "temp": 20.0}, 11.0)  # +0.5 V in 1 s since the repeat: refused
    assert (db.values["cell"], db.quality["cell"]) == (3.30, Quality.BAD)
    refused = {"cell": 9.0, "temp": 20.0}  # a read that did not pass whole is judged again when handed again
    group.latch(db, refused, 12.0)
    group.latch(db, refused, 13.0)
    assert checks.refused == 3 and db.quality["cell"] is Quality.BAD


def test_implausible_readings_log_one_line_a_minute_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    db = db_with("cell")
    group, _ = checked_group(db, {"cell": Plausible(0.0, 5.0)})
    for second in range(120):
        group.latch(db, {"cell": 9.0}, float(second))
    lines = [r.getMessage() for r in caplog.records if "implausible" in r.getMessage()]
    assert len(lines) == 2 and "59 more refused" in lines[1]


def test_reachable_is_about_any_answer_and_the_output_alarm_follows_it_after_a_failure() -> None:
    health = HealthCounters("charger")
    assert health.reachable is False  # nothing heard yet
    health.count_good(1.0)
    health.count_failure(DECODE)  # a garbled answer: not up, but it is there and hears us
    assert (health.up, health.reachable) == (False, True)
    health.count_failure(TIMEOUT)
    assert (health.up, health.reachable) == (False, False)

    watch = OutputDevicesWatch(["charger"])
    values = {"dev.charger.reachable": False, "dev.charger.errors": 0, "alarm.output_device_down": False}
    watch.update(values)
    assert values["alarm.output_device_down"] is False  # at start, before a first answer: no failure yet
    values["dev.charger.errors"] = 1
    watch.update(values)
    assert values["alarm.output_device_down"] is True
    values["dev.charger.reachable"] = True
    watch.update(values)
    assert values["alarm.output_device_down"] is False
