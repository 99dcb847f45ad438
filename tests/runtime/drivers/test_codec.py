"""Tests for runtime/drivers/codec.py and the sans-I/O Device/SyncPoller: data types, planner, encoding."""

from __future__ import annotations

import math

import pytest
from driver_helpers import DT, FIXTURES, fixture_db, holding_image, load_map, regs

from runtime.drivers.base import DeviceConfig
from runtime.drivers.codec import (
    BlockDecoder,
    DecodeError,
    InputPoint,
    OutputPoint,
    ReadBlock,
    decode_point,
    encode_output,
    encode_raw,
    interpolate,
    plan_reads,
)
from runtime.drivers.modbus import Device, SyncPoller


def decode_one(point: InputPoint, registers: list[int]) -> object:
    block = ReadBlock(1, point.table, point.address, len(registers), (point,))
    return decode_point(point, block, registers)


@pytest.mark.parametrize(("type_", "word_order", "value", "datatype"), [
    ("uint16", "big", 65535, DT.UINT16),
    ("int16", "big", -32768, DT.INT16),
    ("int16", "big", 1234, DT.INT16),
    ("uint32", "big", 0xDEADBEEF, DT.UINT32),
    ("uint32", "little", 0xDEADBEEF, DT.UINT32),
    ("int32", "big", -2**31, DT.INT32),
    ("int32", "little", -123456, DT.INT32),
    ("float32", "big", -1.5e3, DT.FLOAT32),
    ("float32", "little", 3.25, DT.FLOAT32),
])
def test_decodes_every_type_and_word_order(type_: str, word_order: str, value: float, datatype: object) -> None:
    point = InputPoint("x", address=0, type=type_, word_order=word_order)
    assert decode_one(point, regs(value, datatype, word_order)) == value


def test_word_order_matters() -> None:
    registers = regs(0x00010002, DT.UINT32)  # [0x0001, 0x0002]
    assert decode_one(InputPoint("x", type="uint32"), registers) == 0x00010002
    assert decode_one(InputPoint("x", type="uint32", word_order="little"), registers) == 0x00020001


def test_scale_offset_and_bits() -> None:
    assert decode_one(InputPoint("x", type="int16", scale=0.1, offset=-40), regs(-123, DT.INT16)) == \
        pytest.approx(-52.3)
    word = [0b1000_0000_0000_0100]
    assert decode_one(InputPoint("x", type="bit", bit=2), word) is True
    assert decode_one(InputPoint("x", type="bit", bit=3), word) is False
    assert decode_one(InputPoint("x", type="bit", bit=15), word) is True


def test_points_inside_a_block_use_their_offset() -> None:
    points = (InputPoint("a", address=10), InputPoint("b", address=12, type="int32"))
    block = ReadBlock(1, "holding", 10, 4, points)
    data = [7, 0, *regs(-2, DT.INT32)]
    assert [decode_point(p, block, data) for p in points] == [7, -2]


def test_not_a_number_and_short_blocks_are_decode_errors() -> None:
    nan = InputPoint("nan", type="float32")
    with pytest.raises(DecodeError):
        decode_one(nan, regs(math.nan, DT.FLOAT32))
    config = DeviceConfig("d", "modbus_tcp", inputs=(InputPoint("a", address=0),
                                                     InputPoint("nan", address=1, type="float32")))
    device = Device(config)
    block = device.plan[0]
    assert device.decode(block, [5, *regs(math.nan, DT.FLOAT32)]) == {"a": 5}  # the NaN point is left out
    with pytest.raises(DecodeError, match="short response: 2 registers for a request of 3"):
        device.decode(block, [5, 0])


@pytest.mark.parametrize(("type_", "word_order", "raw", "datatype"), [
    ("uint16", "big", 40000, DT.UINT16),
    ("int16", "big", -2, DT.INT16),
    ("int32", "little", -70000, DT.INT32),
    ("uint32", "big", 70000, DT.UINT32),
    ("float32", "little", 13.75, DT.FLOAT32),
])
def test_encoding_matches_pymodbus(type_: str, word_order: str, raw: float, datatype: object) -> None:
    assert encode_raw(raw, type_, word_order) == regs(raw, datatype, word_order)


