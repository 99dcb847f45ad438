"""limits: monthly CVL, balancing cadence, dynamic cut, CCL/DCL tables and derating, hold-and-ramp.

Where the wall date matters (month, balancing days) the bench runs on the real clock under freezegun.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from freezegun import freeze_time

N = 8  # cells of the default site


def unix_day(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def limits_bench(factory: Any, frozen: Any = None, last_balance: date | None = None) -> Any:
    bench = factory(["aggregate", "limits"], frozen=frozen)
    if last_balance is not None:
        bench.db.values["limits.balance_last_day"] = unix_day(last_balance)
    return bench


@pytest.mark.parametrize(("day", "cell_v"), [("2026-01-20", 3.55), ("2026-03-02", 3.50),
                                             ("2026-04-15", 3.45), ("2026-07-01", 3.40),
                                             ("2026-09-30", 3.45), ("2026-12-24", 3.55)])
def test_charge_voltage_of_the_month(bench_factory: Any, day: str, cell_v: float) -> None:
    with freeze_time(day) as frozen:
        bench = limits_bench(bench_factory, frozen, last_balance=date.fromisoformat(day))
        bench.run(2)
        assert bench["limits.cvl"] == pytest.approx(cell_v * N)
        assert not bench["limits.balancing"]


def test_balancing_every_ten_days_until_the_spread_is_small(bench_factory: Any) -> None:
    with freeze_time("2026-07-01 08:00") as frozen:
        bench = limits_bench(bench_factory, frozen, last_balance=date(2026, 6, 21))
        bench.run(2)
        assert bench["limits.balance_due"] and bench["limits.balancing"]
        assert bench["limits.cvl"] == pytest.approx(3.55 * N)  # raised from July's 3.40

        # reached the balancing voltage, but the cells are 40 mV apart: not done
        bench.cells(3.53, 3.55, 3.55, 3.55, 3.55, 3.55, 3.55, 3.57)
        bench.set(shunt__voltage=28.40)
        bench.run(60)
        assert bench["limits.balance_due"] and bench["limits.balance_last_day"] == unix_day(date(2026, 6, 21))

        # balancer did its work: spread 20 mV -> done today, CVL held until the pack falls to July's voltage
        bench.cells(3.54, 3.55, 3.55, 3.55, 3.55, 3.55, 3.55, 3.56)
        bench.run(1)
        assert bench["limits.balance_last_day"] == unix_day(date(2026, 7, 1))
        assert not bench["limits.balance_due"]
        assert bench["limits.balancing"]
        bench.cells(3.36)
        bench.set(shunt__voltage=26.9, shunt__current=-30.0)
        bench.run(1)
        assert not bench["limits.balancing"]
        assert bench["limits.cvl"] == pytest.approx(3.40 * N)

        frozen.tick(9 * 86400)  # 2026-07-10: nine days later, not due
        bench.run(1)
        assert not bench["limits.balance_due"]
        frozen.tick(86400)  # 2026-07-11: ten days
        bench.run(1)
        assert bench["limits.balance_due"] and bench["limits.balancing"]


def test_failed_run_is_due_again_the_next_day(bench_factory: Any) -> None:
    with freeze_time("2026-05-05 10:00") as frozen:
        bench = limits_bench(bench_factory, frozen, last_balance=date(2026, 4, 20))
        bench.run(1)
        assert bench["limits.balance_due"]
        frozen.tick(86400)
        bench.run(1)
        assert bench["limits.balance_due"] and bench["limits.balancing"]


def test_new_site_starts_its_cadence_today(bench_factory: Any) -> None:
    with freeze_time("2026-02-02") as frozen:
        bench = limits_bench(bench_factory, frozen)
        bench.run(1)
        assert bench["limits.balance_last_day"] == unix_day(date(2026, 2, 2))
        assert not bench["limits.balance_due"]


def test_dynamic_cut_on_a_high_cell(bench_factory: Any) -> None:
    bench = limits_bench(bench_factory, last_balance=date(2026, 4, 15))
    bench.run(1)
    assert bench["limits.cvl"] == pytest.approx(3.45 * N)
    bench.cells(3.40, 3.40, 3.40, 3.40, 3.40, 3.40, 3.63, 3.62)
    bench.set(shunt__voltage=27.45)
    bench.run(1)
    assert bench["limits.cvl_cut_active"]
    assert bench["limits.cvl"] == pytest.approx(27.45 - 0.03 - 0.02)
    bench.cells(3.40)
    bench.run(1)
    assert not bench["limits.cvl_cut_active"]
    assert bench["limits.cvl"] == pytest.approx(27.40)  # held after falling (hold-and-ramp)
    bench.run(58)
    assert bench["limits.cvl"] == pytest.approx(27.40)  # 59 s after the cut
    bench.run(5)  # the hold ends 60 s after the cut, then 5 s of ramp
    assert bench["limits.cvl"] == pytest.approx(27.40 + 5 * 0.001 * N)  # ramping back at 1 mV/s per cell


@pytest.mark.parametrize(("cell_v_max", "factor"), [(2.90, 0.2), (2.95, 1.0), (3.30, 1.0), (3.45, 1.0),
                                                    (3.55, 0.1), (3.575, 0.05), (3.60, 0.0), (3.64, 0.0)])
def test_ccl_follows_the_cell_voltage_table(bench_factory: Any, cell_v_max: float, factor: float) -> None:
    bench = limits_bench(bench_factory, last_balance=date(2026, 4, 15))
    bench.cells(cell_v_max)
    bench.run(1)
    assert bench["limits.ccl"] == pytest.approx(160.0 * factor)  # 0.5C of 320 Ah


@pytest.mark.parametrize(("temp", "factor"), [(-5, 0.0), (0, 0.0), (2, 0.25), (5, 0.5), (10, 1.0), (25, 1.0),
                                              (45, 0.5), (55, 0.0)])
def test_ccl_derated_by_temperature(bench_factory: Any, temp: float, factor: float) -> None:
    bench = limits_bench(bench_factory, last_balance=date(2026, 4, 15))
    bench.set(bms1__temp_1=temp, bms1__temp_2=temp)
    bench.run(1)
    assert bench["limits.ccl"] == pytest.approx(160.0 * factor)


def test_dcl_capped_by_the_fuse_and_the_cell_table_with_latch(bench_factory: Any) -> None:
    bench = limits_bench(bench_factory, last_balance=date(2026, 4, 15))
    bench.run(1)
    assert bench["limits.dcl"] == pytest.approx(200.0)  # 1C = 320 A, but 80 % of the 250 A fuse
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.0)
    bench.run(1)
    assert bench["limits.dcl"] == pytest.approx(10.0)  # 0.05 at 3.00 V
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 2.9)
    bench.run(1)
    assert bench["limits.dcl"] == 0.0 and bench["limits.discharge_latched"]
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 2.98)  # relaxed, but below the +0.1 V release
    bench.run(120)
    assert bench["limits.dcl"] == 0.0
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.05)
    bench.run(120)
    assert not bench["limits.discharge_latched"] and bench["limits.dcl"] == pytest.approx(0.525 * 200)


def test_bms_blocking_sets_its_limit_to_zero(bench_factory: Any) -> None:
    bench = limits_bench(bench_factory, last_balance=date(2026, 4, 15))
    bench.set(bms1__charge_allowed=False)
    bench.run(1)
    assert bench["limits.ccl"] == 0.0 and bench["limits.dcl"] > 0
    bench.set(bms1__charge_allowed=True, bms1__discharge_allowed=False)
    bench.run(1)
    assert bench["limits.dcl"] == 0.0


def test_limits_fall_at_once_hold_then_ramp(bench_factory: Any) -> None:
    bench = limits_bench(bench_factory, last_balance=date(2026, 4, 15))
    bench.run(1)
    assert bench["limits.ccl"] == pytest.approx(160.0)
    bench.set(bms1__temp_1=5.0)
    bench.run(1)
    assert bench["limits.ccl"] == pytest.approx(80.0)  # at once
    bench.set(bms1__temp_1=20.0)
    bench.run(59)
    assert bench["limits.ccl"] == pytest.approx(80.0)  # held 60 s
    bench.run(2)
    bench.run(10)
    assert bench["limits.ccl"] == pytest.approx(80.0 + 5.0 * 11, abs=5.1)  # 5 A/s
    bench.run(30)
    assert bench["limits.ccl"] == pytest.approx(160.0)


def test_cells_not_good_mean_no_current(bench_factory: Any) -> None:
    bench = limits_bench(bench_factory, last_balance=date(2026, 4, 15))
    bench.run(1)
    bench.bad("bms1.temp_2")
    bench.run(1)
    assert bench["limits.ccl"] == 0.0 and bench["limits.dcl"] == 0.0


def test_balancing_succeeds_when_the_balancer_closes_the_spread_after_the_top(bench_factory: Any) -> None:
    with freeze_time("2026-07-01 08:00") as frozen:
        bench = limits_bench(bench_factory, frozen, last_balance=date(2026, 6, 21))
        bench.run(1)
        assert bench["limits.balance_charge"]
        bench.cells(3.48, 3.50, 3.50, 3.50, 3.50, 3.50, 3.50, 3.56)  # the top cell reached 3.55 V
        bench.set(shunt__voltage=28.04)
        bench.run(1)
        assert bench["limits.balance_charge"] and bench["limits.balance_due"]  # hold the pack at the top
        bench.cells(3.50, 3.51, 3.51, 3.51, 3.51, 3.51, 3.51, 3.52)  # held at the top, the balancer works
        bench.set(shunt__voltage=28.08)
        bench.run(60)
        assert not bench["limits.balance_due"]
        assert bench["limits.balance_last_day"] == unix_day(date(2026, 7, 1))
        assert not bench["limits.balance_charge"]
        assert bench["limits.balancing"]  # until the pack is back at July's 3.40 V per cell


def test_unsuccessful_run_ends_when_discharged_and_is_tried_the_next_day_once(bench_factory: Any) -> None:
    with freeze_time("2026-07-01 08:00") as frozen:
        bench = limits_bench(bench_factory, frozen, last_balance=date(2026, 6, 21))
        bench.cells(3.50, 3.50, 3.50, 3.50, 3.50, 3.50, 3.50, 3.56)
        bench.set(shunt__voltage=28.06)
        bench.run(2)
        bench.cells(3.30, 3.30, 3.30, 3.30, 3.30, 3.30, 3.30, 3.36)  # resting low: not over yet
        bench.set(shunt__voltage=26.46)
        bench.run(1)
        assert bench["limits.balancing"]
        bench.set(shunt__current=-20.0)  # discharged back, spread never closed: over
        bench.run(1)
        assert not bench["limits.balancing"] and bench["limits.balance_due"]
        assert bench["limits.cvl"] == pytest.approx(3.40 * N)
        bench.run(3600)
        assert not bench["limits.balancing"]  # not twice a day
        frozen.tick(86400)
        bench.run(1)
        assert bench["limits.balancing"] and bench["limits.balance_charge"]
