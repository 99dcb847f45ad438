"""Regenerate the README sections that come from a single source, so the README stays true.

    python -m tools.docs          rewrite README.md in place
    python -m tools.docs --check  exit 1 (and say which) when a section is out of date

Each generated section sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``:
``params`` (programs/tags.yaml par.*), ``charts`` (programs/*.sfc.yaml as Mermaid), ``demo_chart`` (the demo site's
chart), ``regmap`` (battplc regmap),
``benchmarks`` (the tables of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHARTS = ("unload", "keep", "load", "ballast")


def params_section() -> str:
    from runtime.site import load_site

    site, db, _, _ = load_site(ROOT, with_programs=False)
    rows = ["| parameter | unit | default | range | register | meaning (and its seed) |", "|---|---|---|---|---|---|"]
    for tag in sorted((t for t in site.tags if t.name.startswith("par.")), key=lambda t: t.name):
        lo = "" if tag.min is None else f"{tag.min:g}"
        hi = "" if tag.max is None else f"{tag.max:g}"
        rng = f"{lo}..{hi}" if (lo or hi) else "-"
        reg = f"{tag.modbus_table} {tag.modbus.address}" if tag.modbus else "-"
        rows.append(f"| `{tag.name}` | {tag.unit or '-'} | {tag.format(tag.initial)} | {rng} | {reg} | "
                    f"{tag.description.replace('|', '/')} |")
    return "\n".join(rows)


def mermaid_of(site_dir: Path, name: str) -> str:
    from runtime.config.schema import Errors
    from runtime.loader import find_program
    from runtime.sfc.diagram import mermaid
    from runtime.sfc.load import load_chart
    from runtime.site import load_site

    site, _, _, _ = load_site(site_dir, with_programs=False)
    errors = Errors()
    chart = load_chart(find_program(site, name), site.new_db(), errors)
    if chart is None:
        raise SystemExit("\n".join(map(str, errors)))
    return f"```mermaid\n{mermaid(chart.decl).rstrip()}\n```"


def charts_section() -> str:
    return "\n\n".join(f"#### {name}\n\n{mermaid_of(ROOT, name)}" for name in CHARTS)


def demo_chart_section() -> str:
    return mermaid_of(ROOT / "examples" / "demo", "traffic")


def regmap_section() -> str:
    from runtime.server.cli import load_map
    from runtime.server.regmap import render_markdown

    regmap, _, _ = load_map(ROOT)
    return render_markdown(regmap).rstrip()


def benchmarks_section() -> str:
    path = ROOT / "BENCHMARKS.md"
    if not path.is_file():
        return "No benchmark run recorded yet: run `make bench`."
    lines = path.read_text().splitlines()
    body = [line for line in lines[lines.index("# Benchmarks") + 1:]] if "# Benchmarks" in lines else lines
    text = "\n".join(body).strip()
    return re.sub(r"^## ", "#### ", text, flags=re.M)


SECTIONS = {"params": params_section, "charts": charts_section, "demo_chart": demo_chart_section,
            "regmap": regmap_section,
            "benchmarks": benchmarks_section}


def render(text: str) -> tuple[str, list[str]]:
    """README text with every section regenerated, and the names of those that changed."""
    changed = []
    for name, build in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n)(.*?)(<!-- {name}:end -->)", re.S)
        match = pattern.search(text)
        if match is None:
            raise SystemExit(f"README.md has no <!-- {name}:begin --> ... <!-- {name}:end --> section")
        fresh = build().rstrip() + "\n"
        if match.group(2) != fresh:
            changed.append(name)
            text = text[:match.start(2)] + fresh + text[match.end(2):]
    return text, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale sections")
    args = parser.parse_args(argv)
    text, changed = render(README.read_text())
    if args.check:
        if changed:
            print(f"README.md is out of date in: {', '.join(changed)}; run `python -m tools.docs`")
            return 1
        return 0
    README.write_text(text)
    print(f"README.md: regenerated {', '.join(changed) or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
