"""Tests for runtime/server/regmap.py and image.py: tables, encoding, the operator's map, config errors."""

from __future__ import annotations

import csv
import io
import math
import random
import struct
from pathlib import Path

import pytest
from server_helpers import SITE_YAML

from runtime.config.errors import ConfigErrors
from runtime.server.image import RegisterImage
from runtime.server.regmap import RegisterMap, point_of, render_csv, render_markdown
from runtime.site import load_site
from runtime.tags import ModbusMap, Quality, TagDB, TagDef, TagType


def point(kind: str, dtype: str, scale: float = 1.0, **extra: object) -> object:
    return point_of(TagDef("t.x", kind, modbus=ModbusMap(10, dtype, scale), **extra))  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "dtype", "scale", "value", "words"), [
    (TagType.INT, "int16", 1, -2, b"\xff\xfe"),
    (TagType.FLOAT, "int16", 0.1, -12.3, struct.pack(">h", -123)),
    (TagType.FLOAT, "uint16", 0.01, 0.5, struct.pack(">H", 50)),
    (TagType.INT, "int32", 1, -123456, struct.pack(">i", -123456)),
    (TagType.INT, "uint32", 1, 3_000_000_000, b"\xb2\xd0\x5e\x00"),  # high word first
    (TagType.FLOAT, "float32", 1, 53.25, struct.pack(">f", 53.25)),
    (TagType.FLOAT, "float32", 0.001, 0.5, struct.pack(">f", 500.0)),
    (TagType.ENUM, "uint16", 1, 2, b"\x00\x02"),
])
def test_encode_and_decode_round_trip(kind: str, dtype: str, scale: float, value: object, words: bytes) -> None:
    extra = {"values": ("a", "b", "c")} if kind == TagType.ENUM else {}
    p = point(kind, dtype, scale, **extra)
    assert p.encode(value) == words
    assert p.decode(words) == pytest.approx(value)


@pytest.mark.parametrize(("dtype", "value", "raw"), [
    ("int16", 1e9, 32767), ("int16", -1e9, -32768), ("uint16", -5.0, 0), ("uint16", 70000.0, 65535),
    ("int32", math.inf, 2**31 - 1), ("uint32", -math.inf, 0),
    ("int16", math.nan, -32768), ("uint16", math.nan, 65535), ("int32", math.nan, -2**31),
    ("uint32", math.nan, 2**32 - 1),
])
def test_values_that_do_not_fit_saturate_and_nan_reads_as_not_implemented(dtype: str, value: float,
                                                                        raw: int) -> None:
    p = point(TagType.FLOAT, dtype)
    fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I"}[dtype]
    assert struct.unpack(fmt, p.encode(value))[0] == raw


def test_float32_beyond_its_range_reads_as_infinity() -> None:
    assert struct.unpack(">f", point(TagType.FLOAT, "float32").encode(1e300))[0] == math.inf


@pytest.mark.parametrize(("kind", "dtype", "scale", "words", "why"), [
    (TagType.INT, "int16", 0.1, struct.pack(">h", 15), "whole number"),
    (TagType.ENUM, "uint16", 1, b"\x00\x07", "not one of"),
    (TagType.INT, "float32", 1, struct.pack(">f", math.nan), "whole number"),
])
def test_decode_refuses_what_the_tag_cannot_hold(kind: str, dtype: str, scale: float, words: bytes,
                                                 why: str) -> None:
    extra = {"values": ("a", "b")} if kind == TagType.ENUM else {}
    with pytest.raises(ValueError, match=why):
        point(kind, dtype, scale, **extra).decode(words)


@pytest.fixture
def regmap(tmp_path: Path) -> RegisterMap:
    (tmp_path / "tags.yaml").write_text(SITE_YAML)
    site, _, _, _ = load_site(tmp_path, with_programs=False)
    return RegisterMap.from_tags(site.tags)


def test_tables_follow_type_and_access(regmap: RegisterMap) -> None:
    tables = {p.name: p.table for p in regmap}
    assert tables["io.alarm"] == "discrete" and tables["io.relay"] == "coil"
    assert tables["bat.voltage"] == "input" and tables["par.voltage"] == "holding"
    assert regmap.point("bat.voltage").read_tables == ("input", "holding")
    assert regmap.point("par.voltage").read_tables == ("holding",)
    assert "internal.x" not in regmap.by_name
    assert regmap.owner("registers", 7) is regmap.point("bat.voltage")  # the low word belongs to it too
    assert regmap.owner("registers", 9) is None


