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

Registration: each driver module exports ``Driver`` records (below) - its io_map keys, point builders, link
factory, connection key and in-process poller - and ``runtime/drivers/config.py`` lists them, one line per
driver module. Nothing else names a driver.

In-process use (the plant simulator, ``battplc sim``): ``Driver.inline_poller(config, defs, counterpart,
wire)`` returns a ``Poller`` over the simulated device ``counterpart`` (a register bank, a frame source; see
tools/plantsim/devices.py), polled by ``InlinePort`` (inline.py) with the same qualities and health as the
threaded manager, through the driver's own decode path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.drivers.codec import InputPoint, OutputPoint
from runtime.drivers.state import HealthCounters, Plausible
from runtime.tags import TagDef

log = logging.getLogger("battplc.drivers")


class Point(Protocol):
    """What the generic code needs of a point of any driver (``codec.InputPoint``, ``vedirect.FieldPoint``)."""

    tag: str
    line: int


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
    inputs: tuple[InputPoint, ...] = ()  # or the driver's own point type (vedirect.FieldPoint)
    outputs: tuple[OutputPoint, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)  # a driver's own keys beyond these
    plausible: Mapping[str, Plausible] = field(default_factory=dict, hash=False)  # input tag -> range, max_rate
    file: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


# ---- health ------------------------------------------------------------------------------------------------

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


class Health(HealthCounters):
    """The health of one device on its link, published to the sink; transitions are logged once."""

    def __init__(self, device: str, ctx: LinkContext) -> None:
        super().__init__(device)
        self.ctx = ctx
        self._reported_down = False

    def good(self) -> None:
        if not self.up and self._reported_down:
            log.info("device %s is back after %d error(s)", self.device, self.errors)
        self._reported_down = False
        self.count_good(self.ctx.wall())
        self.publish()

    def fail(self, kind: str, detail: str) -> None:
        self.count_failure(kind)
        if not self._reported_down:
            # One line per outage, not one per failed request: a dead device must not flood the journal.
            log.warning("device %s: %s (%s); the inputs it could not read are BAD until a good read", self.device,
                        kind, detail)
            self._reported_down = True
        self.publish()

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


# ---- what a driver module registers ------------------------------------------------------------------------

class Poller(Protocol):
    """A device polled inline, without I/O threads (``modbus.SyncPoller``, ``vedirect.FramePoller``).

    ``poll()`` returns {tag: value} of the device's inputs read well, a mapping nobody changes afterwards: a
    poller may hand the very same mapping again when nothing changed, which spares the read group its checks.
    """

    config: DeviceConfig

    def poll(self) -> Mapping[str, Any]: ...

    def commit(self, outputs: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Driver:
    """One ``driver:`` value of io_map.yaml and everything that depends on it.

    ``keys``: its own device keys as schema fields (config.py adds the common ones: driver, stale_after,
    backoff, inputs, outputs); keys that are not ``DeviceConfig`` fields land in ``DeviceConfig.options``.
    ``input_schema``: a ``Schema`` of its input point keys (config.py adds ``range`` and ``max_rate``).
    ``input_point`` / ``output_point``: ``(point, rules) -> point | None`` checks one validated point of
    ``input_schema`` / ``output_schema`` with the driver's point rules, reporting through ``rules``
    (``config.PointRules``); ``output_schema`` None: the device takes no outputs.
    ``link_key(config)``: devices with the same key share one connection (a TCP gateway, an RS485 bus);
    ``shares_link`` False: a second device on the same key is an error (a VE.Direct port carries one device).
    ``make_links(configs, ctx)``: the asyncio links of its devices. ``inline_poller(config, defs, counterpart,
    wire)``: an inline ``Poller`` over the simulated device ``counterpart``, whose kind ``simulated`` names
    (tools/plantsim/devices.py serves each kind); ``wire`` asks for the byte path where there is one.
    """

    name: str
    title: str  # for messages: "Modbus TCP", "VE.Direct"
    keys: Mapping[Any, Callable[[Any], Any]]
    input_schema: Any
    input_point: Callable[[dict, Any], Any]
    link_key: Callable[[DeviceConfig], tuple[str, ...]]
    make_links: Callable[[list[DeviceConfig], LinkContext], list[Link]]
    simulated: str = ""  # "": the plant simulator cannot simulate this driver's devices
    inline_poller: Callable[[DeviceConfig, Mapping[str, TagDef], Any, bool], Poller] | None = None
    output_schema: Any = None
    output_point: Callable[[dict, Any], Any] | None = None
    shares_link: bool = True
