"""What every device driver shares: device config, health counters, backoff, and the one small interface.

A driver file (``modbus.py``, ``vedirect.py``) turns the devices of one connection into a ``Link``: one
asyncio task that polls (or listens to) the devices behind a TCP socket or a serial port, and reports what it
read to a ``Sink``. The ``DriverManager`` (manager.py) is that sink and the scan's Port: it runs the links on
an asyncio loop in its own thread and hands the newest values to the scan at its latch phase.

Driver contract (``make_links(devices, ctx) -> list[Link]`` in each driver module):

- ``Link.run()`` polls until ``request_stop()`` and never raises for device faults; every fault is counted
  on the device's ``Health`` (kinds: timeout, refused, exception, decode) and its inputs are published BAD.
  Waits go through ``Link.pause()`` so new writes and a stop request end them early.
- ``Sink.publish(key, values, stamp)``: ``values`` holds the fresh value of every tag of the group ``key``
  that was read well (and no other tag); the group's other tags go BAD (their last value is kept). The
  manager turns GOOD values STALE when no fresh value came within the device's ``stale_after``.
- ``Link.write(device, outputs)`` queues output values (newest wins); ``Link.flush(timeout)`` writes what is
  queued, best effort, when the runtime stops (fail-safe values).
- Threads: links live on the I/O thread and never touch the tag image; the scan reaches them only
  through the manager.

In-process use (the plant simulator, ``battplc sim``): no asyncio, no sockets, the same decode path.

- ``runtime.drivers.modbus.Device(config, defs=None)``: the register model of one device.
  ``device.plan`` is the list of ``ReadBlock(unit, table, address, count, points)`` the driver would send;
  ``device.decode(block, data) -> {tag: value}`` decodes the registers (or bits) read for a block (raises
  ``DecodeError`` for a short block; a point whose value cannot be represented is left out);
  ``device.encode(tag, value) -> [Write(unit, table, address, values)]`` encodes an output;
  ``device.failsafe(defs) -> {tag: value}`` gives the fail-safe value of every output.
- ``runtime.drivers.modbus.SyncPoller(device, read, write)`` with ``read(unit, table, address, count) ->
  list[int | bool]`` and ``write(unit, table, address, values)`` over a register bank:
  ``poller.poll() -> {tag: value}`` reads and decodes every block inline (an exception from ``read``
  propagates); ``poller.commit(outputs)`` encodes and writes those outputs that belong to this device.
- ``InlinePort(pollers, epoch=0.0)`` (this file): a scan Port that polls each poller inline at its device's
  poll period during the latch phase, with the same qualities as the threaded manager (GOOD, BAD on a failed
  poll, STALE after ``stale_after``) and the same device health tags, and commits changed outputs inline.
- ``runtime.drivers.vedirect.VEDirectParser``: ``parser.feed(data) -> [Frame]`` splits a VE.Direct text
  byte stream into frames (``frame.fields``: label -> text, ``frame.ok``: checksum valid);
  ``VEDirectDevice(config).decode(frame) -> {tag: value}`` maps fields to tags; ``encode_frame(fields)``
  builds a valid block (with its checksum) for a simulated SmartShunt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.drivers.codec import InputPoint, OutputPoint
from runtime.tags import Quality, TagDB, TagDef, TagType

log = logging.getLogger("battplc.drivers")

TIMEOUT = "timeout"  # no (complete) answer within the timeout, after the retries
REFUSED = "refused"  # could not connect or open the port, or the connection was lost
EXCEPTION = "exception"  # the device answered with a Modbus exception response
DECODE = "decode"  # malformed or short answer, bad checksum, truncated frame, value not representable
ERROR_KINDS = (TIMEOUT, REFUSED, EXCEPTION, DECODE)


@dataclass(frozen=True)
class DeviceConfig:
    """One device of io_map.yaml, validated (see runtime/drivers/config.py for the keys)."""

    name: str
    driver: str
    host: str = ""
    port: int | str = 0
    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    unit: int = 1
    poll: float = 1.0
    timeout: float = 1.0
    retries: int = 1
    stale_after: float = 2.4
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    max_gap: int = 8
    inputs: tuple[InputPoint, ...] = ()
    outputs: tuple[OutputPoint, ...] = ()
    file: str = ""
    line: int = 0

    @property
    def link_key(self) -> tuple[str, ...]:
        """Devices with the same key share one connection (a TCP gateway, an RS485 bus)."""
        if self.driver == "modbus_tcp":
            return ("tcp", self.host, str(self.port))
        return ("serial", str(self.port))

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


# ---- health ------------------------------------------------------------------------------------------------

def health_tags(device: str) -> list[TagDef]:
    """The health tags of one device: up, total errors, errors by kind, time of the last good read."""
    tags = [
        TagDef(f"dev.{device}.up", TagType.BOOL, "", f"device {device} answered its last poll completely"),
        TagDef(f"dev.{device}.errors", TagType.INT, "count", f"failed requests/frames of device {device}"),
        TagDef(f"dev.{device}.last_good", TagType.FLOAT, "s",
               f"time of the last good read of device {device}, seconds since the epoch (0 = never)"),
    ]
    tags += [TagDef(f"dev.{device}.errors_{kind}", TagType.INT, "count", f"{kind} errors of device {device}")
             for kind in ERROR_KINDS]
    return tags


class Backoff:
    """Exponential delays between reconnects: initial, doubling, capped at ``maximum``; reset on success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class Sink(Protocol):
    """Where links deliver what they read (the DriverManager; a test double)."""

    def declare(self, key: Hashable, tags: Sequence[str], stale_after: float) -> None: ...

    def publish(self, key: Hashable, values: Mapping[str, Any], stamp: float) -> None: ...

    def health(self, device: str, values: Mapping[str, Any]) -> None: ...


