"""Validators and device keys that several drivers' io_map schemas share (serial line settings, fail-safe values).

A driver module composes its ``Driver.keys`` from these and its own; the defaults come from ``DeviceConfig``
(base.py), so each default lives in one place.
"""

from __future__ import annotations

from typing import Any

from runtime.config.schema import Invalid, Optional, Required, int_range, one_of, string
from runtime.drivers.base import DeviceConfig


def baud(value: Any) -> int:
    return int_range(300, 4_000_000)(value)


def stopbits(value: Any) -> int:
    if value not in (1, 2) or isinstance(value, bool):
        raise Invalid(f"{value!r} is not allowed; allowed: 1, 2")
    return value


def failsafe_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    raise Invalid(f"expected a boolean, number or enum name, got {value!r}")


SERIAL = {
    Required("port"): string,
    Optional("parity", default=DeviceConfig.parity): one_of("N", "E", "O"),
    Optional("stopbits", default=DeviceConfig.stopbits): stopbits,
}


def serial_link(config: DeviceConfig) -> tuple[str, ...]:
    """The connection key of a serial device: its port (the devices of one RS485 bus share it)."""
    return ("serial", str(config.port))
