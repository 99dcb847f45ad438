"""Chart executor cost per scan: 6 charts x 8 steps x 12 transitions, against a naive executor, same run.

Both executors are the same loaded charts (same compiled expressions, same action and output handling);
they differ only in how a scan decides whether a transition clears:

- battplc folds the active step's conditions into one compiled function and calls the ``transitions``
  Machine only when one clears (a few scans in a hundred here);
- the naive reference calls a ``transitions`` trigger every scan, with the guard and each condition as the
  transitions' condition callbacks, which is how the library is normally used.

Inputs change every scan from a fixed pseudo-random sequence so steps advance now and then, as in a plant.
The figure is the time spent in the 6 charts' ``scan`` calls; the scan loop's own per-program dispatch
(binding the context, fault bookkeeping) is the same for any program and is not part of it. Each scan runs
both executors one right after the other, and the figures are the median scan of each, so a busy machine
slows both alike and the scans a burst of other work hit are left out.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from runtime.loader import find_program
from runtime.program import ScanContext
from runtime.sfc import Chart, load_chart
from runtime.sfc.shared import chart_set
from runtime.site import load_site
from tools.bench.figures import Figure

CHARTS = 6
STEPS = 8
PERIOD = 0.1  # simulated seconds per scan
CROSS = ((0, 4), (2, 6), (4, 1), (6, 3))  # the 4 transitions beyond the ring: divergences with priority


class NaiveChart(Chart):
    """The reference executor: a ``transitions`` trigger per scan, conditions as its callbacks."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for step in self.steps.values():
            if self.guard is not None and step is not self.safe:
                self.machine.add_transition("scan", step.name, self.safe.name, unless=[self.guard])
            guard = [self.guard] if self.guard is not None else []
            for trigger, condition in zip(step.triggers, step.conditions, strict=True):
                target = self.machine.events[trigger].transitions[step.name][0].dest
                self.machine.add_transition("scan", step.name, target, conditions=[*guard, condition])

    def scan(self, ctx: ScanContext) -> None:
        step = self._step
        if step.name is None:  # not started: the first scan activates the initial step
            super().scan(ctx)
            return
        self._now = ctx.t
        step.flag.t = elapsed = ctx.t - step.flag.since
        self.machine.trigger("scan")  # the exit/entry callbacks run when a transition clears
        if self._step is step:
            step.drive(ctx, elapsed, False)
        else:
            self._step.drive(ctx, 0.0, True)
            self._pulses.clear()
        self._values[self._time_tag] = self._step.flag.t


def site_files(folder: Path) -> None:
    """A site with 6 generated charts: each reads 3 inputs, 2 parameters and a flag of its neighbour."""
    tags = ["site:", "  name: bench", f"  programs: [{', '.join(f'c{k}' for k in range(CHARTS))}]", "tags:",
            "  par.bench_high: {type: float, default: 0.9995, access: rw}",
            "  par.bench_min_s: {type: float, default: 2.0, access: rw}"]
    (folder / "programs").mkdir()
    for k in range(CHARTS):
        tags += [f"  bench.c{k}.x: {{type: float}}", f"  bench.c{k}.y: {{type: float}}",
                 f"  bench.c{k}.ready: {{type: bool, default: true}}",
                 f"  bench.c{k}.run: {{type: bool}}", f"  bench.c{k}.sp: {{type: float}}",
                 f"  bench.c{k}.pulse: {{type: bool}}"]
        (folder / "programs" / f"c{k}.sfc.yaml").write_text(chart_text(k))
    (folder / "tags.yaml").write_text("\n".join(tags) + "\n")


