"""interlocks: the safety program. It runs last in every scan and has the final word on every output.

The charts stage what they want (charger on at a voltage and current, inverter on at a power); this block
passes it through only inside the limits, else it turns the device off. Each limit has a latch with
hysteresis so an output does not chatter at the threshold.

No charging (charger off) while:
  * a required input is not GOOD or not a number (also raises ``alarm.input_bad``);
  * any cell is at or above ``par.cell_v_charge_max`` (3.65 V, seed 000) until all are below
    ``par.cell_v_charge_resume``; any cell temperature above ``par.charge_temp_max`` (65) or below
    ``par.charge_temp_min`` (0 degC), released ``par.temp_hysteresis`` inside;
  * the BMS forbids charging, ``limits.ccl`` is 0, or ``cmd.mode`` is off.
  Otherwise the voltage setpoint is cut to ``limits.cvl`` and to 3.65 V x ``par.cells_series``, the current
  setpoint to ``limits.ccl``.
No discharging (inverter off) while:
  * a required input is not GOOD;
  * any cell is at or below ``par.cell_v_min`` (2.9 V) until all are at ``par.cell_v_min_resume``; a cell
    temperature below ``par.discharge_temp_min`` (-30) or above ``par.discharge_temp_max`` (65 degC);
  * the BMS forbids it, ``limits.dcl`` is 0, ``cmd.mode`` is not auto, or the charger is on (energy
    would only cycle through the battery; the unload chart has priority, so the charger is the one dropped);
  * the grid has been exporting more than ``par.export_trip_w`` for ``par.export_trip_s`` with the inverter
    on (``alarm.export``, until the chart lets go of the inverter).
  Otherwise the power setpoint is cut to what the house draws (inverter power + grid import), so battery
  energy is never exported, and to ``limits.dcl`` x battery voltage.
Heater (seed 000: no charging below 0 degC): on while charging is wanted (a chart asks the charger for a
voltage above the battery's) and the coldest cell is below ``par.heater_on_temp`` (5), off at
``par.heater_off_temp`` (10). Cabinet fan (seed 001: forced air at high
rate): on at ``par.fan_on_temp`` or a current of ``par.fan_on_c_rate`` x capacity, off below
``par.fan_off_temp`` and 80 % of that current.

No chatter (issue 14): the charger, once on, stays enabled ``par.charger_min_on_s`` (at 0 A when no chart
wants it) and once off stays off ``par.charger_min_off_s``; the inverter stays off ``par.inverter_min_off_s``;
heater and fan keep each state ``par.climate_min_switch_s``. A protection cuts any of them at once.
A pack too cold to charge is the state ``bat.too_cold_to_charge``, not ``alarm.temp`` (normal on a winter
night); ``alarm.temp`` is a pack too hot to charge or outside the discharge range.

``interlock.trips`` counts every time a protection latch trips (retained); inputs that are not there yet
after a start are no trip, inputs lost later are.
"""

from __future__ import annotations

import math

from programs._common import MinOnOff, latch, readings
from programs.schedule import FORCE_CHARGE, HOLD, OFF
from runtime.program import FunctionBlock, ScanContext, TagGroup

BATTERY_INPUTS = ("bat.cell_v_max", "bat.cell_v_min", "bat.temp_max", "bat.temp_min", "bat.voltage",
                  "bat.current", "bms.charge_allowed", "bms.discharge_allowed")
GRID_INPUTS = ("grid.power", "inverter.power")
FAN_CURRENT_RELEASE = 0.8  # the fan stops once the current is below 80 % of its switch-on current

CAUSES = ("cell_high", "cell_low", "temp_charge", "temp_discharge", "export", "input_bad")


BATTERY, GRID = TagGroup(BATTERY_INPUTS), TagGroup(GRID_INPUTS)


def usable(ctx: ScanContext, inputs: TagGroup) -> bool:
    """GOOD and a real number: a NaN compares false with every limit and would trip nothing."""
    return readings(inputs.quality(ctx), inputs.staged(ctx))


