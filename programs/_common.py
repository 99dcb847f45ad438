"""Small pieces the battery function blocks share: table interpolation, a two-level latch, a debounced state,
a day number, and the test that a group of tags holds readings.

Not a program (the leading underscore keeps the loader from offering it as one).

A convention of the blocks: they read with ``ctx.staged(name)``, i.e. what the programs before them wrote
in this same scan (aggregate -> soc -> limits -> schedule -> ... -> interlocks), so the interlocks judge the
very inputs latched for this scan, not the battery as it was one scan earlier. Charts read the image.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from runtime.tags import Quality

# date(1970, 1, 1).toordinal(): day numbers count from the Unix epoch, like the retained timestamps.
_EPOCH_ORDINAL = 719163


def interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear y(x) through the points (xs[i], ys[i]); xs increasing, held flat outside."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    k = bisect_right(xs, x) - 1
    x0, x1 = xs[k], xs[k + 1]
    if x1 == x0:
        return ys[k + 1]
    return ys[k] + (ys[k + 1] - ys[k]) * (x - x0) / (x1 - x0)


def latch(active: bool, trip: bool, release: bool) -> bool:
    """A latch with hysteresis: set when ``trip`` holds, cleared only once ``release`` holds."""
    if active:
        return not release
    return trip


class Debounced:
    """A state that follows a condition only once the condition has differed from it for ``delay`` seconds:
    a disagreement between two sensors must persist to raise an alarm, and the agreement as long to clear it."""

    __slots__ = ("state", "timer")

    def __init__(self) -> None:
        self.state = False
        self.timer = 0.0  # seconds the condition has differed from the state

    def update(self, condition: bool, dt: float, delay: float) -> bool:
        self.timer = self.timer + dt if condition != self.state else 0.0
        if self.timer >= delay:
            self.state, self.timer = condition, 0.0
        return self.state


def day_number(now: Any) -> int:
    """Days since 1970-01-01 of ``ctx.now``'s wall date (what retained 'last run' tags store)."""
    return now.toordinal() - _EPOCH_ORDINAL


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else (hi if x > hi else x)


def readings(qualities: Sequence[Quality], values: Iterable[Any]) -> bool:
    """Every tag is GOOD and a number (garbage decoded as NaN is no reading); ``values`` are taken only if all
    are GOOD, and only up to the first that is not a number."""
    return qualities.count(Quality.GOOD) == len(qualities) and all(map(math.isfinite, values))


class MinOnOff:
    """An on/off output with a minimum on and off time (against chatter): a wish to switch waits until the
    output has been in its state long enough; ``force_off`` (a protection) switches off at once."""

    __slots__ = ("on", "since")

    def __init__(self) -> None:
        self.on = False
        self.since = math.inf  # seconds in the present state; a fresh start may switch at once

    def update(self, want: bool, force_off: bool, dt: float, min_on: float, min_off: float) -> bool:
        self.since += dt
        if force_off or want != self.on and self.since >= (min_on if self.on else min_off):
            target = want and not force_off
            if target != self.on:
                self.on, self.since = target, 0.0
        return self.on
