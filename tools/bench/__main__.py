"""Run every benchmark side by side with its reference and render BENCHMARKS.md.

    python -m tools.bench [--quick] [--only scan,sfc] [--out bench-results] [--no-render]

Each ``tools/bench/bench_*.py`` module has ``run(quick) -> list[Figure]``. Figures print as they come, the
JSON records go to ``bench-results/<timestamp>.json``, and a full run rewrites BENCHMARKS.md with the machine, the
date, and for each figure battplc's value, the reference's value from the same run and their ratio. A ``--quick``
run writes only under ``bench-results/``: the published page always holds full-run figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

from tools.bench.figures import Figure
from tools.bench.machine import machine_info
from tools.bench.render import render

ROOT = Path(__file__).resolve().parents[2]


def discover() -> list[str]:
    import tools.bench as package

    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(package.__path__)
                  if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (the whole suite in under 2 minutes); BENCHMARKS.md is left alone")
    parser.add_argument("--only", help="comma-separated benchmark names, e.g. scan,sfc")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--no-render", action="store_true", help="do not rewrite BENCHMARKS.md")
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; have {', '.join(names)}")
        names = [n for n in names if n in wanted]
    info = machine_info()
    print(f"# {info['cpu']} x{info['cores']}, {info['kernel']}, Python {info['python']}, "
          f"{'quick' if args.quick else 'full'} run", flush=True)
    figures: list[Figure] = []
    failed: list[str] = []
    started = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"tools.bench.bench_{name}")
            for figure in module.run(args.quick):
                print(figure.line(), flush=True)
                figures.append(figure)
        except Exception:
            failed.append(name)
            print(f"{name}: FAILED\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        print(f"# {name} took {time.perf_counter() - t0:.1f} s", flush=True)
    total = time.perf_counter() - started
    record = {"machine": info, "date": datetime.now().isoformat(timespec="seconds"), "quick": args.quick,
              "seconds": round(total, 1), "failed": failed, "figures": [f.record() for f in figures]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{datetime.now():%Y%m%d-%H%M%S}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"# {len(figures)} figures in {total:.0f} s -> {path}")
    if not args.quick and not args.no_render and not args.only:
        (ROOT / "BENCHMARKS.md").write_text(render(record))
        print("# BENCHMARKS.md rewritten")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
