"""``battplc sim`` and ``battplc demo``: the plant simulator's sub-commands (registered by runtime/cli.py)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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
    p.add_argument("--trace", type=Path, help="write the trace CSV here (streamed as the run goes)")
    p.add_argument("--trace-every", type=duration_arg, help="trace sample period (default: the scenario's)")
    p.add_argument("--summary", type=Path, help="write the summary JSON here (default: print it)")
    p.add_argument("--plot", type=Path, help="write a PNG plot here")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar with ETA on stderr (default: when stderr is a terminal)")
    p.add_argument("--why-at", type=clock_time, metavar="HH:MM",
                   help="explain every chart at this time of the simulated day, like `battplc why`")
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


def clock_time(text: str) -> float:
    """``HH:MM`` or ``HH:MM:SS`` as seconds after midnight."""
    try:
        parts = [int(p) for p in text.split(":")]
        hours, minutes, seconds = (parts + [0])[:3] if len(parts) in (2, 3) else (None, None, None)
        if hours is None or not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 60):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time of day such as 20:15") from None
    return hours * 3600 + minutes * 60 + seconds


def cmd_sim(args: argparse.Namespace) -> int:
    from tools.plantsim.scenario import load_scenario
    from tools.plantsim.sim import Simulation
    scenario = load_scenario(args.scenario)
    simulation = Simulation(scenario, duration=args.duration, scan=args.scan, trace_every=args.trace_every)
    if args.why_at is not None:
        simulation.why_at = _seconds_until(scenario.start, args.why_at)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.trace:
        # a stopped run leaves the trace up to its last sample; rows stay in memory only for the plot
        simulation.trace.stream_to(args.trace, keep=bool(args.plot))
    elif not args.plot:
        simulation.trace.keep = False  # nobody reads the rows: a year's run keeps flat memory and samples nothing
    signals = _stop_on_signals(simulation)
    try:
        summary = simulation.run(progress=progress)
    finally:
        simulation.trace.close()
        for number, handler in signals.items():
            signal.signal(number, handler)
    stopped = simulation.stopped_at is not None
    if stopped:
        summary["stopped_at_s"] = simulation.stopped_at
    if args.plot:
        from tools.plantsim.plot import plot_trace

        plot_trace(simulation.trace, args.plot, title=f"{scenario.name} ({args.scenario})", start=scenario.start,
                   marks=simulation.marks)
    if args.why_at is not None:
        _print_why(simulation, args.why_at)
    text = json.dumps(summary, indent=2)
    if args.summary:
        args.summary.write_text(text + "\n", encoding="utf-8")
        print(f"{scenario.name}: {summary['scans']} scans in {summary['wall_s']:.2f} s wall "
              f"({summary['x_real_time']:,}x real time), safety violations {summary['safety_violations']}")
    else:
        print(text)
    if stopped:
        written = [str(path) for path in (args.trace, args.summary, args.plot) if path]
        print(f"stopped at {_clock(scenario.start, simulation.stopped_at or 0.0)} of the simulated day; partial "
              f"{', '.join(written) if written else 'summary above'} written", file=sys.stderr)
        return 130 if simulation.stop_signal == signal.SIGINT else 143
    if args.duration is not None and args.duration != scenario.duration:
        if scenario.expect or scenario.checks:
            print("expect and checks: not judged (the run was shortened with --duration)", file=sys.stderr)
        return 0
    failed = scenario.check_expectations(summary) + summary["checks_failed"]
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


def _stop_on_signals(simulation: Any) -> dict[int, Any]:
    """Ctrl-C and SIGTERM end the run cleanly after the current scan; the previous handlers, to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(number: int, frame: Any) -> None:
        simulation.stop_signal = number
        simulation.stop()

    return {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}


def _seconds_until(start: datetime, time_of_day: float) -> float:
    """Simulated seconds from ``start`` to the first ``time_of_day`` at or after it."""
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    target = midnight + timedelta(seconds=time_of_day)
    if target < start:
        target += timedelta(days=1)
    return (target - start).total_seconds()


def _clock(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=seconds)).strftime("%H:%M:%S")


def _print_why(simulation: Any, time_of_day: float) -> None:
    from runtime.sfc.why_cli import charts_of, explain_site

    hhmm = f"{int(time_of_day // 3600):02d}:{int(time_of_day % 3600 // 60):02d}"
    if simulation.why is None:
        print(f"why at {hhmm}: the run ended before {hhmm}", file=sys.stderr)
        return
    print(f"why at {hhmm} of the simulated day:")
    print(explain_site(charts_of(simulation.controller.programs), simulation.why, simulation.db.defs))
    print()


def cmd_demo(args: argparse.Namespace) -> int:
    from runtime.site import REPO_ROOT
    from tools.plantsim.demo import run_demo
    from tools.plantsim.serve import PlantServerError
    try:
        return run_demo(args.dir or REPO_ROOT, args.scenario, period=args.period, duration=args.duration)
    except PlantServerError as exc:
        print(f"battplc demo: {exc}", file=sys.stderr)
        return 1