def test_readable_runs_per_function_code(regmap: RegisterMap) -> None:
    assert regmap.readable_runs(0x01) == [(0, 4)]  # coils: rw bits and ro bits readable as coils
    assert regmap.readable_runs(0x02) == [(0, 1), (3, 4)]  # discrete inputs: ro bits only
    # registers, then the qualities of registers (20000 + A), then those of bits (40000 + A): read-only
    qualities = [(20000, 20009), (20100, 20109), (40000, 40004)]
    assert regmap.readable_runs(0x03) == [(0, 9), (100, 109), *qualities]
    assert regmap.readable_runs(0x04) == [(0, 9), *qualities]


def test_every_mapped_tag_has_a_parallel_quality_register(regmap: RegisterMap) -> None:
    for point in regmap:
        quality = regmap.quality[point.name]
        base = 40000 if point.space == "bits" else 20000
        assert (quality.space, quality.address, quality.table, quality.writable) == ("registers",
                                                                                   base + point.address, "input",
                                                                                   False)
        assert quality.width == (1 if point.space == "bits" else point.width)  # each word of a 32-bit value
        assert regmap.owner("registers", quality.end - 1) is quality
    assert regmap.quality["bat.voltage"].encode(Quality.STALE) == b"\x00\x01\x00\x01"