def test_encoding_rounds_and_clamps() -> None:
    assert encode_raw(12.6, "uint16") == [13]
    assert encode_raw(-5, "uint16") == [0]
    assert encode_raw(1e9, "int16") == [0x7FFF]


def test_output_scale_offset_and_lookup() -> None:
    assert encode_output(OutputPoint("v", address=5, scale=0.1), 53.2, 3).values == (532,)
    assert encode_output(OutputPoint("v", address=5, scale=0.5, offset=10), 20, 3).values == (20,)
    pwm = OutputPoint("v", address=7, lookup=((12.0, 0), (13.8, 600), (14.6, 1000)))
    assert [encode_output(pwm, v, 1).values[0] for v in (11.0, 12.0, 12.9, 13.8, 14.2, 15.0)] == \
        [0, 0, 300, 600, 800, 1000]
    coil = encode_output(OutputPoint("on", table="coil", type="bit", address=9), 1, 2)
    assert (coil.unit, coil.table, coil.address, coil.values) == (2, "coil", 9, (True,))
    assert interpolate(((0, 0), (10, 100)), 2.5) == 25


# ---- planner ---------------------------------------------------------------------------------------------

def points_at(addresses: list[int], table: str = "holding", type_: str = "uint16") -> list[InputPoint]:
    return [InputPoint(f"p{i}", table, a, type_) for i, a in enumerate(addresses)]


@pytest.mark.parametrize(("points", "max_gap", "expected"), [
    (points_at(list(range(10))), 8, [("holding", 0, 10)]),
    (points_at([0, 9]), 8, [("holding", 0, 10)]),  # 8 unused registers between: one request
    (points_at([0, 10]), 8, [("holding", 0, 1), ("holding", 10, 1)]),  # 9 between: two
    (points_at([0, 2, 4]), 0, [("holding", 0, 1), ("holding", 2, 1), ("holding", 4, 1)]),
    (points_at([0, 1, 2]), 0, [("holding", 0, 3)]),
    (points_at(list(range(130))), 8, [("holding", 0, 125), ("holding", 125, 5)]),
    (points_at(list(range(123))) + [InputPoint("f", "holding", 123, "float32")], 8, [("holding", 0, 125)]),
    (points_at(list(range(124))) + [InputPoint("f", "holding", 124, "float32")], 8,
     [("holding", 0, 124), ("holding", 124, 2)]),
    (points_at([5, 5, 5], type_="bit"), 8, [("holding", 5, 1)]),  # bits of one register
    (points_at([3, 1]) + points_at([0, 1], "input"), 8, [("holding", 1, 3), ("input", 0, 2)]),
    (points_at(list(range(0, 2500, 10)), "coil", "bit"), 10, [("coil", 0, 1991), ("coil", 2000, 491)]),
    (points_at([0, 1999], "discrete", "bit"), 2000, [("discrete", 0, 2000)]),
])
def test_planner_merges_into_the_expected_requests(points: list[InputPoint], max_gap: int,
                                                   expected: list[tuple[str, int, int]]) -> None:
    blocks = plan_reads(points, unit=1, max_gap=max_gap)
    assert [(b.table, b.address, b.count) for b in blocks] == expected
    assert sorted(p.tag for b in blocks for p in b.points) == sorted(p.tag for p in points)
    for block in blocks:
        assert block.count <= (2000 if block.table in ("coil", "discrete") else 125)


def test_fixture_device_is_read_in_five_requests() -> None:
    """io_map_full.yaml: 12 holding points in 0..15 + one at 100, inputs 0..2, a coil, a discrete."""
    db = fixture_db()
    meter = load_map(FIXTURES / "io_map_full.yaml", db)[0]
    device = Device(meter, db.defs)
    assert [(b.table, b.address, b.count) for b in device.plan] == [
        ("holding", 0, 16), ("holding", 100, 1), ("input", 0, 3), ("coil", 0, 1), ("discrete", 2, 1)]

    requests = []
    banks = {"holding": holding_image(), "input": [555, *regs(1.5, DT.FLOAT32)],
             "coil": [True] + [False] * 15, "discrete": [False, False, True, False]}

    def read(unit: int, table: str, address: int, count: int) -> list:
        requests.append((unit, table, address, count))
        return banks[table][address:address + count]

    written = []
    poller = SyncPoller(device, read, lambda unit, table, address, values: written.append((table, address, values)))
    values = poller.poll()
    assert len(requests) == 5
    assert values["t.u32_le"] == 0xCAFEBABE and values["t.scaled"] == pytest.approx(11.34)
    assert values["t.bit3"] is True and values["t.disc"] is True and values["t.in_f32"] == 1.5
    poller.commit({"o.sp": 51.5, "o.i32": -3, "bat.voltage": 12.0})  # not an output here: ignored
    assert written == [("holding", 200, [515]), ("holding", 204, regs(-3, DT.INT32, "little"))]
    assert device.failsafe() == {"o.sp": 50.0, "o.enable": False, "o.pwm_v": 12.0, "o.cyc": 0, "o.i32": 0}


