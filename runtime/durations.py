"""Durations as people write them: '10ms', '2.4s', '30min', '6h20min', '1d'; a bare number is seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)")


class DurationError(ValueError):
    pass


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``; raise DurationError saying what is allowed."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration like 100ms, 30s, 6h20min, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise DurationError("too long a duration (the number is beyond any float)") from None
        if not math.isfinite(seconds):
            raise DurationError(f"a duration must be a finite number of seconds, got {value!r}")
        if seconds < 0:
            raise DurationError(f"a duration cannot be negative: {value!r}")
        return seconds
    text = str(value).strip().replace(" ", "")
    if not text:
        raise DurationError("empty duration; write e.g. 100ms, 30s, 6h20min")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        try:
            return parse_duration(float(text))
        except ValueError:
            raise DurationError(
                f"{value!r} is not a duration; write a number of seconds or parts like 10ms, 2.4s, 30min, 6h20min, 1d"
            ) from None
    if not math.isfinite(total):
        raise DurationError(f"{value!r} is too long a duration")
    return total


def format_duration(seconds: float) -> str:
    """Short text for a number of seconds: 0.01 -> '10ms', 22800 -> '6h20min'."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if rest >= size:
            n = int(rest // size)
            parts.append(f"{n}{unit}")
            rest -= n * size
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)