def finite(value: float) -> float:
    """A setpoint as a number we may send: NaN or negative becomes 0 (a bad expression must not pass)."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else 0.0


class Interlocks(FunctionBlock):
    reads = BATTERY_INPUTS + GRID_INPUTS + (
        "limits.cvl", "limits.ccl", "limits.dcl", "cmd.mode", "par.cells_series", "par.capacity_ah",
        "par.cell_v_charge_max", "par.cell_v_charge_resume", "par.cell_v_min", "par.cell_v_min_resume",
        "par.charge_temp_min", "par.charge_temp_max", "par.discharge_temp_min", "par.discharge_temp_max",
        "par.temp_hysteresis", "par.heater_on_temp", "par.heater_off_temp", "par.fan_on_temp",
        "par.fan_off_temp", "par.fan_on_c_rate", "par.export_trip_w", "par.export_trip_s",
        "par.charger_min_on_s", "par.charger_min_off_s", "par.inverter_min_off_s", "par.climate_min_switch_s")
    writes = ("charger.enable", "charger.voltage_sp", "charger.current_sp", "inverter.enable",
              "inverter.power_sp", "heater.enable", "fan.enable", "interlock.trips",
              "interlock.charge_blocked", "interlock.discharge_blocked", "alarm.input_bad", "alarm.cell_high",
              "alarm.cell_low", "alarm.temp", "alarm.export", "bat.too_cold_to_charge")

    def __init__(self, name: str, site: object = None) -> None:
        super().__init__(name, site)
        self.active = dict.fromkeys(CAUSES, False)
        self.inputs_seen = False  # inputs were all usable once: before that (start-up) bad ones are no trip
        self.export_timer = 0.0
        self.heater = False
        self.fan = False
        self.switches = {name: MinOnOff() for name in ("charger", "inverter", "heater", "fan")}

    def scan(self, ctx: ScanContext) -> None:
        staged, write = ctx.staged, ctx.write
        battery_ok = usable(ctx, BATTERY)
        grid_ok = usable(ctx, GRID)
        was = dict(self.active)
        self.active["input_bad"] = not (battery_ok and grid_ok)
        if not self.inputs_seen:
            self.inputs_seen = not self.active["input_bad"]
            was["input_bad"] = True
        if battery_ok:
            self._battery_latches(ctx)
        want_charge = bool(staged("charger.enable"))
        want_discharge = bool(staged("inverter.enable"))
        # Charge is wanted when a chart asks for a voltage above the battery's: a keep-alive setpoint below
        # it would push no current, and must not run the heater all winter.
        wants_energy = want_charge and battery_ok and finite(staged("charger.voltage_sp")) > staged(
            "bat.voltage")
        self._export_latch(ctx, want_discharge, grid_ok)

        mode = staged("cmd.mode")
        active = self.active
        charge_ok = (battery_ok and not active["cell_high"] and not active["temp_charge"]
                     and staged("bms.charge_allowed") and staged("limits.ccl") > 0 and mode != OFF)
        discharge_ok = (battery_ok and grid_ok and not active["cell_low"] and not active["temp_discharge"]
                        and not active["export"] and staged("bms.discharge_allowed")
                        and staged("limits.dcl") > 0 and mode not in (OFF, HOLD, FORCE_CHARGE))
        discharging = self._inverter(ctx, want_discharge, not discharge_ok)
        self._charger(ctx, want_charge, not charge_ok or discharging)
        write("interlock.charge_blocked", not charge_ok)
        write("interlock.discharge_blocked", not discharge_ok)
        self._climate(ctx, battery_ok, wants_energy)

        if active != was:  # something tripped or released in this scan
            trips = sum(1 for cause in CAUSES if active[cause] and not was[cause])
            if trips:
                write("interlock.trips", staged("interlock.trips") + trips)
        write("alarm.input_bad", active["input_bad"])
        write("alarm.cell_high", active["cell_high"])
        write("alarm.cell_low", active["cell_low"])
        # A cold pack is normal on a winter night (no charge, the heater runs when one is wanted): a state, not
        # an alarm, so the operator is not called every night (issue 14, EEMUA 191).
        too_cold = active["temp_charge"] and battery_ok and staged("bat.temp_max") <= staged(
            "par.charge_temp_max") - staged("par.temp_hysteresis")
        write("bat.too_cold_to_charge", too_cold)
        write("alarm.temp", (active["temp_charge"] and not too_cold) or active["temp_discharge"])
        write("alarm.export", active["export"])

    # ---- latches ------------------------------------------------------------------------------------------

    def _battery_latches(self, ctx: ScanContext) -> None:
        staged = ctx.staged
        vmax, vmin = staged("bat.cell_v_max"), staged("bat.cell_v_min")
        tmax, tmin = staged("bat.temp_max"), staged("bat.temp_min")
        hyst = staged("par.temp_hysteresis")
        a = self.active
        a["cell_high"] = latch(a["cell_high"], vmax >= staged("par.cell_v_charge_max"),
                               vmax < staged("par.cell_v_charge_resume"))
        a["cell_low"] = latch(a["cell_low"], vmin <= staged("par.cell_v_min"),
                              vmin >= staged("par.cell_v_min_resume"))
        c_low, c_high = staged("par.charge_temp_min"), staged("par.charge_temp_max")
        a["temp_charge"] = latch(a["temp_charge"], tmin < c_low or tmax > c_high,
                                 tmin >= c_low + hyst and tmax <= c_high - hyst)
        d_low, d_high = staged("par.discharge_temp_min"), staged("par.discharge_temp_max")
        a["temp_discharge"] = latch(a["temp_discharge"], tmin < d_low or tmax > d_high,
                                    tmin >= d_low + hyst and tmax <= d_high - hyst)

    def _export_latch(self, ctx: ScanContext, want_discharge: bool, grid_ok: bool) -> None:
        staged = ctx.staged
        exporting = want_discharge and grid_ok and staged("grid.power") < -staged("par.export_trip_w")
        self.export_timer = self.export_timer + ctx.dt if exporting else 0.0
        # Latched until the chart lets go of the inverter: it must stop and start again, not flutter.
        self.active["export"] = want_discharge and (self.active["export"] or
                                                    self.export_timer >= staged("par.export_trip_s"))

    # ---- outputs ------------------------------------------------------------------------------------------

    def _charger(self, ctx: ScanContext, want: bool, blocked: bool) -> None:
        """On within the limits; once on it stays enabled par.charger_min_on_s (at 0 A if no chart wants it),
        once off it stays off par.charger_min_off_s; a block cuts it at once."""
        staged, write = ctx.staged, ctx.write
        on = self.switches["charger"].update(want, blocked, ctx.dt, staged("par.charger_min_on_s"),
                                             staged("par.charger_min_off_s"))
        voltage = current = 0.0
        if on and want:
            ceiling = staged("par.cell_v_charge_max") * staged("par.cells_series")
            voltage = min(finite(staged("charger.voltage_sp")), finite(staged("limits.cvl")), ceiling)
            current = min(finite(staged("charger.current_sp")), finite(staged("limits.ccl")))
            if voltage <= 0 or current <= 0:  # a held charger at no current, not switched off and on again
                voltage = current = 0.0
        write("charger.enable", on)
        write("charger.voltage_sp", voltage)
        write("charger.current_sp", current)

    def _inverter(self, ctx: ScanContext, want: bool, blocked: bool) -> bool:
        """On within the limits; once off it stays off par.inverter_min_off_s. No minimum on time: a held
        inverter delivers its minimum power whatever the setpoint, which could export."""
        staged = ctx.staged
        on = self.switches["inverter"].update(want, blocked, ctx.dt, 0.0, staged("par.inverter_min_off_s"))
        power = 0.0
        if on:
            house_draw = finite(staged("inverter.power") + staged("grid.power"))
            dc_limit = finite(staged("limits.dcl") * staged("bat.voltage"))
            power = min(finite(staged("inverter.power_sp")), house_draw, dc_limit)
        ctx.write("inverter.enable", on)
        ctx.write("inverter.power_sp", power)
        return on

    def _climate(self, ctx: ScanContext, battery_ok: bool, want_charge: bool) -> None:
        staged = ctx.staged
        if not battery_ok:
            self.heater = self.fan = False
        else:
            tmin, tmax = staged("bat.temp_min"), staged("bat.temp_max")
            self.heater = latch(self.heater, want_charge and tmin < staged("par.heater_on_temp"),
                                not want_charge or tmin >= staged("par.heater_off_temp"))
            fan_current = staged("par.fan_on_c_rate") * staged("par.capacity_ah")
            current = abs(staged("bat.current"))
            self.fan = not self.heater and latch(
                self.fan, tmax >= staged("par.fan_on_temp") or current >= fan_current,
                tmax < staged("par.fan_off_temp") and current < FAN_CURRENT_RELEASE * fan_current)
        hold = staged("par.climate_min_switch_s")
        heater = self.switches["heater"].update(self.heater, not battery_ok, ctx.dt, hold, hold)
        # the fan never runs with the heater (it would blow the heat away): the heater forces it off
        fan = self.switches["fan"].update(self.fan, not battery_ok or heater, ctx.dt, hold, hold)
        ctx.write("heater.enable", heater)
        ctx.write("fan.enable", fan)