@dataclass
class LinkContext:
    """What a link needs from its surroundings: the sink, the tag definitions and the clocks."""

    sink: Sink
    defs: Mapping[str, TagDef] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


class Health:
    """Counters and up/down state of one device, published to the sink; transitions are logged once."""

    def __init__(self, device: str, ctx: LinkContext) -> None:
        self.device = device
        self.ctx = ctx
        self.up = False
        self.errors = 0
        self.by_kind = dict.fromkeys(ERROR_KINDS, 0)
        self.last_good = 0.0
        self._reported_down = False
        self._prefix = f"dev.{device}."

    def good(self) -> None:
        if not self.up and self._reported_down:
            log.info("device %s is back after %d error(s)", self.device, self.errors)
        self.up = True
        self._reported_down = False
        self.last_good = self.ctx.wall()
        self.publish()

    def fail(self, kind: str, detail: str) -> None:
        self.errors += 1
        self.by_kind[kind] += 1
        if not self._reported_down:
            # One line per outage, not one per failed request: a dead device must not flood the journal.
            log.warning("device %s: %s (%s); the inputs it could not read are BAD until a good read", self.device,
                        kind, detail)
            self._reported_down = True
        self.up = False
        self.publish()

    def snapshot(self) -> dict[str, Any]:
        p = self._prefix
        out: dict[str, Any] = {p + "up": self.up, p + "errors": self.errors, p + "last_good": self.last_good}
        for kind, count in self.by_kind.items():
            out[f"{p}errors_{kind}"] = count
        return out

    def publish(self) -> None:
        self.ctx.sink.health(self.device, self.snapshot())


# ---- the interface of a driver -----------------------------------------------------------------------------

class Link:
    """One connection (TCP socket, serial port) and the devices behind it, served by one asyncio task.

    Stopping is cooperative: ``request_stop()`` ends ``run()`` after the request in flight, so no request
    is ever cancelled half-way and the connection is clean for the fail-safe writes of ``flush()``.
    """

    def __init__(self, devices: Sequence[DeviceConfig], ctx: LinkContext) -> None:
        self.configs = list(devices)
        self.ctx = ctx
        self.name = "+".join(d.name for d in devices)
        self.stopping = False
        self.phase = 0.0  # fraction of a poll period to wait before the first poll (set by the manager)
        self._waiter: asyncio.Future[None] | None = None

    async def run(self) -> None:  # pragma: no cover - interface
        """Poll the devices until ``stopping``; faults are counted and published, never raised."""
        raise NotImplementedError

    def request_stop(self) -> None:
        self.stopping = True
        self.wake()

    def wake(self) -> None:
        """End a ``pause()`` early (new writes queued, or stop requested)."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def pause(self, delay: float) -> None:
        """Sleep up to ``delay`` seconds, or until ``wake()``; returns at once when stopping."""
        if self.stopping:
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(delay, self.wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def write(self, device: str, outputs: Mapping[str, Any]) -> None:
        """Queue output values for ``device`` (newest wins). Called on the link's event loop."""

    async def flush(self, timeout: float) -> None:
        """Write everything queued, best effort within ``timeout`` seconds (fail-safe values at stop)."""

    async def close(self) -> None:
        """Release the connection."""


# ---- in-process port ---------------------------------------------------------------------------------------

class Poller(Protocol):
    """A device that can be polled inline (``modbus.SyncPoller``)."""

    config: DeviceConfig

    def poll(self) -> dict[str, Any]: ...

    def commit(self, outputs: Mapping[str, Any]) -> None: ...


