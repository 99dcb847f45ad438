"""`make run` as a user sees it: `battplc demo` starts the plant and the controller, serves Modbus TCP and
metrics where it says, and stops cleanly on Ctrl-C (SIGINT) with exit status 0."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from demo_helpers import wait_for_line
from pymodbus.client import ModbusTcpClient

from runtime.site import REPO_ROOT

PORTS = (5020, 5021, 5022, 5023, 5024, 9108, 8480)  # SCADA server, plant devices (io_map.yaml), metrics, page


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.mark.slow
def test_demo_serves_modbus_and_metrics_and_stops_on_sigint(tmp_path: Path) -> None:
    taken = [p for p in PORTS if port_taken(p)]
    if taken:
        pytest.skip(f"ports {taken} are in use (a `make run` already going?)")
    # The repository's site in a scratch folder, so the demo's retained state does not land in var/.
    for name in ("tags.yaml", "io_map.yaml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "demo", str(tmp_path)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = "".join(wait_for_line(proc, "Operator page", timeout=120))  # a busy machine starts slowly
        assert "127.0.0.1:5020" in banner and "http://127.0.0.1:9108/metrics" in banner
        assert "Operator page: http://127.0.0.1:8480/ (read-only)" in banner

        voltage = 0.0
        deadline = time.monotonic() + 10
        with ModbusTcpClient("127.0.0.1", port=5020, timeout=2) as scada:
            while voltage < 20 and time.monotonic() < deadline:
                answer = scada.read_input_registers(0, count=1, device_id=1)  # bat.voltage, 0.01 V
                voltage = 0.0 if answer.isError() else answer.registers[0] / 100
                time.sleep(0.2)
        assert 20 < voltage < 30  # an 8S LiFePO4 pack, read from the plant through the whole chain

        metrics = urllib.request.urlopen("http://127.0.0.1:9108/metrics", timeout=5).read().decode()
        assert 'battplc_device_up{device="bms1"} 1.0' in metrics
        assert "battplc_bat_voltage_volts" in metrics

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "demo stopped" in out
    assert "outputs left at their safe values: charger.current_sp=0 A, charger.enable=0," in out
    assert "Traceback" not in err


def test_a_demo_scenario_plays_its_faults_and_plant_events_in_real_time(tmp_path: Path) -> None:
    from tools.plantsim.demo import plant_server
    from tools.plantsim.scenario import load_scenario

    path = tmp_path / "live.yaml"
    path.write_text("duration: 1h\nevents:\n  - {at: 1min, fault: {device: bms, kind: garbage, for: 30s}}\n"
                    "  - {at: 2min, plant: {ambient: -5}}\n  - {at: 3min, write: {cmd.battery_off: true}}\n")
    server = plant_server(REPO_ROOT, load_scenario(path))  # built, not started: no port is opened
    timeline = sorted(server.events, key=lambda e: e[0])
    assert [at for at, _ in timeline] == [60.0, 90.0, 120.0]  # the SCADA write is left to a Modbus client
    timeline[0][1]()
    assert server.devices.faults() == {"bms1": "garbage"}
    timeline[1][1]()
    timeline[2][1]()
    assert server.devices.faults() == {} and server.pinned == {"ambient": -5}
    server.stop()  # closes its pty
