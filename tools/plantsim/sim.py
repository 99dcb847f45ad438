"""``battplc sim``: the plant and the controller in one process on a simulated clock, as fast as the CPU goes.

Each scan period the loop below (1) applies the scenario events that are due, (2) lets the scan run its
phases, where ``PlantPort.latch`` first steps the plant by the period and then polls every device through
the drivers' own in-process path (``InlinePort``: read plan, register decode, VE.Direct parser), SCADA
writes land next, then the programs run, and ``commit`` writes changed outputs into the register banks,
which drive the plant's inputs, and (3) samples the trace. Nothing here knows about batteries beyond the
plant and the public tag names it traces.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import is_not
from pathlib import Path
from typing import Any, TextIO

from runtime.clock import SimClock
from runtime.drivers.inline import InlinePort
from runtime.events import is_alarm
from runtime.names import program_tag
from runtime.program import fetcher
from runtime.tags import Quality, TagDB, TagDef
from tools.plantsim.devices import PlantDevices, unknown_tags
from tools.plantsim.events import FaultData, apply_plant, end_fault, start_fault
from tools.plantsim.model import Plant
from tools.plantsim.scenario import Check, Event, Scenario, bind_site

log = logging.getLogger("battplc.sim")

# The public tags of DESIGN.md, in its order; sfc.<chart>.step and par.* follow from the site.
PUBLIC_TAGS = (
    "bat.voltage", "bat.current", "bat.power", "bat.soc", "bat.cell_v_max", "bat.cell_v_min", "bat.temp_max",
    "bat.temp_min", "bms.charge_allowed", "bms.discharge_allowed", "grid.power", "pv.power", "house.power",
    "charger.enable", "charger.voltage_sp", "charger.current_sp", "inverter.enable", "inverter.power",
    "heater.enable", "fan.enable", "limits.cvl", "limits.ccl", "limits.dcl", "cmd.battery_off", "cmd.mode",
    "scan.duration", "scan.lateness", "scan.overruns",
)
# What really happens in the plant, next to what the controller believes.
PLANT_COLUMNS = {
    "plant.soc": lambda p: 100.0 * p.soc,
    "plant.voltage": lambda p: p.pack_voltage,
    "plant.current": lambda p: p.battery_current,
    "plant.cell_v_max": lambda p: p.cell_v_max,
    "plant.cell_v_min": lambda p: p.cell_v_min,
    "plant.temp_max": lambda p: p.temp_max,
    "plant.temp_min": lambda p: p.temp_min,
    "plant.ambient": lambda p: p.ambient_c,
    "plant.safety_violations": lambda p: p.safety_violations,
}
INTERLOCK_TRIPS = "interlock.trips"
# Outputs whose time switched on the summary reports.
SWITCHES = ("charger.enable", "inverter.enable", "heater.enable", "fan.enable")


def chart_step_tags(db: TagDB) -> dict[str, str]:
    """chart name -> its ``sfc.<chart>.step`` tag, for every chart the site runs."""
    out = {}
    for name in sorted(db.defs):
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "sfc" and parts[2] == "step":
            out[parts[1]] = name
    return out


class ScadaWrites:
    """SCADA writes as the Modbus server takes them: refused for tags without a register, read-only tags and
    values outside min..max, otherwise applied at the next scan's latch with quality GOOD."""

    def __init__(self, db: TagDB) -> None:
        self.db = db
        self.pending: list[tuple[str, Any]] = []
        self.accepted = 0
        self.refused = 0

    def put(self, writes: Mapping[str, Any]) -> None:
        for name, value in writes.items():
            tag = self.db.defs[name]
            reason = ""
            if tag.modbus is None:
                reason = "no Modbus register"
            elif tag.access != "rw":
                reason = "read-only"
            else:
                try:
                    value = tag.coerce(value)
                except (TypeError, ValueError) as exc:
                    reason = str(exc)
                else:
                    if not tag.in_range(value):
                        reason = f"outside {tag.min}..{tag.max}"
            if reason:
                self.refused += 1
                log.warning("scada write %s = %r refused: %s", name, value, reason)
            else:
                self.accepted += 1
                self.pending.append((name, value))

    def latch(self, db: TagDB, now: float) -> None:
        for name, value in self.pending:
            db.set_input(name, value, Quality.GOOD, now)
        self.pending.clear()

    def commit(self, changed: Mapping[str, Any], db: TagDB) -> None:
        """Writes come in, nothing goes out."""


