"""One device's state as the scan sees it: the qualities of what it read, staleness, its health counters.

Both ports that bring device values into the image use this one implementation, so they cannot drift apart:
the threaded ``DriverManager`` (manager.py, values handed over from the I/O thread) and the simulator's
in-process ``InlinePort`` (inline.py, values polled in the latch phase itself).

- ``ReadGroup``: the tags one read delivers together (a Modbus block, a VE.Direct field, one inline poll).
  ``latch`` puts a read into the image: the tags read are GOOD with their stamp, the group's other tags go BAD
  keeping their last value; ``age`` turns GOOD tags STALE when nothing fresh came within ``stale_after``.
- ``Plausibility``: one device's plausible inputs (io_map ``range`` and ``max_rate`` of a point). A read group
  hands every read through it before the latch: a reading outside its range, or further from the last
  plausible one than ``max_rate`` allows, is left out of the read (so its tag goes BAD, value kept: an
  implausible answer never makes a tag GOOD) and counted in ``dev.<name>.errors_implausible``.
- ``HealthCounters``: up/down, failed requests in total and by kind, the time of the last good read, and
  the health tag names ``dev.<name>.*`` they are published under (``health_tags`` declares them).
- ``DeviceAges``: ``dev.<name>.age``, the seconds since that last good read, brought up to date every latch.
- ``OutputDevicesWatch``: ``alarm.output_device_down`` while a device that takes outputs is not reachable
  (the charts writing to it are held safe meanwhile: runtime/sfc/load.py); both ports update it at latch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from runtime.names import device_tag
from runtime.tags import Quality, TagDB, TagDef, TagType

TIMEOUT = "timeout"  # no (complete) answer within the timeout, after the retries
REFUSED = "refused"  # could not connect or open the port, or the connection was lost
EXCEPTION = "exception"  # the device answered with a Modbus exception response
DECODE = "decode"  # malformed or short answer, bad checksum, truncated frame, value not representable
ERROR_KINDS = (TIMEOUT, REFUSED, EXCEPTION, DECODE)
UNREACHABLE = (TIMEOUT, REFUSED)  # failures after which nobody knows whether the device hears us
IMPLAUSIBLE = "implausible"  # a reading outside its point's range or changing faster than its max_rate
LOG_EVERY = 60.0  # s: at most one log line per device about implausible readings, with a count of the rest

log = logging.getLogger("battplc.drivers")

def health_tags(device: str) -> list[TagDef]:
    """The health tags of one device: up, total errors, errors by kind, time of the last good read."""
    tags = [
        TagDef(device_tag(device, "up"), TagType.BOOL, "", f"device {device} answered its last poll completely"),
        TagDef(device_tag(device, "reachable"), TagType.BOOL, "",
               f"device {device} answered its last request, well or not (false after a timeout or a refused or "
               f"lost connection, and before its first answer)"),
        TagDef(device_tag(device, "errors"), TagType.INT, "count", f"failed requests/frames of device {device}"),
        TagDef(device_tag(device, "last_good"), TagType.FLOAT, "s",
               f"time of the last good read of device {device}, seconds since the epoch (0 = never)"),
        # Not a metric: Prometheus has the time of the last good read and subtracts it from time() itself.
        TagDef(device_tag(device, "age"), TagType.FLOAT, "s",
               f"seconds since the last good read of device {device} (-1 = never)", default=-1.0, metric=False),
    ]
    tags += [TagDef(device_tag(device, f"errors_{kind}"), TagType.INT, "count", f"{kind} errors of device {device}")
             for kind in ERROR_KINDS]
    tags.append(TagDef(device_tag(device, f"errors_{IMPLAUSIBLE}"), TagType.INT, "count",
                       f"readings of device {device} refused as implausible (outside range or max_rate)"))
    return tags


class DeviceAges:
    """Keeps ``dev.<name>.age`` current: the wall time of this latch minus the device's last good read."""

    def __init__(self, devices: Iterable[str], db: TagDB) -> None:
        pairs = ((device_tag(d, "age"), device_tag(d, "last_good")) for d in devices)
        self.pairs = tuple((age, last) for age, last in pairs if age in db.defs and last in db.defs)

    def update(self, values: MutableMapping[str, Any], wall: float) -> None:
        for age, last in self.pairs:
            good = values[last]
            if good > 0:
                since = wall - good
                values[age] = since if since > 0.0 else 0.0
            else:
                values[age] = -1.0


@dataclass(frozen=True)
class Plausible:
    """What a real reading of one input can be: within ``low..high``, moving at most ``max_rate`` a second."""

    low: float = -math.inf
    high: float = math.inf
    max_rate: float | None = None


