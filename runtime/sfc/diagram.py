"""Drawings of a chart from its declaration: Mermaid text (needs no package) and SVG/PNG through Graphviz.

``mermaid(decl, active=None)`` returns a Mermaid ``stateDiagram-v2``: every step with its actions as
description lines (``N charger.enable = true``), every transition with its condition as the edge label
(``[1]``, ``[2]`` ... give the priority where several leave one step), the safe step dashed with a note on
when the chart is forced into it, and the active step highlighted when one is given, e.g. from a live or
simulated image: ``active=chart.step``. Paste the text into GitHub Markdown or mermaid.live.

``graphviz(decl, fmt, active=None)`` renders SVG or PNG top-down with steps, their actions, initial/safe marks
and conditions; it needs the ``graphviz`` Python package (installed by default) and Graphviz's ``dot`` program;
without them it raises DiagramError saying so.
"""

from __future__ import annotations

import json
import shutil

from runtime.sfc.expr import canonical
from runtime.sfc.model import ActionDecl, ChartDecl

# words Mermaid's state diagrams reserve; a step with such a name is drawn through an alias
_RESERVED = {"as", "class", "classdef", "default", "direction", "end", "hide", "left", "note", "of", "right",
             "scale", "state", "style"}
FORMATS = ("mermaid", "svg", "png")


class DiagramError(Exception):
    """A drawing cannot be made here; the message says what is missing."""


def _id(step: str) -> str:
    return f"s_{step}" if step in _RESERVED else step


def _text(text: str) -> str:
    # ':' ';' and '#' end a description or label in Mermaid's grammar; checked expressions never hold them
    return text.replace(":", " ").replace(";", ",").replace("#", "")


def _action_line(action: ActionDecl) -> str:
    """'D(30s) charger.enable = true'."""
    time = f"({canonical(action.time.text)})" if action.time else ""
    value = "" if action.qualifier == "R" else f" = {canonical(action.value.text) if action.value else 'true'}"
    return f"{action.qualifier}{time} {action.output}{value}"


def edge_labels(decl: ChartDecl) -> dict[int, str]:
    """Transition number -> its label: the condition, with its priority where several leave one step."""
    labels = {}
    for step in decl.steps:
        leaving = decl.leaving(step)
        for priority, t in enumerate(leaving, 1):
            condition = canonical(t.when.text)
            labels[t.number] = f"[{priority}] {condition}" if len(leaving) > 1 else condition
    return labels


def mermaid(decl: ChartDecl, active: str | None = None) -> str:
    """The chart as Mermaid text; ``active`` (a step name) is highlighted."""
    title = f"{decl.name}: {decl.description}" if decl.description else decl.name
    lines = ["---", f"title: {json.dumps(' '.join(title.split()))}", "---", "stateDiagram-v2", "    direction LR",
             "    classDef active fill:#ffd54f,stroke:#e65100,stroke-width:3px",
             "    classDef safe stroke-dasharray:5 5",
             f"    [*] --> {_id(decl.initial)}"]
    for step in decl.steps.values():
        if _id(step.name) != step.name:
            lines.append(f'    state "{step.name}" as {_id(step.name)}')
        for action in step.actions:
            lines.append(f"    {_id(step.name)} : {_text(_action_line(action))}")
    labels = edge_labels(decl)
    for t in decl.transitions:
        lines.append(f"    {_id(t.source)} --> {_id(t.target)} : {_text(labels[t.number])}")
    lines += [f"    note right of {_id(decl.safe)}", *(f"        {line}" for line in _safe_note(decl)),
              "    end note", f"    class {_id(decl.safe)} safe"]
    if active is not None:
        lines.append(f"    class {_id(active)} active")
    return "\n".join(lines) + "\n"


def _safe_note(decl: ChartDecl) -> list[str]:
    reasons = []
    if decl.requires:
        reasons.append(f"a required input is not GOOD ({', '.join(tag for tag, _ in decl.requires)})")
    if decl.enable:
        reasons.append(f"enable is false ({_text(canonical(decl.enable.text))})")
    if not reasons:
        return ["safe step"]
    return ["safe step - entered from any step and held while", *(f"{r}" for r in reasons)]


