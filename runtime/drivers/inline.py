"""The in-process port: device pollers polled inline in the scan's latch phase (the plant simulator, no threads).

``InlinePort(pollers, epoch=0.0)`` polls each ``Poller`` (base.py) at its device's poll period during the
latch phase and commits changed outputs inline. Qualities and health come from state.py, the same code the
threaded ``DriverManager`` uses: a good poll sets its tags GOOD, a poll that raises sets the device's inputs
BAD (values kept), GOOD inputs go STALE after ``stale_after``, and the device health tags (``dev.<name>.up``,
``.errors``, ``.errors_<kind>``, ``.last_good``, ``.age``) count as on a real link, where the database declares
them, and so does ``alarm.output_device_down``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runtime.drivers.base import Poller
from runtime.drivers.state import (
    DECODE,
    EXCEPTION,
    REFUSED,
    TIMEOUT,
    DeviceAges,
    HealthCounters,
    OutputDevicesWatch,
    Plausibility,
    ReadGroup,
    health_tags,
    output_watch,
)
from runtime.tags import TagDB


class _InlineDevice:
    """One poller of an ``InlinePort``: its schedule, its read group and its health."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.config = config = poller.config
        self.period = config.poll
        checks = Plausibility(config.name, config.plausible, config.poll) if config.plausible else None
        self.group = ReadGroup(tuple(p.tag for p in config.inputs), config.stale_after, checks)
        self.inputs = len(self.group.tags)
        self.health = HealthCounters(config.name)
        self.due = float("-inf")
        self.failures = 0
        self.publish_health = False  # the database declares the health tags (an io_map was loaded into it)
        self.resend = False  # a write failed: send every output again after the next good poll
        self.outputs = tuple(p.tag for p in config.outputs)
        self.output_set = frozenset(self.outputs)


def error_kind(exc: BaseException) -> str:
    """The health counter an inline poll that raised counts on (the simulated devices raise these)."""
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    if isinstance(exc, OSError):
        return REFUSED
    if isinstance(exc, ValueError):  # DecodeError, a VE.Direct block that did not check out
        return DECODE
    return EXCEPTION


class InlinePort:
    """A scan Port over pollers, polled in the latch phase itself: for simulation on SimClock, no threads.

    ``epoch`` is the wall time (seconds since the epoch) at monotonic time 0, for ``last_good``.
    """

    def __init__(self, pollers: Iterable[Poller], epoch: float = 0.0) -> None:
        self.pollers = list(pollers)
        self.epoch = epoch
        self._devices = [_InlineDevice(p) for p in self.pollers]
        self._outputs = frozenset(point.tag for p in self.pollers for point in p.config.outputs)
        self._db: TagDB | None = None  # the database the health flags were worked out for
        self._ages = DeviceAges((), TagDB())
        self._watch: OutputDevicesWatch | None = None

    @property
    def failures(self) -> dict[str, int]:
        """Polls that raised, per device."""
        return {device.config.name: device.failures for device in self._devices}

    def latch(self, db: TagDB, now: float) -> None:
        if db is not self._db:
            self._db = db
            for device in self._devices:
                device.publish_health = all(tag.name in db.defs for tag in health_tags(device.config.name))
            self._ages = DeviceAges((device.config.name for device in self._devices), db)
            self._watch = output_watch([device.config for device in self._devices if device.publish_health], db)
        for device in self._devices:
            if now >= device.due:
                device.due = now + device.period
                self._poll(device, db, now)
            group = device.group
            if group.fresh != now:  # a group read fresh just now cannot be stale (most scans: saves the call)
                group.age(db.quality, now)
        self._ages.update(db.values, self.epoch + now)
        if self._watch is not None:
            self._watch.update(db.values)

    def _poll(self, device: _InlineDevice, db: TagDB, now: float) -> None:
        try:
            read = device.poller.poll()
        except Exception as exc:
            device.failures += 1
            device.group.latch(db, {}, now)
            self._fail(device, db, error_kind(exc))
            return
        device.group.latch(db, read, now)
        if len(read) != device.inputs:  # some point was not representable (a poll reads the device's inputs only)
            self._fail(device, db, DECODE)
            return
        if device.publish_health:  # what Health.good publishes, written only where it changed
            health, wall = device.health, self.epoch + now
            db.values[health.last_good_tag] = wall
            if health.count_good(wall):
                db.values[health.up_tag] = True
                db.values[health.reachable_tag] = True
        if device.resend:  # as the threaded driver does after a reconnect: outputs again, all of them
            device.resend = False
            self._write(device, db, {tag: db.values[tag] for tag in device.outputs})

    def _fail(self, device: _InlineDevice, db: TagDB, failure: str) -> None:
        if device.publish_health:  # what Health.fail publishes, written only where it changed
            health = device.health
            health.count_failure(failure)
            values = db.values
            values[health.errors_tag] = health.errors
            values[health.kind_tags[failure]] = health.by_kind[failure]
            values[health.up_tag] = False
            values[health.reachable_tag] = health.reachable

    def commit(self, changed: Mapping[str, Any], db: TagDB) -> None:
        if changed.keys().isdisjoint(self._outputs):  # most scans change no device output
            return
        keys = changed.keys()
        for device in self._devices:
            if not keys.isdisjoint(device.output_set):  # a poller takes only its own outputs: spare the others
                self._write(device, db, changed)

    def _write(self, device: _InlineDevice, db: TagDB, outputs: Mapping[str, Any]) -> None:
        """Hand outputs to one device; a device that does not take them is counted down, never raised."""
        try:
            device.poller.commit(outputs)
        except Exception as exc:
            device.resend = True
            self._fail(device, db, error_kind(exc))
