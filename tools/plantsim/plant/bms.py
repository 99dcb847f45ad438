"""A JK-style BMS: per-cause latched cut-offs with hysteresis and a reconnect delay, trip counters, its own
SoC estimate and balancer state.

====================  ========================  ======================
cause                 trips when                released when
====================  ========================  ======================
charge, cell OV       any cell > 3.65 V         max cell < 3.55 V
charge, temp high     max temp > 65 degC        max temp < 60 degC
charge, temp low      min temp < 0 degC         min temp > 2 degC
discharge, cell UV    any cell < 2.50 V         min cell > 2.80 V
discharge, temp low   min temp < -30 degC       min temp > -25 degC
discharge, temp high  max temp > 65 degC        max temp < 60 degC
====================  ========================  ======================

The trip points are seed 000's (the cell's limits); once every cause of a direction has released, the MOSFET
closes again only after ``bms_reconnect_s`` (a JK waits a few seconds before it reconnects). The BMS judges
the state at the end of a step with the step's current (the hardware comparator acts within milliseconds,
much faster than a 1 s step): if that state crosses a cut-off, the MOSFET opens for the whole step.
"""

from __future__ import annotations

from tools.plantsim.plant.config import PlantConfig


class Bms:
    """``charge_allowed``/``discharge_allowed`` are the MOSFET states. With ``protect`` False the BMS never
    blocks (flags stay True, no trips): a broken or misconfigured BMS. ``online`` is only a stored flag."""

    __slots__ = ("protect", "online", "ovp_v", "ovpr_v", "uvp_v", "uvpr_v", "charge_otp_c", "charge_otpr_c",
                 "charge_utp_c", "charge_utpr_c", "discharge_otp_c", "discharge_otpr_c", "discharge_utp_c",
                 "discharge_utpr_c", "reconnect_s", "charge_allowed", "discharge_allowed", "charge_block_reason",
                 "discharge_block_reason", "trips", "charge_trips", "discharge_trips", "soc_pct", "capacity_ah",
                 "balancing", "_c_ov", "_c_ot", "_c_ut", "_d_uv", "_d_ut", "_d_ot", "_c_wait", "_d_wait")

    def __init__(self, cfg: PlantConfig) -> None:
        self.protect = cfg.bms_protect
        self.online = True
        self.ovp_v, self.ovpr_v = cfg.cell_ovp_v, cfg.cell_ovpr_v
        self.uvp_v, self.uvpr_v = cfg.cell_uvp_v, cfg.cell_uvpr_v
        self.charge_otp_c, self.charge_otpr_c = cfg.charge_otp_c, cfg.charge_otpr_c
        self.charge_utp_c, self.charge_utpr_c = cfg.charge_utp_c, cfg.charge_utpr_c
        self.discharge_otp_c, self.discharge_otpr_c = cfg.discharge_otp_c, cfg.discharge_otpr_c
        self.discharge_utp_c, self.discharge_utpr_c = cfg.discharge_utp_c, cfg.discharge_utpr_c
        self.reconnect_s = cfg.bms_reconnect_s
        self.charge_allowed = True
        self.discharge_allowed = True
        self.charge_block_reason = ""
        self.discharge_block_reason = ""
        self.trips = self.charge_trips = self.discharge_trips = 0
        self.soc_pct = 100.0 * cfg.soc
        self.capacity_ah = cfg.capacity_ah
        self.balancing = False
        self._c_ov = self._c_ot = self._c_ut = False
        self._d_uv = self._d_ut = self._d_ot = False
        self._c_wait = self._d_wait = 0.0  # seconds since every cause of the direction released

    def evaluate(self, vmax: float, vmin: float, tmax: float, tmin: float, count: bool = True) -> bool:
        """Update the latches from one snapshot; ``count`` False at power-up (a cold start is not a trip).
        Returns True when a MOSFET opened."""
        if not self.protect:
            return False
        # each cause latches on its own so one cause clearing never releases another
        self._c_ov = vmax >= self.ovpr_v if self._c_ov else vmax > self.ovp_v
        self._c_ot = tmax >= self.charge_otpr_c if self._c_ot else tmax > self.charge_otp_c
        self._c_ut = tmin <= self.charge_utpr_c if self._c_ut else tmin < self.charge_utp_c
        self._d_uv = vmin <= self.uvpr_v if self._d_uv else vmin < self.uvp_v
        self._d_ut = tmin <= self.discharge_utpr_c if self._d_ut else tmin < self.discharge_utp_c
        self._d_ot = tmax >= self.discharge_otpr_c if self._d_ot else tmax > self.discharge_otp_c
        opened = False
        if self.charge_allowed and (self._c_ov or self._c_ot or self._c_ut):
            self.charge_allowed = False
            self._c_wait = 0.0
            self.charge_block_reason = "cell_ov" if self._c_ov else ("temp_high" if self._c_ot else "temp_low")
            if self._c_ov:
                self.soc_pct = 100.0  # JK recalibrates its SoC at over-voltage
            if count:
                self.trips += 1
                self.charge_trips += 1
            opened = True
        if self.discharge_allowed and (self._d_uv or self._d_ut or self._d_ot):
            self.discharge_allowed = False
            self._d_wait = 0.0
            self.discharge_block_reason = "cell_uv" if self._d_uv else ("temp_low" if self._d_ut else "temp_high")
            if self._d_uv:
                self.soc_pct = 0.0
            if count:
                self.trips += 1
                self.discharge_trips += 1
            opened = True
        return opened

    def reconnect(self, dt: float, immediately: bool = False) -> None:
        """Close a MOSFET whose causes have all released for ``reconnect_s`` (once per step, after it)."""
        if not self.charge_allowed and not (self._c_ov or self._c_ot or self._c_ut):
            self._c_wait += dt
            if immediately or self._c_wait >= self.reconnect_s:
                self.charge_allowed = True
                self.charge_block_reason = ""
        if not self.discharge_allowed and not (self._d_uv or self._d_ut or self._d_ot):
            self._d_wait += dt
            if immediately or self._d_wait >= self.reconnect_s:
                self.discharge_allowed = True
                self.discharge_block_reason = ""
