"""Prove a refactor changed no behaviour: every shipped scenario's trace CSV and summary JSON, byte for byte.

    python -m tools.identical record DIR     # run every scenario, keep trace and summary under DIR
    python -m tools.identical compare DIR    # run them again and compare with DIR; exit 1 on any difference

The summary's wall-clock fields (``wall_s``, ``cpu_s``, ``x_real_time``, ``cost_us_per_scan``) measure the
machine, not the controller, and are left out; everything else must match exactly.
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WALL_CLOCK_KEYS = ("wall_s", "cpu_s", "x_real_time", "cost_us_per_scan")


def scenario_files() -> list[Path]:
    """Every shipped scenario: scenarios/ and each example site's scenarios/."""
    return sorted(ROOT.glob("scenarios/*.yaml")) + sorted(ROOT.glob("examples/*/scenarios/*.yaml"))


def run_one(scenario: Path, out: Path) -> None:
    """Run one scenario through the CLI and leave ``<name>.csv`` and ``<name>.json`` (machine keys dropped)."""
    name = scenario.relative_to(ROOT).as_posix().replace("/", "__").removesuffix(".yaml")
    trace, summary = out / f"{name}.csv", out / f"{name}.json"
    subprocess.run([sys.executable, "-m", "runtime.cli", "sim", "--scenario", str(scenario),
                    "--trace", str(trace), "--summary", str(summary), "--no-progress"],
                   cwd=ROOT, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = json.loads(summary.read_text(encoding="utf-8"))
    for key in WALL_CLOCK_KEYS:
        data.pop(key, None)
    summary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def record(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for scenario in scenario_files():
        run_one(scenario, out)
        print(f"recorded {scenario.relative_to(ROOT)}")


def compare(reference: Path, work: Path) -> int:
    record(work)
    differences = 0
    for ref in sorted(reference.iterdir()):
        new = work / ref.name
        if not new.exists():
            print(f"MISSING {ref.name}")
            differences += 1
        elif new.read_bytes() != ref.read_bytes():
            differences += 1
            diff = difflib.unified_diff(ref.read_text().splitlines(), new.read_text().splitlines(),
                                        "reference", "now", lineterm="", n=0)
            print(f"DIFFERENT {ref.name}:\n  " + "\n  ".join(list(diff)[:12]))
        else:
            print(f"identical {ref.name} ({ref.stat().st_size:,} bytes)")
    print(f"{len(list(reference.iterdir())) - differences} identical, {differences} different")
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.identical", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("dir", type=Path, help="where the reference traces are (record: are written)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/battplc-identical-now"),
                        help="compare: where this run's traces go")
    args = parser.parse_args(argv)
    if args.action == "record":
        record(args.dir)
        return 0
    return compare(args.dir, args.work)


if __name__ == "__main__":
    sys.exit(main())
