"""``battplc chart NAME [DIR] [--format mermaid|svg|png] [-o FILE] [--active STEP]``: draw a declared chart.

NAME is looked up like a site's programs (the site's programs/ first, then the shipped ones). The chart is
loaded and checked against the site's tags, so a drawing never shows a chart that would not load; the other
programs of the site are not needed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runtime.config.errors import ConfigError, ConfigErrors, did_you_mean
from runtime.config.schema import Errors


def register(subparsers: Any) -> None:
    """Add the ``chart`` sub-command to the battplc command line."""
    from runtime.cli_args import site_arg
    from runtime.sfc.diagram import FORMATS

    parser = subparsers.add_parser("chart", help="draw a declared chart (Mermaid text, or svg/png with Graphviz)")
    parser.add_argument("name", metavar="NAME", help="chart name, e.g. keep (programs/keep.sfc.yaml)")
    site_arg(parser)
    parser.add_argument("--format", choices=FORMATS, default="mermaid", help="drawing format (default: mermaid)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    parser.add_argument("--active", metavar="STEP", help="highlight this step as the active one")
    parser.set_defaults(func=cmd_chart)


def cmd_chart(args: argparse.Namespace) -> int:
    from runtime.loader import find_program
    from runtime.sfc.diagram import DiagramError, graphviz, mermaid
    from runtime.sfc.load import load_chart
    from runtime.site import load_site

    site, _, _, _ = load_site(args.dir, with_programs=False)
    path = find_program(site, args.name)
    if path is None or not path.name.endswith(".sfc.yaml"):
        charts = sorted(p.name.removesuffix(".sfc.yaml") for d in site.program_dirs() for p in d.glob("*.sfc.yaml"))
        what = f"{args.name} is a function block ({path.name}), not a chart" if path else \
            f"no chart {args.name!r}{did_you_mean(args.name, charts)}"
        raise ConfigErrors([ConfigError(str(site.dir), 0, "", f"{what}; charts: {', '.join(charts) or 'none'}")])
    errors = Errors()
    chart = load_chart(path, site.new_db(), errors)
    if chart is None:
        raise ConfigErrors(errors)
    if args.active is not None and args.active not in chart.steps:
        raise ConfigErrors([ConfigError(chart.file, chart.line, "--active", f"no step {args.active!r} in chart "
                                        f"{chart.name}{did_you_mean(args.active, chart.steps)}")])
    try:
        drawing: str | bytes = mermaid(chart.decl, args.active) if args.format == "mermaid" else \
            graphviz(chart.decl, args.format, args.active)
    except DiagramError as exc:
        print(f"battplc chart: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "wb") as out:
            out.write(drawing.encode() if isinstance(drawing, str) else drawing)
    elif isinstance(drawing, str):
        sys.stdout.write(drawing)
    else:
        sys.stdout.buffer.write(drawing)
    return 0
