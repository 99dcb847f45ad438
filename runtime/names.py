"""The names of the tags the runtime declares for its own parts, built and read back in this one place.

``prog.<program>.fault`` / ``.faults`` (scan.py), ``sfc.<chart>.step`` / ``.step_time`` / ``.held``
(sfc/chart.py), ``dev.<device>.up`` / ``.errors`` / ``.errors_<kind>`` / ``.last_good`` (drivers/state.py),
``alarms.<alarm>.state`` / ``.raised`` (alarms/service.py):
the builders below make them, and ``owned`` takes one apart for the metrics exporter, which files these tags
into labelled families (``battplc_device_up{device}``) instead of one family per tag.
"""

from __future__ import annotations

from typing import NamedTuple

PROGRAM, CHART, DEVICE, ALARMS = "prog", "sfc", "dev", "alarms"


def program_tag(program: str, what: str) -> str:
    """``prog.<program>.<what>``: a figure of one program (``fault``, ``faults``)."""
    return f"{PROGRAM}.{program}.{what}"


def chart_tag(chart: str, what: str) -> str:
    """``sfc.<chart>.<what>``: a figure of one chart (``step``, ``step_time``, ``held``)."""
    return f"{CHART}.{chart}.{what}"


def device_tag(device: str, what: str) -> str:
    """``dev.<device>.<what>``: a health figure of one device (``up``, ``errors``, ``errors_<kind>``, ...)."""
    return f"{DEVICE}.{device}.{what}"


def alarm_tag(alarm: str, what: str) -> str:
    """``alarms.<alarm>.<what>``: the alarm manager's view of the condition ``alarm.<alarm>`` (``state``,
    ``raised``); ``alarms.<what>`` without an alarm is a figure of the whole alarm system."""
    return f"{ALARMS}.{alarm}.{what}" if alarm else f"{ALARMS}.{what}"


class Owned(NamedTuple):
    """A tag of a runtime part, taken apart: namespace (``dev``), owner (the device) and what it holds."""

    namespace: str
    owner: str
    what: str


def owned(name: str) -> Owned | None:
    """The parts of a ``prog.``, ``sfc.``, ``dev.`` or ``alarms.`` tag name built above; None for any other name.

    ``what`` is everything after the owner (``errors.timeout`` for a hand-declared per-kind device counter).
    """
    namespace, _, rest = name.partition(".")
    owner, _, what = rest.partition(".")
    if namespace not in (PROGRAM, CHART, DEVICE, ALARMS) or not owner or not what:
        return None
    return Owned(namespace, owner, what)
