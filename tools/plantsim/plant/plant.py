"""The whole site: N packs in parallel on one DC bus, a charger and an inverter on that bus, a shunt on the
bank's main negative, a grid meter, and the oracle.

Each step: the charger works against the bank's Thevenin equivalent (the packs that may take charge), the
inverter against the packs that may deliver; the net current is shared by the packs' open-circuit voltages
and internal resistances (V_bus = (sum g_k OCV_k + I) / sum g_k, I_k = g_k (V_bus - OCV_k)), so packs at
different SoC also balance through the bus at rest. A pack whose BMS has opened the MOSFET of a direction
(or whose cable is off, ``pack.connected``) takes no current of that direction and the others carry it all.
Each BMS judges its pack's end-of-step state with that current; if one opens, the step is redone without it.

Conventions: SoC is a fraction 0..1; battery current is positive when charging; grid power is positive when
importing.
"""

from __future__ import annotations

from tools.plantsim.plant.charger import Charger
from tools.plantsim.plant.config import PlantConfig
from tools.plantsim.plant.inverter import Inverter
from tools.plantsim.plant.meter import Meter
from tools.plantsim.plant.oracle import Oracle
from tools.plantsim.plant.pack import Pack, build_cells
from tools.plantsim.plant.shunt import Shunt


def share(packs: list[Pack], rs: list[float], ocvs: list[float], total: float) -> list[float] | None:
    """Per-pack currents for a net ``total`` on the bus, respecting each pack's open MOSFETs; None if no pack
    can take it (then nothing flows)."""
    if len(packs) == 1:
        p = packs[0]
        ok = p.connected and (p.bms.charge_allowed if total > 0.0 else (p.bms.discharge_allowed or total == 0.0))
        return [total] if ok else None
    live = [k for k, p in enumerate(packs) if p.connected and (p.bms.charge_allowed or p.bms.discharge_allowed)]
    while live:
        g_sum = sum(1.0 / rs[k] for k in live)
        v_bus = (sum(ocvs[k] / rs[k] for k in live) + total) / g_sum
        currents = [0.0] * len(packs)
        blocked = []
        for k in live:
            i = (v_bus - ocvs[k]) / rs[k]
            currents[k] = i
            bms = packs[k].bms
            if (i > 0.0 and not bms.charge_allowed) or (i < 0.0 and not bms.discharge_allowed):
                blocked.append(k)
        if not blocked:
            return currents
        live = [k for k in live if k not in blocked]
    return None if total != 0.0 else [0.0] * len(packs)


def thevenin(packs: list[Pack], rs: list[float], ocvs: list[float]) -> tuple[float, float, float, float]:
    """(OCV, R) of the packs that may take charge, then of those that may deliver; R 0 where none may."""
    gc = vc = gd = vd = 0.0
    for k, p in enumerate(packs):
        if p.connected:
            g = 1.0 / rs[k]
            bms = p.bms
            if bms.charge_allowed:
                gc += g
                vc += ocvs[k] * g
            if bms.discharge_allowed:
                gd += g
                vd += ocvs[k] * g
    return (vc / gc if gc else 0.0, 1.0 / gc if gc else 0.0, vd / gd if gd else 0.0, 1.0 / gd if gd else 0.0)


