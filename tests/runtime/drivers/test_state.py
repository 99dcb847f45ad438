"""Tests for runtime/drivers/state.py: one read group's qualities and staleness, one device's health counters."""

from __future__ import annotations

from runtime.drivers.state import DECODE, TIMEOUT, DeviceAges, HealthCounters, ReadGroup, health_tags
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
    # dev.meter.age is not the link's to publish: DeviceAges keeps it current at every latch
    assert set(snapshot) == {tag.name for tag in health_tags("meter")} - {"dev.meter.age"}
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
