"""The plant on real transports (tools/plantsim/serve.py): pymodbus TCP servers on loopback answer from the
register banks and drive the plant on writes, faults show on the wire, and the shunt talks on a pty."""

from __future__ import annotations

import dataclasses
import os
import select
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from runtime.drivers.base import DeviceConfig
from runtime.drivers.vedirect import VEDirectParser
from runtime.site import REPO_ROOT, load_site
from tools.plantsim.model import Plant
from tools.plantsim.serve import PlantServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served() -> Iterator[PlantServer]:
    site, _, _, _ = load_site(REPO_ROOT, with_programs=False)
    devices = [dataclasses.replace(d, port=free_port()) if d.driver == "modbus_tcp" else d for d in site.devices]
    plant = Plant()
    server = PlantServer(plant, devices, step=0.05)
    server.start()
    yield server
    server.stop()


def client(server: PlantServer, device: str, timeout: float = 1.0) -> ModbusTcpClient:
    config: DeviceConfig = server.devices.configs[device]
    c = ModbusTcpClient(config.host, port=int(config.port), timeout=timeout, retries=0)
    assert c.connect()
    return c


def test_reads_answer_what_the_plant_measures(served: PlantServer) -> None:
    with client(served, "bms1") as c:
        cells = c.read_holding_registers(0x1200, count=8, device_id=1).registers
        live = c.read_holding_registers(0x1248, count=2, device_id=1).registers
    assert cells == [round(v * 1000) for v in served.plant.cell_voltages]
    assert abs(((live[0] << 16) | live[1]) - served.plant.pack_voltage * 1000) < 50


def test_unmapped_addresses_and_tables_answer_illegal_address(served: PlantServer) -> None:
    with client(served, "meter") as c:
        assert c.read_input_registers(100, count=2, device_id=1).exception_code == 2
        assert c.read_holding_registers(0, count=1, device_id=1).exception_code == 2


def test_writes_reach_the_plant(served: PlantServer) -> None:
    with client(served, "charger") as c:
        assert not c.write_register(0, 2840, device_id=1).isError()
        assert not c.write_coil(2, True, device_id=1).isError()
        coils = c.read_coils(0, count=3, device_id=1).bits[:3]
    assert served.plant.charger.voltage_sp == pytest.approx(28.40)
    assert served.plant.fan_on and coils == [False, False, True]
    with client(served, "charger") as c:
        c.write_coil(2, False, device_id=1)
    assert not served.plant.fan_on


def test_the_plant_runs_in_real_time(served: PlantServer) -> None:
    before = served.plant.time_s
    time.sleep(0.3)
    assert 0.15 < served.plant.time_s - before < 1.0


def test_offline_device_does_not_answer(served: PlantServer) -> None:
    served.devices.set_fault("inverter", "offline")
    try:
        with client(served, "inverter", timeout=0.3) as c, pytest.raises(ModbusIOException):
            c.read_input_registers(0, count=1, device_id=1)
    finally:
        served.devices.set_fault("inverter", None)
    with client(served, "inverter") as c:
        assert not c.read_input_registers(0, count=1, device_id=1).isError()


def test_garbage_answers_exceptions_and_short_frames(served: PlantServer) -> None:
    served.devices.set_fault("meter", "garbage")
    try:
        with client(served, "meter") as c:
            first = c.read_input_registers(0, count=6, device_id=1)
            second = c.read_input_registers(0, count=6, device_id=1)
    finally:
        served.devices.set_fault("meter", None)
    assert first.isError() and first.exception_code == 4
    assert not second.isError() and len(second.registers) == 5  # one register short: a decode error


def test_the_shunt_talks_ve_direct_on_a_pty(served: PlantServer) -> None:
    path = served.serial_ports["shunt"]
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    parser = VEDirectParser()
    frames = []
    deadline = time.monotonic() + 3.5
    try:
        while time.monotonic() < deadline and sum(f.ok for f in frames) < 3:
            if select.select([fd], [], [], 0.2)[0]:
                frames += parser.feed(os.read(fd, 4096))
    finally:
        os.close(fd)
    good = [f for f in frames if f.ok]
    assert len(good) >= 3
    volts = [int(f.fields["V"]) / 1000 for f in good if "V" in f.fields]
    assert volts and abs(volts[-1] - served.plant.pack_voltage) < 0.1