def test_image_run_lookup_and_bit_packing(regmap: RegisterMap) -> None:
    image = RegisterImage(regmap)
    assert image.runs[0x03][0] == 9 and image.runs[0x03][8] == 9 and image.runs[0x03][9] == 9
    assert image.runs[0x04][100] == 100  # rw registers are not input registers
    rng = random.Random(7)
    bits = [rng.random() < 0.5 for _ in range(3000)]
    image.bits[:3000] = bytes(bits)
    for address, count in ((0, 1), (3, 8), (5, 9), (17, 2000), (999, 1)):
        expected = sum(1 << i for i, bit in enumerate(bits[address:address + count]) if bit)
        assert image.packed_bits(address, count) == expected.to_bytes((count + 7) // 8, "little")


def test_markdown_map_lists_every_mapped_tag_in_address_order(regmap: RegisterMap) -> None:
    text = render_markdown(regmap)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| table | address | tag |")
    assert len(rows) == 1 + len(regmap) == 17
    assert "| input (+holding) | 6-7 | bat.voltage | float32 | 1 | V | ro |" in text
    assert "| holding | 101 | par.limit | uint16 | 0.01 | A | rw | 0..100 |" in text
    assert "| holding | 108 | cmd.mode | uint16 | 1 |  | rw | 0=auto 1=off 2=force_charge 3=hold |" in text
    assert "high word first" in text


def test_csv_map_parses_back(regmap: RegisterMap) -> None:
    table = list(csv.DictReader(io.StringIO(render_csv(regmap))))
    assert len(table) == len(regmap)
    row = next(r for r in table if r["tag"] == "stat.count")
    assert (row["table"], row["address"], row["dtype"], row["unit"]) == ("input (+holding)", "4-5", "uint32",
                                                                        "count")


def test_image_load_encodes_the_whole_image(regmap: RegisterMap) -> None:
    db = TagDB.from_defs(p.tag for p in regmap)
    db.values.update({"bat.voltage": 53.25, "io.alarm": True, "stat.count": 70000, "bat.soc": 50.0,
                      "io.door": True})
    db.quality.update({"bat.soc": Quality.INIT, "io.door": Quality.BAD, "stat.count": Quality.STALE})
    image = RegisterImage(regmap)
    image.load(db.values, db.quality)
    assert image.registers[12:16] == struct.pack(">f", 53.25)  # registers 6-7
    assert image.registers[8:12] == struct.pack(">I", 70000)  # registers 4-5: STALE keeps its last value
    assert image.registers[2:4] == b"\xff\xff"  # bat.soc has no reading yet: the uint16 marker, not 50 %
    assert image.bits[0] == 1 and image.bits[3] == 1  # a bit has no marker: its quality tells
    word = {a: image.registers[2 * a:2 * a + 2] for a in (20000, 20001, 20004, 20005, 40003)}
    assert word == {20000: b"\x00\x00", 20001: b"\x00\x03", 20004: b"\x00\x01", 20005: b"\x00\x01",
                    40003: b"\x00\x02"}


def test_runtime_tags_take_their_owners_slots_in_declaration_order() -> None:
    tags = [
        TagDef("dev.meter.up", TagType.BOOL), TagDef("dev.meter.errors", TagType.INT, "count"),
        TagDef("dev.bms.age", TagType.FLOAT, "s"), TagDef("dev.bms.up", TagType.BOOL),
        TagDef("sfc.zeta.step", TagType.ENUM, values=("idle", "run")), TagDef("sfc.zeta.held", TagType.BOOL),
        TagDef("sfc.alpha.step", TagType.ENUM, values=("idle", "run")),
        TagDef("scan.count", TagType.INT, "count"), TagDef("scan.period", TagType.FLOAT, "s"),
        TagDef("prog.agg.fault", TagType.BOOL), TagDef("prog.zeta.fault", TagType.BOOL),
        TagDef("prog.zeta.faults", TagType.INT, "count"), TagDef("prog.agg.faults", TagType.INT, "count"),
        TagDef("dev.meter.odd", TagType.INT),  # no such field: unmapped
        TagDef("sfc.mine.step", TagType.ENUM, values=("a",), modbus=ModbusMap(7)),  # tags.yaml maps it: kept
    ]
    regmap = RegisterMap.from_tags(tags)
    at = {p.name: (p.space, p.address, p.dtype, p.table) for p in regmap}
    assert at == {
        "dev.meter.up": ("bits", 13000, "bool", "discrete"), "dev.meter.errors": ("registers", 13000, "uint32", "input"),
        "dev.bms.age": ("registers", 13018, "int32", "input"), "dev.bms.up": ("bits", 13001, "bool", "discrete"),
        "sfc.zeta.step": ("registers", 12000, "uint16", "input"), "sfc.zeta.held": ("bits", 12000, "bool", "discrete"),
        "sfc.alpha.step": ("registers", 12008, "uint16", "input"),  # declared second: the second slot
        "scan.count": ("registers", 10000, "uint32", "input"), "scan.period": ("registers", 10010, "uint32", "input"),
        "prog.agg.fault": ("bits", 11000, "bool", "discrete"), "prog.agg.faults": ("registers", 11000, "uint32", "input"),
        # a chart's own fault tags live in its chart slot, so charts move no function block
        "prog.zeta.fault": ("bits", 12001, "bool", "discrete"), "prog.zeta.faults": ("registers", 12003, "uint32", "input"),
        "sfc.mine.step": ("registers", 7, "uint16", "input"),
    }
    appended = RegisterMap.from_tags([*tags, TagDef("sfc.beta.step", TagType.ENUM, values=("x",))])
    assert {p.name: p.address for p in regmap}.items() <= {p.name: p.address for p in appended}.items()


def test_the_heartbeat_wraps_where_other_counters_saturate() -> None:
    regmap = RegisterMap.from_tags([TagDef("scan.count", TagType.INT, "count"),
                                    TagDef("scan.overruns", TagType.INT, "count")])
    assert regmap.point("scan.count").encode(2**32 + 5) == struct.pack(">I", 5)
    assert regmap.point("scan.count").encode(2**32 - 1) == struct.pack(">I", 2**32 - 1)
    assert regmap.point("scan.overruns").encode(2**32 + 5) == struct.pack(">I", 2**32 - 1)


def test_a_block_that_overflows_says_so() -> None:
    tags = [TagDef(f"dev.d{i}.up", TagType.BOOL) for i in range(1001)]
    with pytest.raises(ValueError, match="more than 62 devices"):
        RegisterMap.from_tags(tags)


# ---- config errors: the register map is checked when tags.yaml loads ------------------------------------------

@pytest.mark.parametrize(("tags", "message"), [
    ("  a.x: {type: float, modbus: {address: 0, dtype: float32}}\n"
     "  a.y: {type: int, modbus: {address: 1}}\n",
     "register 1 is already used by 'a.x'"),
    ("  a.x: {type: int, modbus: {address: 0, dtype: int32}}\n"
     "  a.y: {type: int, modbus: {address: 1, dtype: uint32}}\n",
     "half mapped"),
    ("  a.x: {type: float, modbus: {address: 9999, dtype: float32}}\n", "runs past 9999"),
    ("  a.x: {type: bool, modbus: {address: 10000}}\n", "runs past 9999"),
    ("  a.x: {type: bool, modbus: {address: 4}}\n  a.y: {type: bool, access: rw, modbus: {address: 4}}\n",
     "bit 4 is already used by 'a.x'"),
    ("  a.x: {type: int, modbus: {address: 70000}}\n", "out of range"),
    ("  a.x: {type: bool, modbus: {address: 0, dtype: int32}}\n", "does not fit a bool tag"),
])
def test_bad_register_maps_are_config_errors(tmp_path: Path, tags: str, message: str) -> None:
    (tmp_path / "tags.yaml").write_text("tags:\n" + tags)
    with pytest.raises(ConfigErrors) as caught:
        load_site(tmp_path, with_programs=False)
    text = str(caught.value)
    assert message in text and "tags.yaml:" in text
