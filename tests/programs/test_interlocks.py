"""interlocks: every rule on its own, then property-based: random images never charge above the limits,
discharge below them, or export battery energy."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runtime.program import Program, ScanContext
from runtime.tags import Quality

N = 8
CELLS = [f"bms1.cell_{k}" for k in range(1, 9)]
REQUESTS = ("charger.enable", "charger.voltage_sp", "charger.current_sp", "inverter.enable",
            "inverter.power_sp")


class Requests(Program):
    """Stands for the charts: stages what they would ask of the charger and the inverter."""

    name = "requests"
    writes = frozenset(REQUESTS)

    def __init__(self) -> None:
        self.wanted: dict[str, Any] = {"charger.enable": False, "charger.voltage_sp": 0.0,
                                       "charger.current_sp": 0.0, "inverter.enable": False,
                                       "inverter.power_sp": 0.0}

    def scan(self, ctx: ScanContext) -> None:
        for name, value in self.wanted.items():
            ctx.write(name, value)


def interlock_bench(factory: Any, period: float = 1.0, **wanted: Any) -> Any:
    requests = Requests()
    requests.wanted.update({k.replace("__", "."): v for k, v in wanted.items()})
    bench = factory(["aggregate", "limits"], interlocks=True, extra=[requests], period=period)
    bench.requests = requests
    bench.db.values["limits.balance_last_day"] = 20558  # 2026-04-15: no balancing run in these tests
    return bench


CHARGE = {"charger__enable": True, "charger__voltage_sp": 40.0, "charger__current_sp": 500.0}
DISCHARGE = {"inverter__enable": True, "inverter__power_sp": 5000.0}


def test_charging_passes_inside_the_limits_clamped_to_cvl_and_ccl(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory, **CHARGE)
    bench.run(2)
    assert bench["charger.enable"]
    assert bench["charger.voltage_sp"] == pytest.approx(3.45 * N)  # April's CVL, not the 40 V asked
    assert bench["charger.current_sp"] == pytest.approx(160.0)  # CCL 0.5C, not 500 A
    assert not bench["interlock.charge_blocked"]


@pytest.mark.parametrize(("inputs", "alarm"), [
    ({"bms1.cell_5": 3.65}, "alarm.cell_high"),
    ({"bms1.temp_1": 66.0}, "alarm.temp"),
    ({"bms1.temp_2": -0.5}, "bat.too_cold_to_charge"),  # a state, not an alarm: normal on a winter night
    ({"bms1.charge_allowed": False}, None),
    ({"cmd.mode": "off"}, None),
])
def test_no_charging(bench_factory: Any, inputs: dict[str, Any], alarm: str | None) -> None:
    bench = interlock_bench(bench_factory, **CHARGE)
    bench.run(1)
    assert bench["charger.enable"]
    bench.set(inputs)
    bench.run(1)
    assert not bench["charger.enable"]
    assert bench["charger.current_sp"] == 0 and bench["charger.voltage_sp"] == 0
    assert bench["interlock.charge_blocked"]
    if alarm:
        assert bench[alarm]


def test_cell_high_releases_with_hysteresis_and_counts_a_trip(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory, **CHARGE)
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.66)
    bench.run(1)
    assert not bench["charger.enable"] and bench["interlock.trips"] == 1
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.58)  # below 3.65 but above the 3.55 resume
    bench.run(5)
    assert not bench["charger.enable"] and bench["interlock.trips"] == 1
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.50)
    bench.run(120)  # limits hold and ramp the CCL back up
    assert bench["charger.enable"] and not bench["alarm.cell_high"]


def test_discharging_follows_the_house_never_exports(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory, **DISCHARGE)
    bench.set(grid__power=180.0, inverter__power=600.0)  # the house draws 780 W
    bench.run(1)
    assert bench["inverter.enable"] and bench["inverter.power_sp"] == pytest.approx(780.0)
    bench.set(grid__power=-50.0, inverter__power=600.0)  # house dropped to 550 W
    bench.run(1)
    assert bench["inverter.power_sp"] == pytest.approx(550.0)


def test_discharge_power_capped_by_dcl(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory, **DISCHARGE)
    bench.cells(3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.3, 3.0)  # DCL = 0.05 x 200 A = 10 A
    bench.set(grid__power=4000.0, shunt__voltage=26.0)
    bench.run(1)
    assert bench["inverter.power_sp"] == pytest.approx(10.0 * 26.0)


@pytest.mark.parametrize(("inputs", "alarm"), [
    ({"bms1.cell_2": 2.9}, "alarm.cell_low"),
    ({"bms1.temp_1": -31.0}, "alarm.temp"),
    ({"bms1.temp_2": 65.5}, "alarm.temp"),
    ({"bms1.discharge_allowed": False}, None),
    ({"cmd.mode": "hold"}, None),
    ({"cmd.mode": "off"}, None),
    ({"cmd.mode": "force_charge"}, None),
])
def test_no_discharging(bench_factory: Any, inputs: dict[str, Any], alarm: str | None) -> None:
    bench = interlock_bench(bench_factory, **DISCHARGE)
    bench.run(1)
    assert bench["inverter.enable"]
    bench.set(inputs)
    bench.run(1)
    assert not bench["inverter.enable"] and bench["inverter.power_sp"] == 0
    assert bench["interlock.discharge_blocked"]
    if alarm:
        assert bench[alarm]


def test_never_charge_and_discharge_at_once(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory, **CHARGE, **DISCHARGE)
    bench.run(1)
    assert bench["inverter.enable"] and not bench["charger.enable"]


@pytest.mark.parametrize("tag", ["bms1.cell_3", "bms1.temp_1", "shunt.current", "grid.power",
                                 "inverter.power"])
def test_input_not_good_makes_outputs_safe_and_raises_an_alarm(bench_factory: Any, tag: str) -> None:
    bench = interlock_bench(bench_factory, **CHARGE)
    bench.set(bms1__temp_1=2.0)  # cold: the heater runs while charging is wanted
    bench.run(1)
    assert bench["charger.enable"] and bench["heater.enable"]
    bench.bad(tag, quality=Quality.STALE)
    if tag == "shunt.current":
        bench.bad("bms1.current")
    bench.run(1)
    assert bench["alarm.input_bad"]
    assert not bench["inverter.enable"]
    if tag not in ("grid.power", "inverter.power"):  # the meter is not needed to charge safely
        assert not bench["charger.enable"] and not bench["heater.enable"]


def test_persistent_export_trips_the_inverter_until_the_chart_lets_go(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory, **DISCHARGE)
    bench.set(grid__power=-150.0, inverter__power=400.0)
    bench.run(9)
    assert bench["inverter.enable"] and not bench["alarm.export"]
    bench.run(2)
    assert not bench["inverter.enable"] and bench["alarm.export"]
    bench.set(grid__power=300.0)
    bench.run(5)
    assert not bench["inverter.enable"]  # latched while the chart still asks
    bench.requests.wanted["inverter.enable"] = False
    bench.run(1)
    bench.requests.wanted["inverter.enable"] = True
    bench.run(1)
    assert not bench["inverter.enable"] and not bench["alarm.export"]  # released; off for its minimum time
    bench.run(bench["par.inverter_min_off_s"])
    assert bench["inverter.enable"]


def test_heater_below_5_while_charge_is_wanted_off_at_10(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory)
    bench.set(par__climate_min_switch_s=0.0)  # the hysteresis alone (the minimum times: their own test)
    bench.set(bms1__temp_1=-3.0, bms1__temp_2=-2.0)
    bench.run(1)
    assert not bench["heater.enable"]  # nobody wants to charge
    bench.requests.wanted.update({"charger.enable": True, "charger.voltage_sp": 27.0,
                                  "charger.current_sp": 50.0})
    bench.run(1)
    assert bench["heater.enable"] and not bench["charger.enable"]  # too cold to charge, warm it first
    bench.set(bms1__temp_1=7.0, bms1__temp_2=7.0)
    bench.run(1)
    assert bench["heater.enable"]
    bench.set(bms1__temp_1=10.0, bms1__temp_2=10.0)
    bench.run(1)
    assert not bench["heater.enable"]


def test_fan_at_high_current_or_temperature(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory)
    bench.set(par__climate_min_switch_s=0.0)  # the hysteresis alone (the minimum times: their own test)
    bench.run(1)
    assert not bench["fan.enable"]
    bench.set(shunt__current=-100.0)  # 0.31C >= 0.3C
    bench.run(1)
    assert bench["fan.enable"]
    bench.set(shunt__current=-80.0)  # above 80 % of the switch-on current: still on
    bench.run(1)
    assert bench["fan.enable"]
    bench.set(shunt__current=-70.0)
    bench.run(1)
    assert not bench["fan.enable"]
    bench.set(bms1__temp_1=36.0)
    bench.run(1)
    assert bench["fan.enable"]
    bench.set(bms1__temp_1=29.0)
    bench.run(1)
    assert not bench["fan.enable"]


def test_charger_minimum_on_and_off_times_but_a_protection_cuts_at_once(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory, **CHARGE)
    bench.run(1)
    assert bench["charger.enable"]
    bench.requests.wanted["charger.enable"] = False  # the chart lets go after a second
    bench.run(1)
    assert bench["charger.enable"] and bench["charger.current_sp"] == 0  # held on, at no current
    bench.run(bench["par.charger_min_on_s"])
    assert not bench["charger.enable"]
    bench.requests.wanted["charger.enable"] = True  # asked again at once: off for its minimum time
    bench.run(bench["par.charger_min_off_s"] - 5)
    assert not bench["charger.enable"]
    bench.run(10)
    assert bench["charger.enable"] and bench["charger.current_sp"] > 0
    bench.set({"bms1.cell_5": 3.65})  # a protection does not wait for the minimum on time
    bench.run(1)
    assert not bench["charger.enable"]


def test_heater_and_fan_keep_each_state_their_minimum_time(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory)
    bench.set(shunt__current=-100.0)  # fan on
    bench.run(1)
    assert bench["fan.enable"]
    bench.set(shunt__current=0.0)
    bench.run(bench["par.climate_min_switch_s"] - 5)
    assert bench["fan.enable"]
    bench.run(10)
    assert not bench["fan.enable"]


# ---- property-based -----------------------------------------------------------------------------------

# Most draws near normal operation, so that enabled outputs are common enough to be checked; the rest
# anywhere, well past every limit: a pack of healthy cells with at most two drawn from the whole range.
volts = st.floats(2.2, 3.9)
temps = st.one_of(st.floats(5.0, 40.0), st.floats(5.0, 40.0), st.floats(-45.0, 85.0))
allowed = st.sampled_from([True, True, True, True, False])
qualities = st.sampled_from([Quality.STALE, Quality.BAD, Quality.INIT])
weird = st.one_of(st.floats(-1e4, 1e4), st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@st.composite
def packs(draw: st.DrawFn) -> dict[str, float]:
    cells = draw(st.lists(st.floats(3.0, 3.5), min_size=8, max_size=8))
    for index in draw(st.lists(st.integers(0, 7), max_size=2)):
        cells[index] = draw(st.one_of(volts, st.just(math.nan)))
    return dict(zip(CELLS, cells, strict=True))


INPUTS = {
    "bms1.temp_1": temps, "bms1.temp_2": temps,
    "bms1.charge_allowed": allowed, "bms1.discharge_allowed": allowed,
    "shunt.current": st.one_of(st.floats(-300, 300), st.just(math.nan)), "shunt.voltage": st.floats(18, 32),
    "grid.power": st.one_of(st.floats(50, 6000), st.floats(-6000, 6000)),
    "inverter.power": st.floats(0, 3000),
    "cmd.mode": st.sampled_from(["auto", "auto", "auto", "off", "force_charge", "hold"]),
}
image = st.builds(lambda pack, rest: {**pack, **rest}, packs(), st.fixed_dictionaries(INPUTS))

def usually(valid: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.one_of(valid, valid, valid, weird)


request = st.fixed_dictionaries({
    "charger.enable": st.booleans(), "charger.voltage_sp": usually(st.floats(20, 32)),
    "charger.current_sp": usually(st.floats(1, 300)),
    "inverter.enable": st.booleans(), "inverter.power_sp": usually(st.floats(1, 3000)),
})
not_good = st.dictionaries(st.sampled_from([*CELLS, *(n for n in INPUTS if n != "cmd.mode")]), qualities,
                           max_size=2)
scan_case = st.tuples(image, st.one_of(st.just({}), not_good), request)


def check_safe(bench: Any, inputs: dict[str, Any], bad: dict[str, Quality]) -> None:
    good = {name for name, value in inputs.items() if bad.get(name, Quality.GOOD) is Quality.GOOD
            and not (isinstance(value, float) and math.isnan(value))}
    cells = [inputs[c] for c in CELLS]
    temp_lo = min(inputs["bms1.temp_1"], inputs["bms1.temp_2"])
    temp_hi = max(inputs["bms1.temp_1"], inputs["bms1.temp_2"])
    battery_good = {*CELLS, "bms1.temp_1", "bms1.temp_2", "bms1.charge_allowed", "bms1.discharge_allowed"}
    if bench["charger.enable"]:
        assert battery_good <= good
        assert max(cells) < 3.65 and 0.0 <= temp_lo and temp_hi <= 65.0
        assert inputs["bms1.charge_allowed"] and inputs["cmd.mode"] != "off"
        assert 0 <= bench["charger.voltage_sp"] <= min(bench["limits.cvl"], 3.65 * N) + 1e-9
        assert 0 <= bench["charger.current_sp"] <= bench["limits.ccl"] + 1e-9
        # held on for its minimum time without a usable request: at 0 V and 0 A, it pushes nothing
        assert (bench["charger.voltage_sp"] > 0) == (bench["charger.current_sp"] > 0)
        assert not bench["inverter.enable"]
    else:
        assert bench["charger.voltage_sp"] == 0 and bench["charger.current_sp"] == 0
    if bench["inverter.enable"]:
        assert battery_good | {"grid.power", "inverter.power"} <= good
        assert min(cells) > 2.9 and -30.0 <= temp_lo and temp_hi <= 65.0
        assert inputs["bms1.discharge_allowed"] and inputs["cmd.mode"] == "auto"
        house = inputs["inverter.power"] + inputs["grid.power"]
        assert 0 <= bench["inverter.power_sp"] <= max(0.0, house) + 1e-9  # never more than the house draws
        assert bench["inverter.power_sp"] <= bench["limits.dcl"] * bench["bat.voltage"] + 1e-9
    else:
        assert bench["inverter.power_sp"] == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(scan_case, min_size=1, max_size=6))
def test_random_images_never_break_a_limit(bench_factory: Any, scans: list[Any]) -> None:
    bench = interlock_bench(bench_factory, period=61.0)  # scans longer than the limits' hold: all paths open
    for inputs, bad, wanted in scans:
        bench.set(inputs)
        for name, quality in bad.items():
            bench.bad(name, quality=quality)
        bench.requests.wanted = dict(wanted)
        bench.step()
        check_safe(bench, inputs, bad)
        on = "charging" if bench["charger.enable"] else "discharging" if bench["inverter.enable"] else "idle"
        event(on)


def test_inputs_missing_at_start_are_no_trip_but_lost_later_are(bench_factory: Any) -> None:
    bench = interlock_bench(bench_factory)
    bench.bad("grid.power", quality=Quality.INIT)  # the meter has not answered since the start
    bench.run(3)
    assert bench["alarm.input_bad"] and bench["interlock.trips"] == 0
    bench.set(grid__power=100.0)
    bench.run(1)
    assert not bench["alarm.input_bad"]
    bench.bad("grid.power", quality=Quality.STALE)
    bench.run(1)
    assert bench["alarm.input_bad"] and bench["interlock.trips"] == 1
