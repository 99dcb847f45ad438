"""Shadow mode (``battplc run --shadow``): the controller reads the real devices and runs its programs, but no
write reaches any device, the would-be writes are ``shadow.<tag>`` tags, and the Modbus server refuses writes.

The devices are the simulated plant served on loopback (the demo's transports); writes are counted where they
land, in the devices' register banks. The same run without ``--shadow`` writes, so the count can fail.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from runtime.app import Controller
from runtime.site import REPO_ROOT, load_site
from tools.plantsim.model import Plant
from tools.plantsim.serve import PlantServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def plant() -> Iterator[PlantServer]:
    site, _, _, _ = load_site(REPO_ROOT, with_programs=False)
    devices = [dataclasses.replace(d, port=free_port()) if d.driver == "modbus_tcp" else d for d in site.devices]
    server = PlantServer(Plant(), devices, step=0.05)
    server.start()
    yield server
    server.stop()


def controller(plant: PlantServer, tmp_path: Path, shadow: bool) -> Controller:
    ports = {name: {"port": c.port} for name, c in plant.devices.configs.items() if c.driver == "modbus_tcp"}
    ports.update({name: {"port": path} for name, path in plant.serial_ports.items()})
    return Controller(REPO_ROOT, period=0.1, shadow=shadow, device_overrides=ports,
                      overrides={"server": {"port": free_port()}, "metrics": {"port": free_port()},
                                 "retain": {"path": str(tmp_path / "retain.json")}})


def device_writes(plant: PlantServer) -> int:
    return sum(bank.writes for bank in plant.devices.banks.values())


def test_a_shadow_run_writes_nothing_and_publishes_the_would_be_writes(plant: PlantServer, tmp_path: Path) -> None:
    plc = controller(plant, tmp_path, shadow=True)
    outputs = sorted(plc.parts["drivers"]._routes)
    assert outputs, "the site has device outputs"
    server = plc.parts["server"]
    client = ModbusTcpClient("127.0.0.1", port=server.address[1], timeout=2, retries=0)
    assert client.connect()
    answer = client.write_coil(0, True, device_id=1)
    client.close()
    assert answer.isError() and answer.exception_code == 1  # ILLEGAL_FUNCTION: the server is read-only
    plc.run(duration=3.0)
    assert device_writes(plant) == 0
    assert plc.db.quality["bms1.cell_1"].name == "GOOD"  # it did read the devices
    for tag in outputs:
        shadow = plc.db.defs[f"shadow.{tag}"]
        assert shadow.access == "ro" and shadow.modbus is None
        assert plc.db.values[f"shadow.{tag}"] == plc.db.values[tag]  # what the programs would write now
    assert server.stats.writes_refused == 1


def test_the_same_run_without_shadow_writes_to_the_devices(plant: PlantServer, tmp_path: Path) -> None:
    plc = controller(plant, tmp_path, shadow=False)
    plc.run(duration=3.0)
    assert device_writes(plant) > 0
    assert not any(name.startswith("shadow.") for name in plc.db.defs)