def chart_text(k: int) -> str:
    other = f"c{(k + 1) % CHARTS}"
    lines = [f"name: c{k}", f"requires: [bench.c{k}.x, bench.c{k}.y]", f"enable: bench.c{k}.ready",
             "initial: s0", "safe: s0", "outputs:", f"  bench.c{k}.run: {{}}", f"  bench.c{k}.sp: {{idle: 0}}",
             f"  bench.c{k}.pulse: {{}}", "steps:"]
    for s in range(STEPS):
        lines += [f"  s{s}:", "    actions:",
                  f"      - {{qualifier: N, set: bench.c{k}.run, value: bench.c{k}.x > 0.2}}",
                  f"      - {{qualifier: N, set: bench.c{k}.sp, value: 'clamp(bench.c{k}.y * 10, 0, 8)'}}",
                  f"      - {{qualifier: {'L' if s % 2 else 'P1'}, set: bench.c{k}.pulse"
                  + (", time: 1s}" if s % 2 else "}")]
    lines.append("transitions:")
    for s in range(STEPS):
        for source, target in CROSS:
            if source == s:
                lines.append(f"  - {{from: s{s}, to: s{target}, when: "
                             f"'bench.c{k}.x > par.bench_high and {other}.s{s % 4}.X'}}")
        lines.append(f"  - {{from: s{s}, to: s{(s + 1) % STEPS}, when: "
                     f"'bench.c{k}.y > 0.999 and s{s}.T >= par.bench_min_s'}}")
    return "\n".join(lines) + "\n"


def load(folder: Path, chart_class: type[Chart]) -> tuple[list[Chart], ScanContext]:
    site, db, _, _ = load_site(folder, with_programs=False)
    errors: list = []
    charts = [load_chart(find_program(site, f"c{k}"), db, errors, site, chart_class=chart_class)
              for k in range(CHARTS)]
    if errors:
        raise RuntimeError("\n".join(map(str, errors)))
    for chart in charts:
        for tag in chart.declare():
            db.ensure(tag)
        chart.start(db)
    assert chart_set(db).steps.keys() == {f"c{k}" for k in range(CHARTS)}
    return charts, ScanContext(db)


class Runner:
    """One executor over its own copy of the site, fed the same input sequence as the other."""

    def __init__(self, folder: Path, chart_class: type[Chart]) -> None:
        self.charts, self.ctx = load(folder, chart_class)
        rng = random.Random(1)
        self.inputs = [[rng.random() for _ in range(2 * CHARTS)] for _ in range(997)]
        self.names = [f"bench.c{k}.{axis}" for k in range(CHARTS) for axis in ("x", "y")]
        self.fired = 0
        self.steps = [chart.step for chart in self.charts]

    def scan(self, n: int) -> float:
        """Scan number ``n``: set the inputs, run the charts; return the seconds spent in the charts."""
        ctx, charts = self.ctx, self.charts
        values = ctx.db.values
        for name, value in zip(self.names, self.inputs[n % 997], strict=True):
            values[name] = value
        ctx.count, ctx.t = n, n * PERIOD
        start = time.perf_counter()
        for chart in charts:
            chart.scan(ctx)  # no arbitrated outputs here, so no ctx.write and no need to bind ctx per chart
        spent = time.perf_counter() - start
        ctx.db.staged.clear()  # the outputs are not read back here; a real scan commits them
        now = [chart.step for chart in charts]
        self.fired += sum(a != b for a, b in zip(self.steps, now, strict=True))
        self.steps = now
        return spent


def run(quick: bool) -> list[Figure]:
    scans = 20_000 if quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site_files(folder)
        ours, naive = Runner(folder, Chart), Runner(folder, NaiveChart)
        timings = [(ours.scan(n), naive.scan(n)) for n in range(scans)]
    if ours.fired != naive.fired:
        raise RuntimeError(f"the executors disagree: {ours.fired} vs {naive.fired} transitions fired")
    settled = timings[scans // 20:]  # the first scans warm up
    ours_us = statistics.median(t for t, _ in settled) * 1e6
    naive_us = statistics.median(t for _, t in settled) * 1e6
    ours_mean = statistics.fmean(t for t, _ in settled) * 1e6
    naive_mean = statistics.fmean(t for _, t in settled) * 1e6
    shape = f"{CHARTS} charts x {STEPS} steps x {STEPS + len(CROSS)} transitions"
    dwell = scans * CHARTS / max(ours.fired, 1)
    return [
        Figure("sfc", f"{shape}, per scan", ours_us, "us", reference=naive_us,
               reference_name="transitions trigger every scan", goal="< 50 us and <= 0.1x naive",
               note=f"median of {len(settled)} scans (means {ours_mean:.1f} and {naive_mean:.1f} us); "
                    f"{ours.fired} transitions fired, a step lasts {dwell:.0f} scans on average"),
        Figure("sfc", "speed-up over a trigger per scan", naive_us / ours_us, "x", goal=">= 10x",
               lower_is_better=False),
    ]


if __name__ == "__main__":
    for figure in run(quick=True):
        print(figure.line())
