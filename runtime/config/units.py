"""The units a tag may have, in one table: what tags.yaml accepts and how Prometheus exposes each.

``UNITS`` maps a tags.yaml unit to its ``BaseUnit``: the Prometheus base-unit suffix (``volts``), the factor
to that base unit (mV -> V is 0.001) and the last name parts that already spell the unit (dropped from the
metric name). tags.yaml allows exactly the keys of this table, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BaseUnit:
    """How a tags.yaml unit is exposed: the base-unit suffix, the factor to it, and names that spell it."""

    suffix: str
    scale: float = 1.0
    spellings: tuple[str, ...] = ()  # last name parts that already say the unit and are dropped


UNITS: dict[str, BaseUnit] = {
    "": BaseUnit(""),
    "V": BaseUnit("volts", 1.0, ("v", "volt", "volts")),
    "mV": BaseUnit("volts", 0.001, ("mv",)),
    "A": BaseUnit("amperes", 1.0, ("amp", "amps", "amperes")),  # not "a": that is phase a as often as amperes
    "mA": BaseUnit("amperes", 0.001, ("ma",)),
    "W": BaseUnit("watts", 1.0, ("w", "watts")),
    "kW": BaseUnit("watts", 1000.0, ("kw",)),
    "Wh": BaseUnit("joules", 3600.0, ("wh",)),
    "kWh": BaseUnit("joules", 3.6e6, ("kwh",)),
    "Ah": BaseUnit("coulombs", 3600.0, ("ah",)),
    "mAh": BaseUnit("coulombs", 3.6, ("mah",)),
    "%": BaseUnit("percent", 1.0, ("pct", "percent")),
    "degC": BaseUnit("celsius", 1.0, ("c", "degc", "celsius")),
    "s": BaseUnit("seconds", 1.0, ("s", "sec", "secs", "seconds")),
    "ms": BaseUnit("seconds", 0.001, ("ms",)),
    "min": BaseUnit("seconds", 60.0, ("min", "mins", "minutes")),
    "h": BaseUnit("seconds", 3600.0, ("h", "hours")),
    "Hz": BaseUnit("hertz", 1.0, ("hz",)),
    "ohm": BaseUnit("ohms", 1.0, ("ohm", "ohms")),
    "mohm": BaseUnit("ohms", 0.001, ("mohm",)),
    "count": BaseUnit(""),
    "day": BaseUnit("seconds", 86400.0, ("d", "days")),  # not "day": "last_day" names a date
}


def base_unit(unit: str) -> BaseUnit:
    """The exposure of a tags.yaml unit (an unknown unit is shown as is, without a suffix)."""
    return UNITS.get(unit, UNITS[""])