def test_timeout_answers_too_late(served: PlantServer) -> None:
    served.devices.set_fault("inverter", "timeout")  # answers after 3 x its 500 ms timeout
    try:
        with client(served, "inverter", timeout=0.5) as c, pytest.raises(ModbusIOException):
            c.read_input_registers(0, count=1, device_id=1)
    finally:
        served.devices.set_fault("inverter", None)
    with client(served, "inverter") as c:
        assert not c.read_input_registers(0, count=1, device_id=1).isError()


def test_the_real_drivers_read_the_plant_and_see_its_faults(served: PlantServer) -> None:
    """The threaded drivers of `make run` against the served plant: GOOD values, BAD while a device is
    offline, GOOD again after, and written outputs reaching the plant."""
    from runtime.drivers.manager import DriverManager
    from runtime.tags import Quality

    db = load_site(REPO_ROOT, with_programs=False)[1]
    configs = [dataclasses.replace(c, port=served.serial_ports[c.name]) if c.driver == "vedirect" else c
               for c in served.devices.configs.values()]
    manager = DriverManager(configs, db)
    manager.start()

    def latch_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            manager.latch(db, time.monotonic())
            if condition():
                return True
            time.sleep(0.05)
        return False

    try:
        assert latch_until(lambda: all(db.quality[t] is Quality.GOOD for t in ("bms1.cell_1", "grid.power",
                                                                               "shunt.voltage")))
        assert abs(db.values["bms1.voltage"] - served.plant.pack_voltage) < 0.05
        served.devices.set_fault("bms1", "offline")
        assert latch_until(lambda: db.quality["bms1.cell_1"] is Quality.BAD)
        assert db.quality["grid.power"] is Quality.GOOD
        served.devices.set_fault("bms1", None)
        assert latch_until(lambda: db.quality["bms1.cell_1"] is Quality.GOOD, timeout=8.0)
        manager.commit({"inverter.power_sp": 432.0}, db)
        assert latch_until(lambda: served.plant.inverter.power_sp == 432.0)
    finally:
        served.devices.set_fault("bms1", None)
        manager.stop()


def test_a_taken_port_is_a_clear_error() -> None:
    from tools.plantsim.serve import PlantServerError

    site, _, _, _ = load_site(REPO_ROOT, with_programs=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        devices = [dataclasses.replace(d, port=port) for d in site.devices if d.name == "meter"]
        server = PlantServer(Plant(), devices)
        with pytest.raises(PlantServerError, match=f"cannot listen on 127.0.0.1:{port} for meter"):
            server.start()


def test_a_timeout_keeps_the_device_bad_for_its_whole_window(served: PlantServer) -> None:
    """Every answer comes too late, so no read succeeds while the fault lasts (a late answer once passed for
    the next request's and made the meter GOOD again after one error)."""
    from runtime.drivers.manager import DriverManager
    from runtime.tags import Quality

    db = load_site(REPO_ROOT, with_programs=False)[1]
    configs = [c for c in served.devices.configs.values() if c.name == "meter"]
    manager = DriverManager(configs, db)
    manager.start()
    try:
        deadline = time.monotonic() + 5.0
        while db.quality["grid.power"] is not Quality.GOOD and time.monotonic() < deadline:
            manager.latch(db, time.monotonic())
            time.sleep(0.05)
        served.devices.set_fault("meter", "timeout")
        seen = []
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            manager.latch(db, time.monotonic())
            seen.append(db.quality["grid.power"])
            time.sleep(0.05)
        first_bad = seen.index(Quality.BAD)
        assert all(q is Quality.BAD for q in seen[first_bad:]), seen[first_bad:]
    finally:
        served.devices.set_fault("meter", None)
        manager.stop()
