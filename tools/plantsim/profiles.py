"""Daily profiles of the plant's surroundings: PV production, house load and ambient temperature.

A profile is a callable ``f(t) -> value`` over seconds since the start of the run; it knows the time of day
the run starts at, so a 24 h profile repeats every day of a longer run. Three shapes:

- a constant (``house: 300``),
- points ``[["HH:MM", value], ...]`` interpolated linearly and wrapping around midnight (or held until the
  next point with ``{points: [...], hold: true}``),
- for PV, a clear-sky day ``{peak, sunrise, sunset}`` with an optional ``clouds`` cover 0..1 that cuts the
  output and makes it flicker the way passing clouds do (reproducible: seeded).

Profiles are evaluated once per plant step, so they stay plain Python with the current segment cached.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence

DAY_S = 86400.0

Profile = Callable[[float], float]


def clock_seconds(text: str) -> float:
    """Seconds after midnight of 'HH:MM' or 'HH:MM:SS' (24:00 allowed); ValueError with the allowed form."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts[1:]) \
            or not parts[0].isdigit() or len(parts[0]) > 2:
        raise ValueError(f"{text!r} is not a time of day; write HH:MM like '07:30'")
    hours, minutes = int(parts[0]), int(parts[1])
    seconds = int(parts[2]) if len(parts) == 3 else 0
    if minutes > 59 or seconds > 59 or hours > 24 or (hours == 24 and (minutes or seconds)):
        raise ValueError(f"{text!r} is not a time of day between 00:00 and 24:00")
    return hours * 3600.0 + minutes * 60.0 + seconds


def constant(value: float) -> Profile:
    def profile(_t: float) -> float:
        return value
    return profile


def segment(xs: Sequence[float], ys: Sequence[float], x: float) -> tuple[float, float, float, float, float]:
    """The segment of the points (xs[k], ys[k]) holding ``x`` (xs[0] <= x < xs[-1]): its start, end, start value,
    rise and span, the rise and span being the very floats an interpolation would subtract on every call."""
    k = bisect_right(xs, x) - 1
    return xs[k], xs[k + 1], ys[k], ys[k + 1] - ys[k], xs[k + 1] - xs[k]


def points(daily: Sequence[tuple[float, float]], start_tod: float, hold: bool = False) -> Profile:
    """Interpolate (seconds-of-day, value) points, repeating daily; ``hold`` keeps each value until the next."""
    ordered = sorted(daily)
    if len(ordered) == 1:
        return constant(ordered[0][1])
    # one extra point on each side makes the wrap around midnight an ordinary segment
    xs = [ordered[-1][0] - DAY_S] + [p[0] for p in ordered] + [ordered[0][0] + DAY_S]
    ys = [ordered[-1][1]] + [p[1] for p in ordered] + [ordered[0][1]]
    # the segment of the previous call, in closure cells: usually still the right one (a C-level cell load
    # is cheaper than a list index, and this runs every plant step)
    x0, x1, y0, rise, span = segment(xs, ys, xs[0])

    def profile(t: float) -> float:
        nonlocal x0, x1, y0, rise, span
        tod = (start_tod + t) % DAY_S
        if not x0 <= tod < x1:
            x0, x1, y0, rise, span = segment(xs, ys, tod)
        if hold:
            return y0
        return y0 + rise * (tod - x0) / span

    return profile


def clear_sky(peak: float, sunrise: float, sunset: float, start_tod: float, clouds: float = 0.0,
              seed: int = 1) -> Profile:
    """PV power of a clear day between sunrise and sunset (seconds of day), cut and made to flicker by clouds.

    The clear-sky shape is sin(pi * x) ** 1.3 over the day length (a little narrower than a sine, like a
    fixed array). With ``clouds`` c the output is scaled by 1 - c * (0.4 + 0.6 u), where u wanders between 0
    and 1 over five-minute knots (linear in between): 1 - 0.7 c on average, between 1 - c and 1 - 0.4 c.
    Cloudy days are lower and noisy, which is what makes the ballast and unload charts switch.
    """
    if sunset <= sunrise:
        raise ValueError("sunset must be after sunrise")
    length = sunset - sunrise
    knot_s = 300.0
    rng = random.Random(seed)
    knots: list[float] = []

    def cloud_factor(t: float) -> float:
        x = t / knot_s
        i = int(x)
        while len(knots) < i + 2:
            knots.append(rng.random())
        a = knots[i]
        u = a + (knots[i + 1] - a) * (x - i)
        return 1.0 - clouds * (0.4 + 0.6 * u)

    def profile(t: float) -> float:
        tod = (start_tod + t) % DAY_S
        if tod <= sunrise or tod >= sunset:
            return 0.0
        p = peak * math.sin(math.pi * (tod - sunrise) / length) ** 1.3
        return p * cloud_factor(t) if clouds > 0.0 else p

    return profile
