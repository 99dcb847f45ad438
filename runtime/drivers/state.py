"""One device's state as the scan sees it: the qualities of what it read, staleness, its health counters.

Both ports that bring device values into the image use this one implementation, so they cannot drift apart:
the threaded ``DriverManager`` (manager.py, values handed over from the I/O thread) and the simulator's
in-process ``InlinePort`` (inline.py, values polled in the latch phase itself).

- ``ReadGroup``: the tags one read delivers together (a Modbus block, a VE.Direct field, one inline poll).
  ``latch`` puts a read into the image: the tags read are GOOD with their stamp, the group's other tags go BAD
  keeping their last value; ``age`` turns GOOD tags STALE when nothing fresh came within ``stale_after``.
- ``HealthCounters``: up/down, failed requests in total and by kind, the time of the last good read, and
  the health tag names ``dev.<name>.*`` they are published under (``health_tags`` declares them).
- ``DeviceAges``: ``dev.<name>.age``, the seconds since that last good read, brought up to date every latch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from runtime.names import device_tag
from runtime.tags import Quality, TagDB, TagDef, TagType

TIMEOUT = "timeout"  # no (complete) answer within the timeout, after the retries
REFUSED = "refused"  # could not connect or open the port, or the connection was lost
EXCEPTION = "exception"  # the device answered with a Modbus exception response
DECODE = "decode"  # malformed or short answer, bad checksum, truncated frame, value not representable
ERROR_KINDS = (TIMEOUT, REFUSED, EXCEPTION, DECODE)

def health_tags(device: str) -> list[TagDef]:
    """The health tags of one device: up, total errors, errors by kind, time of the last good read."""
    tags = [
        TagDef(device_tag(device, "up"), TagType.BOOL, "", f"device {device} answered its last poll completely"),
        TagDef(device_tag(device, "errors"), TagType.INT, "count", f"failed requests/frames of device {device}"),
        TagDef(device_tag(device, "last_good"), TagType.FLOAT, "s",
               f"time of the last good read of device {device}, seconds since the epoch (0 = never)"),
        # Not a metric: Prometheus has the time of the last good read and subtracts it from time() itself.
        TagDef(device_tag(device, "age"), TagType.FLOAT, "s",
               f"seconds since the last good read of device {device} (-1 = never)", default=-1.0, metric=False),
    ]
    tags += [TagDef(device_tag(device, f"errors_{kind}"), TagType.INT, "count", f"{kind} errors of device {device}")
             for kind in ERROR_KINDS]
    return tags


class DeviceAges:
    """Keeps ``dev.<name>.age`` current: the wall time of this latch minus the device's last good read."""

    def __init__(self, devices: Iterable[str], db: TagDB) -> None:
        pairs = ((device_tag(d, "age"), device_tag(d, "last_good")) for d in devices)
        self.pairs = tuple((age, last) for age, last in pairs if age in db.defs and last in db.defs)

    def update(self, values: MutableMapping[str, Any], wall: float) -> None:
        for age, last in self.pairs:
            good = values[last]
            values[age] = max(0.0, wall - good) if good > 0 else -1.0


class ReadGroup:
    """The tags one read delivers together, and when they were last fresh."""

    __slots__ = ("tags", "stale_after", "fresh", "stale", "all_good")

    def __init__(self, tags: tuple[str, ...], stale_after: float) -> None:
        self.tags = tags
        self.stale_after = stale_after
        self.fresh: float | None = None  # stamp of the last read that delivered something
        self.stale = False
        self.all_good = dict.fromkeys(tags, Quality.GOOD)

    def latch(self, db: TagDB, read: Mapping[str, Any], stamp: float) -> None:
        """Put one read into the image: the tags in ``read`` GOOD, the group's others BAD (value kept)."""
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
        if read:
            self.fresh = stamp
            self.stale = False

    def age(self, quality: MutableMapping[str, Quality], now: float) -> None:
        """GOOD tags turn STALE once nothing fresh came for longer than ``stale_after``."""
        if not self.stale and self.fresh is not None and now - self.fresh > self.stale_after:
            self.stale = True
            for tag in self.tags:
                if quality[tag] is Quality.GOOD:
                    quality[tag] = Quality.STALE


class HealthCounters:
    """One device's health: up after a good read, down after a failure; failures counted in total and by kind."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.up = False
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
        self.last_good = wall
        return not was_up

    def count_failure(self, kind: str) -> None:
        self.errors += 1
        self.by_kind[kind] += 1
        self.up = False

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.up_tag: self.up, self.errors_tag: self.errors, self.last_good_tag: self.last_good}
        for kind, count in self.by_kind.items():
            out[self.kind_tags[kind]] = count
        return out
