"""What the scan thread hands to the HTTP threads: histograms counted without locks, and the snapshot."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from runtime.tags import Quality

# Scan duration and start lateness, seconds: from well under a 10 ms period to several 1 s periods.
SCAN_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


# ---- histograms counted on the scan thread --------------------------------------------------------------

class Buckets:
    """A histogram counted by the scan thread without locks: one bisect and two additions per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float] = SCAN_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left puts a value equal to a bound into that bound's bucket, as "le" means.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def frozen(self) -> FrozenBuckets:
        return FrozenBuckets(self.bounds, tuple(self.counts), self.total)


@dataclass(frozen=True)
class FrozenBuckets:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds, self.counts, strict=False):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        buckets.append(("+Inf", cumulative + self.counts[-1]))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.total, unit="seconds")


# ---- the snapshot -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """The image and the scan figures as they were at one commit; read by the HTTP thread only."""

    values: dict[str, Any]
    quality: dict[str, Quality]
    scans: int
    overruns: int
    skipped: int
    period: float
    duration: FrozenBuckets
    lateness: FrozenBuckets
