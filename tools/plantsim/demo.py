"""``battplc demo`` (what ``make run`` starts): the plant on loopback and the controller against it, live.

The plant serves its devices over real Modbus TCP and a pty (``serve.PlantServer``); the controller is the
ordinary service (``runtime.app.Controller`` on the site folder, with drivers, SCADA server and metrics),
except that serial devices are pointed at the plant's ptys. Ctrl-C (or SIGTERM) stops the controller, which
writes its fail-safe outputs to the plant, then the plant; the exit status is 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from pathlib import Path

from runtime.app import Controller
from runtime.site import REPO_ROOT, load_site
from tools.plantsim.events import apply_plant, end_fault, start_fault
from tools.plantsim.model import Plant
from tools.plantsim.scenario import Scenario, bind_site, load_scenario
from tools.plantsim.serve import PlantServer

log = logging.getLogger("battplc.demo")

DEFAULT_SCENARIO = REPO_ROOT / "scenarios" / "sunny_summer_day.yaml"




def default_scenario(site_dir: Path) -> Path:
    """The plant a site's demo plays without ``--scenario``: the site's own first scenario (its plant has the
    site's packs and cells), else the repository's sunny summer day."""
    own = sorted((site_dir / "scenarios").glob("*.yaml")) if site_dir.resolve() != REPO_ROOT else []
    return own[0] if own else DEFAULT_SCENARIO


def plant_server(site_dir: Path, scenario: Scenario) -> PlantServer:
    """The plant of ``scenario`` serving the devices of ``site_dir``, profiles laid over today's clock."""
    site, db, _, _ = load_site(site_dir, with_programs=False)
    now = datetime.now()
    plant = Plant(scenario.plant)
    server = PlantServer(plant, site.devices,
                         profiles=scenario.profiles_at(now.hour * 3600 + now.minute * 60 + now.second))
    names = [d.name for d in site.devices]
    for event in bind_site(scenario, names, db):
        if event.kind == "fault":
            seconds = event.data[2]
            server.events.append((event.at, lambda f=event.data, t=event.at: start_fault(
                server.devices, f, t, scenario.plant.seed)))
            if seconds:
                server.events.append((event.at + seconds, lambda f=event.data: end_fault(server.devices, f)))
        elif event.kind == "plant":
            server.events.append((event.at, lambda values=event.data: apply_plant(server.devices, server.pinned,
                                                                                 values)))
        else:
            log.info("demo: scenario write at %g s ignored; write over Modbus TCP instead", event.at)
    return server


def run_demo(site_dir: Path | str = REPO_ROOT, scenario_path: Path | str | None = None,
             period: float | None = None, duration: float | None = None) -> int:
    site_dir = Path(site_dir)
    scenario = load_scenario(scenario_path or default_scenario(site_dir))
    server = plant_server(site_dir, scenario)
    controller: Controller | None = None
    server.start()
    try:
        controller = Controller(site_dir, period=period,
                                device_overrides={name: {"port": path} for name, path in server.serial_ports.items()})
        # Ctrl-C from here on is a clean stop (Controller.run installs the same handler again).
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda signum, frame: controller.scan.stop())
        for endpoint in server.endpoints:
            log.info("plant: Modbus TCP devices on %s:%d", *endpoint)
        for name, path in server.serial_ports.items():
            log.info("plant: %s sends VE.Direct on %s", name, path)
        _announce(controller)
        controller.run(duration=duration)
    except KeyboardInterrupt:  # Ctrl-C while the controller was still starting
        if controller is not None:
            controller.close()
    finally:
        server.stop()
    figures = controller.scan.figures() if controller is not None else {"scans": 0, "overruns": 0}
    print(f"demo stopped after {figures['scans']} scans, {figures['overruns']} overruns; "
          f"plant safety violations: {server.plant.safety_violations}", flush=True)
    if controller is not None:
        print(controller.safe_outputs_text(), flush=True)
    return 0


def _announce(controller: Controller) -> None:
    lines = [f"battplc demo: site {controller.site.name!r} at a {controller.period * 1000:g} ms scan against the "
             f"simulated plant; Ctrl-C stops"]
    server, metrics = controller.site.settings.server, controller.site.settings.metrics
    if "server" in controller.parts:
        lines.append(f"  Modbus TCP server (SCADA/HMI): {server.listen}:{server.port}")
    if "metrics" in controller.parts:
        lines.append(f"  Prometheus metrics: http://{metrics.listen}:{metrics.port}/metrics")
    if "web" in controller.parts:
        page = controller.parts["web"]
        lines.append(f"  Operator page: {page.url}" + ("" if page.writes["enabled"] else " (read-only)"))
    print("\n".join(lines), flush=True)