class _InlineDevice:
    """One poller of an ``InlinePort``: its tags, schedule, freshness and health, worked out once."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.config = config = poller.config
        self.period = config.poll
        self.stale_after = config.stale_after
        self.tags = tuple(p.tag for p in config.inputs)
        self.tag_set = frozenset(self.tags)
        self.all_good = dict.fromkeys(self.tags, Quality.GOOD)
        self.due = float("-inf")
        self.fresh: float | None = None  # time of the last poll that delivered something
        self.failures = 0
        self.up = False
        self.errors = 0
        self.by_kind = dict.fromkeys(ERROR_KINDS, 0)
        prefix = f"dev.{config.name}."
        self.up_tag, self.errors_tag, self.last_good_tag = prefix + "up", prefix + "errors", prefix + "last_good"
        self.kind_tags = {kind: f"{prefix}errors_{kind}" for kind in ERROR_KINDS}
        self.publish_health = False  # the database declares the health tags (an io_map was loaded into it)
        self.resend = False  # a write failed: send every output again after the next good poll
        self.outputs = tuple(p.tag for p in config.outputs)


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

    Qualities follow the threaded manager: a good poll sets its tags GOOD, a poll that raises sets the
    device's inputs BAD (values kept), and GOOD inputs go STALE after the device's ``stale_after``. The
    device health tags (``dev.<name>.up``, ``.errors``, ``.errors_<kind>``, ``.last_good``) follow the
    drivers' ``Health`` too, where the database declares them; ``epoch`` is the wall time (seconds since the
    epoch) at monotonic time 0, for ``last_good``.
    """

    def __init__(self, pollers: Iterable[Poller], epoch: float = 0.0) -> None:
        self.pollers = list(pollers)
        self.epoch = epoch
        self._devices = [_InlineDevice(p) for p in self.pollers]
        self._outputs = frozenset(point.tag for p in self.pollers for point in p.config.outputs)
        self._db: TagDB | None = None  # the database the health flags were worked out for

    @property
    def failures(self) -> dict[str, int]:
        """Polls that raised, per device."""
        return {device.config.name: device.failures for device in self._devices}

    def latch(self, db: TagDB, now: float) -> None:
        if db is not self._db:
            self._db = db
            for device in self._devices:
                device.publish_health = all(tag.name in db.defs for tag in health_tags(device.config.name))
        for device in self._devices:
            if now >= device.due:
                device.due = now + device.period
                self._poll(device, db, now)
            fresh = device.fresh
            if fresh is not None and now - fresh > device.stale_after:
                quality = db.quality
                for tag in device.tags:
                    if quality[tag] is Quality.GOOD:
                        quality[tag] = Quality.STALE

    def _poll(self, device: _InlineDevice, db: TagDB, now: float) -> None:
        try:
            read = device.poller.poll()
        except Exception as exc:
            device.failures += 1
            self._partial(device, db, {}, error_kind(exc), now)
            return
        if read.keys() != device.tag_set:
            self._partial(device, db, read, DECODE, now)  # some point was not representable
            return
        # the common case, every tag read: dict-level updates (this runs for every device every poll)
        db.values.update(read)
        db.quality.update(device.all_good)
        db.stamp.update(dict.fromkeys(device.tags, now))
        if read:
            device.fresh = now
        if device.publish_health:
            db.values[device.last_good_tag] = self.epoch + now
            if not device.up:
                device.up = True
                db.values[device.up_tag] = True
        if device.resend:  # as the threaded driver does after a reconnect: outputs again, all of them
            device.resend = False
            self._write(device, db, {tag: db.values[tag] for tag in device.outputs})

    def _partial(self, device: _InlineDevice, db: TagDB, read: Mapping[str, Any], failure: str, now: float) -> None:
        """A poll that raised (nothing read) or left tags out: those tags go BAD, keeping their values."""
        quality = db.quality
        for tag in device.tags:
            if tag in read:
                db.set_input(tag, read[tag], Quality.GOOD, now)
            else:
                quality[tag] = Quality.BAD
        if read:
            device.fresh = now
        self._fail(device, db, failure)

    def _fail(self, device: _InlineDevice, db: TagDB, failure: str) -> None:
        if device.publish_health:  # what Health.fail publishes
            values = db.values
            device.errors += 1
            device.by_kind[failure] += 1
            values[device.errors_tag] = device.errors
            values[device.kind_tags[failure]] = device.by_kind[failure]
            device.up = False
            values[device.up_tag] = False

    def commit(self, changed: Mapping[str, Any], db: TagDB) -> None:
        if changed.keys().isdisjoint(self._outputs):  # most scans change no device output
            return
        for device in self._devices:
            self._write(device, db, changed)

    def _write(self, device: _InlineDevice, db: TagDB, outputs: Mapping[str, Any]) -> None:
        """Hand outputs to one device; a device that does not take them is counted down, never raised."""
        try:
            device.poller.commit(outputs)
        except Exception as exc:
            device.resend = True
            self._fail(device, db, error_kind(exc))