class Plausibility:
    """The plausibility checks of one device's inputs, and the count of readings they refused.

    ``poll``: the device's poll period. A step (a cell's voltage when the current steps) is spread over at
    least one poll, so two readings closer than that are judged as if a poll apart. Each input is compared
    with its last *plausible* reading: a single wild answer is refused and the next true one accepted, and a
    real jump larger than ``max_rate`` is believed once enough time has passed for it.
    """

    def __init__(self, device: str, limits: Mapping[str, Plausible], poll: float) -> None:
        self.device = device
        self.limits = dict(limits)
        self.poll = poll
        self.refused = 0
        self.count_tag = device_tag(device, f"errors_{IMPLAUSIBLE}")
        # tag -> its last plausible reading, and that reading's stamp (two dicts: the stamps of a whole read
        # move on in one dict-level update)
        self._last: dict[str, float] = {}
        self._stamps: dict[str, float] = {}
        self._next_log = -math.inf
        self._unlogged = 0

    def filter(self, db: TagDB, read: Mapping[str, Any], tags: tuple[str, ...], stamp: float) -> Mapping[str, Any]:
        """``read`` without its implausible readings of ``tags`` (the checked tags of one group)."""
        refused: dict[str, str] = {}
        complete = True
        # C-level lookups of each tag's reading (None: not read) and last plausible reading (None: none yet)
        for tag, value, seen in zip(tags, map(read.get, tags), map(self._last.get, tags), strict=True):
            if value is None:
                complete = False
            elif value != seen:  # the last plausible reading again (most polls) is plausible without judging
                why = self._judge(tag, value, stamp)
                if why:
                    refused[tag] = why
        if complete and not refused:
            self.seen_again(tags, stamp)
            return read
        # only the stamps of readings taken as plausible move on
        self._stamps.update((tag, stamp) for tag in tags if tag in read and tag not in refused)
        if not refused:
            return read
        self.refused += len(refused)
        if self.count_tag in db.values:
            db.values[self.count_tag] = self.refused
        self._log(refused, stamp)
        return {tag: value for tag, value in read.items() if tag not in refused}

    def seen_again(self, tags: tuple[str, ...], stamp: float) -> None:
        """Every one of ``tags`` was read as its last plausible reading: only their stamps move on."""
        self._stamps.update(dict.fromkeys(tags, stamp))

    def _judge(self, tag: str, value: Any, stamp: float) -> str:
        """Why the reading is implausible ("" if it is not); a plausible one becomes the new reference."""
        limits = self.limits[tag]
        value = float(value)
        if not limits.low <= value <= limits.high:
            return f"{tag} = {value:g} is outside {limits.low:g}..{limits.high:g}"
        last = self._last.get(tag)
        if limits.max_rate is not None and last is not None:
            since = self._stamps[tag]
            elapsed = max(stamp - since, self.poll)
            if abs(value - last) > limits.max_rate * elapsed:
                return (f"{tag} = {value:g} moved {value - last:+g} from {last:g} in {stamp - since:.3g} s "
                        f"(max_rate {limits.max_rate:g}/s)")
        self._last[tag] = value
        self._stamps[tag] = stamp
        return ""

    def _log(self, refused: Mapping[str, str], stamp: float) -> None:
        # A device that keeps lying must not flood the journal: one line a minute, with how many were not told.
        if stamp < self._next_log:
            self._unlogged += len(refused)
            return
        more = f" ({self._unlogged} more refused since the last line)" if self._unlogged else ""
        log.warning("device %s: implausible reading(s), BAD until plausible again: %s%s", self.device,
                    "; ".join(refused.values()), more)
        self._next_log, self._unlogged = stamp + LOG_EVERY, 0


