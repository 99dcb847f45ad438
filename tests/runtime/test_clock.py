"""Clocks: the real clock never wakes before a deadline (sleeping or spinning); the simulated one jumps."""

import time
from datetime import datetime

import pytest

from runtime.clock import RealClock, SimClock


@pytest.mark.parametrize("spin", [0.0, 0.0003, 0.002])
def test_real_clock_never_returns_before_the_deadline(spin: float) -> None:
    clock = RealClock(spin=spin)
    for _ in range(20):
        deadline = time.monotonic() + 0.003
        clock.sleep_until(deadline)
        assert time.monotonic() >= deadline


def test_real_clock_rejects_negative_spin() -> None:
    with pytest.raises(ValueError):
        RealClock(spin=-0.001)


def test_sim_clock_jumps_to_deadlines_and_keeps_wall_time_in_step() -> None:
    clock = SimClock(start=datetime(2026, 1, 31, 23, 59, 59), monotonic=5.0)
    clock.sleep_until(7.5)
    clock.sleep_until(6.0)  # a past deadline does not move it back
    assert clock.monotonic() == 7.5
    assert clock.now() == datetime(2026, 2, 1, 0, 0, 1, 500000)
    with pytest.raises(ValueError):
        clock.advance(-1)
