"""Drawings from the declaration (Mermaid, Graphviz) and the `battplc chart` command."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from runtime.cli import main
from runtime.config.schema import Errors
from runtime.sfc.diagram import DiagramError, graphviz, mermaid
from runtime.sfc.model import read_chart

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"
TRAFFIC = DEMO / "programs" / "traffic.sfc.yaml"
HAS_GRAPHVIZ = importlib.util.find_spec("graphviz") is not None and shutil.which("dot") is not None


@pytest.fixture
def traffic():
    decl = read_chart(TRAFFIC, Errors())
    assert decl is not None
    return decl


def test_mermaid_has_every_step_and_every_condition_as_an_edge_label(traffic) -> None:
    text = mermaid(traffic)
    assert text.splitlines()[3] == "stateDiagram-v2"
    assert "    [*] --> red" in text
    for step in traffic.steps:
        assert f"    {step} " in text or f"--> {step} " in text
    assert "    red --> dark : [1] demo.traffic_mode == 'night'" in text
    assert "    red --> red_amber : [2] red.T >= par.traffic_red_s" in text
    assert "    red_amber --> green : red_amber.T >= 1.5" in text
    assert "    green --> amber : green.T >= par.traffic_green_s or (demo.walk_request and green.T >= 5)" in text
    assert "    red : D(1s) demo.walk = true" in text
    assert "    green : P1 demo.cycles = demo.cycles + 1" in text
    assert "    class dark safe" in text
    assert "class green active" not in text


def test_mermaid_highlights_the_active_step(traffic) -> None:
    assert mermaid(traffic, active="green").endswith("    class green active\n")


def test_mermaid_aliases_steps_named_like_mermaid_keywords(traffic) -> None:
    traffic.steps["end"] = traffic.steps.pop("amber")
    traffic.steps["end"].name = "end"
    for t in traffic.transitions:
        t.source = "end" if t.source == "amber" else t.source
        t.target = "end" if t.target == "amber" else t.target
    text = mermaid(traffic, active="end")
    assert '    state "end" as s_end' in text and "    green --> s_end : " in text and "class s_end active" in text


@pytest.mark.skipif(HAS_GRAPHVIZ, reason="Graphviz is installed here")
def test_svg_without_graphviz_says_what_is_missing(traffic) -> None:
    with pytest.raises(DiagramError, match="svg and png need Graphviz.*use --format mermaid"):
        graphviz(traffic, "svg")


@pytest.mark.skipif(not HAS_GRAPHVIZ, reason="needs the graphviz package and dot")
def test_svg_with_graphviz(traffic) -> None:
    svg = graphviz(traffic, "svg", active="green").decode()
    assert "<svg" in svg and "red_amber" in svg
    assert "#ffd54f" in svg  # the active step is filled
    for t in traffic.transitions:
        assert f">{t.label} " in svg, f"transition {t.label} is not labelled"
    for action in traffic.actions():
        assert action.output in svg, f"action on {action.output} is not drawn"
    assert "(initial" in svg and "safe" in svg


@pytest.mark.skipif(not HAS_GRAPHVIZ, reason="needs the graphviz package and dot")
def test_png_of_a_shipped_chart_is_a_compact_page_not_a_strip() -> None:
    import struct

    decl = read_chart(Path(__file__).resolve().parents[3] / "programs" / "unload.sfc.yaml", Errors())
    png = graphviz(decl, "png")
    width, height = struct.unpack(">II", png[16:24])
    assert width / height < 3, f"{width}x{height} is a strip, not a page"


def test_cli_prints_mermaid(capsys) -> None:
    assert main(["chart", "traffic", str(DEMO), "--active", "red"]) == 0
    out = capsys.readouterr().out
    assert "stateDiagram-v2" in out and out.endswith("class red active\n")


def test_cli_writes_a_file(tmp_path) -> None:
    target = tmp_path / "traffic.mmd"
    assert main(["chart", "traffic", str(DEMO), "-o", str(target)]) == 0
    assert target.read_text() == mermaid(read_chart(TRAFFIC, Errors()))


@pytest.mark.parametrize("args, message", [
    (["chart", "trafic"], "no chart 'trafic' (did you mean 'traffic'?); charts: "),
    (["chart", "blink"], "blink is a function block (blink.py), not a chart"),
    (["chart", "traffic", "--active", "gren"], "--active: no step 'gren' in chart traffic (did you mean 'green'?)"),
])
def test_cli_errors(capsys, args: list[str], message: str) -> None:
    assert main([*args[:2], str(DEMO), *args[2:]]) == 2  # reported as config errors, like argparse's usage errors
    assert message in capsys.readouterr().err


@pytest.mark.skipif(HAS_GRAPHVIZ, reason="Graphviz is installed here")
def test_cli_png_without_graphviz(capsys) -> None:
    assert main(["chart", "traffic", str(DEMO), "--format", "png"]) == 2
    assert "use --format mermaid" in capsys.readouterr().err
