"""Tests for runtime/drivers/config.py: the example io_maps load, and mistakes are reported with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from driver_helpers import FIXTURES, fixture_db, load_map

from runtime.config.schema import Errors
from runtime.drivers.config import link_key, load_io_map
from runtime.drivers.state import Plausible
from runtime.tags import Quality, TagType


def test_full_example_loads_with_defaults_and_health_tags() -> None:
    db = fixture_db()
    meter, second = load_map(FIXTURES / "io_map_full.yaml", db)
    assert (meter.host, meter.unit, meter.poll, meter.timeout, meter.stale_after) == ("127.0.0.1", 1, 0.1, 0.3, 1.0)
    assert (meter.backoff_initial, meter.backoff_max, meter.max_gap) == (0.1, 0.4, 8)
    assert link_key(meter) == link_key(second)  # same gateway, one connection
    by_tag = {p.tag: p for p in meter.inputs}
    assert (by_tag["t.coil"].table, by_tag["t.coil"].type) == ("coil", "bit")
    assert (by_tag["t.bit15"].type, by_tag["t.bit15"].bit) == ("bit", 15)
    assert by_tag["t.u16"].type == "uint16" and by_tag["t.u32_le"].word_order == "little"
    outputs = {p.tag: p for p in meter.outputs}
    assert outputs["o.cyc"].write == "cyclic" and outputs["o.sp"].write == "on_change"
    assert outputs["o.pwm_v"].lookup == ((12.0, 0.0), (13.8, 600.0), (14.6, 1000.0))
    for name in ("meter", "second"):
        assert db.define(f"dev.{name}.up").type == TagType.BOOL
        assert db.define(f"dev.{name}.last_good").type == TagType.FLOAT
        for kind in ("", "_timeout", "_refused", "_exception", "_decode"):
            assert db.define(f"dev.{name}.errors{kind}").type == TagType.INT
    assert all(db.quality[p.tag] is Quality.INIT for p in meter.inputs)
    assert db.quality["o.sp"] is Quality.GOOD


def test_range_and_max_rate_of_every_driver_land_in_the_device_config(tmp_path: Path) -> None:
    path = tmp_path / "io_map.yaml"
    path.write_text(HEAD + "    inputs:\n      - {tag: t.scaled, address: 0, range: [0, 5], max_rate: 0.2}\n"
                           "      - {tag: t.u16, address: 1, range: [-1, 9]}\n      - {tag: t.i16, address: 2}\n"
                           "  shunt:\n    driver: vedirect\n    port: /dev/ttyUSB0\n"
                           "    inputs: [{tag: bat.soc, field: SOC, max_rate: 1}]\n")
    errors = Errors()
    device, shunt = load_io_map(path, fixture_db(), errors)
    assert not errors, errors
    assert device.plausible == {"t.scaled": Plausible(0.0, 5.0, 0.2), "t.u16": Plausible(-1.0, 9.0)}
    assert shunt.plausible == {"bat.soc": Plausible(max_rate=1.0)}


def test_12v_example_loads() -> None:
    db = fixture_db()
    shunt, bms, charger = load_map(FIXTURES / "io_map_12v.yaml", db)
    assert (shunt.driver, shunt.baud, shunt.timeout, shunt.stale_after) == ("vedirect", 19200, 3.0, 2.4)
    fields = {p.field: p for p in shunt.inputs}
    assert fields["V"].scale == 0.001012 and fields["I"].scale == 0.001 and fields["SOC"].scale == 0.1
    assert fields["H18"].scale == 0.01
    assert (bms.driver, bms.baud, bms.parity, bms.retries, bms.inputs[0].address) == ("modbus_rtu", 115200, "N",
                                                                                       2, 0x1200)
    assert charger.port == 502 and charger.outputs[0].lookup[1] == (13.6, 610.0)


HEAD = """devices:
  dev:
    driver: modbus_tcp
    host: 127.0.0.1
