"""``PlantConfig``: everything that differs between sites and scenarios. Defaults are the default site (8S of
CATL LEP71H3L7-01 320 Ah, seed 000; a JK BMS; a SmartShunt; a charger module; a grid-tie inverter; a meter).

No field is read from the controller's configuration: a scenario sets them (its ``plant:`` map), or the
defaults below hold, each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.plantsim.plant.cells import SELF_DISCHARGE_PCT_PER_MONTH


@dataclass
class PlantConfig:
    """The plant's parameters. SoC is a FRACTION 0..1 here (the scenario file takes percent)."""

    packs: int = 1  # packs in parallel on one DC bus, each a series string with its own BMS
    pack_resistance_spread_pct: float = 10.0  # max-min of the packs' resistances (cables, busbars), % of nominal
    cells_series: int = 8
    capacity_ah: float = 320.0  # nominal capacity of one series element (a 2P block counts as one cell)
    soc: float = 0.5  # initial mean SoC as a FRACTION 0..1 (not percent; > 1 is refused)
    hysteresis: float = 0.0  # initial OCV hysteresis state: -1 after a discharge .. +1 after a charge
    temperature_c: float = 20.0  # initial pack temperature
    ambient_c: float = 20.0  # ambient until the first step() says otherwise
    cell_spread_mv: float = 3.0  # max-min cell voltage at mid SoC, produced by an initial SoC spread
    capacity_spread_pct: float = 1.0  # max-min of per-cell capacities, % of nominal
    high_cell: int | None = None  # index of a cell (of pack 1) that "runs high" (higher SoC, less capacity)
    high_cell_soc_offset: float = 0.02  # SoC fraction above the highest regular cell
    high_cell_capacity_factor: float = 0.98
    cell_resistance_mohm: float = 0.25  # DC at 25 degC mid-SoC incl. busbars (seed 000: 0.18 mOhm at 1 kHz)
    self_discharge_pct_per_month: float = SELF_DISCHARGE_PCT_PER_MONTH
    seed: int = 1  # the spread is pseudo-random but reproducible

    # thermal (lumped pack + cabinet)
    # None: 18.75 J/K per Ah of cell (a 320 Ah cell is ~5.4 kg at ~1.1 kJ/kgK)
    heat_capacity_j_per_k: float | None = None
    ua_natural_w_per_k: float = 2.5  # natural convection, enough at low rate (seed 001)
    ua_fan_w_per_k: float = 12.0  # forced air with the cabinet fan on (seed 001)
    heater_w: float = 120.0  # JK heating relay pads, per pack
    fan_w: float = 8.0
    sensor_gradient_k_per_w: float = 0.01  # hot-spot sensor: rise above the lump per W of internal heat
    sensor_wall_coupling: float = 0.05  # wall sensor: fraction of the way from the lump to ambient

    # BMS (JK-style): seed 000's cut-offs; the release points are the JK's usual recovery settings
    # False: the BMS never blocks (a broken BMS, to test the controller's own interlocks)
    bms_protect: bool = True
    cell_ovp_v: float = 3.65
    cell_ovpr_v: float = 3.55
    cell_uvp_v: float = 2.50
    cell_uvpr_v: float = 2.80
    charge_otp_c: float = 65.0
    charge_otpr_c: float = 60.0
    charge_utp_c: float = 0.0
    charge_utpr_c: float = 2.0
    discharge_otp_c: float = 65.0
    discharge_otpr_c: float = 60.0
    discharge_utp_c: float = -30.0
    discharge_utpr_c: float = -25.0
    bms_reconnect_s: float = 5.0  # a released cause closes the MOSFET only after this long (JK recovery delay)
    balancer_a: float = 2.0  # seed 000: 2 A active balancing; 0 disables
    balance_start_v: float = 3.40
    balance_trigger_v: float = 0.010
    balancer_efficiency: float = 0.9

    # charger module (DC into the battery): its own limits, whatever it is told
    charger_max_power_w: float = 5000.0
    charger_max_current_a: float = 160.0  # 0.5C of 320 Ah (seed 000's standard charge)
    charger_max_voltage_v: float | None = None  # None: 3.65 V per cell (seed 000's charge voltage)
    charger_efficiency: float = 0.94
    charger_cable_mohm: float = 10.0  # wiring + connectors between charger and pack

    # grid-tie inverter
    inverter_start_delay_s: float = 30.0  # grid check before it delivers (VDE-AR-N 4105: ~30 s or more)
    inverter_min_w: float = 53.0
    inverter_max_w: float = 2000.0
    inverter_tau_s: float = 2.0  # first-order response of the AC power to the setpoint
    inverter_idle_w: float = 10.0  # DC loss at any output: control, relays (efficiency curve)
    inverter_loss_w_per_kw2: float = 15.0  # conduction loss: 15 W at 1 kW, 60 W at 2 kW (efficiency curve)

    # grid meter
    meter_update_s: float = 1.0  # the meter refreshes its registers this often

    # the fuse on each pack's positive (seed 000: 250 A ANL)
    fuse_a: float = 250.0

    # shunt (Victron SmartShunt style)
    shunt_charged_v_per_cell: float = 3.45
    shunt_tail_pct: float = 4.0
    shunt_detect_s: float = 180.0
    shunt_charge_efficiency: float = 0.99
