"""The three-channel grid meter: it refreshes its readings every ``update_s`` of plant time, and in between
serves the last ones (a meter's registers are not live: typical energy meters update once a second or
slower)."""

from __future__ import annotations


class Meter:
    __slots__ = ("update_s", "grid_power", "pv_power", "house_power", "_age")

    def __init__(self, update_s: float = 1.0) -> None:
        self.update_s = float(update_s)
        self.grid_power = self.pv_power = self.house_power = 0.0
        self._age = float("inf")  # the first step refreshes

    def update(self, dt: float, grid_w: float, pv_w: float, house_w: float) -> None:
        self._age += dt
        if self._age >= self.update_s - 1e-9:
            self._age = 0.0
            self.grid_power = grid_w
            self.pv_power = pv_w
            self.house_power = house_w
