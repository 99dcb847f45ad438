"""tools/plantsim/plot.py: the day plot draws from whatever columns a trace has, on clock time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tools.plantsim.plot import _spans, _while_on, plot_trace
from tools.plantsim.sim import Mark, Trace


def test_spans_are_runs_of_equal_values() -> None:
    assert _spans([0, 1, 2, 3, 4], ["idle", "idle", "charge", "charge", "idle"]) == [
        (0, 2, "idle"), (2, 4, "charge"), (4, 4, "idle")]


def test_a_setpoint_is_drawn_only_while_its_output_is_on() -> None:
    trace = Trace(["time", "charger.enable"], [[0, "1"], [1, "0"], [2, "1"]])
    drawn = _while_on([16.0, 16.0, 30.0], trace, "charger.enable")
    assert drawn[0] == 16.0 and drawn[1] != drawn[1] and drawn[2] == 30.0


def test_a_trace_with_few_columns_still_plots_with_marks(tmp_path: Path) -> None:
    columns = ["time", "bat.soc", "bat.cell_v_max", "grid.power", "sfc.unload.step"]
    rows = [[t * 60.0, 50 + t, 3.3 + t / 1000, -100.0 * t, "idle" if t < 5 else "run"] for t in range(10)]
    path = tmp_path / "day.png"
    plot_trace(Trace(columns, rows), path, "test", start=datetime(2026, 6, 21, 20, 0),
               marks=[Mark(120, "event", "bms1 timeout"), Mark(180, "alarm", "input_bad"),
                      Mark(240, "cleared", "input_bad")])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
