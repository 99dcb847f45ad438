"""soc: coulomb counting with efficiency, syncs at full and empty, retained charge, health figures."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.tags import Quality


def soc_bench(factory: Any, soc_ah: float = 160.0, period: float = 10.0) -> Any:
    bench = factory(["aggregate", "soc"], period=period)
    bench.db.values["soc.charge_ah"] = soc_ah
    bench.blocks["soc"].start(bench.db)  # as after a restart with this retained value
    bench.set(par__soc_mismatch_a=100.0)  # these tests drive the shunt alone: no cross-check with the BMS
    return bench


def test_charge_counts_with_efficiency_and_discharge_without(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory)
    bench.set(shunt__current=100.0)
    bench.run(3600)
    assert bench["bat.soc"] == pytest.approx(100 * (160 + 99.8) / 320, abs=0.1)  # 100 Ah in x 0.998
    bench.set(shunt__current=-50.0)
    bench.run(3600)
    assert bench["bat.soc"] == pytest.approx(100 * (259.8 - 50) / 320, abs=0.1)
    assert bench["soc.cycles"] == pytest.approx(50 / 320, abs=0.01)
    assert bench["soc.residual_kwh"] == pytest.approx(209.8 * 3.2 * 8 / 1000, abs=0.05)


def test_clamped_to_capacity(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=315.0)
    bench.set(shunt__current=50.0)
    bench.run(3600)
    assert bench["bat.soc"] == pytest.approx(100.0)


def test_sync_to_full_at_the_end_of_a_full_charge(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=200.0, period=1.0)
    bench.cells(3.45)
    bench.set(shunt__current=40.0)  # still above the 0.05C tail (16 A): no sync
    bench.run(60)
    assert bench["bat.soc"] < 70
    bench.set(shunt__current=12.0)  # tapered: synced after par.soc_full_delay_s (30 s)
    bench.run(25)
    assert bench["bat.soc"] < 70
    bench.run(10)
    assert bench["bat.soc"] == 100.0
    assert bench["soc.charge_ah"] == 320.0


def test_a_high_cell_alone_is_not_a_full_pack(bench_factory: Any) -> None:
    """A spread pack at the summer charge voltage (3.40 V/cell average) with one cell at 3.54 V is ~94 %."""
    bench = soc_bench(bench_factory, soc_ah=300.0, period=1.0)
    bench.cells(3.54, 3.38, 3.38, 3.38, 3.38, 3.38, 3.38, 3.38)
    bench.set(shunt__current=2.0)  # tapered well below the 0.05C tail
    bench.run(120)
    assert bench["bat.soc"] < 95


def test_sync_to_empty_at_the_empty_cell_voltage(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=60.0, period=1.0)
    bench.cells(3.0, 3.0, 3.0, 2.9, 3.0, 3.0, 3.0, 3.0)
    bench.set(shunt__current=-20.0)
    bench.run(40)
    assert bench["bat.soc"] == 0.0 and bench["soc.charge_ah"] == 0.0


def test_capacity_measured_between_full_and_empty_gives_soh(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=300.0, period=10.0)
    bench.cells(3.45)
    bench.set(shunt__current=5.0)
    bench.run(60)  # full sync
    assert bench["bat.soc"] == 100.0
    bench.cells(3.25)
    bench.set(shunt__current=-100.0)
    bench.run(2.8 * 3600)  # 280 Ah out
    bench.cells(2.85)
    bench.run(60)  # the empty condition holds 30 s (0.83 Ah more) before the sync
    assert bench["bat.soc"] == 0.0
    assert bench["soc.capacity_measured_ah"] == pytest.approx(280.83, abs=0.05)
    assert bench["soc.soh"] == pytest.approx(100 * 280.83 / 320, abs=0.05)


def test_retained_charge_moves_in_quarter_percent_steps_and_survives_restart(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=160.0, period=1.0)
    bench.set(shunt__current=-1.0)  # 1 Ah per hour; the persistence step is 0.8 Ah
    bench.run(2000)  # 0.556 Ah
    assert bench["soc.charge_ah"] == 160.0
    bench.run(1000)  # 0.833 Ah: the step was passed at 0.8 Ah
    assert bench["soc.charge_ah"] == pytest.approx(159.2, abs=0.01)
    saved = bench["soc.charge_ah"]

    restarted = bench_factory(["aggregate", "soc"])
    restarted.db.values["soc.charge_ah"] = saved  # what retain restores
    restarted.blocks["soc"].start(restarted.db)
    restarted.run(1)
    assert restarted["bat.soc"] == pytest.approx(100 * saved / 320, abs=0.01)


def test_unknown_charge_starts_from_the_bms_estimate(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate", "soc"])
    assert bench["soc.charge_ah"] < 0  # a new site
    bench.set(bms1__soc=37.0)
    bench.run(2)
    assert bench["bat.soc"] == pytest.approx(37.0, abs=0.01)
    assert bench["soc.charge_ah"] == pytest.approx(0.37 * 320, abs=0.01)


def test_imbalance_percent(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, period=1.0)
    bench.cells(3.30, 3.30, 3.30, 3.30, 3.30, 3.30, 3.30, 3.36)
    bench.run(2)
    assert bench["soc.imbalance_pct"] == pytest.approx(0.06 / 6.66 * 200)


def test_current_not_good_holds_the_count(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, period=10.0)
    bench.set(shunt__current=-100.0)
    bench.bad("shunt.current", "bms1.current")
    bench.run(3600)
    assert bench["bat.soc"] == pytest.approx(50.0)


def test_unknown_charge_waits_for_the_bms_then_falls_back_to_half(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate", "soc"], period=10.0)
    bench.bad("bms1.cell_1", quality=Quality.INIT)  # the BMS has not answered yet
    bench.run(50)
    assert bench["soc.charge_ah"] < 0
    bench.run(20)
    assert bench["bat.soc"] == pytest.approx(50.0)


def test_a_shunt_that_disagrees_with_the_bms_raises_the_mismatch_alarm_and_is_not_counted(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate", "soc"], period=10.0)
    bench.db.values["soc.charge_ah"] = 160.0
    bench.blocks["soc"].start(bench.db)
    bench.set(shunt__current=3.0, bms1__current=0.0)  # a bad zero: 3 A in while nothing flows
    bench.run(bench["par.soc_mismatch_s"] - 20)
    assert not bench["alarm.soc_sensor_mismatch"] and bench["bat.current"] == 3.0
    bench.run(30)
    assert bench["alarm.soc_sensor_mismatch"] and bench["bat.current"] == 0.0  # the BMS is counted now
    soc = bench["bat.soc"]
    bench.run(3600)
    assert bench["bat.soc"] == pytest.approx(soc, abs=0.01)
    bench.set(shunt__current=0.0)  # agreeing again, for as long, clears it
    bench.run(bench["par.soc_mismatch_s"] + 10)
    assert not bench["alarm.soc_sensor_mismatch"]


def test_uncertainty_grows_with_the_charge_counted_and_a_sync_clears_it(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=200.0)
    bench.set(shunt__current=-32.0)
    bench.run(3600)  # 32 Ah counted: 1 % of it is 0.1 point, plus an hour of self-discharge bound
    assert bench["soc.uncertainty"] == pytest.approx(0.1 + 3.5 / 30 / 24, abs=0.01)
    bench.cells(3.45)
    bench.set(shunt__current=5.0)
    bench.run(120)  # full sync
    assert bench["soc.uncertainty"] < 0.001  # 0 at the sync, then only a minute of self-discharge bound


def rest_bench(factory: Any, soc: float, uncertainty: float = 0.0) -> Any:
    """A pack at ``soc`` % as counted, after a discharge (the resting cells sit on the discharge branch)."""
    bench = soc_bench(factory, soc_ah=3.2 * soc, period=60.0)
    bench.db.values["soc.uncertainty"] = uncertainty
    bench.set(bms1__temp_1=25.0, bms1__temp_2=25.0)  # the rest curve's temperature: no allowance for the cold
    bench.set(shunt__current=-20.0, bms1__current=-20.0, shunt__soc=soc)  # a shunt that agrees with the count
    bench.run(60)  # 1/3 Ah: 0.1 point
    bench.set(shunt__current=0.0, bms1__current=0.0)
    return bench


# 3.12 V after a discharge is 3.13 V on the middle curve: 5 + 5 x 0.03 / 0.1125 = 6.33 %; +-20 mV: 5.44..7.22 %
KNEE_V, KNEE_SOC, KNEE_LOW, KNEE_HIGH = 3.12, 5 + 5 * 0.03 / 0.1125, 5 + 5 * 0.01 / 0.1125, 5 + 5 * 0.05 / 0.1125


def test_a_rest_on_the_low_knee_resyncs_a_count_that_lost_its_way(bench_factory: Any) -> None:
    bench = rest_bench(bench_factory, soc=30.0)
    bench.cells(KNEE_V)
    bench.run(bench["par.soc_rest_s"] - 120)
    assert bench["bat.soc"] == pytest.approx(29.9, abs=0.05)  # not rested long enough yet
    bench.run(120)
    assert bench["bat.soc"] == pytest.approx(KNEE_SOC, abs=0.01)  # 30 +- 0.1 and 5.4..7.2 exclude each other
    assert bench["soc.uncertainty"] == pytest.approx((KNEE_HIGH - KNEE_LOW) / 2, abs=0.01)
    assert bench["soc.charge_ah"] == pytest.approx(3.2 * KNEE_SOC, abs=0.01)  # persisted at once
    bench.run(4 * 3600)
    assert bench["bat.soc"] == pytest.approx(KNEE_SOC, abs=0.01)  # read once per rest


def test_a_rest_reading_moves_a_consistent_count_only_into_its_interval(bench_factory: Any) -> None:
    bench = rest_bench(bench_factory, soc=8.1, uncertainty=3.0)  # 8.0 % +- 3 after the discharge
    bench.cells(KNEE_V)
    bench.run(bench["par.soc_rest_s"])
    assert bench["bat.soc"] == pytest.approx(KNEE_HIGH, abs=0.01)  # the edge nearest to the count
    assert bench["soc.uncertainty"] == pytest.approx(KNEE_HIGH - KNEE_LOW, abs=0.01)  # the overlap, < 3


def test_a_cold_rest_reaches_higher_and_a_winter_one_tells_nothing(bench_factory: Any) -> None:
    bench = rest_bench(bench_factory, soc=30.0)
    bench.set(bms1__temp_1=21.0)  # the coldest sensor, 4 K below the curve's 25 degC: 2 points higher
    bench.cells(KNEE_V)
    bench.run(bench["par.soc_rest_s"])
    assert bench["bat.soc"] == pytest.approx((KNEE_LOW + KNEE_HIGH + 2.0) / 2, abs=0.01)
    winter = rest_bench(bench_factory, soc=30.0)
    winter.set(bms1__temp_1=7.0)  # 9 points of allowance: too wide to use
    winter.cells(KNEE_V)
    winter.run(winter["par.soc_rest_s"])
    assert winter["bat.soc"] == pytest.approx(29.9, abs=0.05)


def test_a_rest_on_the_plateau_tells_nothing(bench_factory: Any) -> None:
    bench = rest_bench(bench_factory, soc=30.0)
    bench.cells(3.29)  # 20 mV is 10-30 points here
    bench.run(3 * bench["par.soc_rest_s"])
    assert bench["bat.soc"] == pytest.approx(29.9, abs=0.05)


def test_a_rest_after_a_charge_reads_the_charge_branch_of_the_high_knee(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=288.0, period=60.0)  # 90 % counted
    bench.set(shunt__current=20.0, bms1__current=20.0, shunt__soc=90.0, bms1__temp_1=25.0, bms1__temp_2=25.0)
    bench.run(60)
    bench.set(shunt__current=1.0, bms1__current=1.0)  # the CV tail at the summer voltage: below 0.01C
    bench.cells(3.40)  # 3.39 V on the middle curve: 97 + 3 x 0.04 / 0.1 = 98.2 %
    bench.run(bench["par.soc_rest_s"] + 60)
    assert bench["bat.soc"] == pytest.approx(98.2, abs=0.05)


def test_a_rest_while_a_bms_is_silent_waits_for_the_next(bench_factory: Any) -> None:
    bench = rest_bench(bench_factory, soc=30.0)
    bench.cells(KNEE_V)
    bench.bad("bms1.cell_3")
    bench.run(bench["par.soc_rest_s"] + 600)
    assert bench["bat.soc"] == pytest.approx(29.9, abs=0.05)


def test_a_shunt_soc_apart_from_ours_raises_its_alarm_and_the_reserve(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, period=60.0)  # 50 %
    bench.set(shunt__soc=35.0)  # 15 points lower: we may read high
    bench.run(bench["par.soc_shunt_mismatch_s"] - 120)
    assert not bench["alarm.soc_shunt_mismatch"] and bench["soc.uncertainty"] < 0.1
    bench.run(180)
    assert bench["alarm.soc_shunt_mismatch"]
    assert bench["soc.uncertainty"] == pytest.approx(15.0, abs=0.01)  # the reserve assumes the shunt's SoC
    bench.bad("shunt.soc")  # no reading, no check: the alarm holds
    bench.run(2 * bench["par.soc_shunt_mismatch_s"])
    assert bench["alarm.soc_shunt_mismatch"]
    bench.set(shunt__soc=49.0)  # agreeing again, for as long, clears it
    bench.run(bench["par.soc_shunt_mismatch_s"] + 60)
    assert not bench["alarm.soc_shunt_mismatch"]


def test_a_shunt_soc_above_ours_alarms_without_raising_the_reserve(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, period=60.0)
    bench.set(shunt__soc=70.0)
    bench.run(bench["par.soc_shunt_mismatch_s"] + 60)
    assert bench["alarm.soc_shunt_mismatch"] and bench["soc.uncertainty"] < 0.1


def test_a_rest_with_no_current_seen_since_the_start_reads_either_branch(bench_factory: Any) -> None:
    bench = soc_bench(bench_factory, soc_ah=96.0, period=60.0)  # 30 %, and no current since the start
    bench.set(shunt__soc=30.0, bms1__temp_1=25.0, bms1__temp_2=25.0)
    bench.cells(KNEE_V)  # 3.12 V +- (20 + 10) mV: 5 x 0.59 / 0.6 = 4.92 % .. 7.22 %
    bench.run(bench["par.soc_rest_s"])
    low = 5 * 0.59 / 0.6
    assert bench["bat.soc"] == pytest.approx((low + KNEE_HIGH) / 2, abs=0.01)
    assert bench["soc.uncertainty"] == pytest.approx((KNEE_HIGH - low) / 2, abs=0.01)
