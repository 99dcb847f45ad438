"""The picture of a simulation run: SoC, pack voltage, the power flows, temperatures and the active step of
every chart.

Drawn from the trace (one row per ``trace_every``) with matplotlib's file-only Agg backend, so it works on a
headless box. The controller's view (``bat.*``) is drawn next to the plant's truth (``plant.*``) where both
exist: a gap between them is worth a look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.plantsim.sim import Trace


def _floats(trace: Trace, name: str) -> list[float]:
    if name not in trace.columns:
        return []
    out = []
    for value in trace.column(name):
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def plot_trace(trace: Trace, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [t / 3600.0 for t in trace.column("time")]
    charts = [c for c in trace.columns if c.startswith("sfc.") and c.endswith(".step")]
    ratios = [2, 2, 3, 2] + [1] * len(charts)
    fig, axes = plt.subplots(len(ratios), 1, sharex=True, figsize=(12, 2.2 * len(ratios) + 1),
                             gridspec_kw={"height_ratios": ratios}, squeeze=False)
    axes = [row[0] for row in axes]

    def lines(ax: Any, series: list[tuple[str, str]], ylabel: str) -> None:
        for name, label in series:
            values = _floats(trace, name)
            if values:
                ax.plot(hours, values, label=label, linewidth=1)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small", ncol=4)

    lines(axes[0], [("bat.soc", "bat.soc (controller)"), ("plant.soc", "plant SoC (true)")], "SoC %")
    lines(axes[1], [("bat.voltage", "bat.voltage"), ("plant.voltage", "plant pack voltage")], "V")
    lines(axes[2], [("pv.power", "PV"), ("house.power", "house"), ("grid.power", "grid (+ import)"),
                    ("bat.power", "battery (+ charge)")], "W")
    lines(axes[3], [("bat.temp_max", "bat.temp_max"), ("bat.temp_min", "bat.temp_min"),
                    ("plant.ambient", "ambient")], "degC")
    for ax, column in zip(axes[4:], charts, strict=True):
        names = [str(v) for v in trace.column(column)]
        order = list(dict.fromkeys(names))
        ax.step(hours, [order.index(n) for n in names], where="post", linewidth=1.2)
        ax.set_yticks(range(len(order)), order, fontsize="small")
        ax.set_ylim(-0.5, len(order) - 0.5)
        ax.set_ylabel(column.split(".")[1], rotation=0, ha="right", va="center")
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("hours from start")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
