"""The ``battplc`` command: check, run and inspect a site; other rooms add their own sub-commands.

Config problems print one line each (file:line: key: what is wrong) and exit 1 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from runtime.config.errors import ConfigErrors
from runtime.config.site import REPO_ROOT
from runtime.durations import DurationError, parse_duration
from runtime.events import configure_logging

# Sub-commands that live next to what they serve; each module has register(subparsers).
PLUGINS = ("runtime.sfc.cli", "runtime.server.cli", "tools.plantsim.cli", "tools.bench.cli")


def duration_arg(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return seconds


def site_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=REPO_ROOT,
                        help="site folder with tags.yaml and io_map.yaml (default: the repository root)")


def cmd_check(args: argparse.Namespace) -> int:
    from runtime.config.site import load_site

    site, db, programs, interlocks = load_site(args.dir)
    names = [p.name for p in programs] + ([f"{interlocks.name} (interlocks)"] if interlocks else [])
    print(f"{site.dir}: ok: site {site.name!r}, {len(db.defs)} tags, {len(site.devices)} devices, "
          f"programs: {', '.join(names) or 'none'}")
    return 0


def cmd_tags(args: argparse.Namespace) -> int:
    from runtime.config.site import load_site

    _, db, _, _ = load_site(args.dir)
    rows = [("name", "type", "unit", "access", "retain", "default", "description")]
    for tag in sorted(db.defs.values(), key=lambda t: t.name):
        rows.append((tag.name, tag.type if tag.type != "enum" else f"enum({'|'.join(tag.values)})", tag.unit,
                     tag.access, "yes" if tag.retain else "", tag.format(tag.initial), tag.description))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:6], widths, strict=True)) + "  " + row[6])
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from runtime.app import Controller

    controller = Controller(args.dir, period=args.period)
    log = logging.getLogger("battplc")
    log.info("running site %r at a %.0f ms period; Ctrl-C stops", controller.site.name, controller.period * 1000)
    controller.run(duration=args.duration)
    print_figures(controller.scan.figures())
    return 0


def print_figures(figures: dict[str, float]) -> None:
    print(f"scans {figures['scans']}  overruns {figures['overruns']}  "
          f"lateness p50 {figures['lateness_p50_ms']:.3f} ms  p99 {figures['lateness_p99_ms']:.3f} ms  "
          f"max {figures['lateness_max_ms']:.3f} ms  "
          f"duration p50 {figures['duration_p50_ms']:.3f} ms  p99 {figures['duration_p99_ms']:.3f} ms")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="battplc", description="A soft PLC for a home LiFePO4 buffer battery.")
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
    p.add_argument("--period", type=duration_arg, help="scan period, e.g. 10ms, 100ms, 1s (default: the site's)")
    p.add_argument("--duration", type=duration_arg, help="stop after this long (e.g. 60s)")
    p.set_defaults(func=cmd_run)

    for module_name in PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return args.func(args)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s); nothing was started", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
