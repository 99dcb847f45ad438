"""``battplc replay``: a recorded day drives the plant, the controller runs on it in simulated time, and a
KPI table says what the battery did; with ``--set par.X=V`` the same recording runs twice (what-if).

The recording (recording.py) gives PV, house load and ambient; the plant, its devices and the controller are
those of ``battplc sim`` (sim.py), so the KPIs come from the plant's oracle, not from what the controller
believes. The output holds no wall-clock figure: the same recording and site give byte-identical output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from runtime.cli_args import duration_arg
from runtime.config.errors import ConfigError, ConfigErrors, did_you_mean
from runtime.site import REPO_ROOT
from tools.plantsim.plant.config import PlantConfig
from tools.plantsim.recording import DEFAULT_MAX_GAP, Recording, load_recording, series
from tools.plantsim.scenario import Scenario
from tools.plantsim.sim import Simulation

CELL_NOMINAL_V = 3.2  # LiFePO4 nominal: what a pack's kWh rating refers to


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    unit: str
    digits: int


KPIS = (
    Kpi("battery_export_kwh", "battery energy exported to the grid", "kWh", 3),
    Kpi("self_consumption_pct", "self-consumption of PV", "%", 1),
    Kpi("battery_share_pct", "house energy the battery covered", "%", 1),
    Kpi("grid_import_kwh", "grid import", "kWh", 3),
    Kpi("grid_import_saved_kwh", "grid import saved against no battery", "kWh", 3),
    Kpi("throughput_kwh", "battery throughput (charged + discharged)", "kWh", 3),
    Kpi("full_cycles", "equivalent full cycles", "", 3),
    Kpi("hours_above_90pct", "hours above 90 % SoC", "h", 2),
    Kpi("inverter_starts", "inverter starts", "", 0),
    Kpi("charger_starts", "charger starts", "", 0),
    Kpi("alarms_raised", "alarms raised", "", 0),
    Kpi("safety_violations", "safety violations (oracle)", "", 0),
    Kpi("soc_error_max_pts", "SoC error, max (displayed - true)", "pts", 2),
)


def scenario_for(recording: Recording, site: Path, scan: float, plant: PlantConfig,
                 duration: float | None = None) -> Scenario:
    """A scenario whose PV, house and ambient are the recording's (no events, no checks)."""
    scenario = Scenario(path=recording.path, name=f"replay of {recording.path.name}", description="",
                        start=recording.start, duration=duration or recording.duration, scan=scan, site=site,
                        plant=plant, specs=(("constant", 0.0),) * 3, trace_every=3600.0)
    scenario.pv, scenario.house = series(recording.pv), series(recording.house)
    scenario.ambient = series(recording.ambient) if recording.ambient else (lambda _t: plant.ambient_c)
    return scenario


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``["par.x=1", ...]`` -> {"par.x": "1"}; ConfigErrors for an item without ``=``."""
    out, errors = {}, []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            errors.append(ConfigError("--set", 0, item, "expected par.NAME=VALUE, e.g. par.soc_max=90"))
        else:
            out[name.strip()] = value.strip()
    if errors:
        raise ConfigErrors(errors)
    return out


def apply_sets(simulation: Simulation, sets: dict[str, str]) -> None:
    """Put each ``par.*`` value in place before the first scan, checked as a SCADA write is (type, range)."""
    defs, errors = simulation.db.defs, []
    for name, raw in sets.items():
        tag = defs.get(name)
        if tag is None or not name.startswith("par."):
            params = [n for n in defs if n.startswith("par.")]
            errors.append(ConfigError("--set", 0, name, f"not a parameter of the site{did_you_mean(name, params)}"))
            continue
        try:
            value = tag.coerce(yaml.safe_load(raw))  # typed as in tags.yaml: 3.4, 80, true, an enum name
        except (TypeError, ValueError, yaml.YAMLError) as exc:
            errors.append(ConfigError("--set", 0, name, str(exc)))
            continue
        if not tag.in_range(value):
            errors.append(ConfigError("--set", 0, name, f"{raw} is outside {tag.min}..{tag.max}"))
            continue
        simulation.scada.pending.append((name, value))
    if errors:
        raise ConfigErrors(errors)


class Replay:
    """One run of a recording: the simulation set up (``--set`` values checked) but not yet run."""

    def __init__(self, scenario: Scenario, sets: dict[str, str] | None = None, trace: Path | None = None) -> None:
        self.scenario = scenario
        self.simulation = Simulation(scenario, trace_to=trace)
        apply_sets(self.simulation, sets or {})

    def run(self, progress: bool = False) -> dict[str, Any]:
        """Replay: the KPIs, and under ``summary`` the whole sim summary."""
        summary = self.simulation.run(progress=progress)
        return kpis(self.scenario, summary)


def no_battery(scenario: Scenario, steps: int, period: float) -> tuple[float, float]:
    """(PV energy, grid import without a battery) in kWh over the plant's steps, sampled as the plant is."""
    pv, house = scenario.pv, scenario.house
    pv_ws = import_ws = 0.0
    for k in range(steps):
        t = k * period
        p, h = pv(t), house(t)
        p = p if p > 0.0 else 0.0
        pv_ws += p
        if h > p:
            import_ws += h - p
    return pv_ws * period / 3.6e6, import_ws * period / 3.6e6