class PlantPort:
    """The scan's port to the simulated site: step the plant to the scan's time, then poll its devices.

    It keeps the wall time spent in the plant model and in the device path (bank encode, the drivers'
    decode, output writes), so a run can say where its CPU went.
    """

    def __init__(self, plant: Plant, devices: PlantDevices, db: TagDB, scenario: Scenario) -> None:
        self.plant = plant
        # the SimClock starts at the scenario's start, monotonic 0: last_good stamps in the site's wall time
        self.inline = InlinePort(devices.pollers(db.defs), epoch=scenario.start.timestamp())
        self.scenario = scenario
        self.pinned: dict[str, float] = {}  # plant inputs fixed by `plant:` events
        self.plant_s = 0.0
        self.devices_s = 0.0
        self._t0: float | None = None
        self._last = 0.0

    def latch(self, db: TagDB, now: float) -> None:
        begin_wall = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        t = now - self._t0
        dt = t - self._last
        if dt > 0.0:
            begin = self._last
            sc = self.scenario
            pinned = self.pinned
            self.plant.step(
                dt,
                pinned["pv"] if "pv" in pinned else sc.pv(begin),
                pinned["house"] if "house" in pinned else sc.house(begin),
                pinned["ambient"] if "ambient" in pinned else sc.ambient(begin),
            )
            self._last = t
        stepped = time.perf_counter()
        self.inline.latch(db, now)
        self.plant_s += stepped - begin_wall
        self.devices_s += time.perf_counter() - stepped

    def commit(self, changed: Mapping[str, Any], db: TagDB) -> None:
        begin = time.perf_counter()
        self.inline.commit(changed, db)
        self.devices_s += time.perf_counter() - begin


