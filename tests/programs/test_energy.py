"""energy: kWh counters per flow, lifetime and today; readings only; never decreasing, across restarts too."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from programs.energy import FLOWS, TODAY, TOTAL
from runtime.clock import SimClock
from runtime.tags import Quality

SOURCES = ("grid.power", "bat.power", "pv.power", "house.power", "inverter.power")


def totals(bench: Any) -> dict[str, float]:
    return {flow: bench[TOTAL.format(flow)] for flow in FLOWS}


def todays(bench: Any) -> dict[str, float]:
    return {flow: bench[TODAY.format(flow)] for flow in FLOWS}


def test_each_flow_counts_its_own_power(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate", "energy"], period=1.0)
    # 264 W into the battery (aggregate: bat.power); the BMS agrees, so the shunt/BMS cross-check keeps the shunt
    bench.set(shunt__voltage=26.4, shunt__current=10.0, bms1__current=10.0)
    bench.set(grid__power=-2000.0, pv__power=3000.0, house__power=500.0, inverter__power=500.0)
    bench.run(3600)
    assert totals(bench) == pytest.approx({
        "grid_import": 0.0, "grid_export": 2.0, "charged": 0.264, "discharged": 0.0, "pv": 3.0, "house": 0.5,
        "battery_export": 0.5,  # the inverter's 500 W all went out while 2 kW were exported
    }, rel=1e-3)
    assert todays(bench) == totals(bench)
    bench.set(shunt__current=-20.0, bms1__current=-20.0, grid__power=150.0, inverter__power=528.0)
    bench.run(1800)
    assert bench["energy.discharged_total"] == pytest.approx(0.264, rel=1e-3)
    assert bench["energy.grid_import_total"] == pytest.approx(0.075, rel=1e-3)
    assert bench["energy.battery_export_total"] == pytest.approx(0.5, rel=1e-3)  # importing: none exported


@pytest.mark.parametrize("quality", [Quality.BAD, Quality.STALE, Quality.INIT])
def test_a_flow_without_a_reading_adds_nothing(bench_factory: Any, quality: Quality) -> None:
    bench = bench_factory(["energy"], period=1.0)
    bench.set(grid__power=-1000.0, inverter__power=800.0, pv__power=2000.0)
    bench.bad("grid.power", quality=quality)
    bench.run(3600)
    assert bench["energy.grid_export_total"] == 0.0
    assert bench["energy.battery_export_total"] == 0.0  # needs the grid too
    assert bench["energy.pv_total"] == pytest.approx(2.0)
    bench.set(grid__power=math.nan)  # garbage decoded as NaN is no reading either
    bench.run(60)
    assert bench["energy.grid_export_total"] == 0.0


def test_today_starts_again_at_local_midnight_and_the_total_goes_on(bench_factory: Any) -> None:
    bench = bench_factory(["energy"], period=60.0, start=datetime(2026, 6, 20, 23, 0))
    bench.set(house__power=600.0)
    bench.run(30 * 60)
    day = bench["energy.day"]
    assert bench["energy.house_today"] == pytest.approx(0.3)
    bench.run(60 * 60)  # to 00:30
    assert bench["energy.day"] == day + 1
    assert bench["energy.house_today"] == pytest.approx(0.3)  # 00:00 .. 00:30 only
    assert bench["energy.house_total"] == pytest.approx(0.9)


def test_a_restart_resumes_from_the_retained_counters(bench_factory: Any) -> None:
    bench = bench_factory(["energy"], period=10.0, start=datetime(2026, 6, 20, 12, 0))
    bench.set(pv__power=1200.0)
    bench.run(3600)
    assert bench.db.defs["energy.pv_total"].retain and bench.db.defs["energy.pv_today"].retain
    restarted = bench_factory(["energy"], period=10.0, start=datetime(2026, 6, 20, 14, 0), db=bench.db)
    restarted.set(pv__power=1200.0)
    restarted.run(3600)
    assert restarted["energy.pv_total"] == pytest.approx(2.4)
    assert restarted["energy.pv_today"] == pytest.approx(2.4)  # same day: today goes on too
    tomorrow = bench_factory(["energy"], period=10.0, start=datetime(2026, 6, 21, 9, 0), db=restarted.db)
    tomorrow.run(10)
    assert (tomorrow["energy.pv_total"], tomorrow["energy.pv_today"]) == (pytest.approx(2.4), 0.0)


def test_a_soc_resync_does_not_touch_the_counters(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate", "soc", "energy"], period=1.0)
    bench.db.values["soc.charge_ah"] = 200.0
    bench.blocks["soc"].start(bench.db)
    bench.cells(3.45)
    bench.set(shunt__current=12.0)  # tapered at the full voltage: the soc block syncs to 100 % after 30 s
    bench.run(40)
    assert bench["bat.soc"] == 100.0
    assert bench["energy.charged_total"] == pytest.approx(27.6 * 12.0 * 40 / 3.6e6, rel=1e-3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # a class
@given(st.lists(st.one_of(
    st.tuples(st.just("power"), st.sampled_from(SOURCES),
              st.one_of(st.floats(-5000, 5000), st.just(math.nan))),
    st.tuples(st.just("quality"), st.sampled_from(SOURCES), st.sampled_from(list(Quality))),
    st.tuples(st.just("restart"), st.none(), st.none()),
    st.tuples(st.just("clock"), st.none(), st.integers(-2, 3)),  # days the wall clock jumps
), min_size=1, max_size=40))
def test_lifetime_counters_never_decrease_and_add_up_the_readings(bench_factory: Any, ops: list[Any]) -> None:
    bench = bench_factory(["energy"], period=60.0)
    expected = dict.fromkeys(FLOWS, 0.0)
    before = totals(bench)
    for op, tag, value in ops:
        if op == "power":
            bench.set({tag: value}, quality=bench.quality(tag))
        elif op == "quality":
            bench.bad(tag, quality=value)
        elif op == "restart":  # what retain restores after a clean stop: the image's retained values
            bench = bench_factory(["energy"], period=60.0, start=bench.clock.now(), db=bench.db)
        else:  # the wall clock steps (NTP, a wrong RTC), the scan's monotonic time goes on
            bench.clock = bench.scan.clock = SimClock(bench.clock.now() + timedelta(days=value),
                                                      monotonic=bench.clock.monotonic())
        readings = {t: bench[t] for t in SOURCES if bench.quality(t) is Quality.GOOD and math.isfinite(bench[t])}
        bench.step()
        for flow, (needs, power) in FLOWS.items():
            if all(t in readings for t in needs):
                expected[flow] += max(0.0, power(*(readings[t] for t in needs))) * 60.0 / 3.6e6
        now = totals(bench)
        assert all(now[flow] >= before[flow] for flow in FLOWS), (before, now)
        assert all(bench[TODAY.format(flow)] <= now[flow] + 1e-9 for flow in FLOWS)
        before = now
    assert before == pytest.approx(expected, abs=1e-9)


def test_battery_export_over_the_daily_budget_raises_its_alarm_until_midnight(bench_factory: Any) -> None:
    """One daily count of battery energy sent to the grid (issue 14): energy.battery_export_today, retained and
    reset at local midnight, raises alarm.battery_export above par.export_day_max_wh (20 Wh)."""
    bench = bench_factory(["energy"], period=1.0, start=datetime(2026, 6, 20, 23, 50))
    bench.set(grid__power=-300.0, inverter__power=200.0)  # 200 W of battery energy out
    bench.run(5 * 60)  # 16.7 Wh
    assert not bench["alarm.battery_export"]
    bench.run(2 * 60)  # 23.3 Wh
    assert bench["energy.battery_export_today"] == pytest.approx(0.0233, rel=1e-2)
    assert bench["alarm.battery_export"]
    bench.set(grid__power=100.0)  # importing again: nothing more out
    bench.run(4 * 60)  # past midnight
    assert bench["energy.battery_export_today"] == 0.0
    assert not bench["alarm.battery_export"]
    assert bench["energy.battery_export_total"] == pytest.approx(0.0233, rel=1e-2)  # the lifetime count goes on
