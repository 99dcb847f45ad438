"""Drawings of a chart from its declaration: Mermaid text (needs no package) and SVG/PNG through Graphviz.

``mermaid(decl, active=None)`` returns a Mermaid ``stateDiagram-v2``: every step with its actions as
description lines (``N charger.enable = true``), every transition with its condition as the edge label
(``[1]``, ``[2]`` ... give the priority where several leave one step), the safe step dashed with a note on
when the chart is forced into it, and the active step highlighted when one is given, e.g. from a live or
simulated image: ``active=chart.step``. Paste the text into GitHub Markdown or mermaid.live.

``graphviz(decl, fmt, active=None)`` renders SVG or PNG with the ``transitions`` library's GraphMachine, which
needs the ``graphviz`` Python package and Graphviz's ``dot`` program; without them it raises DiagramError
saying so.
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
    """The chart as SVG or PNG bytes (Graphviz through transitions' GraphMachine)."""
    try:
        import graphviz as _  # noqa: F401 - transitions' graphviz engine needs it
    except ModuleNotFoundError:
        raise DiagramError(_missing("the 'graphviz' Python package")) from None
    if shutil.which("dot") is None:
        raise DiagramError(_missing("Graphviz's 'dot' program")) from None
    from transitions.extensions import GraphMachine

    labels = edge_labels(decl)
    machine = GraphMachine(
        states=list(decl.steps), initial=active or decl.initial, auto_transitions=False, show_conditions=True,
        title=f"{decl.name}: {decl.description}" if decl.description else decl.name, graph_engine="graphviz",
        transitions=[{"trigger": t.label, "source": t.source, "dest": t.target, "conditions": [labels[t.number]]}
                     for t in decl.transitions])
    return machine.get_graph().draw(None, format=fmt, prog="dot")


def _missing(what: str) -> str:
    return (f"svg and png need Graphviz, and {what} is not installed here; install the graphviz Python package "
            "(pip install graphviz) and the dot program (apt install graphviz), or use --format mermaid, which "
            "needs neither: paste its text into GitHub Markdown or mermaid.live")