class Plant:
    """Set device inputs, call :meth:`step`, read the output attributes.

    Inputs: ``charger.enable/voltage_sp/current_sp``, ``inverter.enable/power_sp``, ``heater_on``, ``fan_on``,
    ``packs[k].connected``, plus ``step()``'s pv/house/ambient arguments.
    """

    def __init__(self, config: PlantConfig | None = None) -> None:
        cfg = config if config is not None else PlantConfig()
        if cfg.cells_series < 1:
            raise ValueError("cells_series must be >= 1")
        if cfg.packs < 1:
            raise ValueError("packs must be >= 1")
        if cfg.capacity_ah <= 0:
            raise ValueError("capacity_ah must be > 0")
        if not 0.0 <= cfg.soc <= 1.0:
            raise ValueError(f"PlantConfig.soc is a fraction 0..1, got {cfg.soc}")
        if cfg.high_cell is not None and not 0 <= cfg.high_cell < cfg.cells_series:
            raise ValueError(f"high_cell {cfg.high_cell} out of range 0..{cfg.cells_series - 1}")
        self.config = cfg
        n = cfg.packs
        spread = cfg.pack_resistance_spread_pct / 100.0
        self.packs = [Pack(build_cells(cfg, cfg.seed + k, cfg.high_cell if k == 0 else None), cfg,
                           1.0 + (spread * (k / (n - 1) - 0.5) if n > 1 else 0.0)) for k in range(n)]
        self.pack = self.packs[0]
        self.bms = self.pack.bms
        self.cells = self.pack.cells
        self.n_cells = cfg.cells_series
        self.capacity_ah = cfg.capacity_ah * n
        max_v = cfg.charger_max_voltage_v if cfg.charger_max_voltage_v is not None else 3.65 * cfg.cells_series
        self.charger = Charger(cfg.charger_max_power_w, cfg.charger_max_current_a, max_v, cfg.charger_efficiency,
                               cfg.charger_cable_mohm / 1000.0)
        self.inverter = Inverter(cfg.inverter_start_delay_s, cfg.inverter_min_w, cfg.inverter_max_w,
                                 cfg.inverter_tau_s, cfg.inverter_idle_w, cfg.inverter_loss_w_per_kw2)
        self.shunt = Shunt(self.capacity_ah, cfg.soc, charged_v=cfg.shunt_charged_v_per_cell * cfg.cells_series,
                           tail_a=cfg.shunt_tail_pct / 100.0 * self.capacity_ah, detect_s=cfg.shunt_detect_s,
                           charge_efficiency=cfg.shunt_charge_efficiency)
        self.meter = Meter(cfg.meter_update_s)
        self.oracle = Oracle(cfg.fuse_a)
        self.time_s = 0.0
        self.ambient_c = cfg.ambient_c
        self.battery_current = self.battery_power = 0.0
        self.grid_power = self.pv_power = self.house_power = 0.0
        self.inverter_power = self.charger_current = self.charger_ac_power = 0.0
        self.charged_kwh = self.discharged_kwh = 0.0
        self.grid_import_kwh = self.grid_export_kwh = 0.0
        # power-up snapshot at rest, so every output is meaningful before the first step
        for p in self.packs:
            p.thermal_step(0.0, 0.0, cfg.ambient_c)
            p.snapshot(0.0, 0.0, 1.0)
            p.bms.evaluate(p.cell_v_max, p.cell_v_min, p.temp_max, p.temp_min, count=False)
        self._publish()
        self.cell_v_min_seen, self.cell_v_max_seen = self.cell_v_min, self.cell_v_max
        self.temp_min_seen, self.temp_max_seen = self.temp_min, self.temp_max
        self.shunt.update(0.0, self.pack_voltage, 0.0, self.pack.temperatures[0])

    @classmethod
    def from_config(cls, config: PlantConfig) -> Plant:
        return cls(config)

    # -- convenience inputs and outputs --------------------------------------------------------------------

    @property
    def heater_on(self) -> bool:
        return self.pack.heater_on

    @heater_on.setter
    def heater_on(self, on: bool) -> None:
        for p in self.packs:
            p.heater_on = bool(on)

    @property
    def fan_on(self) -> bool:
        return self.pack.fan_on

    @fan_on.setter
    def fan_on(self, on: bool) -> None:
        for p in self.packs:
            p.fan_on = bool(on)

    @property
    def bms_trips(self) -> int:
        return sum(p.bms.trips for p in self.packs)

    @property
    def charge_allowed(self) -> bool:
        return self.bms.charge_allowed

    @property
    def discharge_allowed(self) -> bool:
        return self.bms.discharge_allowed

    @property
    def safety_violations(self) -> int:
        return self.oracle.violations

    def _publish(self) -> None:
        """Site-level outputs from the packs: extremes over every cell and sensor, bus voltage, mean SoC."""
        packs = self.packs
        first = packs[0]
        self.cell_voltages = first.cell_voltages
        self.temperatures = first.temperatures
        if len(packs) == 1:
            self.cell_v_max, self.cell_v_min = first.cell_v_max, first.cell_v_min
            self.temp_max, self.temp_min = first.temp_max, first.temp_min
            self.pack_voltage = first.voltage
            self.soc = first.soc
            return
        self.cell_v_max = max(p.cell_v_max for p in packs)
        self.cell_v_min = min(p.cell_v_min for p in packs)
        self.temp_max = max(p.temp_max for p in packs)
        self.temp_min = min(p.temp_min for p in packs)
        on_bus = [p.voltage for p in packs if p.connected]
        self.pack_voltage = max(on_bus) if on_bus else 0.0
        self.soc = sum(p.soc for p in packs) / len(packs)

    # -- the step ------------------------------------------------------------------------------------------

    def step(self, dt: float, pv_w: float, house_w: float, ambient_c: float) -> None:
        """Advance the plant by ``dt`` seconds with the given PV production, house load and ambient."""
        if dt <= 0.0:
            raise ValueError("dt must be > 0")
        packs = self.packs
        charger, inverter = self.charger, self.inverter
        protect = self.bms.protect
        self.ambient_c = ambient_c
        ocvs = [p.ocv() for p in packs]
        rs = [p.resistance() for p in packs]
        for attempt in range(2 * len(packs) + 2):
            # devices see the MOSFET states as they stand: an open MOSFET is an open circuit for that direction
            ocv_c, r_c, ocv_d, r_d = thevenin(packs, rs, ocvs)
            i_chg = charger.available_current(ocv_c, r_c) if r_c else 0.0
            if attempt == 0:
                p_dc = inverter.update(dt, r_d > 0.0)
            elif r_d > 0.0:
                p_dc = inverter.dc_power
            else:
                p_dc = 0.0
                inverter.stop()
            i_dis = 0.0
            if p_dc > 0.0:
                # one fixed-point pass on V = OCV - I*R is plenty at these currents
                i_dis = p_dc / ocv_d
                i_dis = p_dc / (ocv_d - i_dis * r_d)
            split = share(packs, rs, ocvs, i_chg - i_dis)
            if split is None:
                i_chg = i_dis = 0.0
                inverter.stop()
                split = [0.0] * len(packs)
            currents = split
            opened = False
            for k, p in enumerate(packs):
                p.snapshot(dt, currents[k], rs[k] / p.r_nominal)
                if protect and p.bms.evaluate(p.cell_v_max, p.cell_v_min, p.temp_max, p.temp_min):
                    opened = True
                    self.oracle.first.setdefault("bms_trips", self.time_s + dt)
            if not opened:
                break
        current = i_chg - i_dis
        bus_r = r_c if i_chg > 0.0 else 0.0
        charger.settle(i_chg, ocv_c, bus_r)
        t = self.time_s + dt
        oracle = self.oracle
        for k, p in enumerate(packs):
            i = currents[k]
            p.thermal_step(dt, i * i * rs[k], ambient_c)
            oracle.judge_pack(t, dt, i, p.cell_v_max, p.cell_v_min, p.temp_max, p.temp_min, p.capacity_ah)
            p.commit(dt)
            if protect:
                p.bms.reconnect(dt)
        self._publish()
        v = self.pack_voltage
        power = v * current
        self.battery_current = current
        self.battery_power = power
        self.time_s = t
        self.shunt.update(dt, v, current, self.pack.temperatures[0])

        # AC side; heater and fan are house loads, the house meter sees them
        house = house_w
        for p in packs:
            if p.heater_on:
                house += p.heater_w
        if self.pack.fan_on:
            house += self.pack.fan_w
        pv = pv_w if pv_w > 0.0 else 0.0
        inv_ac = inverter.ac_power
        chg_ac = charger.ac_power
        gp = house + chg_ac - pv - inv_ac
        self.house_power = house
        self.pv_power = pv
        self.inverter_power = inv_ac
        self.charger_current = i_chg
        self.charger_ac_power = chg_ac
        self.grid_power = gp
        self.meter.update(dt, gp, pv, house)
        oracle.judge_site(t, dt, inv_ac, gp, house, self.soc)
        first = oracle.first
        if inverter.starts and "inverter_starts" not in first:
            first["inverter_starts"] = t
        if charger.starts and "charger_starts" not in first:
            first["charger_starts"] = t

        to_kwh = dt / 3.6e6
        if power > 0.0:
            self.charged_kwh += power * to_kwh
        else:
            self.discharged_kwh -= power * to_kwh
        if gp > 0.0:
            self.grid_import_kwh += gp * to_kwh
        else:
            self.grid_export_kwh -= gp * to_kwh
        if self.cell_v_max > self.cell_v_max_seen:
            self.cell_v_max_seen = self.cell_v_max
        if self.cell_v_min < self.cell_v_min_seen:
            self.cell_v_min_seen = self.cell_v_min
        if self.temp_max > self.temp_max_seen:
            self.temp_max_seen = self.temp_max
        if self.temp_min < self.temp_min_seen:
            self.temp_min_seen = self.temp_min
