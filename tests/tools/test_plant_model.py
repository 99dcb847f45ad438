"""Tests of the pure plant model (tools/plantsim/plant/): the published LFP curve with hysteresis, resistance
and capacity vs temperature, cells and spread, BMS cut-offs with
hysteresis, charger CC/CV, inverter start delay and minimum, grid meter sign, energy counters, thermal model
and the independent safety monitor."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.plantsim.model import (
    OCV_MID,
    Cell,
    Plant,
    PlantConfig,
    ocv,
    soc_from_ocv,
)
from tools.plantsim.plant.cells import capacity_factor, resistance_soc_factor, resistance_temperature_factor


def make(**kw: object) -> Plant:
    return Plant.from_config(PlantConfig(**kw))  # type: ignore[arg-type]


def run(
    plant: Plant,
    seconds: float,
    dt: float = 1.0,
    pv: float = 0.0,
    house: float = 0.0,
    ambient: float = 20.0,
    until: Callable[[Plant], bool] | None = None,
) -> bool:
    """Step the plant for up to ``seconds``; stop early (and return True) once ``until`` holds."""
    t = 0.0
    while t < seconds:
        plant.step(dt, pv, house, ambient)
        t += dt
        if until is not None and until(plant):
            return True
    return False


def start_charging(plant: Plant, voltage_sp: float, current_sp: float) -> None:
    plant.charger.enable = True
    plant.charger.voltage_sp = voltage_sp
    plant.charger.current_sp = current_sp


def start_inverter(plant: Plant, power_sp: float) -> None:
    plant.inverter.enable = True
    plant.inverter.power_sp = power_sp


# --- OCV curve --------------------------------------------------------------------------------------------


def test_ocv_shape_ends_and_plateaus() -> None:
    """The published LFP shape: knee below 10 %, two plateaus, steep top; clamped outside 0..1."""
    assert ocv(0.0) == pytest.approx(2.50)
    assert 3.55 <= ocv(1.0) <= 3.65
    assert 3.15 <= ocv(0.10) <= 3.25  # the knee is over by 10 %
    for k in range(20, 60):
        assert 3.25 <= ocv(k / 100) <= 3.30  # the low plateau
    for k in range(70, 95):
        assert 3.315 <= ocv(k / 100) <= 3.345  # the high plateau, after the stage step near 65 %
    assert ocv(-0.5) == ocv(0.0)
    assert ocv(1.5) == ocv(1.0)


def test_ocv_grid_reproduces_table() -> None:
    for soc, volts in OCV_MID:
        assert ocv(soc) == pytest.approx(volts, abs=1e-12)


@given(st.floats(0.02, 0.95))
def test_hysteresis_charge_branch_above_discharge_branch(soc: float) -> None:
    gap = ocv(soc, 1.0) - ocv(soc, -1.0)
    assert 0.009 <= gap <= 0.040  # Dreyer et al. 2010: some 10-30 mV in LFP's plateaus


def test_hysteresis_state_follows_the_current() -> None:
    plant = make(soc=0.5, hysteresis=-1.0)
    start_charging(plant, 29.0, 32.0)  # 0.1C: 5 % of capacity in 30 min
    run(plant, 7200.0)
    assert plant.pack.hysteresis > 0.8
    rest = plant.pack.ocv()
    plant.charger.enable = False
    start_inverter(plant, 1000.0)
    run(plant, 3600.0)
    assert plant.pack.hysteresis < -0.5 and plant.pack.ocv() < rest


def test_resistance_rises_in_the_cold_and_when_empty() -> None:
    assert resistance_temperature_factor(25.0) == pytest.approx(1.0)
    assert 1.8 < resistance_temperature_factor(0.0) < 2.5
    assert 3.5 < resistance_temperature_factor(-20.0) < 5.0
    assert resistance_soc_factor(0.02) > 2.0 > resistance_soc_factor(0.5) == 1.0


def test_capacity_in_the_cold_reaches_the_floor_earlier() -> None:
    """At 0 degC a cell delivers ~88 % of its 25 degC capacity: the BMS cuts with charge still inside."""
    assert capacity_factor(-20.0) == pytest.approx(0.70) and capacity_factor(25.0) == 1.0
    cuts = {}
    for temp in (25.0, 0.0):
        plant = make(soc=0.3, temperature_c=temp, ambient_c=temp, ua_natural_w_per_k=1e-9)
        start_inverter(plant, 1500.0)
        assert run(plant, 86400.0, until=lambda p: not p.bms.discharge_allowed)
        cuts[temp] = plant.soc
    assert cuts[0.0] > cuts[25.0] + 0.08


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_ocv_strictly_increasing(a: float, b: float) -> None:
    if a < b:
        assert ocv(a) < ocv(b) or b - a < 1e-12
    elif b < a:
        assert ocv(b) < ocv(a) or a - b < 1e-12


@given(st.floats(0.0, 1.0))
def test_soc_from_ocv_inverts_ocv(soc: float) -> None:
    assert soc_from_ocv(ocv(soc)) == pytest.approx(soc, abs=1e-9)


def test_soc_from_ocv_clamps() -> None:
    assert soc_from_ocv(2.0) == 0.0
    assert soc_from_ocv(4.0) == 1.0


# --- Cell -------------------------------------------------------------------------------------------------


def test_cell_terminal_voltage_and_integration() -> None:
    cell = Cell(capacity_ah=320.0, soc=0.5, resistance_ohm=0.25e-3, self_discharge_pct_per_month=0.0)
    assert cell.terminal_voltage(100.0) == pytest.approx(ocv(0.5) + 0.025)
    assert cell.terminal_voltage(-100.0) == pytest.approx(ocv(0.5) - 0.025)
    cell.step(360.0, 320.0)  # 32 Ah into 320 Ah
    assert cell.soc == pytest.approx(0.6)
    cell.step(3600.0 * 10, 320.0)
    assert cell.soc == 1.0
    cell.step(3600.0 * 10, -320.0)
    assert cell.soc == 0.0


def test_cell_self_discharge_per_month() -> None:
    cell = Cell(soc=0.5)
    for _ in range(30):
        cell.step(86400.0, 0.0)
    assert cell.soc == pytest.approx(0.5 - 0.035, abs=1e-6)


# --- Pack, spread, 4S variant -----------------------------------------------------------------------------


def test_default_pack_is_8s_24v() -> None:
    plant = make()
    assert len(plant.cell_voltages) == 8
    assert 25.0 < plant.pack_voltage < 27.5
    assert plant.soc == pytest.approx(0.5, abs=1e-9)


def test_4s_200ah_variant() -> None:
    plant = make(cells_series=4, capacity_ah=200.0, soc=0.8, cell_spread_mv=0.0)
    assert len(plant.cell_voltages) == 4
    assert plant.pack_voltage == pytest.approx(4 * ocv(0.8), abs=0.01)
    start_charging(plant, 14.2, 20.0)
    run(plant, 3600)
    # 20 A for one hour into 200 Ah: +10 %
    assert plant.soc == pytest.approx(0.9, abs=0.005)
    assert plant.shunt.soc_permille == pytest.approx(900, abs=5)


def test_soc_is_a_fraction() -> None:
    with pytest.raises(ValueError):
        make(soc=50.0)
    with pytest.raises(ValueError):
        make(high_cell=8)


@pytest.mark.parametrize("spread_mv", [2.0, 5.0, 10.0])
def test_cell_spread_at_mid_soc_and_growing_at_the_ends(spread_mv: float) -> None:
    mid = make(soc=0.5, cell_spread_mv=spread_mv)
    assert (mid.cell_v_max - mid.cell_v_min) * 1000 == pytest.approx(spread_mv, rel=0.05)
    top = make(soc=0.96, cell_spread_mv=spread_mv)
    bottom = make(soc=0.06, cell_spread_mv=spread_mv)
    assert top.cell_v_max - top.cell_v_min > 2 * (mid.cell_v_max - mid.cell_v_min)
    assert bottom.cell_v_max - bottom.cell_v_min > 2 * (mid.cell_v_max - mid.cell_v_min)


def test_high_cell_reaches_the_limit_first() -> None:
    plant = make(soc=0.9, high_cell=5, balancer_a=0.0)
    start_charging(plant, 30.0, 100.0)
    tripped = run(plant, 4 * 3600, until=lambda p: not p.charge_allowed)
    assert tripped
    assert plant.bms.charge_block_reason == "cell_ov"
    volts = plant.cell_voltages
    assert max(range(8), key=lambda k: volts[k]) == 5
    others = [v for k, v in enumerate(volts) if k != 5]
    assert max(others) < 3.55  # the rest are still well below the cut-off
    assert plant.cell_v_max_seen <= 3.65


# --- Charger CC/CV ----------------------------------------------------------------------------------------


def test_charger_cc_then_cv_taper() -> None:
    plant = make(soc=0.6, cell_spread_mv=0.0, balancer_a=0.0)
    v_sp = 8 * 3.55
    start_charging(plant, v_sp, 100.0)
    currents: list[float] = []
    for _ in range(6 * 3600 // 60):
        run(plant, 60)
        currents.append(plant.battery_current)
    assert currents[0] == pytest.approx(100.0)  # CC
    cv_start = next(k for k, i in enumerate(currents) if i < 99.0)
    assert cv_start > 10
    tail = currents[cv_start:]
    # tapers monotonically (down to the float that balances self-discharge, where it may wobble by mA)
    assert all(b <= a + 0.01 for a, b in zip(tail, tail[1:], strict=False))
    assert tail[-1] < 0.05 * 320  # below the 0.05C end-of-charge current
    assert plant.pack_voltage <= v_sp
    assert plant.charge_allowed
    assert plant.charger_current == plant.battery_current


def test_charger_power_limit_and_ac_draw() -> None:
    plant = make(soc=0.5, charger_max_current_a=300.0)
    start_charging(plant, 29.0, 300.0)
    plant.step(1.0, 0.0, 0.0, 20.0)
    assert plant.charger.dc_power == pytest.approx(5000.0, rel=1e-6)
    assert plant.charger_ac_power == pytest.approx(5000.0 / 0.94, rel=1e-6)
    assert plant.battery_current < 300.0


def test_charger_never_reverses() -> None:
    plant = make(soc=0.5)
    start_charging(plant, 20.0, 100.0)  # setpoint below the pack voltage
    run(plant, 10)
    assert plant.battery_current == 0.0
    assert plant.charger_ac_power == 0.0


# --- BMS cut-offs and hysteresis --------------------------------------------------------------------------


def test_charge_stops_at_3v65_and_releases_below_3v55() -> None:
    plant = make(soc=0.95, balancer_a=0.0)
    start_charging(plant, 30.0, 100.0)
    assert run(plant, 3 * 3600, until=lambda p: not p.charge_allowed)
    assert plant.bms.charge_block_reason == "cell_ov"
    assert plant.bms_trips == 1
    assert plant.bms.charge_trips == 1
    assert plant.battery_current == 0.0
    assert plant.charger_current == 0.0
    assert plant.bms.soc_pct == 100.0
    # stays blocked while resting and charging is still asked for
    run(plant, 600)
    assert not plant.charge_allowed
    assert plant.battery_current == 0.0
    # discharge a little: released only once the highest cell is below 3.55 V, after the reconnect delay
    start_inverter(plant, 1000.0)
    below_since, t = None, 0
    while plant.charge_allowed is False:
        plant.step(1.0, 0.0, 0.0, 20.0)
        t += 1
        if below_since is None and plant.cell_v_max < 3.55:
            below_since = t
    assert below_since is not None and t - below_since == plant.config.bms_reconnect_s - 1
    assert plant.cell_v_max < 3.55
    assert plant.cell_v_max_seen <= 3.65
    assert plant.safety_violations == 0


def test_charge_blocked_above_65c_released_below_60c() -> None:
    plant = make(soc=0.5, temperature_c=70.0, ambient_c=20.0)
    assert not plant.charge_allowed
    assert not plant.discharge_allowed
    assert plant.bms_trips == 0  # a hot power-up is not a trip
    start_charging(plant, 28.4, 50.0)
    plant.fan_on = True
    seen_blocked_at_61 = False
    while not plant.charge_allowed:
        assert plant.battery_current == 0.0
        if 60.0 < plant.temp_max < 62.0:
            seen_blocked_at_61 = True
        plant.step(1.0, 0.0, 0.0, 20.0)
    assert seen_blocked_at_61  # not released at 65 degC: hysteresis
    assert plant.temp_max < 60.0
    assert plant.discharge_allowed
    assert plant.safety_violations == 0


def test_charge_trips_below_0c_and_heater_releases_above_2c() -> None:
    plant = make(soc=0.5, temperature_c=3.0, ambient_c=-10.0)
    assert plant.charge_allowed
    assert run(plant, 24 * 3600, ambient=-10.0, until=lambda p: not p.charge_allowed)
    assert plant.bms.charge_block_reason == "temp_low"
    assert plant.bms.charge_trips == 1
    assert plant.discharge_allowed  # LFP may discharge well below 0 degC
    start_charging(plant, 28.4, 50.0)
    run(plant, 60, ambient=-10.0)
    assert plant.battery_current == 0.0
    plant.heater_on = True
    released = run(plant, 24 * 3600, ambient=-10.0, until=lambda p: p.charge_allowed)
    assert released
    assert plant.temp_min > 2.0
    run(plant, 10, ambient=-10.0)
    assert plant.battery_current > 0.0
    assert plant.safety_violations == 0


def test_discharge_stops_at_2v5_and_releases_above_2v8() -> None:
    plant = make(soc=0.04, balancer_a=0.0)
    start_inverter(plant, 2000.0)
    assert run(plant, 3 * 3600, until=lambda p: not p.discharge_allowed)
    assert plant.bms.discharge_block_reason == "cell_uv"
    assert plant.bms.discharge_trips == 1
    # the inverter loses its DC and stops in the same step
    assert plant.inverter_power == 0.0
    assert plant.battery_current == 0.0
    assert not plant.inverter.running
    assert plant.cell_v_min_seen >= 2.5
    assert plant.bms.soc_pct == 0.0
    # recharge slowly: the discharge MOSFET only closes again above 2.8 V
    start_charging(plant, 28.0, 5.0)
    while not plant.discharge_allowed:
        plant.step(1.0, 0.0, 0.0, 20.0)
    assert plant.cell_v_min > 2.8
    assert plant.safety_violations == 0


def test_discharge_blocked_below_minus_30c() -> None:
    plant = make(soc=0.5, temperature_c=-35.0, ambient_c=-35.0)
    assert not plant.discharge_allowed
    assert plant.bms.discharge_block_reason == "temp_low"
    start_inverter(plant, 500.0)
    run(plant, 120, ambient=-35.0)
    assert plant.inverter_power == 0.0
    assert plant.battery_current == 0.0
    plant.heater_on = True
    assert run(plant, 24 * 3600, ambient=-35.0, until=lambda p: p.discharge_allowed)
    assert plant.temp_min > -25.0


def test_bms_online_flag_is_only_stored() -> None:
    plant = make()
    plant.bms.online = False
    start_charging(plant, 28.4, 50.0)
    run(plant, 10)
    assert plant.battery_current == pytest.approx(50.0)


def test_unprotected_bms_lets_a_violation_through_and_the_monitor_counts_it() -> None:
    plant = make(soc=0.97, bms_protect=False, balancer_a=0.0)
    start_charging(plant, 30.0, 100.0)
    run(plant, 2 * 3600)
    assert plant.charge_allowed  # the broken BMS never blocks
    assert plant.bms_trips == 0
    assert plant.cell_v_max_seen > 3.65
    assert plant.safety_violations > 0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.floats(24.0, 30.0),
            st.floats(0.0, 160.0),
            st.booleans(),
            st.floats(0.0, 2500.0),
            st.floats(-40.0, 70.0),
        ),
        min_size=1,
        max_size=30,
    ),
    st.floats(0.0, 1.0),
)
def test_protecting_bms_never_lets_a_violation_through(
    commands: list[tuple[bool, float, float, bool, float, float]], soc: float
) -> None:
    plant = make(soc=soc, cell_spread_mv=8.0, high_cell=2)
    for chg_on, v_sp, i_sp, inv_on, p_sp, ambient in commands:
        plant.charger.enable = chg_on
        plant.charger.voltage_sp = v_sp
        plant.charger.current_sp = i_sp
        plant.inverter.enable = inv_on
        plant.inverter.power_sp = p_sp
        run(plant, 1800, dt=30.0, ambient=ambient)
        assert 0.0 <= plant.soc <= 1.0
    assert plant.safety_violations == 0


# --- Inverter ---------------------------------------------------------------------------------------------


def test_inverter_start_delay_lag_minimum_and_stop() -> None:
    plant = make(soc=0.7)
    start_inverter(plant, 500.0)
    for _ in range(29):
        plant.step(1.0, 0.0, 1000.0, 20.0)
        assert plant.inverter_power == 0.0
    run(plant, 1, house=1000.0)
    assert plant.inverter.running
    assert 53.0 <= plant.inverter_power < 500.0  # connects at its minimum, then ramps (first-order lag)
    run(plant, 2, house=1000.0)
    assert 200.0 < plant.inverter_power < 450.0
    run(plant, 20, house=1000.0)
    assert plant.inverter_power == pytest.approx(500.0, abs=1.0)
    # DC draw = AC / efficiency
    assert -plant.battery_power == pytest.approx(500.0 + 10.0 + 15.0 * 0.5**2, rel=1e-3)  # the efficiency curve
    # a setpoint below the minimum still gives the minimum while on
    plant.inverter.power_sp = 10.0
    run(plant, 30, house=1000.0)
    assert plant.inverter_power == pytest.approx(53.0, abs=0.1)
    # and above the maximum, the maximum
    plant.inverter.power_sp = 5000.0
    run(plant, 30, house=3000.0)
    assert plant.inverter_power == pytest.approx(2000.0, abs=0.1)
    # stops at once when disabled, and starts over with the full delay
    plant.inverter.enable = False
    run(plant, 1, house=1000.0)
    assert plant.inverter_power == 0.0
    assert plant.battery_current == 0.0
    plant.inverter.enable = True
    run(plant, 29, house=1000.0)
    assert plant.inverter_power == 0.0
    run(plant, 1, house=1000.0)
    assert plant.inverter_power > 0.0


# --- Grid meter, energy counters, shunt -------------------------------------------------------------------


def test_grid_power_sign() -> None:
    plant = make(soc=0.5)
    plant.step(1.0, 0.0, 500.0, 20.0)
    assert plant.grid_power == pytest.approx(500.0)  # import
    plant.step(1.0, 1000.0, 200.0, 20.0)
    assert plant.grid_power == pytest.approx(-800.0)  # export
    assert plant.pv_power == 1000.0
    assert plant.house_power == 200.0
    start_charging(plant, 28.4, 50.0)
    plant.step(1.0, 1000.0, 200.0, 20.0)
    assert plant.grid_power == pytest.approx(200.0 + plant.charger_ac_power - 1000.0)
    plant.charger.enable = False
    start_inverter(plant, 300.0)
    run(plant, 60, house=500.0)
    assert plant.grid_power == pytest.approx(500.0 - plant.inverter_power)
    assert plant.grid_power == pytest.approx(200.0, abs=1.0)


def test_heater_and_fan_are_house_loads() -> None:
    plant = make()
    plant.heater_on = True
    plant.fan_on = True
    plant.step(1.0, 0.0, 100.0, 20.0)
    assert plant.house_power == pytest.approx(100.0 + 120.0 + 8.0)
    assert plant.grid_power == pytest.approx(plant.house_power)


def test_energy_counters() -> None:
    plant = make(soc=0.3)
    start_charging(plant, 29.0, 100.0)
    expected_in = 0.0
    for _ in range(3600):
        plant.step(1.0, 0.0, 0.0, 20.0)
        expected_in += plant.battery_power / 3.6e6
    assert plant.charged_kwh == pytest.approx(expected_in)
    assert plant.charged_kwh == pytest.approx(100 * 26.7 / 1000, rel=0.03)
    assert plant.discharged_kwh == 0.0
    cable_loss_kwh = 100.0**2 * 0.010 * 1.0 / 1000  # 100 A through the 10 mOhm charger cable for 1 h
    assert plant.grid_import_kwh == pytest.approx((plant.charged_kwh + cable_loss_kwh) / 0.94, rel=0.005)
    plant.charger.enable = False
    run(plant, 3600, pv=1000.0)
    assert plant.grid_export_kwh == pytest.approx(1.0)
    start_inverter(plant, 1000.0)
    run(plant, 3600)  # no house load: all of it exported
    assert plant.discharged_kwh == pytest.approx(1.0 / plant.inverter.efficiency(1000.0), rel=0.02)
    assert plant.grid_export_kwh == pytest.approx(2.0, rel=0.02)


def test_shunt_values() -> None:
    plant = make(soc=0.5)
    start_inverter(plant, 1000.0)
    run(plant, 600)
    shunt = plant.shunt
    assert shunt.voltage == plant.pack_voltage
    assert shunt.current == plant.battery_current < 0
    assert shunt.power == pytest.approx(plant.battery_power)
    assert shunt.consumed_ah < -160.0
    assert 480 <= shunt.soc_permille < 500
    remaining_ah = shunt.soc_permille / 1000 * 320
    assert shunt.time_to_go_min == pytest.approx(remaining_ah / -shunt.current * 60, rel=0.01)
    assert shunt.temperature == pytest.approx(plant.temp_max, abs=1.0)
    plant.inverter.enable = False
    run(plant, 1)
    assert shunt.time_to_go_min == -1.0


# --- Thermal ----------------------------------------------------------------------------------------------


def test_heater_warms() -> None:
    cold = make(temperature_c=-5.0, ambient_c=-5.0)
    heated = make(temperature_c=-5.0, ambient_c=-5.0)
    heated.heater_on = True
    run(cold, 3600, ambient=-5.0)
    run(heated, 3600, ambient=-5.0)
    assert cold.temp_max == pytest.approx(-5.0, abs=0.01)
    assert heated.temp_min > cold.temp_min + 3.0
    assert heated.temp_max_seen == heated.temp_max


def test_fan_cools() -> None:
    still = make(temperature_c=40.0, ambient_c=20.0)
    fanned = make(temperature_c=40.0, ambient_c=20.0)
    fanned.fan_on = True
    run(still, 3600)
    run(fanned, 3600)
    assert still.temp_max < 40.0
    assert fanned.temp_max < still.temp_max - 5.0
    assert fanned.temp_min_seen == fanned.temp_min


def test_charging_current_heats_the_pack() -> None:
    idle = make(soc=0.2)
    charging = make(soc=0.2)
    start_charging(charging, 29.0, 150.0)
    run(idle, 3600)
    run(charging, 3600)
    assert charging.temp_max > idle.temp_max + 0.5
    assert len(charging.temperatures) == 2
    assert charging.temp_max == max(charging.temperatures)
    assert charging.temp_min == min(charging.temperatures)


# --- device dynamics and packs ----------------------------------------------------------------------------


def test_charger_keeps_to_its_own_voltage_limit() -> None:
    plant = make(soc=0.5, charger_max_voltage_v=27.0, balancer_a=0.0)
    start_charging(plant, 40.0, 100.0)  # told 40 V: it stops at its own 27 V
    run(plant, 4 * 3600)
    assert plant.charger.output_voltage <= 27.0 + 1e-9
    assert plant.charger_current < 50.0  # tapering in CV at 27 V, far below the 100 A asked for


def test_meter_refreshes_at_its_interval() -> None:
    plant = make(meter_update_s=5.0)
    seen = []
    for k in range(10):
        plant.step(1.0, 0.0, 100.0 * k, 20.0)
        seen.append(plant.meter.house_power)
    assert seen == [0.0] * 5 + [500.0] * 5  # refreshed at the first step and then every 5 s


def test_inverter_efficiency_curve() -> None:
    inv = make().inverter
    assert inv.efficiency(53.0) == pytest.approx(0.84, abs=0.01)
    assert inv.efficiency(500.0) > inv.efficiency(100.0) > inv.efficiency(53.0)
    assert 0.95 < inv.efficiency(2000.0) < 0.97


def test_two_packs_share_by_resistance_and_each_bms_measures_its_own() -> None:
    from tools.plantsim.devices import MEASURED

    plant = make(packs=2, soc=0.5, pack_resistance_spread_pct=20.0)
    start_charging(plant, 28.5, 100.0)
    run(plant, 60)
    low_r, high_r = plant.packs  # pack 1 has the lower resistance: it takes more
    assert low_r.current > high_r.current > 0 and low_r.current + high_r.current == pytest.approx(100.0, abs=1)
    assert MEASURED["bms2.current"](plant) == high_r.current and MEASURED["bms1.current"](plant) == low_r.current
    assert MEASURED["bms3.voltage"](plant) == 0.0  # no third pack: its registers read 0
    assert plant.capacity_ah == 640.0 and plant.shunt.capacity_ah == 640.0
