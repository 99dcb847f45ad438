"""Tag -> Home Assistant entity rules, for tags the default site does not have yet (energy counters, acks)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runtime.mqtt.discovery import Topics, device, entity, is_energy_counter
from runtime.server.regmap import point_of
from runtime.tags import ModbusMap, TagDef, TagType

DEV = device("t", "", "0")
TOPICS = Topics("battplc/t")


def kwh(name: str, retain: bool = False) -> TagDef:
    return TagDef(name, TagType.FLOAT, "kWh", retain=retain)


@pytest.mark.parametrize("tag, counter", [
    (kwh("energy.charged_kwh"), True), (kwh("energy.discharged"), True), (kwh("grid.import_total"), True),
    (kwh("pv.energy"), True), (kwh("bat.stored", retain=True), True), (kwh("soc.residual_kwh"), False),
    (kwh("bat.capacity"), False), (TagDef("bat.charged", TagType.FLOAT, "Ah"), False),
])
def test_energy_counters_by_unit_and_name(tag: TagDef, counter: bool) -> None:
    assert is_energy_counter(tag) is counter
    config = entity(tag, None, TOPICS, DEV).config
    expected = ("energy", "total_increasing") if counter else \
        (("energy_storage", "measurement") if tag.unit == "kWh" else (None, "measurement"))
    assert (config.get("device_class"), config["state_class"]) == expected


@pytest.mark.parametrize("name", ["alarm.ack", "alarm.ack_all", "alarm.cell_high.acknowledge", "cmd.alarm_ack"])
def test_alarm_acknowledge_is_a_button_and_alarms_are_problems(name: str) -> None:
    ack = TagDef(name, TagType.BOOL, access="rw", modbus=ModbusMap(5))
    assert entity(ack, point_of(ack), TOPICS, DEV).component == "button"
    enable = TagDef("par.charge1_enable", TagType.BOOL, access="rw", modbus=ModbusMap(6))
    assert entity(enable, point_of(enable), TOPICS, DEV).component == "switch"
    alarm = TagDef("alarm.cell_low", TagType.BOOL)
    found = entity(alarm, None, TOPICS, DEV)
    assert (found.component, found.config["device_class"]) == ("binary_sensor", "problem")


def test_the_alarm_systems_acknowledge_command_is_a_button_that_acknowledges_all() -> None:
    from runtime.alarms.service import ACK, alarm_tags

    ack = next(t for t in alarm_tags([TagDef("alarm.cell_high", TagType.BOOL)]) if t.name == ACK)
    found = entity(ack, point_of(replace(ack, modbus=ModbusMap(5))), TOPICS, DEV)
    assert (found.component, found.config["payload_press"]) == ("button", "all")
    mode = TagDef("cmd.mode", TagType.ENUM, values=("auto", "off"), access="rw", modbus=ModbusMap(6))
    assert entity(mode, point_of(mode), TOPICS, DEV).component == "select"


def test_number_limits_and_step_come_from_tag_and_register() -> None:
    tag = TagDef("par.x", TagType.FLOAT, "V", access="rw", min=2.5, modbus=ModbusMap(3, "int16", 0.01))
    config = entity(tag, point_of(tag), TOPICS, DEV).config
    assert (config["min"], config["max"], config["step"]) == (2.5, 327.67, 0.01)
    assert config["device_class"] == "voltage" and config["entity_category"] == "config"
