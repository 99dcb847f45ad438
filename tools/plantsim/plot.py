"""The day plot of a simulation run, for a battery owner: what the battery did and why, on the clock.

Drawn from the trace (one row per ``trace_every``) with matplotlib's file-only Agg backend, so it works on a
headless box. Top to bottom, on clock time:

1. state of charge, the controller's and the plant's true one, with the SoC reserve and the maximum;
2. the highest, lowest and average cell voltage against the lines that stop charging and discharging: the interlock
   limits, the charge voltage limit per cell (CVL), the charger's setpoint per cell and the voltages at which
   load and ballast end or may not start;
3. the power flows: PV, house, grid (+ import, export shaded) and battery (+ charge);
4. the charger's current setpoint against the charge current limit (CCL), the battery current, and when the
   charger and the inverter are enabled (bands along the bottom);
5. every chart's active step as coloured bands, named with how long they lasted where they are wide enough.

Scenario events (faults, writes) are dotted vertical lines through every panel, alarms raised are red marks on
top, labelled. Tags a site lacks are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tools.plantsim.sim import Mark, Trace

STEP_COLOURS = ("#e8e8e8", "#4c9be8", "#f0a030", "#59b36b", "#d45f5f", "#9b6fd0", "#8c6d3f", "#e377c2")


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


def _per_cell(trace: Trace, name: str) -> list[float]:
    """A pack voltage column divided by the number of cells in series (par.cells_series)."""
    pack, cells = _floats(trace, name), _floats(trace, "par.cells_series")
    return [v / n if n else float("nan") for v, n in zip(pack, cells, strict=True)] if pack and cells else []


def _while_on(values: list[float], trace: Trace, switch: str) -> list[float]:
    """``values`` where the output ``switch`` is on, gaps (NaN) where it is off: a setpoint only matters then."""
    if not values or switch not in trace.columns:
        return values
    return [v if str(on) in ("1", "True", "true") else float("nan")
            for v, on in zip(values, trace.column(switch), strict=True)]


def _first(values: list[float]) -> str:
    return f" {values[0]:.4g} V" if values and values[0] == values[0] else ""


def _spans(times: list[Any], values: list[Any]) -> list[tuple[Any, Any, Any]]:
    """(start, end, value) of each run of equal values."""
    spans = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            end = times[i] if i < len(times) else times[-1]
            spans.append((times[start], end, values[start]))
            start = i
    return spans


def plot_trace(trace: Trace, path: Path, title: str = "", start: datetime | None = None,
               marks: Iterable[Mark] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    begin = start or datetime(2026, 1, 1)
    clock = [begin + timedelta(seconds=float(t)) for t in trace.column("time")]
    charts = [c for c in trace.columns if c.startswith("sfc.") and c.endswith(".step")]
    ratios = [2.2, 2.6, 2.6, 2.0, 0.45 * max(1, len(charts))]
    fig, axes = plt.subplots(len(ratios), 1, sharex=True, figsize=(16, 14),
                             gridspec_kw={"height_ratios": ratios}, squeeze=False)
    soc_ax, cell_ax, power_ax, current_ax, step_ax = (row[0] for row in axes)

    def line(ax: Any, values: list[float], label: str, **style: Any) -> None:
        if values:
            ax.plot(clock, values, label=label, linewidth=style.pop("linewidth", 1.2), **style)

    # 1. state of charge
    line(soc_ax, _floats(trace, "bat.soc"), "SoC (controller)", color="#1f77b4", linewidth=1.8)
    line(soc_ax, _floats(trace, "plant.soc"), "SoC (true, plant)", color="#1f77b4", linestyle=":", linewidth=1)
    line(soc_ax, _floats(trace, "par.min_soc"), "reserve (par.min_soc)", color="#d62728", linestyle="--",
         linewidth=0.9)
    line(soc_ax, _floats(trace, "par.max_soc"), "max (par.max_soc)", color="#2ca02c", linestyle="--",
         linewidth=0.9)
    soc_ax.set_ylabel("state of charge %")
    soc_ax.set_ylim(0, 108)
    _peak(soc_ax, clock, _floats(trace, "bat.soc"))

    # 2. cell voltages and the lines that stop charging / discharging
    line(cell_ax, _floats(trace, "bat.cell_v_max"), "highest cell", color="#d62728", linewidth=1.8)
    line(cell_ax, _floats(trace, "bat.cell_v_min"), "lowest cell", color="#1f77b4", linewidth=1.8)
    line(cell_ax, _per_cell(trace, "bat.voltage"), "average cell (pack / cells): what CVL and charger act on",
         color="#2ca02c", linewidth=1.4)
    references = [
        ("par.cell_v_charge_max", "charging blocked at", dict(color="#d62728", linestyle="--", linewidth=0.9)),
        ("par.ballast_end_cell_v", "ballast ends at", dict(color="#9467bd", linestyle="-.", linewidth=1.1)),
        ("par.load_start_max_cell_v", "no load/ballast start above", dict(color="#7f7f7f", linestyle=":",
                                                                          linewidth=1.4)),
        ("par.cell_v_min", "discharging blocked at", dict(color="#1f77b4", linestyle="--", linewidth=0.9)),
    ]
    for name, label, style in references:
        values = _floats(trace, name)
        line(cell_ax, values, label + _first(values), **style)
    line(cell_ax, _per_cell(trace, "limits.cvl"), "charge voltage limit (CVL) per cell", color="#ff7f0e",
         linewidth=1)
    line(cell_ax, _while_on(_per_cell(trace, "charger.voltage_sp"), trace, "charger.enable"),
         "charger voltage setpoint per cell (while on)", color="#8c564b", linestyle="--", linewidth=1)
    shown = [v for name in ("bat.cell_v_max", "bat.cell_v_min", "par.cell_v_charge_max", "par.cell_v_min")
             for v in _floats(trace, name) if v == v and v > 0]
    if shown:
        cell_ax.set_ylim(min(shown) - 0.05, max(shown) + 0.05)
    cell_ax.set_ylabel("cell V")

    # 3. power flows
    grid = _floats(trace, "grid.power")
    line(power_ax, _floats(trace, "pv.power"), "PV", color="#e6b800", linewidth=1.4)
    line(power_ax, _floats(trace, "house.power"), "house", color="#7f7f7f")
    line(power_ax, grid, "grid (+ import)", color="#d62728")
    line(power_ax, _floats(trace, "bat.power"), "battery (+ charge)", color="#2ca02c", linewidth=1.6)
    if grid:
        power_ax.fill_between(clock, grid, 0, where=[g < 0 for g in grid], color="#d62728", alpha=0.12,
                              label="export", interpolate=True)
    power_ax.axhline(0, color="black", linewidth=0.6)
    power_ax.set_ylabel("W")

    # 4. charger and inverter
    line(current_ax, _floats(trace, "limits.ccl"), "charge current limit (CCL)", color="#ff7f0e", linestyle="--")
    line(current_ax, _while_on(_floats(trace, "charger.current_sp"), trace, "charger.enable"),
         "charger current setpoint (while on)", color="#8c564b")
    line(current_ax, _floats(trace, "bat.current"), "battery current (+ charge)", color="#2ca02c", linewidth=1.6)
    current_ax.axhline(0, color="black", linewidth=0.6)
    current_ax.set_ylabel("A")
    _enable_bands(current_ax, trace, clock)

    # 5. chart steps as bands
    _step_bands(step_ax, trace, clock, charts)

    for ax in (soc_ax, cell_ax, power_ax, current_ax):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", frameon=False)
    _marks(list(marks), begin, (soc_ax, cell_ax, power_ax, current_ax, step_ax))
    step_ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    step_ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=8, maxticks=16))
    step_ax.set_xlabel(f"clock time ({begin:%Y-%m-%d})")
    if clock:
        step_ax.set_xlim(clock[0], clock[-1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _peak(ax: Any, clock: list[datetime], soc: list[float]) -> None:
    """The day's highest state of charge, marked with its value and time."""
    valid = [(v, i) for i, v in enumerate(soc) if v == v]
    if not valid:
        return
    value, index = max(valid, key=lambda pair: (pair[0], -pair[1]))  # the first time it got there
    ax.annotate(f"highest {value:.1f} % at {clock[index]:%H:%M}", (clock[index], value), xytext=(0, -16),
                textcoords="offset points", ha="left", fontsize="small", color="#1f77b4",
                arrowprops=dict(arrowstyle="-", color="#1f77b4", linewidth=0.6))