@dataclass
class Trace:
    """The sampled rows; with ``stream_to`` each row also goes to that CSV file as it is sampled, so a run that
    is stopped half-way leaves the trace up to its last sample on disk; ``keep=False`` there keeps no row in
    memory (a year's trace would not fit)."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    _out: TextIO | None = None
    keep: bool = True

    def write_csv(self, path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write(",".join(self.columns) + "\n")
            out.writelines(map(_csv_line, self.rows))

    def stream_to(self, path: Path, keep: bool = True) -> None:
        """Write the header and every row from now on to ``path`` (rows so far included); ``keep``: also keep
        the rows in memory."""
        self.keep = keep
        self._out = path.open("w", encoding="utf-8", newline="")
        self._out.write(",".join(self.columns) + "\n")
        self._out.writelines(map(_csv_line, self.rows))

    @property
    def wanted(self) -> bool:
        """Rows go somewhere: kept in memory or streamed to a file."""
        return self.keep or self._out is not None

    def append(self, row: list[Any]) -> None:
        if self.keep:
            self.rows.append(row)
        if self._out is not None:
            self._out.write(_csv_line(row))

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def _csv_line(row: list[Any]) -> str:
    """One CSV line: floats with 6 significant digits, None empty, anything else as str()."""
    kinds = tuple(map(type, row))
    line = _LINE_FORMATS.get(kinds)
    if line is None:
        if len(_LINE_FORMATS) > 1024:  # rows whose types keep changing: the cache stays bounded
            _LINE_FORMATS.clear()
        line = _LINE_FORMATS[kinds] = ",".join(map(_field_format, kinds)) + "\n"
    return line % tuple(row)


def _field_format(kind: type) -> str:
    # '%.6g' is f"{v:.6g}" (the same float formatting); '%.0s' prints None as nothing
    return "%.0s" if kind is type(None) else ("%.6g" if issubclass(kind, float) else "%s")


# A row's line format by the types of its values: a trace's rows keep their types, so this holds a few formats
# and a row is formatted by one C-level '%', not a generator over its hundred-odd values.
_LINE_FORMATS: dict[tuple[type, ...], str] = {}


class Progress:
    """A one-line progress bar on stderr, redrawn at most five times a second."""

    def __init__(self, total_s: float, stream: TextIO | None = None) -> None:
        self.total_s = total_s
        self.stream = stream or sys.stderr
        self._next = time.perf_counter() + 1.0  # short runs never draw

    def update(self, sim_s: float, wall_start: float, final: bool = False) -> None:
        now = time.perf_counter()
        if now < self._next and not final:
            return
        self._next = now + 0.2
        share = min(1.0, sim_s / self.total_s)
        bar = "#" * int(share * 30)
        wall = now - wall_start
        if final:
            left = "done    " if share >= 1 else "stopped "
        else:
            left = f"ETA {wall * (1 - share) / share:4.0f} s" if share > 0 else "ETA    ?"
        self.stream.write(f"\rsim [{bar:<30}] {share * 100:5.1f}%  {_hms(sim_s)} / {_hms(self.total_s)}  "
                          f"{wall:5.1f} s wall  {left}  {sim_s / wall if wall else 0:,.0f}x"
                          + ("\n" if final else ""))
        self.stream.flush()


def _hms(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


class Simulation:
    """One scenario run: plant, controller and events on one SimClock."""

    def __init__(self, scenario: Scenario, duration: float | None = None, scan: float | None = None,
                 trace_to: Path | None = None, trace_every: float | None = None) -> None:
        """``trace_to``: stream the trace to this CSV file instead of keeping it in memory (closed by ``run``);
        ``trace_every``: its sample period (default: the scenario's)."""
        from runtime.app import Controller

        self.scenario = scenario
        self.duration = duration or scenario.duration
        self.clock = SimClock(scenario.start)
        self._retain_dir = tempfile.TemporaryDirectory(prefix="battplc-sim-")
        # A fresh, empty retain file: a simulation must not start from (or overwrite) the site's saved state.
        overrides = {"retain": {"path": str(Path(self._retain_dir.name) / "retain.json"), "period": 5.0}}
        with _quiet_first_start():
            self.controller = Controller(scenario.site, period=scan or scenario.scan, clock=self.clock,
                                         services=False, overrides=overrides)
        self.db = self.controller.db
        self.scan = self.controller.scan
        self.period = self.scan.period
        devices = self.controller.site.devices
        self.events: list[Event] = bind_site(scenario, [d.name for d in devices], self.db)
        missing = unknown_tags(devices)
        if missing:
            log.warning("the plant has no value for %s; those registers read 0", ", ".join(sorted(missing)))
        self.plant = Plant(scenario.plant)
        self.devices = PlantDevices(self.plant, devices)
        self.port = PlantPort(self.plant, self.devices, self.db, scenario)
        self.scada = ScadaWrites(self.db)
        self.scan.ports.extend([self.port, self.scada])
        self.charts = chart_step_tags(self.db)
        self._tag_columns = self._traced_tags()
        self.trace = Trace(["time", *self._tag_columns, *PLANT_COLUMNS])
        if trace_to is not None:
            self.trace.stream_to(trace_to, keep=False)
        self.trace_every = trace_every or scenario.trace_every
        self._texts = TextColumns(self.db.defs, self._tag_columns)
        self.wall_s = 0.0
        self.cpu_s = 0.0  # CPU time of this process over the run: the wall time of a machine with a free core
        self.scan_s = 0.0  # wall time inside scan.step(), plant and devices included
        self.switches = [n for n in SWITCHES if n in self.db.defs]
        self.tally = Tally([*self.charts.values(), *self.switches])
        self.checks = CheckRunner(scenario.checks)
        self.watch = Watch(self.plant, "bat.soc" in self.db.defs)
        self.stopped_at: float | None = None  # simulated seconds, when stop() ended the run early
        self.why_at: float | None = None  # simulated seconds at which to keep a snapshot for `why`
        self.why: Any = None  # that snapshot (runtime.sfc.why.MappingSnapshot), once taken
        self.stop_signal: int | None = None  # the signal that asked for the stop, if one did
        self.marks: list[Mark] = []  # scenario events and alarms raised, for the plot
        self.scan.observers.append(AlarmMarks(self.db, self.marks))
        self._stop = False

    def _traced_tags(self) -> list[str]:
        params = sorted(n for n in self.db.defs if n.startswith("par."))
        return [*PUBLIC_TAGS, *self.charts.values(), *params]

    # ---- running ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the run after the current scan (signal handlers): outputs go safe, the summary covers what ran."""
        self._stop = True

    def run(self, progress: bool = False) -> dict[str, Any]:
        scan = self.scan
        period = self.period
        total = max(1, int(math.floor(self.duration / period + 1e-9)))
        trace_every = max(1, int(round(self.trace_every / period)))
        sampled = self.trace.wanted  # no row is built for a trace that goes nowhere
        events = list(self.events)
        ends: list[tuple[float, FaultData]] = []  # (time, fault) of faults to clear
        bar = Progress(self.duration) if progress else None
        values = self.db.values
        tally, checks, watch = self.tally, self.checks, self.watch
        perf_counter = time.perf_counter
        scan_s = 0.0
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        try:
            for k in range(total):
                if self._stop:
                    self.stopped_at = k * period
                    break
                scan.wait()
                t = k * period
                while events and events[0].at <= t + 1e-9:
                    self.marks.append(Mark(t, "event", describe(events[0])))
                    ends += self._apply(events.pop(0), t)
                if ends:
                    ends = self._clear_faults(ends, t)
                began = perf_counter()
                scan.step()
                scan_s += perf_counter() - began
                tally.count(values)
                watch.observe(values, t)
                if checks.due(t):
                    checks.evaluate(t, values)
                if sampled and k % trace_every == 0:
                    self._sample(t)
                if self.why_at is not None and t >= self.why_at and self.why is None:
                    self._keep_why()
                if bar is not None and k & 1023 == 0:
                    bar.update(t, wall_start)
        finally:
            scan.shutdown()
            self.trace.close()
            self.wall_s = time.perf_counter() - wall_start
            self.cpu_s = time.process_time() - cpu_start
            self.scan_s = scan_s
            self._retain_dir.cleanup()
        if bar is not None:
            bar.update(self.duration if self.stopped_at is None else self.stopped_at, wall_start, final=True)
        return self.summary()

    def _keep_why(self) -> None:
        from runtime.sfc.why_cli import charts_of, snapshot_of_image

        self.why = snapshot_of_image(self.db, charts_of(self.controller.programs), self.clock.now())

    @property
    def step_counts(self) -> dict[str, dict[Any, int]]:
        """chart -> {step code: scans spent in it}."""
        return {chart: self.tally.counts(tag) for chart, tag in self.charts.items()}

    @property
    def on_counts(self) -> dict[str, int]:
        """switched output -> scans it was on."""
        return {name: sum(n for value, n in self.tally.counts(name).items() if value) for name in self.switches}

    def _apply(self, event: Event, t: float) -> list[tuple[float, FaultData]]:
        if event.kind == "write":
            self.scada.put(event.data)
            return []
        if event.kind == "plant":
            apply_plant(self.devices, self.port.pinned, event.data)
            return []
        device, kind, seconds, tag, value = event.data
        start_fault(self.devices, event.data, t, self.scenario.plant.seed)
        log.info("t=%s: device %s %s%s%s", _hms(t), device, kind, f" {tag} {value:g}" if tag else "",
                 f" for {seconds:g} s" if seconds else "")
        return [(event.at + seconds, event.data)] if seconds else []

    def _clear_faults(self, ends: list[tuple[float, FaultData]], t: float) -> list[tuple[float, FaultData]]:
        keep = []
        for end, data in ends:
            if end <= t + 1e-9:
                end_fault(self.devices, data)
                log.info("t=%s: device %s %s again", _hms(t), data[0], f"reports {data[3]} true" if data[3] else "answers")
            else:
                keep.append((end, data))
        return keep

    def _sample(self, t: float) -> None:
        tags = tuple(map(self.db.values.get, self._tag_columns))  # None for a tag the site lacks
        row: list[Any] = [t, *self._texts.apply(tags)]
        plant = self.plant
        row += [measure(plant) for measure in PLANT_COLUMNS.values()]
        self.trace.append(row)

    # ---- results ----------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        p = self.plant
        db = self.db
        step_time: dict[str, dict[str, float]] = {}
        for chart, counts in self.step_counts.items():
            tag = db.defs[self.charts[chart]]
            step_time[chart] = {tag.format(step): round(n * self.period, 3) for step, n in sorted(counts.items())}
        simulated = self.scan.count * self.period
        programs = self.controller.programs + [i for i in (self.controller.interlocks,) if i is not None]
        faults = {prog.name: db.values[program_tag(prog.name, "faults")] for prog in programs}
        return {
            "scenario": self.scenario.name,
            "simulated_s": simulated,
            "scan_s": self.period,
            "scans": self.scan.count,
            "overruns": self.scan.overruns,
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "x_real_time": round(simulated / self.wall_s) if self.wall_s else None,
            "energy_charged_kwh": round(p.charged_kwh, 3),
            "energy_discharged_kwh": round(p.discharged_kwh, 3),
            "grid_import_kwh": round(p.grid_import_kwh, 3),
            "grid_export_kwh": round(p.grid_export_kwh, 3),
            "soc_start_pct": round(100.0 * self.scenario.plant.soc, 2),
            "soc_end_pct": round(100.0 * p.soc, 2),
            "cell_v_min": round(p.cell_v_min_seen, 4),
            "cell_v_max": round(p.cell_v_max_seen, 4),
            "temp_min": round(p.temp_min_seen, 2),
            "temp_max": round(p.temp_max_seen, 2),
            "safety_violations": p.safety_violations,
            **p.oracle.summary(),
            "oracle_first_s": {name: round(t, 3) for name, t in sorted(p.oracle.first.items())},
            "bms_trips": p.bms_trips,
            "inverter_starts": p.inverter.starts,
            "charger_starts": p.charger.starts,
            "soc_error_max_pts": round(self.watch.soc_error_max, 3),
            "soc_error_end_pts": round(self.watch.soc_error_end, 3),
            "interlock_trips": self.watch.interlock_trips,
            "alarms_raised": sum(1 for mark in self.marks if mark.kind == "alarm"),  # EEMUA 191's rate
            "program_faults": faults,
            "scada_writes_accepted": self.scada.accepted,
            "scada_writes_refused": self.scada.refused,
            "failed_polls": dict(self.port.inline.failures),
            "cost_us_per_scan": self._costs(),
            "output_on_s": {name: round(n * self.period, 3) for name, n in self.on_counts.items()},
            "step_time_s": step_time,
            "checks_passed": self.checks.passed(),
            "checks_failed": self.checks.failures(),
        }


    def _costs(self) -> dict[str, float]:
        """Where the wall time of a scan went: plant model, device path, controller (programs, scan), the rest."""
        scans = max(1, self.scan.count)
        plant, devices = self.port.plant_s, self.port.devices_s
        controller = self.scan_s - plant - devices
        return {"plant": round(plant / scans * 1e6, 1), "devices": round(devices / scans * 1e6, 1),
                "controller": round(controller / scans * 1e6, 1),
                "sim_loop": round((self.wall_s - self.scan_s) / scans * 1e6, 1)}


class TextColumns:
    """The trace's columns of declared tags that are not floats, written as text (enum names, 0/1).

    A row's values are fetched, compared and put in place by C-level calls; the texts are made again only when
    one of these values is another object than at the last row (they are chart steps, switches and parameters,
    which rarely change; an image value that did not change is the same object)."""

    def __init__(self, defs: Mapping[str, TagDef], columns: list[str]) -> None:
        indices = [i for i, name in enumerate(columns) if name in defs and defs[name].type != "float"]
        self.tags = [defs[columns[i]] for i in indices]
        self._fetch = fetcher(indices)
        # a row is the values followed by the texts; each text column takes its text instead of its value
        text_of = {index: len(columns) + k for k, index in enumerate(indices)}
        self._arrange = fetcher([text_of.get(i, i) for i in range(len(columns))])
        self._last: tuple[Any, ...] | None = None
        self._texts: tuple[str, ...] = ()

    def apply(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """``values`` (one per column) with the text columns' values formatted."""
        raw = self._fetch(values)
        if self._last is None or any(map(is_not, raw, self._last)):
            self._last = raw
            self._texts = tuple(tag.format(value) for tag, value in zip(self.tags, raw, strict=True))
        return self._arrange(values + self._texts)


class Watch:
    """What the summary judges per scan beyond the plant: the displayed ``bat.soc`` against the true SoC
    (points; max of the magnitude, and signed at the end), and interlock trips counted as the rises of
    ``interlock.trips`` (so a count that falls back and rises again is still counted)."""

    def __init__(self, plant: Plant, has_soc: bool) -> None:
        self.plant = plant
        self.has_soc = has_soc
        self.soc_error_max = 0.0
        self.soc_error_end = 0.0
        self.interlock_trips = 0
        self._trips_seen = 0

    def observe(self, values: Mapping[str, Any], t: float) -> None:
        if self.has_soc:
            shown = values["bat.soc"]
            if isinstance(shown, (int, float)) and shown == shown:
                err = shown - 100.0 * self.plant.soc
                self.soc_error_end = err
                if abs(err) > self.soc_error_max:
                    self.soc_error_max = abs(err)
        trips = values.get(INTERLOCK_TRIPS, 0) or 0
        if trips != self._trips_seen:
            if trips > self._trips_seen:
                self.interlock_trips += trips - self._trips_seen
            self._trips_seen = trips


@dataclass(frozen=True)
class Mark:
    """Something that happened at a moment of the run: a scenario event, or an alarm raised or cleared."""

    t: float
    kind: str  # "event", "alarm" (raised) or "cleared"
    text: str


def describe(event: Event) -> str:
    """A scenario event in a few words: 'write cmd.mode=off', 'fault bms1 timeout', 'plant soc=20'."""
    if event.kind == "fault":
        return f"{event.data[0]} {event.data[1]}"
    pairs = event.data.items() if isinstance(event.data, Mapping) else ()
    return f"{event.kind} " + ", ".join(f"{k}={v}" for k, v in pairs)


class AlarmMarks:
    """Scan observer: each alarm raised or cleared becomes a Mark (one tuple fetch and compare per scan)."""

    def __init__(self, db: TagDB, marks: list[Mark]) -> None:
        self.db = db
        self.marks = marks
        self.names = tuple(n for n, tag in db.defs.items() if is_alarm(tag))
        self._fetch = fetcher(self.names)
        self._last = tuple(False for _ in self.names)

    def __call__(self, scan: Any) -> None:
        now = self._fetch(self.db.values)
        if now != self._last:
            for name, before, value in zip(self.names, self._last, now, strict=True):
                if before != value:
                    # the simulation's clock starts at 0: its monotonic time is the run's time
                    self.marks.append(Mark(scan.ctx.t, "alarm" if value else "cleared", name.removeprefix("alarm.")))
            self._last = now


class Tally:
    """Scans counted per value of a few tags (chart steps, switched outputs), in one fetch and one dict update
    per scan: the scans are counted by the combination of the values, which changes rarely."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._fetch = fetcher(names)
        self._combinations: dict[Any, int] = {}

    def count(self, values: Mapping[str, Any]) -> None:
        combination = self._fetch(values)
        self._combinations[combination] = self._combinations.get(combination, 0) + 1

    def counts(self, name: str) -> dict[Any, int]:
        """value of ``name`` -> scans it had that value."""
        index = self.names.index(name)
        out: dict[Any, int] = {}
        for combination, n in self._combinations.items():
            out[combination[index]] = out.get(combination[index], 0) + n
        return out


class CheckRunner:
    """Evaluates the scenario's checks at their moments and over their windows, after each scan."""

    def __init__(self, checks: list[Check]) -> None:
        self.pending = sorted(checks, key=lambda c: c.start)
        self.active: list[Check] = []
        self.done: list[Check] = []
        self.failed: dict[Check, tuple[float, Any]] = {}

    def due(self, t: float) -> bool:
        return bool(self.active) or (bool(self.pending) and self.pending[0].start <= t + 1e-9)

    def evaluate(self, t: float, values: Mapping[str, Any]) -> None:
        while self.pending and self.pending[0].start <= t + 1e-9:
            self.active.append(self.pending.pop(0))
        still = []
        for check in self.active:
            value = values[check.tag]
            if check not in self.failed and not check.holds(value):
                self.failed[check] = (t, value)
            if check.end > t + 1e-9:
                still.append(check)
            else:
                self.done.append(check)
        self.active = still

    def passed(self) -> int:
        return sum(1 for c in self.done if c not in self.failed)

    def failures(self) -> list[str]:
        out = [f"{c.where.file}:{c.where.line}: {c.describe()}: was {value!r} at {t:g} s"
               for c, (t, value) in self.failed.items()]
        out += [f"{c.where.file}:{c.where.line}: {c.describe()}: not reached" for c in self.pending + self.active
                if c not in self.failed]
        return out


class _quiet_first_start:
    """Drop the retain store's 'no retained values, using defaults' warning: a simulation always starts so."""

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("retain: no retained values")

    def __enter__(self) -> None:
        self.filter = self._Filter()
        logging.getLogger("battplc").addFilter(self.filter)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("battplc").removeFilter(self.filter)
