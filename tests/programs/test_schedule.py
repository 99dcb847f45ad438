"""schedule: charge periods on the wall clock, reserves, modes, and the keep inhibits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from freezegun import freeze_time

from programs.schedule import in_period


def schedule_bench(factory: Any, frozen: Any = None, soc: float = 50.0, **pars: Any) -> Any:
    bench = factory(["schedule"], frozen=frozen, period=60.0)
    bench.db.values["limits.balance_charge"] = False
    bench.set(bat__soc=soc)
    bench.set({f"par.{k}": v for k, v in pars.items()})
    return bench


@pytest.mark.parametrize(("minute", "start", "end", "inside"), [
    (120, 120, 295, True), (294, 120, 295, True), (295, 120, 295, False), (119, 120, 295, False),
    (1380, 1380, 300, True), (10, 1380, 300, True), (300, 1380, 300, False), (700, 1380, 300, False),
    (500, 500, 500, False)])
def test_in_period(minute: int, start: int, end: int, inside: bool) -> None:
    assert in_period(minute, start, end) is inside


def test_charge_period_on_the_wall_clock(bench_factory: Any) -> None:
    with freeze_time("2026-11-03 01:58") as frozen:
        bench = schedule_bench(bench_factory, frozen, charge1_start=120, charge1_end=295, charge1_enable=True)
        bench.run(60)  # 01:59
        assert not bench["schedule.charge_window"] and not bench["schedule.load_request"]
        assert bench["schedule.discharge_allowed"]
        bench.run(60)  # 02:00
        assert bench["schedule.minute_of_day"] == 120
        assert bench["schedule.charge_window"] and bench["schedule.grid_charge"]
        assert bench["schedule.load_request"] and not bench["schedule.discharge_allowed"]
        frozen.tick(175 * 60 - 60)
        bench.run(60)  # 04:55
        assert not bench["schedule.charge_window"] and not bench["schedule.load_request"]


def test_period_without_grid_charge_only_blocks_discharge(bench_factory: Any) -> None:
    with freeze_time("2026-11-03 22:30") as frozen:
        bench = schedule_bench(bench_factory, frozen, charge2_start=1320, charge2_end=360)  # 22:00-06:00
        bench.run(60)
        assert bench["schedule.charge_window"] and not bench["schedule.grid_charge"]
        assert not bench["schedule.load_request"] and not bench["schedule.discharge_allowed"]


def test_max_soc_ends_a_window_charge_until_five_percent_lower(bench_factory: Any) -> None:
    with freeze_time("2026-11-03 03:00") as frozen:
        bench = schedule_bench(bench_factory, frozen, soc=70, charge1_start=120, charge1_end=295,
                               charge1_enable=True, max_soc=80)
        bench.run(60)
        assert bench["schedule.load_request"]
        bench.set(bat__soc=80.0)
        bench.run(60)
        assert not bench["schedule.load_request"]
        bench.set(bat__soc=76.0)
        bench.run(60)
        assert not bench["schedule.load_request"]
        bench.set(bat__soc=75.0)
        bench.run(60)
        assert bench["schedule.load_request"]


@pytest.mark.parametrize(("mode", "request_", "discharge"), [
    ("auto", False, True), ("off", False, False), ("force_charge", True, False), ("hold", False, False)])
def test_modes(bench_factory: Any, mode: str, request_: bool, discharge: bool) -> None:
    bench = schedule_bench(bench_factory)
    bench.set(cmd__mode=mode)
    bench.run(60)
    assert bench["schedule.load_request"] is request_
    assert bench["schedule.discharge_allowed"] is discharge


def test_balancing_charge_is_a_load_request_unless_off(bench_factory: Any) -> None:
    bench = schedule_bench(bench_factory)
    bench.db.values["limits.balance_charge"] = True
    bench.run(60)
    assert bench["schedule.load_request"]
    bench.set(cmd__mode="off")
    bench.run(60)
    assert not bench["schedule.load_request"]


def test_reserve_is_the_higher_of_min_soc_and_min_soc_on_grid(bench_factory: Any) -> None:
    bench = schedule_bench(bench_factory, soc=20.5, min_soc=10, min_soc_on_grid=20)
    bench.run(60)
    assert bench["schedule.soc_floor"] == 20 and bench["schedule.discharge_allowed"]
    bench.set(bat__soc=20.0)
    bench.run(60)
    assert not bench["schedule.discharge_allowed"]
    bench.set(par__min_soc=30.0)
    bench.set(bat__soc=25.0)
    bench.run(60)
    assert bench["schedule.soc_floor"] == 30 and not bench["schedule.discharge_allowed"]


def test_keep_inhibit_is_the_latest_end_and_counts_down(bench_factory: Any) -> None:
    bench = schedule_bench(bench_factory, soc=50)
    bench.run(60)
    now = bench["schedule.time_s"]
    assert now == datetime(2026, 4, 15, 12, 1).timestamp()
    assert not bench["keep.inhibited"]
    bench.db.values["keep.inhibit_unload_until"] = now + 22800
    bench.db.values["keep.inhibit_cmd_until"] = now + 1200
    bench.run(60)
    assert bench["keep.inhibited"] and bench["schedule.battery_off_hold"]
    assert bench["keep.inhibit_left_s"] == pytest.approx(22800 - 60)
    bench.run(1200)
    assert bench["keep.inhibited"] and not bench["schedule.battery_off_hold"]
    bench.run(22800 - 1200 - 60)
    assert not bench["keep.inhibited"] and bench["keep.inhibit_left_s"] == 0


def test_an_inhibit_end_far_in_the_future_is_trusted_only_for_its_duration(bench_factory: Any) -> None:
    bench = schedule_bench(bench_factory)
    bench.run(60)
    bench.db.values["keep.inhibit_load_until"] = bench["schedule.time_s"] + 10 * 86400  # clock was set back
    bench.run(60)
    assert bench["keep.inhibit_left_s"] == pytest.approx(7200)
    bench.run(7200)
    assert not bench["keep.inhibited"]


def test_reserve_is_min_soc_on_grid_only_with_grid_and_raised_by_the_uncertainty(bench_factory: Any) -> None:
    bench = schedule_bench(bench_factory, soc=25.0, min_soc=10, min_soc_on_grid=30)
    bench.run(60)
    assert bench["schedule.soc_floor"] == 30 and not bench["schedule.discharge_allowed"]  # grid present
    bench.set(grid__present=False)  # an outage: the lower floor of seed 004 applies
    bench.run(60)
    assert bench["schedule.soc_floor"] == 10 and bench["schedule.discharge_allowed"]
    bench.set(soc__uncertainty=16.0)  # the SoC may read 16 points high: keep the real reserve
    bench.run(60)
    assert bench["schedule.soc_floor"] == 26 and not bench["schedule.discharge_allowed"]
