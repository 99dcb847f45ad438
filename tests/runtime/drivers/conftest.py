"""Fixtures for the driver tests: a simulated Modbus device on loopback and its behaviour switches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from driver_helpers import Behaviour, ServerThread, meter_devices


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def server(behaviour: Behaviour) -> Iterator[ServerThread]:
    thread = ServerThread(meter_devices(behaviour))
    thread.start()
    yield thread
    thread.close()