def test_a_poll_that_reads_the_same_words_hands_the_same_mapping_and_a_changed_word_a_new_one() -> None:
    """SyncPoller's unchanged signal (its read group skips the checks for it): one block or several."""
    cells = {"holding": [3300, 3301, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 26400]}
    config = DeviceConfig("bms", "modbus_tcp", inputs=(InputPoint("c1", address=0), InputPoint("c2", address=1),
                                                       InputPoint("v", address=20)))
    single = DeviceConfig("one", "modbus_tcp", inputs=(InputPoint("c1", address=0),))
    for device, blocks in ((Device(config), 2), (Device(single), 1)):
        assert len(device.plan) == blocks
        cells["holding"][0] = 3300
        poller = SyncPoller(device, lambda unit, table, address, count: cells[table][address:address + count],
                            lambda *write: None)
        first = poller.poll()
        assert poller.poll() is first  # the same words: the same mapping
        cells["holding"][0] = 3305
        changed = poller.poll()
        assert changed is not first and changed["c1"] == 3305 and first["c1"] == 3300  # the old one is kept
        assert poller.poll() is changed


# ---- a whole block at once -------------------------------------------------------------------------------

def test_block_decoder_agrees_with_decode_point_for_every_layout() -> None:
    """Every type and word order, a gap, a flag and a word inside a 32-bit value (the overlap needs a second
    struct format): the compiled block gives what decode_point gives point by point."""
    points = (
        InputPoint("u16", address=0), InputPoint("i16", address=1, type="int16", scale=0.1, offset=-40),
        InputPoint("u32", address=2, type="uint32"), InputPoint("i32_le", address=4, type="int32",
                                                                word_order="little", scale=0.001),
        InputPoint("f32", address=8, type="float32"), InputPoint("f32_le", address=10, type="float32",
                                                                  word_order="little"),
        InputPoint("flag", address=3, type="bit", bit=15), InputPoint("low_word", address=3),
        InputPoint("u32_le", address=12, type="uint32", word_order="little"),
    )
    block = ReadBlock(1, "holding", 0, 14, points)
    data = [65535, *regs(-123, DT.INT16), *regs(0xDEADBEEF, DT.UINT32), *regs(-70000, DT.INT32, "little"),
            0, 0, *regs(-1.5e3, DT.FLOAT32), *regs(3.25, DT.FLOAT32, "little"),
            *regs(0xCAFEBABE, DT.UINT32, "little")]
    expected = {p.tag: decode_point(p, block, data) for p in points}
    assert BlockDecoder(block).decode(data) == expected
    assert expected["flag"] is True and expected["u32_le"] == 0xCAFEBABE


def test_block_decoder_repeats_and_bad_words() -> None:
    block = ReadBlock(1, "holding", 0, 2, (InputPoint("a", address=0), InputPoint("b", address=1, scale=0.5)))
    decoder = BlockDecoder(block)
    first = decoder.decode([1, 2])
    first["a"] = 99  # the caller's copy: the next (repeated) read is not affected
    data = [1, 2]
    assert decoder.decode(data) == {"a": 1, "b": 1.0}
    data[0] = 7  # nor by the caller changing its list afterwards
    assert decoder.decode([1, 2]) == {"a": 1, "b": 1.0} and decoder.decode(data) == {"a": 7, "b": 1.0}
    with pytest.raises(DecodeError, match="out of range"):
        decoder.decode([70000, 0])
    coils = ReadBlock(1, "coil", 4, 3, (InputPoint("c", "coil", 4, "bit"), InputPoint("d", "coil", 6, "bit")))
    assert BlockDecoder(coils).decode([1, True, 0]) == {"c": True, "d": False}
