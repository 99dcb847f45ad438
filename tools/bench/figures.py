"""What a benchmark returns: figures measured side by side with a reference in the same run.

Every module ``tools/bench/bench_*.py`` has ``run(quick: bool) -> list[Figure]``; ``python -m tools.bench``
runs them all, prints one line per figure, writes JSON records and renders BENCHMARKS.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Figure:
    bench: str                     # e.g. "scan", "sfc", "modbus_server"
    name: str                      # e.g. "lateness p99 at 10 ms"
    value: float                   # battplc's figure
    unit: str                      # "ms", "us", "req/s", "x real time", ...
    reference: float | None = None  # the same figure for the reference, measured in the same run
    reference_name: str = ""       # e.g. "cyclictest -i 10000", "stock pymodbus server"
    goal: str = ""                 # e.g. "<= 1.5x cyclictest"
    lower_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """battplc / reference (None without a reference)."""
        if self.reference in (None, 0):
            return None
        return self.value / self.reference

    def line(self) -> str:
        ref = ""
        if self.reference is not None:
            ratio = self.ratio
            ref = f"  | {self.reference_name}: {self.reference:.4g} {self.unit}" + (
                f"  ratio {ratio:.2f}" if ratio is not None else "")
        goal = f"  [goal: {self.goal}]" if self.goal else ""
        return f"{self.bench:14s} {self.name:42s} {self.value:12.4g} {self.unit}{ref}{goal}"

    def record(self) -> dict:
        out = asdict(self)
        out["ratio"] = self.ratio
        return out
