"""The controller as a service: a loaded site, its scan loop and everything around it.

Assembly only: load the site, restore retained values, start device drivers, the Modbus server and the
metrics endpoint off the scan path, run the scan until a signal, then stop everything with outputs safe.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from runtime import metrics, server, web
from runtime.alarms import service as alarms
from runtime.clock import Clock, RealClock
from runtime.drivers import manager
from runtime.events import EventLog, is_step_tag
from runtime.mqtt import bridge as mqtt_bridge
from runtime.notify import StatusReporter, SystemdNotifier, WatchdogKicker, watchdog_interval
from runtime.retain import RetainStore, RetainWriter, check_values, resolve_path, writable_problem
from runtime.scan import Scan
from runtime.site import load_site
from runtime.tags import TagDef, TagType

# Services started around the scan, each a function Controller -> stop callable (or None when disabled).
SERVICES = (manager.attach, server.attach, metrics.attach, mqtt_bridge.attach, web.attach)

log = logging.getLogger("battplc")

RETAIN_ALARM = TagDef("alarm.retain_lost", TagType.BOOL, description="the retain file was bad at start: "
                      "retained values came from its previous copy (.bak) or from the defaults (see the log)")


class Controller:
    def __init__(self, site_dir: Path | str, period: float | None = None, clock: Clock | None = None,
                 services: bool = True, overrides: dict[str, Any] | None = None,
                 device_overrides: Mapping[str, Mapping[str, Any]] | None = None, shadow: bool = False) -> None:
        """``overrides`` replace `site:` settings (a section such as ``{"retain": {"path": ...}}`` may be partial);
        ``device_overrides`` replace device settings by name, e.g. {"shunt": {"port": "/dev/pts/5"}} to point a
        serial device at another port. ``shadow``: read the devices and run the programs but write nothing to
        any device (the would-be writes become ``shadow.<tag>`` tags) and refuse every Modbus write."""
        self.site, self.db, self.programs, self.interlocks = load_site(site_dir)
        self.site.settings = settings = self.site.settings.with_overrides(overrides or {})
        self.site.devices = override_devices(self.site.devices, device_overrides or {})
        self.clock = clock or RealClock(spin=settings.scan_spin)
        self.period = period or self.site.scan_period
        self.services = services
        self.shadow = shadow
        self._stoppers: list[Any] = []
        self.parts: dict[str, Any] = {}  # services attached: 'drivers', 'server', 'metrics', 'mqtt', 'web'
        self.scan = Scan(self.db, self.programs, self.clock, self.period, interlocks=self.interlocks)
        self._restore()
        for program in self.programs + ([self.interlocks] if self.interlocks else []):
            program.start(self.db)
        self.scan.observers.append(EventLog(self.db))  # chart steps and alarms, also in simulation
        # Before the services' observers, so the server and metrics see this scan's alarm states.
        self.alarms = alarms.attach(self)
        if self.alarms is not None:
            self._stoppers.append(self.alarms.stop)
        if services:
            self._start_services()

    # ---- pieces ---------------------------------------------------------------------------------------------

    def _restore(self) -> None:
        """Load retained values; a bad file never stops the start: it raises alarm.retain_lost instead."""
        path = resolve_path(self.site.settings.retain.path, self.site.dir)
        self.retain_store = RetainStore(path, self.site.settings.retain.period, clock=self.clock.monotonic, log=log)
        problem = writable_problem(path)
        if problem:
            log.warning("retain: %s; retained values (parameters, SoC, inhibit timers) will live in memory only "
                        "and be lost at the next start", problem)
        saved = self.retain_store.load(check_values(self.db.defs))
        skipped = self.db.restore(saved)
        if skipped:
            log.warning("retain: ignored %d saved value(s) this tags.yaml does not retain: %s", len(skipped),
                        ", ".join(sorted(skipped)[:10]))
        alarm = self.db.ensure(RETAIN_ALARM)
        self.db.values[alarm.name] = self.retain_store.fallback is not None

    def _start_services(self) -> None:
        # Drivers, server and metrics run in threads; with the default 5 ms GIL switch interval a busy one can
        # hold the scan back by up to 5 ms after its deadline. 0.5 ms keeps the scan's start on time.
        sys.setswitchinterval(0.0005)

        writer = RetainWriter(self.retain_store)
        # Every tag is declared by now: find the retained ones once, not by walking all tags every scan.
        names = tuple(name for name, tag in self.db.defs.items() if tag.retain)
        values = self.db.values
        last: dict[str, Any] = {}

        def persist(scan: Scan) -> None:
            retained = {name: values[name] for name in names}
            if retained != last:
                last.clear()
                last.update(retained)
                writer.submit(retained)  # submit() keeps its own copy

        self.scan.observers.append(persist)
        self._stoppers.append(writer.stop)
        self.notifier = SystemdNotifier()
        interval = watchdog_interval()
        if self.site.settings.watchdog and interval:
            kicker = WatchdogKicker(self.notifier, interval)
            self.scan.observers.append(lambda scan: kicker.kick(scan.clock.monotonic()))
        if self.notifier.enabled:
            status = StatusReporter(self.notifier, self.status_line)
            self.scan.observers.append(lambda scan: status.report(scan.ctx.t))
        for attach in SERVICES:
            stop = attach(self)
            if stop is not None:
                self._stoppers.append(stop)

    # ---- running --------------------------------------------------------------------------------------------

    def run(self, duration: float | None = None) -> None:
        """Scan in real time until SIGINT/SIGTERM (or ``duration`` seconds); stop with safe outputs."""
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda signum, frame: self.scan.stop())
        # Everything loaded so far lives for the whole run: move it out of the collector's reach so a full
        # collection (measured up to 19 ms while polling) does not stall a scan.
        gc.collect()
        gc.freeze()
        if self.services:
            self.notifier.ready()
        try:
            self.scan.run(duration=duration)
        finally:
            if self.services:
                self.notifier.stopping()
            self.close()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def status_line(self) -> str:
        """One line for `systemctl status`: mode, each chart's active step, the scan's figures."""
        defs, values, scan = self.db.defs, self.db.values, self.scan
        steps = [f"{name.split('.')[1]} {defs[name].format(values[name])}" for name in defs if is_step_tag(defs[name])]
        mode = f"mode {defs['cmd.mode'].format(values['cmd.mode'])}; " if "cmd.mode" in defs else ""
        return (f"{mode}{', '.join(steps) or 'no charts'}; scan {values['scan.duration'] * 1000:.2f} ms, "
                f"{scan.overruns} overruns, {scan.count} scans")

    def safe_outputs_text(self) -> str:
        """What the device outputs were left at when the scan stopped (their safe values), one line; a site
        without device outputs lists what its programs write."""
        defs, values = self.db.defs, self.db.values
        names = sorted({point.tag for device in self.site.devices for point in device.outputs}) or \
            sorted(self.scan.outputs())
        shown = [f"{name}={defs[name].format(values[name])}{' ' + defs[name].unit if defs[name].unit else ''}"
                 for name in names]
        return "outputs left at their safe values: " + (", ".join(shown) or "none")

    def close(self) -> None:
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception:
                log.exception("error while stopping")
        self._stoppers.clear()


def override_devices(devices: list[Any], overrides: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """Devices with some settings replaced; an unknown device or setting is a ValueError."""
    by_name = {d.name: d for d in devices}
    unknown = sorted(set(overrides) - set(by_name))
    if unknown:
        raise ValueError(f"no device {', '.join(unknown)}; the site has {', '.join(sorted(by_name)) or 'none'}")
    return [replace(d, **overrides[d.name]) if d.name in overrides else d for d in devices]
