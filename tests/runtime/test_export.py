"""battplc export homeassistant|evcc: the YAML parses, every register is in the map, and the scales reproduce
live values read over Modbus from a running server of the default site."""

from __future__ import annotations

import shlex
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from runtime.cli import main
from runtime.server import Server
from runtime.server.regmap import RegisterMap
from runtime.site import REPO_ROOT, load_site
from runtime.tags import Quality, TagDB, TagType

TABLES = {"input": "input", "holding": "holding", "discrete_input": "discrete", "coil": "coil"}
READ = {"input": "read_input_registers", "holding": "read_holding_registers"}


def export(target: str, capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    assert main(["export", target, str(REPO_ROOT), *extra]) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.fixture(scope="module")
def site() -> tuple[TagDB, RegisterMap]:
    _, db, _, _ = load_site(REPO_ROOT, with_programs=False)
    return db, RegisterMap.from_tags(db.defs.values())


@pytest.fixture
def live(site: tuple[TagDB, RegisterMap]) -> Iterator[tuple[TagDB, Server, ModbusTcpClient]]:
    """A server of the default site on a free port, every mapped float at -123 (or 123) raw counts."""
    db, regmap = site
    for point in regmap:
        tag = point.tag
        if tag.type == TagType.FLOAT:
            raw = -123 if point.dtype.startswith("int") else 123
            data = struct.pack(">f", raw) if point.dtype == "float32" else \
                raw.to_bytes(2 * point.width, "big", signed=raw < 0)
            db.values[tag.name] = point.decode(data)  # the register map's own decoding, not its scale key
        elif tag.type == TagType.BOOL:
            db.values[tag.name] = point.address % 2 == 0
        else:
            db.values[tag.name] = tag.coerce(1 if tag.type == TagType.ENUM else 3)
        db.quality[tag.name] = Quality.GOOD  # a live reading: without one the server serves "not implemented"
    server = Server(db, {"port": 0})
    server.start()
    client = ModbusTcpClient("127.0.0.1", port=server.address[1], timeout=2, retries=0)
    assert client.connect()
    yield db, server, client
    client.close()
    server.stop()


def test_homeassistant_registers_are_all_in_the_map(site: tuple[TagDB, RegisterMap],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, regmap = site
    hub = export("homeassistant", capsys, "--host", "plc.lan", "--port", "1502")["modbus"][0]
    assert (hub["type"], hub["host"], hub["port"]) == ("tcp", "plc.lan", 1502)
    entries = hub["sensors"] + hub["binary_sensors"]
    assert len(entries) == len(regmap) and len({e["unique_id"] for e in entries}) == len(entries)
    for entry in entries:
        point = regmap.point(entry["name"].removeprefix("battplc "))
        assert (point.address, point.table) == (entry["address"], TABLES[entry["input_type"]])
        assert entry["slave"] == 1
        if entry in hub["sensors"]:
            assert entry["data_type"] == point.dtype
    soc = next(e for e in hub["sensors"] if e["name"] == "battplc bat.soc")
    assert (soc["unit_of_measurement"], soc["device_class"], soc["state_class"], soc["precision"]) == \
        ("%", "battery", "measurement", 1)


def test_homeassistant_scale_reproduces_live_values(live: tuple[TagDB, Server, ModbusTcpClient],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db, _, client = live
    hub = export("homeassistant", capsys)["modbus"][0]
    for sensor in hub["sensors"]:
        tag = db.define(sensor["name"].removeprefix("battplc "))
        read = getattr(client, READ[sensor["input_type"]])
        registers = read(sensor["address"], count=2 if "32" in sensor["data_type"] else 1, device_id=1).registers
        raw = client.convert_from_registers(registers, getattr(client.DATATYPE, sensor["data_type"].upper()))
        shown = round(raw * sensor["scale"], sensor["precision"])  # what Home Assistant displays
        assert shown == pytest.approx(db.values[tag.name], abs=10 ** -sensor["precision"] / 2), tag.name
    for binary in hub["binary_sensors"]:
        read = client.read_discrete_inputs if binary["input_type"] == "discrete_input" else client.read_coils
        bit = read(binary["address"], count=1, device_id=1).bits[0]
        assert bit == db.values[binary["name"].removeprefix("battplc ")]


def test_evcc_meter_reads_power_and_soc_and_maps_battery_modes(live: tuple[TagDB, Server, ModbusTcpClient],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    db, server, client = live
    db.values["bat.power"] = -1500.0  # discharging 1.5 kW
    db.values["bat.soc"] = 64.3
    server.image.load(db.values, db.quality)
    meter = export("evcc", capsys)["meters"][0]
    assert (meter["type"], meter["power"]["uri"]) == ("custom", "127.0.0.1:5020")

    def value(spec: dict[str, Any]) -> float:
        register = spec["register"]
        registers = client.read_input_registers(register["address"], count=2 if "32" in register["decode"] else 1,
                                                device_id=spec["id"]).registers
        return client.convert_from_registers(registers, getattr(client.DATATYPE, register["decode"].upper())) \
            * spec["scale"]

    assert value(meter["power"]) == pytest.approx(1500.0)  # evcc: + = battery discharging
    assert value(meter["soc"]) == pytest.approx(64.3)
    modes = {case["case"]: case["set"] for case in meter["batterymode"]["switch"]}
    assert sorted(modes) == [1, 2, 3]  # evcc normal, hold, charge
    expected = {1: "auto", 2: "hold", 3: "force_charge"}
    for case, setter in modes.items():
        register = setter["set"]["register"]
        assert register["type"] == "writesingle"
        assert not client.write_register(register["address"], setter["value"], device_id=1).isError()
        server.port.latch(db, 0.0)  # the scan's latch phase
        assert db.define("cmd.mode").values[db["cmd.mode"]] == expected[case]


def test_the_readme_export_commands_work_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Home automation", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in section.splitlines() if line.startswith("battplc export")]
    assert commands == ["battplc export homeassistant", "battplc export evcc"]
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0
        assert yaml.safe_load(capsys.readouterr().out)