def kpis(scenario: Scenario, summary: dict[str, Any]) -> dict[str, Any]:
    plant = scenario.plant
    steps = max(0, summary["scans"] - 1)  # the first scan only latches: the plant steps from the second on
    pv_kwh, import_alone = no_battery(scenario, steps, summary["scan_s"])
    export = summary["grid_export_kwh"]
    charged, discharged = summary["energy_charged_kwh"], summary["energy_discharged_kwh"]
    capacity_kwh = plant.capacity_ah * plant.cells_series * plant.packs * CELL_NOMINAL_V / 1000.0
    return {
        "battery_export_kwh": summary["battery_export_wh"] / 1000.0,
        "self_consumption_pct": 100.0 * (pv_kwh - min(export, pv_kwh)) / pv_kwh if pv_kwh else 0.0,
        "battery_share_pct": summary["battery_share_pct"],  # the oracle's: battery AC that stayed in the house
        "grid_import_kwh": summary["grid_import_kwh"],
        "grid_import_saved_kwh": import_alone - summary["grid_import_kwh"],
        "throughput_kwh": charged + discharged,
        "full_cycles": (charged + discharged) / 2.0 / capacity_kwh,
        "hours_above_90pct": summary["hours_above_90pct"],
        "inverter_starts": summary["inverter_starts"],
        "charger_starts": summary["charger_starts"],
        "alarms_raised": summary["alarms_raised"],  # counted by the simulation's AlarmMarks
        "safety_violations": summary["safety_violations"],
        "soc_error_max_pts": summary["soc_error_max_pts"],
        "summary": summary,
    }


def table(columns: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The KPI table; with two columns a third shows the difference (second - first)."""
    heads = [name for name, _ in columns] + (["difference"] if len(columns) == 2 else [])
    rows = []
    for kpi in KPIS:
        values = [c[kpi.key] for _, c in columns]
        if len(values) == 2:
            values.append(values[1] - values[0])
        label = f"{kpi.label} ({kpi.unit})" if kpi.unit else kpi.label
        rows.append([label] + [_number(v, kpi.digits, signed=i == 2) for i, v in enumerate(values)])
    width = max(len(r[0]) for r in rows)
    widths = [max(len(h), *(len(r[i + 1]) for r in rows)) for i, h in enumerate(heads)]
    lines = ["KPI".ljust(width) + "".join(f"  {h:>{w}}" for h, w in zip(heads, widths, strict=True))]
    lines += [r[0].ljust(width) + "".join(f"  {v:>{w}}" for v, w in zip(r[1:], widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _number(value: float, digits: int, signed: bool) -> str:
    if round(value, digits) == 0:
        value = 0.0  # no "-0.000"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


# ---- the sub-command ----------------------------------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay", help="replay a recorded day (PV, house load, ambient) on the plant: KPIs, what-if with --set",
        description="Drive the simulated plant with a recorded day and run the site's controller on it in "
                    "simulated time; print a KPI table. With --set the recording runs twice, as configured and "
                    "with the changes, side by side with the difference.")
    p.add_argument("recording", type=Path, help="a battplc trace CSV, a CSV with time, pv.power, house.power "
                                                "[, ambient], or a Prometheus range-query JSON export")
    p.add_argument("--site", type=Path, default=REPO_ROOT, help="site folder (default: the repository root)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="par.NAME=VALUE",
                   help="what-if: change a parameter for a second run (repeatable)")
    p.add_argument("--scan", type=duration_arg, default=1.0, help="scan period (default: 1s)")
    p.add_argument("--soc", type=float, default=50.0, help="battery SoC at the start, %% (default: 50)")
    p.add_argument("--max-gap", type=duration_arg, default=DEFAULT_MAX_GAP,
                   help="longest gap between samples accepted (default: 15min)")
    p.add_argument("--trace", type=Path, help="write the trace CSV of the (first) run here (streamed)")
    p.add_argument("--json", type=Path, help="also write the KPIs (and each run's sim summary) as JSON here")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    sets = parse_sets(args.sets)
    if not 0.0 <= args.soc <= 100.0:
        raise ConfigErrors([ConfigError("--soc", 0, "", f"{args.soc:g} is not a SoC in 0..100 %")])
    recording = load_recording(args.recording, max_gap=args.max_gap)
    plant = replace(PlantConfig(), soc=args.soc / 100.0)
    scenario = scenario_for(recording, args.site.resolve(), args.scan, plant)
    progress = sys.stderr.isatty()
    runs = [("as configured", Replay(scenario, trace=args.trace))]
    if sets:  # set up (and --set checked) before the first run starts
        changed = scenario_for(recording, args.site.resolve(), args.scan, plant)
        runs.append((", ".join(f"{k}={v}" for k, v in sets.items()), Replay(changed, sets)))
    columns = [(label, replay.run(progress=progress)) for label, replay in runs]
    hours = recording.duration / 3600.0
    print(f"replay of {args.recording}: {hours:.2f} h from {recording.start:%Y-%m-%d %H:%M}, {args.scan:g} s scan, "
          f"start SoC {args.soc:g} %")
    print(table(columns))
    if args.json:
        args.json.write_text(json.dumps(dict(columns), indent=2) + "\n", encoding="utf-8")
    return 1 if any(c["safety_violations"] for _, c in columns) else 0
