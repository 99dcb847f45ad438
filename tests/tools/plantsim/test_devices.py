"""The plant as devices (tools/plantsim/devices.py): the registers and frames it serves decode, through the
drivers' own in-process path, to what the plant measures; writes drive its inputs; faults make tags BAD."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runtime.config.errors import ConfigErrors
from runtime.drivers.base import DeviceConfig
from runtime.drivers.codec import InputPoint, OutputPoint
from runtime.drivers.inline import InlinePort
from runtime.drivers.modbus import Device, SyncPoller
from runtime.drivers.vedirect import FramePoller, VEDirectParser
from runtime.site import REPO_ROOT, load_site
from runtime.tags import Quality, TagDB
from tools.plantsim.devices import (
    DRIVEN,
    MEASURED,
    NoAnswer,
    PlantDevices,
    RegisterBank,
    ShuntFrames,
    unknown_tags,
)
from tools.plantsim.model import Plant, PlantConfig


@pytest.fixture(scope="module")
def site() -> tuple[list[DeviceConfig], TagDB]:
    site, db, _, _ = load_site(REPO_ROOT, with_programs=False)
    return site.devices, db


def busy_plant(**config: object) -> Plant:
    """A plant with current flowing both ways over its life, so every register holds a non-trivial value."""
    plant = Plant(PlantConfig(soc=0.6, temperature_c=-3.5, **config))  # type: ignore[arg-type]
    plant.inverter.enable = True
    plant.inverter.power_sp = 800.0
    for _ in range(60):
        plant.step(1.0, 300.0, 1200.0, -6.0)
    return plant


def resolution(config: DeviceConfig, tag: str) -> float:
    point = next(p for p in config.inputs if p.tag == tag)
    return abs(point.scale) if point.type != "float32" else 1e-3


def test_the_plant_serves_every_point_of_the_default_site(site: tuple[list[DeviceConfig], TagDB]) -> None:
    devices, _ = site
    assert unknown_tags(devices) == []


def test_every_modbus_input_round_trips_through_the_drivers_decode(site: tuple[list[DeviceConfig], TagDB]) -> None:
    devices, db = site
    plant = busy_plant()
    served = PlantDevices(plant, devices)
    checked = 0
    for poller in served.pollers(db.defs):
        if not isinstance(poller, SyncPoller):
            continue
        values = poller.poll()
        for point in poller.config.inputs:
            expected = MEASURED[point.tag](plant)
            got = values[point.tag]
            if isinstance(expected, bool):
                assert got is expected, point.tag
            else:
                tolerance = resolution(poller.config, point.tag) / 2 + 1e-9 + abs(expected) * 1e-6
                assert got == pytest.approx(expected, abs=tolerance), point.tag
            checked += 1
    assert checked == sum(len(d.inputs) for d in devices if d.driver != "vedirect")


def test_negative_currents_and_temperatures_keep_their_sign(site: tuple[list[DeviceConfig], TagDB]) -> None:
    devices, db = site
    plant = busy_plant()
    assert plant.battery_current < -10 and plant.temperatures[0] < 0  # the premise of this test
    bms = next(p for p in PlantDevices(plant, devices).pollers(db.defs) if p.config.name == "bms1")
    values = bms.poll()
    assert values["bms1.current"] == pytest.approx(plant.battery_current, abs=1e-3)
    assert values["bms1.temp_1"] == pytest.approx(plant.temperatures[0], abs=0.05)


def test_the_bms_registers_follow_the_jk_layout(site: tuple[list[DeviceConfig], TagDB]) -> None:
    """FACTS.md: live data at 0x1200; cell mV 16-bit from 0x00, pack mV 32-bit at byte 0x90, current mA signed
    32-bit at 0x98, temperatures 0.1 degC at 0x9C/0x9E, SoC at 0xA6 (register = 0x1200 + byte / 2)."""
    devices, _ = site
    plant = busy_plant()
    bank = RegisterBank(next(d for d in devices if d.name == "bms1"), plant)

    def register(byte_offset: int, count: int = 1) -> list[int]:
        return bank.load("holding", 0x1200 + byte_offset // 2, count)

    assert register(0x00, 8) == [round(v * 1000) for v in plant.cell_voltages]
    high, low = register(0x90, 2)
    assert (high << 16) | low == round(plant.pack_voltage * 1000)
    high, low = register(0x98, 2)
    current_ma = ((high << 16) | low) - (1 << 32 if high & 0x8000 else 0)
    assert current_ma == round(plant.battery_current * 1000)
    t1 = register(0x9C)[0]
    assert (t1 - 0x10000 if t1 & 0x8000 else t1) == round(plant.temperatures[0] * 10)
    assert register(0xA6) == [round(plant.bms.soc_pct)]


def test_writes_drive_the_plant_inputs(site: tuple[list[DeviceConfig], TagDB]) -> None:
    devices, db = site
    plant = Plant()
    served = PlantDevices(plant, devices)
    outputs = {"charger.enable": True, "charger.voltage_sp": 28.4, "charger.current_sp": 55.5,
               "inverter.enable": True, "inverter.power_sp": 750.0, "heater.enable": True, "fan.enable": True}
    for poller in served.pollers(db.defs):
        poller.commit(outputs)
    assert plant.charger.enable and plant.inverter.enable and plant.heater_on and plant.fan_on
    assert plant.charger.voltage_sp == pytest.approx(28.4)
    assert plant.charger.current_sp == pytest.approx(55.5)
    assert plant.inverter.power_sp == 750.0
    for poller in served.pollers(db.defs):
        poller.commit({"charger.enable": False, "heater.enable": False})
    assert not plant.charger.enable and not plant.heater_on and plant.fan_on


def test_every_output_of_the_default_site_drives_something(site: tuple[list[DeviceConfig], TagDB]) -> None:
    devices, _ = site
    assert {p.tag for d in devices for p in d.outputs} <= set(DRIVEN)


@pytest.mark.parametrize(("type_", "order", "value"), [
    ("int16", "big", -123.4), ("uint16", "big", 6553.5), ("int32", "big", -70000.25), ("int32", "little", -7.5),
    ("uint32", "little", 4_000_000.0), ("float32", "big", -1234.5), ("float32", "little", 0.001),
])
def test_encoding_of_every_type_and_word_order(type_: str, order: str, value: float) -> None:
    scale = 1.0 if type_ == "float32" else 0.5
    config = DeviceConfig("dev", "modbus_tcp", inputs=(
        InputPoint("grid.power", "input", 10, type_, word_order=order, scale=scale, offset=3.0),
        InputPoint("bms1.charge_allowed", "input", 12 + (type_.endswith("32")), "bit", bit=5),
        InputPoint("bms1.discharge_allowed", "discrete", 7, "bit"),
    ))
    plant = Plant()
    plant.meter.grid_power = value  # what the meter shows
    bank = RegisterBank(config, plant)
    poller = SyncPoller(Device(config), bank.read, bank.write)
    values = poller.poll()
    assert values["grid.power"] == pytest.approx(value, abs=scale / 2 + abs(value) * 1e-7)
    assert values["bms1.charge_allowed"] is True and values["bms1.discharge_allowed"] is True


def test_integers_saturate_instead_of_wrapping() -> None:
    config = DeviceConfig("dev", "modbus_tcp", inputs=(InputPoint("grid.power", "input", 0, "int16"),))
    plant = Plant()
    plant.meter.grid_power = 1e6
    bank = RegisterBank(config, plant)
    assert SyncPoller(Device(config), bank.read, bank.write).poll()["grid.power"] == 32767


def test_lookup_outputs_are_decoded_back_to_the_tag_value() -> None:
    config = DeviceConfig("dev", "modbus_tcp", outputs=(
        OutputPoint("charger.voltage_sp", "holding", 3, lookup=((20.0, 100.0), (30.0, 900.0))),))
    plant = Plant()
    bank = RegisterBank(config, plant)
    SyncPoller(Device(config), bank.read, bank.write).commit({"charger.voltage_sp": 27.5})
    assert bank.registers["holding"][3] == 700
    assert plant.charger.voltage_sp == pytest.approx(27.5)


# ---- VE.Direct --------------------------------------------------------------------------------------------

def shunt_config(site: tuple[list[DeviceConfig], TagDB]) -> DeviceConfig:
    return next(d for d in site[0] if d.driver == "vedirect")


def test_shunt_frames_are_valid_ve_direct_blocks() -> None:
    plant = busy_plant()
    frames = VEDirectParser().feed(ShuntFrames(plant).frame())
    assert [f.ok for f in frames] == [True, True]
    assert int(frames[0].fields["V"]) == round(plant.pack_voltage * 1000)
    assert int(frames[0].fields["I"]) == round(plant.battery_current * 1000)
    assert "H18" in frames[1].fields


@pytest.mark.parametrize("soc", [0.05, 0.5, 0.999])
def test_shunt_values_are_the_same_with_and_without_the_byte_parser(site: tuple[list[DeviceConfig], TagDB],
                                                                   soc: float) -> None:
    config = shunt_config(site)
    plants = [busy_plant(), busy_plant()]
    for plant in plants:
        for cell in plant.cells:
            cell.soc = soc
        plant.step(1.0, 0.0, 500.0, 10.0)
    direct = FramePoller(config, site[1].defs, ShuntFrames(plants[0])).poll()
    wire = FramePoller(config, site[1].defs, ShuntFrames(plants[1]), wire=True).poll()
    assert direct == wire
    assert set(direct) == {p.tag for p in config.inputs}
    assert direct["shunt.voltage"] == pytest.approx(plants[0].pack_voltage, abs=0.001)


def test_shunt_values_follow_the_plant_poll_after_poll_with_and_without_the_byte_parser(
        site: tuple[list[DeviceConfig], TagDB]) -> None:
    config = shunt_config(site)
    plants = [busy_plant(), busy_plant()]
    direct, wire = (FramePoller(config, site[1].defs, ShuntFrames(plant), wire=on_wire)
                    for plant, on_wire in zip(plants, (False, True), strict=True))
    currents = []
    for power_sp in (800.0, 800.0, 0.0, 0.0, 400.0):  # fields that repeat and fields that change, poll by poll
        for plant in plants:
            plant.inverter.power_sp = power_sp
            plant.step(1.0, 300.0, 1200.0, -6.0)
        values = direct.poll()
        assert values == wire.poll()
        currents.append(values["shunt.current"])
    assert len(set(currents)) > 2


# ---- faults -----------------------------------------------------------------------------------------------

def latch_once(site: tuple[list[DeviceConfig], TagDB], served: PlantDevices, port: InlinePort, now: float) -> TagDB:
    db = site[1]
    served.plant.step(1.0, 0.0, 300.0, 20.0)
    port.latch(db, now)
    return db


@pytest.mark.parametrize("kind", ["offline", "timeout", "garbage"])
@pytest.mark.parametrize("device", ["bms1", "meter", "shunt"])
def test_a_faulted_device_makes_its_tags_bad_and_recovers(site: tuple[list[DeviceConfig], TagDB], device: str,
                                                          kind: str) -> None:
    devices, _ = site
    db = load_site(REPO_ROOT, with_programs=False)[1]
    own = {p.tag for d in devices if d.name == device for p in d.inputs}
    others = {p.tag for d in devices if d.name != device for p in d.inputs}
    served = PlantDevices(Plant(), devices)
    port = InlinePort(served.pollers(db.defs))
    latch_once((devices, db), served, port, 0.0)
    assert all(db.quality[t] is Quality.GOOD for t in own | others)
    served.set_fault(device, kind)
    for second in (1.0, 2.0):  # garbage alternates two kinds of bad answer: both must count as failures
        latch_once((devices, db), served, port, second)
        assert {t for t in own if db.quality[t] is not Quality.BAD} == set()
        assert all(db.quality[t] is Quality.GOOD for t in others)
    served.set_fault(device, None)
    latch_once((devices, db), served, port, 3.0)
    assert all(db.quality[t] is Quality.GOOD for t in own)
    assert port.failures[device] == 2


def test_a_faulted_device_refuses_writes(site: tuple[list[DeviceConfig], TagDB]) -> None:
    plant = Plant()
    served = PlantDevices(plant, site[0])
    served.set_fault("charger", "offline")
    bank = served.banks["charger"]
    with pytest.raises(NoAnswer):
        bank.write(1, "coil", 0, [True])
    assert not plant.charger.enable


def test_unknown_fault_kinds_and_devices_are_refused(site: tuple[list[DeviceConfig], TagDB]) -> None:
    served = PlantDevices(Plant(), site[0])
    with pytest.raises(ValueError, match="allowed"):
        served.set_fault("bms1", "smoke")
    with pytest.raises(KeyError):
        served.set_fault("bms9", "offline")


def test_a_device_the_plant_cannot_simulate_is_a_config_error_with_file_and_line(
        site: tuple[list[DeviceConfig], TagDB]) -> None:
    unknown = replace(site[0][0], name="mystery", driver="canbus", file="site/io_map.yaml", line=42)
    with pytest.raises(ConfigErrors) as caught:
        PlantDevices(Plant(), [*site[0], unknown])
    assert str(caught.value) == ("site/io_map.yaml:42: devices.mystery: the plant simulator has no simulated device "
                                 "for driver 'canbus'; it simulates: modbus_tcp, modbus_rtu, vedirect")


def test_garbage_from_the_shunt_is_judged_by_the_real_parser() -> None:
    frames = ShuntFrames(Plant())
    parser = VEDirectParser()
    assert all(f.ok for f in parser.feed(frames.frame()))
    frames.fault = "garbage"
    flipped = parser.feed(frames.frame())
    cut = parser.feed(frames.frame())
    assert [f.reason for f in flipped] == ["checksum", ""]  # the main block is bad, the history block fine
    assert cut == [] and parser.reset().reason == "truncated"