def _enable_bands(ax: Any, trace: Trace, clock: list[datetime]) -> None:
    """Thin bands along the bottom of the axis while the charger / inverter is enabled."""
    for row, (name, colour, label) in enumerate((("charger.enable", "#8c564b", "charger on"),
                                                  ("inverter.enable", "#9467bd", "inverter on"))):
        if name not in trace.columns:
            continue
        on = [str(v) in ("1", "True", "true") for v in trace.column(name)]
        bands = [(a, b) for a, b, value in _spans(clock, on) if value]
        transform = ax.get_xaxis_transform()
        for i, (a, b) in enumerate(bands):
            ax.fill_between([a, b], 0.02 + 0.05 * row, 0.06 + 0.05 * row, transform=transform, color=colour,
                            alpha=0.8, linewidth=0, label=label if i == 0 else None)


def _step_bands(ax: Any, trace: Trace, clock: list[datetime], charts: list[str]) -> None:
    import matplotlib.dates as mdates

    span = (mdates.date2num(clock[-1]) - mdates.date2num(clock[0])) if clock else 1.0
    for row, column in enumerate(charts):
        names = [str(v) for v in trace.column(column)]
        order = list(dict.fromkeys(names))
        if "idle" in order:  # the resting step is the pale one
            order.remove("idle")
            order.insert(0, "idle")
        for a, b, step in _spans(clock, names):
            x0, width = mdates.date2num(a), mdates.date2num(b) - mdates.date2num(a)
            colour = STEP_COLOURS[order.index(step) % len(STEP_COLOURS)]
            ax.broken_barh([(x0, width)], (row - 0.4, 0.8), facecolors=colour, edgecolors="white", linewidth=0.5)
            if width > span * 0.045 and step != "idle":
                ax.text(x0 + width / 2, row, f"{step} {_duration(b - a)}", ha="center", va="center",
                        fontsize="x-small")
    ax.set_yticks(range(len(charts)), [c.split(".")[1] for c in charts], fontsize="small")
    ax.set_ylim(len(charts) - 0.5, -0.5)
    ax.set_ylabel("chart steps")


def _duration(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def _marks(marks: list[Mark], begin: datetime, axes: tuple[Any, ...]) -> None:
    """Scenario events as dotted lines through every panel; alarms raised as red marks with their name."""
    top = axes[0]
    for mark in marks:
        when = begin + timedelta(seconds=mark.t)
        if mark.kind == "event":
            for ax in axes:
                ax.axvline(when, color="#444444", linestyle=":", linewidth=0.9)
            top.annotate(mark.text, (when, 0.03), xycoords=("data", "axes fraction"), xytext=(2, 0),
                         textcoords="offset points", fontsize="x-small", color="#444444", rotation=90,
                         va="bottom")
        elif mark.kind == "alarm":
            top.plot([when], [102], marker="v", color="#d62728", markersize=7, clip_on=False)
            top.annotate(f"alarm {mark.text}", (when, 102), xytext=(4, 2), textcoords="offset points",
                         fontsize="x-small", color="#d62728")
