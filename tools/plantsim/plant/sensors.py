"""Sensor faults: what a device reports when its measurement lies but its frames are valid.

A fault is a scenario event (``fault: {device, kind, tag, value, for}``) on one measured tag of a device;
it lasts exactly its window. Kinds and what ``value`` means:

- ``offset``: adds ``value`` (in the tag's unit);
- ``gain``: multiplies by ``value``;
- ``stuck``: holds the reading the tag had when the fault began (``value`` unused);
- ``drift``: adds ``value`` per hour since the fault began;
- ``noise``: adds Gaussian noise of standard deviation ``value`` (reproducible: seeded);
- ``bitflip``: flips bit number ``value`` of the raw integer the device sends (a valid frame, a wrong number).
"""

from __future__ import annotations

import random

SENSOR_KINDS = ("offset", "gain", "stuck", "drift", "noise", "bitflip")


class SensorFault:
    """One active sensor fault; ``apply(true, t)`` is the reading. ``scale``/``offset`` are the raw encoding
    of the tag (value = raw * scale + offset), which only ``bitflip`` needs."""

    __slots__ = ("kind", "value", "since", "scale", "offset", "held", "rng")

    def __init__(self, kind: str, value: float, since: float, scale: float = 1.0, offset: float = 0.0,
                 seed: int = 1) -> None:
        if kind not in SENSOR_KINDS:
            raise ValueError(f"unknown sensor fault {kind!r}; allowed: {', '.join(SENSOR_KINDS)}")
        self.kind = kind
        self.value = float(value)
        self.since = since
        self.scale = scale
        self.offset = offset
        self.held: float | None = None
        self.rng = random.Random(seed)

    def apply(self, true: float, t: float) -> float:
        kind = self.kind
        if kind == "offset":
            return true + self.value
        if kind == "gain":
            return true * self.value
        if kind == "stuck":
            if self.held is None:
                self.held = true
            return self.held
        if kind == "drift":
            return true + self.value * (t - self.since) / 3600.0
        if kind == "noise":
            return true + self.rng.gauss(0.0, self.value)
        raw = int(round((true - self.offset) / self.scale))
        return (raw ^ (1 << int(self.value))) * self.scale + self.offset