def graphviz(decl: ChartDecl, fmt: str, active: str | None = None) -> bytes:
    """The chart as SVG or PNG bytes: a top-down Graphviz drawing fit for a README page.

    Each step is a box with its name, description and actions; the initial step has a double border and an
    entry arrow, the safe step a dashed border and a note saying when the chart is forced into it, the active
    step (when given) is filled. Each transition is an arrow labelled with its number, its priority where
    several leave one step, and its condition wrapped to a readable width.
    """
    try:
        import graphviz as gv
    except ModuleNotFoundError:
        raise DiagramError(_missing("the 'graphviz' Python package")) from None
    if shutil.which("dot") is None:
        raise DiagramError(_missing("Graphviz's 'dot' program")) from None
    title = f"{decl.name}: {' '.join(decl.description.split())}" if decl.description else decl.name
    graph = gv.Digraph(decl.name, graph_attr={
        "rankdir": "TB", "label": _html(title, bold=True), "labelloc": "t", "fontname": "Helvetica",
        "fontsize": "16", "nodesep": "0.5", "ranksep": "0.45", "newrank": "true"},
        node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica", "fontsize": "11",
                   "margin": "0.12,0.06"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "color": "#37474f", "fontcolor": "#263238"})
    graph.node("__entry", "", shape="point", width="0.15")
    for step in decl.steps.values():
        style = ["rounded"]
        attrs = {}
        if step.name == decl.safe:
            style.append("dashed")
        if step.name == active:
            style.append("filled")
            attrs.update(fillcolor="#ffd54f", color="#e65100", penwidth="2.5")
        if step.name == decl.initial:
            attrs["peripheries"] = "2"
        graph.node(step.name, _step_label(step.name, step.description, step.actions, decl), style=",".join(style),
                   **attrs)
    graph.edge("__entry", decl.initial, arrowhead="normal")
    labels = edge_labels(decl)
    for t in decl.transitions:
        graph.edge(t.source, t.target, label=_html(f"{t.label} {labels[t.number]}", wrap=44, align="L"))
    graph.node("__safe_note", _html("\n".join(_safe_note(decl)), wrap=48, align="L"), shape="note",
               fontsize="9", color="#90a4ae", fontcolor="#455a64")
    graph.edge("__safe_note", decl.safe, style="dotted", arrowhead="none", color="#90a4ae")
    return graph.pipe(format=fmt)


def _html(text: str, wrap: int = 0, align: str = "C", bold: bool = False) -> str:
    """A Graphviz HTML-like label: text escaped, long lines wrapped at ``wrap`` characters."""
    import textwrap
    from html import escape

    lines = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, wrap, subsequent_indent="  ") if wrap else [paragraph]
    body = f'<BR ALIGN="{align}"/>'.join(escape(line) for line in lines) + (f'<BR ALIGN="{align}"/>'
                                                                           if align != "C" else "")
    return f"<<B>{body}</B>>" if bold else f"<{body}>"


def _step_label(name: str, description: str, actions: list[ActionDecl], decl: ChartDecl) -> str:
    """A step's box: its name (with initial/safe marks), its description, its actions."""
    import textwrap
    from html import escape

    marks = [m for m, on in (("initial", name == decl.initial), ("safe", name == decl.safe)) if on]
    head = f'<B>{escape(name)}</B>' + (f' <FONT POINT-SIZE="9">({", ".join(marks)})</FONT>' if marks else "")
    rows = [f"<TR><TD>{head}</TD></TR>"]
    if description:
        text = '<BR ALIGN="LEFT"/>'.join(escape(line) for line in textwrap.wrap(" ".join(description.split()), 40))
        rows.append(f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9" COLOR="#546e7a">{text}<BR ALIGN="LEFT"/></FONT>'
                    "</TD></TR>")
    if actions:
        lines = []
        for action in actions:
            wrapped = textwrap.wrap(_action_line(action), 46, subsequent_indent="    ")
            lines.append('<BR ALIGN="LEFT"/>'.join(escape(line) for line in wrapped))
        text = '<BR ALIGN="LEFT"/>'.join(lines)
        rows.append(f'<TR><TD ALIGN="LEFT" BGCOLOR="#eceff1"><FONT FACE="Courier" POINT-SIZE="9">{text}'
                    '<BR ALIGN="LEFT"/></FONT></TD></TR>')
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">{"".join(rows)}</TABLE>>'


def _missing(what: str) -> str:
    return (f"svg and png need Graphviz, and {what} is not installed here; install the graphviz Python package "
            "(pip install graphviz) and the dot program (apt install graphviz), or use --format mermaid, which "
            "needs neither: paste its text into GitHub Markdown or mermaid.live")
