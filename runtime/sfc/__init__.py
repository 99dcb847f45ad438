"""Declared sequential function charts (IEC 61131-3): YAML declaration, safe expressions, executor, diagrams.

    model.py    what a NAME.sfc.yaml file says (the YAML format is documented there), checked with file:line
    expr.py     the expression language: a safe subset of Python, type-checked and compiled once at load
    load.py     load_chart(): declaration + tag database -> a runnable Chart
    codegen.py  each step compiled into one Python function per scan (conditions and outputs inline)
    chart.py    the executor: one Chart is one Program of the scan, with a transitions Machine underneath
    shared.py   what the charts of one site share: step flags across charts, output arbiters
    diagram.py  Mermaid (no package needed) and Graphviz drawings of a chart
    cli.py      `battplc chart NAME`
"""

from runtime.sfc.chart import Chart
from runtime.sfc.load import load_chart

__all__ = ["Chart", "load_chart"]
