"""Tags: typed coercion, enum names, ranges, retained values."""

import math

import pytest

from runtime.tags import ModbusMap, Quality, TagDB, TagDef, TagType

MODE = TagDef("cmd.mode", TagType.ENUM, values=("auto", "off", "force_charge", "hold"), default="auto",
              access="rw", retain=True)


@pytest.mark.parametrize(("tag", "raw", "value"), [
    (TagDef("x", TagType.FLOAT), 3, 3.0),
    (TagDef("x", TagType.INT), 2.6, 3),
    (TagDef("x", TagType.BOOL), "on", True),
    (TagDef("x", TagType.BOOL), 0, False),
    (MODE, "hold", 3),
    (MODE, 2, 2),
    (MODE, "1", 1),
])
def test_coerce(tag: TagDef, raw: object, value: object) -> None:
    assert tag.coerce(raw) == value


@pytest.mark.parametrize(("tag", "raw"), [
    (MODE, "export"), (MODE, 9), (TagDef("x", TagType.FLOAT), "abc"), (TagDef("x", TagType.INT), math.inf),
    (TagDef("x", TagType.BOOL), "maybe"),
])
def test_coerce_rejects(tag: TagDef, raw: object) -> None:
    with pytest.raises(ValueError):
        tag.coerce(raw)


def test_range_and_format() -> None:
    tag = TagDef("par.v", TagType.FLOAT, min=2.5, max=3.65)
    assert tag.in_range(3.0) and not tag.in_range(3.7) and not tag.in_range(math.nan)
    assert MODE.format(2) == "force_charge"
    assert MODE.initial == 0


def test_modbus_table_follows_type_and_access() -> None:
    m = ModbusMap(0)
    assert TagDef("a", TagType.BOOL, modbus=m).modbus_table == "discrete"
    assert TagDef("a", TagType.BOOL, access="rw", modbus=m).modbus_table == "coil"
    assert TagDef("a", TagType.FLOAT, modbus=m).modbus_table == "input"
    assert TagDef("a", TagType.FLOAT, access="rw", modbus=m).modbus_table == "holding"
    assert ModbusMap(0, "float32").width == 2


def test_restore_skips_unknown_unretained_and_out_of_range() -> None:
    db = TagDB.from_defs([MODE, TagDef("par.v", TagType.FLOAT, min=2.5, max=3.65, retain=True, default=3.4),
                          TagDef("bat.v", TagType.FLOAT)])
    skipped = db.restore({"cmd.mode": "hold", "par.v": 9.0, "bat.v": 1.0, "gone": 1})
    assert db["cmd.mode"] == 3 and db["par.v"] == 3.4
    assert sorted(skipped) == ["bat.v", "gone", "par.v"]


def test_ensure_keeps_declared_and_rejects_type_clash() -> None:
    db = TagDB.from_defs([TagDef("scan.duration", TagType.FLOAT, unit="s", description="mine")])
    assert db.ensure(TagDef("scan.duration", TagType.FLOAT)).description == "mine"
    with pytest.raises(ValueError, match="declared as float"):
        db.ensure(TagDef("scan.duration", TagType.INT))
    assert db.quality["scan.duration"] is Quality.GOOD
