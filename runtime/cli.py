"""The ``battplc`` command: check, run and inspect a site; charts, Modbus and the simulator add their sub-commands.

Config problems print one line each (file:line: key: what is wrong) and exit with status 2 (CONFIG_INVALID)
without a traceback; a failure while running exits with 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from runtime import export as export_commands
from runtime import params as params_commands
from runtime.alarms import cli as alarm_commands
from runtime.app import Controller
from runtime.cli_args import duration_arg, period_arg, site_arg
from runtime.config.errors import ConfigErrors
from runtime.events import configure_logging
from runtime.retain import resolve_path, writable_problem
from runtime.server import cli as modbus_commands
from runtime.sfc import cli as chart_commands
from runtime.sfc import why_cli as why_commands
from runtime.site import load_running_tags, load_site
from tools.plantsim import cli as sim_commands
from tools.plantsim import replay as replay_commands

# Sub-commands that live next to what they serve; each module has register(subparsers).
COMMANDS = (chart_commands, why_commands, modbus_commands, alarm_commands, params_commands, sim_commands,
            replay_commands, export_commands)
CONFIG_INVALID = 2  # exit status for a config that does not load (1: a failure while running)


def cmd_check(args: argparse.Namespace) -> int:
    site, db, programs, interlocks = load_site(args.dir)
    problem = writable_problem(resolve_path(site.settings.retain.path, site.dir))
    if problem:
        print(f"{site.files['tags']}: warning: site.retain.path: {problem}; retained values would live in "
              f"memory only", file=sys.stderr)
    names = [p.name for p in programs] + ([f"{interlocks.name} (interlocks)"] if interlocks else [])
    print(f"{site.dir}: ok: site {site.name!r}, {len(db.defs)} tags, {len(site.devices)} devices, "
          f"programs: {', '.join(names) or 'none'}")
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    """The merged tag table; `source` is where each tag is declared (the programs' contract or the site's
    tags.yaml) and the site's override, if any. Tags made by the runtime (scan.*, prog.*, sfc.*, dev.*) say so."""
    site, db = load_running_tags(args.dir)
    declared = {tag.name for tag in site.tags}
    rows = [("name", "type", "unit", "access", "retain", "default", "source", "description")]
    for tag in sorted(db.defs.values(), key=lambda t: t.name):
        source = site.source(tag.name) if tag.name in declared else "(runtime)"
        rows.append((tag.name, tag.type if tag.type != "enum" else f"enum({'|'.join(tag.values)})", tag.unit,
                     tag.access, "yes" if tag.retain else "", tag.format(tag.initial), source, tag.description))
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:7], widths, strict=True)) + "  " + row[7])
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    controller = Controller(args.dir, period=args.period, shadow=args.shadow)
    log = logging.getLogger("battplc")
    log.info("running site %r at a %.0f ms period%s; Ctrl-C stops", controller.site.name, controller.period * 1000,
             " in shadow mode (devices read, nothing written)" if args.shadow else "")
    controller.run(duration=args.duration)
    print_figures(controller.scan.figures())
    print(controller.safe_outputs_text())
    return 0


def print_figures(figures: dict[str, float]) -> None:
    print(f"scans {figures['scans']}  overruns {figures['overruns']}  "
          f"lateness p50 {figures['lateness_p50_ms']:.3f} ms  p99 {figures['lateness_p99_ms']:.3f} ms  "
          f"max {figures['lateness_max_ms']:.3f} ms  "
          f"duration p50 {figures['duration_p50_ms']:.3f} ms  p99 {figures['duration_p99_ms']:.3f} ms")


def version() -> str:
    """The installed package's version (pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("battplc")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="battplc", description="A soft PLC for a home LiFePO4 buffer battery.")
    parser.add_argument("--version", action="version", version=f"battplc {version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate a site folder (tags.yaml, io_map.yaml, programs)")
    site_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("tags", help="print the tag table of a site")
    site_arg(p)
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("run", help="run the controller in real time until Ctrl-C or SIGTERM")
    site_arg(p)
    p.add_argument("--period", type=period_arg, help="scan period, e.g. 10ms, 100ms, 1s (default: the site's)")
    p.add_argument("--duration", type=duration_arg, help="stop after this long (e.g. 60s)")
    p.add_argument("--shadow", action="store_true",
                   help="read the devices and run the programs but write nothing to any device (the would-be "
                        "writes are the tags shadow.<tag>); the Modbus server refuses every write")
    p.set_defaults(func=cmd_run)

    for commands in COMMANDS:
        commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a reader that closes the pipe early (``battplc tags | head``) ends it quietly."""
    try:
        status = _command(argv)
        sys.stdout.flush()  # a closed pipe shows here at the latest, where it can still be caught
        return status
    except BrokenPipeError:
        # The Python docs' recipe (signal module, "Note on SIGPIPE"): point stdout at devnull so the flush at
        # interpreter exit cannot raise again, and exit 1 without a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _command(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return args.func(args)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s); nothing was started", file=sys.stderr)
        return CONFIG_INVALID


if __name__ == "__main__":
    sys.exit(main())
