"""Argument types the ``battplc`` sub-commands share: a site folder, a duration and a scan period.

Kept apart from runtime/cli.py so a sub-command module (charts, Modbus, simulator) imports these without
importing the command that imports it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime.durations import DurationError, parse_duration
from runtime.site import REPO_ROOT


def duration_arg(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return seconds


def period_arg(text: str) -> float:
    """A scan period on the command line, in the range tags.yaml allows for site.scan_period."""
    from runtime.config.tags_schema import SCAN_PERIOD_RANGE

    seconds = duration_arg(text)
    low, high = SCAN_PERIOD_RANGE
    if not low <= seconds <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; allowed {low * 1000:g}ms..{high:g}s")
    return seconds


def site_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=REPO_ROOT,
                        help="site folder with tags.yaml and io_map.yaml (default: the repository root)")