class ReadGroup:
    """The tags one read delivers together, and when they were last fresh."""

    __slots__ = ("tags", "stale_after", "fresh", "stale", "all_good", "plausibility", "checked", "_passed")

    def __init__(self, tags: tuple[str, ...], stale_after: float, plausibility: Plausibility | None = None) -> None:
        self.tags = tags
        self.stale_after = stale_after
        self.fresh: float | None = None  # stamp of the last read that delivered something
        self.stale = False
        self.all_good = dict.fromkeys(tags, Quality.GOOD)
        self.checked = tuple(t for t in tags if plausibility is not None and t in plausibility.limits)
        self.plausibility = plausibility if self.checked else None
        self._passed: Mapping[str, Any] | None = None  # the last complete read, if all of it was plausible

    def latch(self, db: TagDB, read: Mapping[str, Any], stamp: float) -> None:
        """Put one read into the image: the tags in ``read`` GOOD, the group's others BAD (value kept); an
        implausible reading (``Plausibility``) counts as not read.

        ``read`` holds tags of the group only, and is not changed once handed over: an inline poller hands
        the very same mapping again when nothing changed (``Poller.poll``), and a complete read that passed
        the plausibility checks whole passes them again, without judging (most polls of a steady device)."""
        fresh = bool(read)
        checks = self.plausibility
        if checks is not None and read:
            if read is self._passed:
                checks.seen_again(self.checked, stamp)
            else:
                passed = checks.filter(db, read, self.checked, stamp)
                self._passed = read if passed is read and len(read) == len(self.tags) else None
                read = passed
        if len(read) == len(self.tags):
            # The common case, a complete read: dict-level updates keep the latch short (it holds the GIL).
            db.values.update(read)
            db.quality.update(self.all_good)
            db.stamp.update(dict.fromkeys(self.tags, stamp))
        else:
            values, quality, stamps = db.values, db.quality, db.stamp
            for tag in self.tags:
                if tag in read:
                    values[tag] = read[tag]
                    quality[tag] = Quality.GOOD
                    stamps[tag] = stamp
                else:
                    quality[tag] = Quality.BAD
        if fresh:  # the device answered, even if with nonsense: its tags are BAD, not STALE
            self.fresh = stamp
            self.stale = False

    def age(self, quality: MutableMapping[str, Quality], now: float) -> None:
        """GOOD tags turn STALE once nothing fresh came for longer than ``stale_after``."""
        if not self.stale and self.fresh is not None and now - self.fresh > self.stale_after:
            self.stale = True
            for tag in self.tags:
                if quality[tag] is Quality.GOOD:
                    quality[tag] = Quality.STALE


OUTPUT_DEVICE_DOWN = "alarm.output_device_down"


def output_alarm_tag() -> TagDef:
    """The alarm raised while a device that takes outputs does not answer (declared with an io_map that has one)."""
    return TagDef(OUTPUT_DEVICE_DOWN, TagType.BOOL, "",
                  "a device that takes outputs does not answer: the charts writing to it hold their safe step")


class OutputDevicesWatch:
    """Raises ``alarm.output_device_down`` while a device with outputs is not reachable after a failure (not
    before its first answer at start: it has not failed yet), from its health tags in the image."""

    def __init__(self, devices: Iterable[str]) -> None:
        self.health = tuple((device_tag(d, "reachable"), device_tag(d, "errors")) for d in devices)

    def update(self, values: MutableMapping[str, Any]) -> None:
        down = False
        for reachable, errors in self.health:  # a loop, not any(generator): this runs every latch
            if not values[reachable] and values[errors]:
                down = True
                break
        if values[OUTPUT_DEVICE_DOWN] != down:
            values[OUTPUT_DEVICE_DOWN] = down


def output_watch(devices: Iterable[Any], db: TagDB) -> OutputDevicesWatch | None:
    """The watch over the ``devices`` (DeviceConfigs) that take outputs, where ``db`` declares its tags."""
    names = [d.name for d in devices if d.outputs
             and all(t in db.defs for t in (device_tag(d.name, "reachable"), device_tag(d.name, "errors")))]
    return OutputDevicesWatch(names) if names and OUTPUT_DEVICE_DOWN in db.defs else None


class HealthCounters:
    """One device's health: up after a good read, down after a failure; reachable while it answers at all;
    failures counted in total and by kind."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.up = False
        self.reachable = False
        self.reachable_tag = device_tag(device, "reachable")
        self.errors = 0
        self.by_kind = dict.fromkeys(ERROR_KINDS, 0)
        self.last_good = 0.0
        self.up_tag = device_tag(device, "up")
        self.errors_tag = device_tag(device, "errors")
        self.last_good_tag = device_tag(device, "last_good")
        self.kind_tags = {kind: device_tag(device, f"errors_{kind}") for kind in ERROR_KINDS}

    def count_good(self, wall: float) -> bool:
        """A good read at wall time ``wall``; True when the device was down before."""
        was_up, self.up = self.up, True
        self.reachable = True
        self.last_good = wall
        return not was_up

    def count_failure(self, kind: str) -> None:
        self.errors += 1
        self.by_kind[kind] += 1
        self.up = False
        self.reachable = kind not in UNREACHABLE  # an exception or a garbled answer: it is there, it hears us

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.up_tag: self.up, self.reachable_tag: self.reachable, self.errors_tag: self.errors,
                               self.last_good_tag: self.last_good}
        for kind, count in self.by_kind.items():
            out[self.kind_tags[kind]] = count
        return out
