"""``battplc sim`` and ``battplc demo``: the plant simulator's sub-commands (registered by runtime/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runtime.cli_args import duration_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim", help="run a scenario: plant and controller in one process on a simulated clock",
        description="Run plant and controller in one process on a simulated clock, as fast as the CPU allows. "
                    "Exit status 1 when the scenario's `expect` bounds or `checks` are missed.")
    p.add_argument("--scenario", required=True, type=Path, help="scenario file (see scenarios/)")
    p.add_argument("--duration", type=duration_arg, help="simulate this long instead (e.g. 2h); "
                                                         "`expect` and `checks` are then not judged")
    p.add_argument("--scan", type=duration_arg, help="scan period (default: the scenario's, else the site's)")
    p.add_argument("--trace", type=Path, help="write the trace CSV here")
    p.add_argument("--summary", type=Path, help="write the summary JSON here (default: print it)")
    p.add_argument("--plot", type=Path, help="write a PNG plot here")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_sim)

    p = subparsers.add_parser(
        "demo", help="the embedded default (make run): simulated plant on loopback + controller, in real time",
        description="Serve the simulated plant's devices on loopback (Modbus TCP, a pty for VE.Direct) and run "
                    "the controller of the site against them in real time. Ctrl-C stops both.")
    p.add_argument("dir", nargs="?", type=Path, default=None, help="site folder (default: the repository root)")
    p.add_argument("--scenario", type=Path, help="plant, profiles and faults to play (default: the "
                                                 "site's first scenarios/*.yaml, else the repository's "
                                                 "scenarios/sunny_summer_day.yaml; its clock is today's)")
    p.add_argument("--period", type=duration_arg, help="scan period (default: the site's)")
    p.add_argument("--duration", type=duration_arg, help="stop after this long")
    p.set_defaults(func=cmd_demo)


def cmd_sim(args: argparse.Namespace) -> int:
    from tools.plantsim.scenario import load_scenario
    from tools.plantsim.sim import Simulation
    scenario = load_scenario(args.scenario)
    simulation = Simulation(scenario, duration=args.duration, scan=args.scan)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    summary = simulation.run(progress=progress)
    if args.trace:
        simulation.trace.write_csv(args.trace)
    if args.plot:
        from tools.plantsim.plot import plot_trace

        plot_trace(simulation.trace, args.plot, title=f"{scenario.name} ({args.scenario})")
    text = json.dumps(summary, indent=2)
    if args.summary:
        args.summary.write_text(text + "\n", encoding="utf-8")
        print(f"{scenario.name}: {summary['scans']} scans in {summary['wall_s']:.2f} s wall "
              f"({summary['x_real_time']:,}x real time), safety violations {summary['safety_violations']}")
    else:
        print(text)
    if args.duration is not None and args.duration != scenario.duration:
        if scenario.expect or scenario.checks:
            print("expect and checks: not judged (the run was shortened with --duration)", file=sys.stderr)
        return 0
    failed = scenario.check_expectations(summary) + summary["checks_failed"]
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from runtime.site import REPO_ROOT
    from tools.plantsim.demo import run_demo
    from tools.plantsim.serve import PlantServerError
    try:
        return run_demo(args.dir or REPO_ROOT, args.scenario, period=args.period, duration=args.duration)
    except PlantServerError as exc:
        print(f"battplc demo: {exc}", file=sys.stderr)
        return 1