"""

# Each case: io_map text with "#!" on the line the error must point at, and a piece of the message.
CASES = {
    "unknown driver": ("devices:\n  dev:\n    driver: modbus_tpc   #!\n    host: x\n",
                       "unknown driver 'modbus_tpc' (did you mean 'modbus_tcp'?)"),
    "missing host": ("devices:\n  dev:   #!\n    driver: modbus_tcp\n    inputs: [{tag: t.u16, address: 0}]\n",
                     "missing required key 'host'"),
    "unknown tag": (HEAD + "    inputs:\n      - tag: t.u61   #!\n        address: 0\n",
                    "unknown tag 't.u61' (did you mean 't.u16'?)"),
    "unknown key": (HEAD + "    inputs:\n      - tag: t.u16\n        adress: 0   #!\n",
                    "unknown key 'adress' (did you mean 'address'?)"),
    "address out of range": (HEAD + "    inputs:\n      - tag: t.u16\n        address: 70000   #!\n",
                             "70000 is out of range; allowed 0..65535"),
    "32 bits past the end": (HEAD + "    inputs:\n      - tag: t.u32\n        type: uint32\n"
                                    "        address: 65535   #!\n", "runs past 65535"),
    "fed twice": (HEAD + "    inputs:\n      - {tag: t.u16, address: 0}\n      - {tag: t.u16, address: 1}   #!\n",
                  "tag 't.u16' is already fed by device 'dev'"),
    "bit without number": (HEAD + "    inputs:\n      - tag: t.bit3\n        address: 0\n        type: bit   #!\n",
                           "type bit on a register needs 'bit: 0..15'"),
    "bit on a coil": (HEAD + "    inputs:\n      - tag: t.coil\n        table: coil\n        address: 0\n"
                             "        bit: 2   #!\n", "a coil is already one bit"),
    "coil as a register": (HEAD + "    inputs:\n      - tag: t.coil\n        table: coil\n        address: 0\n"
                                  "        type: uint16   #!\n", "a coil is a single bit: use type bit"),
    "word order of 16 bits": (HEAD + "    inputs:\n      - tag: t.u16\n        address: 0\n"
                                     "        word_order: little   #!\n", "word_order applies to 32-bit types"),
    "bad type": (HEAD + "    inputs:\n      - tag: t.u16\n        address: 0\n        type: uint61   #!\n",
                 "'uint61' is not allowed (did you mean 'uint16'?)"),
    "scale zero": (HEAD + "    inputs:\n      - tag: t.u16\n        address: 0\n        scale: 0   #!\n",
                   "scale 0 would turn every value into the offset"),
    "scale not a number": (HEAD + "    inputs:\n      - tag: t.u16\n        address: 0\n        scale: .nan   #!\n",
                           "expected a finite number, got nan"),
    "scale infinite": (HEAD + "    outputs:\n      - tag: o.sp\n        address: 0\n        scale: .inf   #!\n",
                       "expected a finite number, got inf"),
    "output scale too coarse": (HEAD + "    outputs:\n      - tag: charger.voltage_sp\n        address: 0\n"
                                       "        scale: 100   #!\n",
                                "scale 100 cannot represent tag 'charger.voltage_sp' (12..14.6 V)"),
    "output range past its type": (HEAD + "    outputs:\n      - tag: charger.voltage_sp\n        address: 0\n"
                                          "        scale: 0.0001   #!\n",
                                   "encodes to raw 120000..146000 with scale 0.0001, outside the type's 0..65535"),
    "input scale too coarse": (HEAD + "    inputs:\n      - tag: charger.voltage_sp\n        address: 0\n"
                                      "        scale: 1   #!\n", "use scale 0.1 or finer"),
    "stale before next poll": (HEAD + "    poll: 2s\n    stale_after: 1s   #!\n"
                                      "    inputs: [{tag: t.u16, address: 0}]\n", "must be longer than poll 2s"),
    "backoff upside down": (HEAD + "    backoff: {initial: 10s, max: 1s}   #!\n"
                                   "    inputs: [{tag: t.u16, address: 0}]\n", "longer than max 1s"),
    "no points": (HEAD.replace("  dev:\n", "  dev:   #!\n"), "needs at least one input or output point"),
    "bad duration": (HEAD + "    poll: fast   #!\n    inputs: [{tag: t.u16, address: 0}]\n", "is not a duration"),
    "output to an input table": (HEAD + "    outputs:\n      - tag: o.sp\n        table: input   #!\n"
                                        "        address: 0\n", "'input' is not allowed"),
    "lookup not increasing": (HEAD + "    outputs:\n      - tag: o.pwm_v\n        address: 1\n"
                                     "        lookup: [[13, 0], [12, 10]]   #!\n", "must increase strictly"),
    "lookup and scale": (HEAD + "    outputs:\n      - tag: o.pwm_v\n        address: 1\n        scale: 2\n"
                                "        lookup: [[12, 0], [13, 10]]   #!\n", "either lookup or scale/offset"),
    "lookup raw too big": (HEAD + "    outputs:\n      - tag: o.pwm_v\n        address: 1\n        type: int16\n"
                                  "        lookup: [[12, 0], [13, 40000]]   #!\n", "do not fit int16"),
    "failsafe out of range": (HEAD + "    outputs:\n      - tag: charger.voltage_sp\n        address: 1\n"
                                     "        failsafe: 20   #!\n", "outside the tag's min..max"),
    "output bit on a register": (HEAD + "    outputs:\n      - tag: o.enable\n        address: 1\n"
                                        "        type: bit   #!\n", "a single bit is written to a coil"),
    "output also an input": (HEAD + "    inputs: [{tag: o.sp, address: 0}]\n    outputs:\n"
                                    "      - tag: o.sp   #!\n        address: 1\n", "is written to a device but also fed"),
    "device name": ("devices:\n  my-dev:   #!\n    driver: modbus_tcp\n    host: x\n"
                    "    inputs: [{tag: t.u16, address: 0}]\n", "'my-dev' is not a device name"),
    "rtu unit 0": ("devices:\n  bus:\n    driver: modbus_rtu\n    port: /dev/ttyUSB0\n    unit: 0   #!\n"
                   "    inputs: [{tag: t.u16, address: 0}]\n", "0 is out of range; allowed 1..247"),
    "rtu bus settings disagree": ("devices:\n  a:\n    driver: modbus_rtu\n    port: /dev/ttyUSB0\n"
                                  "    inputs: [{tag: t.u16, address: 0}]\n  b:\n    driver: modbus_rtu\n"
                                  "    port: /dev/ttyUSB0\n    baud: 19200   #!\n    unit: 2\n"
                                  "    inputs: [{tag: t.i16, address: 0}]\n", "must agree on baud"),
    "vedirect unknown field": ("devices:\n  shunt:\n    driver: vedirect\n    port: /dev/ttyUSB0\n    inputs:\n"
                               "      - tag: bat.soc\n        field: SOCC   #!\n", "'SOCC' is not allowed (did you mean 'SOC'?)"),
    "vedirect alarm scale": ("devices:\n  shunt:\n    driver: vedirect\n    port: /dev/ttyUSB0\n    inputs:\n"
                             "      - {tag: shunt.alarm, field: Alarm, scale: 2}   #!\n", "takes no scale"),
    "vedirect has no poll": ("devices:\n  shunt:\n    driver: vedirect\n    port: /dev/ttyUSB0\n    poll: 1s   #!\n"
                             "    inputs: [{tag: bat.soc, field: SOC}]\n", "unknown key 'poll'"),
    "two shunts on one port": ("devices:\n  a:\n    driver: vedirect\n    port: /dev/ttyUSB0\n"
                               "    inputs: [{tag: bat.soc, field: SOC}]\n  b:\n    driver: vedirect\n"
                               "    port: /dev/ttyUSB0   #!\n    inputs: [{tag: bat.voltage, field: V}]\n",
                               "a VE.Direct port carries one device"),
    "range not a pair": (HEAD + "    inputs:\n      - {tag: t.scaled, address: 0, range: [0]}   #!\n",
                         "expected [low, high]"),
    "range upside down": (HEAD + "    inputs:\n      - {tag: t.scaled, address: 0, range: [5, 0]}   #!\n",
                          "low < high"),
    "range not finite": (HEAD + "    inputs:\n      - {tag: t.scaled, address: 0, range: [0, .inf]}   #!\n",
                         "expected a finite number"),
    "max_rate not positive": (HEAD + "    inputs:\n      - {tag: t.scaled, address: 0, max_rate: 0}   #!\n",
                              "positive change per second"),
    "range of a bool": (HEAD + "    inputs:\n      - {tag: t.bit3, table: coil, address: 0, range: [0, 1]}   #!\n",
                        "range is for numeric tags"),
    "vedirect max_rate text": ("devices:\n  shunt:\n    driver: vedirect\n    port: /dev/ttyUSB0\n    inputs:\n"
                               "      - {tag: bat.soc, field: SOC, max_rate: fast}   #!\n", "expected a number"),
    "duplicate key": (HEAD + "    host: 127.0.0.2   #!\n    inputs: [{tag: t.u16, address: 0}]\n",
                      "duplicate key 'host'; first given at line 4"),
}


@pytest.mark.parametrize("case", CASES)
def test_mistakes_are_reported_with_file_and_line(case: str, tmp_path: Path) -> None:
    text, message = CASES[case]
    path = tmp_path / "io_map.yaml"
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "#!" in row)
    db = fixture_db()
    errors = Errors()
    load_io_map(path, db, errors)
    shown = "\n".join(str(e) for e in errors)
    assert any(message in e.message and e.line == line and e.file == str(path) for e in errors), shown
    assert f"{path}:{line}:" in shown


def test_every_error_is_collected_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "io_map.yaml"
    path.write_text(HEAD + "    inputs:\n      - {tag: nope, address: 0}\n      - {tag: t.u16, address: -1}\n"
                           "    outputs:\n      - {tag: o.sp, address: 0, write: sometimes}\n")
    errors = Errors()
    load_io_map(path, fixture_db(), errors)
    errors.sort(key=lambda e: e.line)
    assert [e.line for e in errors] == [6, 7, 9]
    assert [e.path for e in errors] == ["devices.dev.inputs[0].tag", "devices.dev.inputs[1].address",
                                        "devices.dev.outputs[0].write"]


def test_empty_map_and_health_tag_conflicts(tmp_path: Path) -> None:
    path = tmp_path / "io_map.yaml"
    path.write_text("devices: {}\n")
    errors = Errors()
    assert load_io_map(path, fixture_db(), errors) == [] and not errors

    path.write_text(HEAD + "    inputs: [{tag: t.u16, address: 0}]\n")
    db = fixture_db()
    from runtime.tags import TagDef
    db.declare(TagDef("dev.dev.up", TagType.FLOAT, file="tags.yaml", line=3))
    load_io_map(path, db, errors)
    assert any("declared as float, but the runtime needs bool" in e.message for e in errors)
