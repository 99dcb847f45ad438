"""VE.Direct text protocol: the parser on its own, the field mapping, and the driver reading a pty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from driver_helpers import FIXTURES, Harness, PtyLine, fixture_db, load_map, wait_until, write_map

from runtime.drivers.vedirect import FramePoller, VEDirectDevice, VEDirectParser, encode_frame
from runtime.tags import Quality

MAIN = {"PID": "0xA389", "V": 13288, "VS": 12, "I": -1500, "P": -20, "CE": -25000, "SOC": 875, "TTG": 940,
        "Alarm": False, "AR": 0, "BMV": "SmartShunt 500A/50mV", "FW": "0414", "MON": 0}
HISTORY = {"H1": -100000, "H2": -20000, "H4": 12, "H6": -900000, "H7": 10800, "H8": 14600, "H9": 3600,
           "H17": 5321, "H18": 6012}


def test_a_valid_block_in_arbitrary_chunks() -> None:
    data = encode_frame(MAIN) + encode_frame(HISTORY)
    parser = VEDirectParser()
    frames = [f for i in range(len(data)) for f in parser.feed(data[i:i + 1])]
    assert [f.ok for f in frames] == [True, True]
    assert frames[0].fields["V"] == "13288" and frames[0].fields["Alarm"] == "OFF"
    assert frames[0].fields["BMV"] == "SmartShunt 500A/50mV" and frames[1].fields["H18"] == "6012"


def test_wrong_checksum_truncated_and_partial_blocks() -> None:
    good = encode_frame(MAIN)
    bad = bytearray(good)
    bad[bad.index(b"13288") + 1] ^= 0x01  # one flipped bit in the voltage
    parser = VEDirectParser()
    assert [(f.ok, f.reason) for f in parser.feed(good[40:] + good)] == [(False, "partial"), (True, "")]
    assert [(f.ok, f.reason) for f in parser.feed(bytes(bad) + good)] == [(False, "checksum"), (True, "")]
    assert parser.feed(good[:60]) == []
    truncated = parser.reset()
    assert truncated is not None and truncated.reason == "truncated" and "V" in truncated.fields
    assert [f.ok for f in parser.feed(good)] == [True]
    assert parser.reset() is None  # between blocks: nothing to report


def test_hex_messages_are_skipped_and_any_checksum_byte_works() -> None:
    frames = []
    parser = VEDirectParser()
    for soc in range(256):  # 256 different sums: every value of the checksum byte, ':' '\r' '\n' '\t' included
        block = encode_frame({"SOC": soc, "V": 12000})
        frames += parser.feed(b":A0002000148\n" + block[:9] + b":7F0ED0071\n" + block[9:])
    assert len(frames) == 256 and all(f.ok for f in frames)
    assert {f.fields["SOC"] for f in frames} == {str(n) for n in range(256)}


def test_garbage_is_abandoned_not_accumulated() -> None:
    parser = VEDirectParser()
    frames = parser.feed(b"\r\n" + b"X" * 100)
    assert [(f.ok, f.reason) for f in frames] == [(False, "label too long")]
    assert [f.ok for f in parser.feed(encode_frame(MAIN) + encode_frame(MAIN))][-1] is True


def tricky_stream() -> bytes:
    """Whole blocks next to everything the byte-level rules decide: HEX inside and between blocks, a ':' as
    the checksum byte, garbage before a block, an over-long label and value, a field-less CR, 70 fields."""
    colon = encode_frame({"V": 12019})
    assert colon.endswith(b"Checksum\t:")
    blocks = [encode_frame(MAIN), colon, encode_frame(HISTORY)]
    blocks.append(b"junk" + encode_frame(MAIN))  # summed with the block: a checksum error
    blocks.append(b":A0002000148\n" + encode_frame(HISTORY)[:30] + b":7F0ED0071\n" + encode_frame(HISTORY)[30:])
    blocks.append(b"\r\n" + b"L" * 17 + b"\t1" + encode_frame(MAIN))
    blocks.append(b"\r\nV\t" + b"9" * 65 + encode_frame(MAIN))
    blocks.append(b"\r\nOOPS\r" + encode_frame(MAIN))
    blocks.append(encode_frame({f"X{i}": i for i in range(70)}) + encode_frame(MAIN))
    return b"".join(blocks)


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_whole_blocks_parse_as_byte_by_byte(chunk: int) -> None:
    """A chunk holding a whole block is parsed in one go; it must give the frames the byte rules give."""
    data = tricky_stream()
    by_byte = VEDirectParser()
    expected = [f for i in range(len(data)) for f in by_byte.feed(data[i:i + 1])]
    parser = VEDirectParser()
    frames = [f for i in range(0, len(data), chunk) for f in parser.feed(data[i:i + chunk])]
    assert [(f.fields, f.ok, f.reason) for f in frames] == [(f.fields, f.ok, f.reason) for f in expected]
    assert [f.ok for f in frames].count(True) == 6
    assert {f.reason for f in frames} == {"", "checksum", "label too long", "value too long", "too many fields",
                                          "partial"}


def test_fields_map_to_tags_with_natural_units() -> None:
    db = fixture_db()
    shunt = load_map(FIXTURES / "io_map_12v.yaml", db)[0]
    device = VEDirectDevice(shunt, db.defs)
    frames = VEDirectParser().feed(encode_frame(MAIN) + encode_frame(HISTORY) + encode_frame({"SOC": "---"}))
    values = device.decode(frames[0])
    assert values["bat.voltage"] == pytest.approx(13.288 * 1.012)  # calibration factor as a scale
    assert values["bat.current"] == pytest.approx(-1.5) and values["bat.power"] == -20.0
    assert values["bat.soc"] == pytest.approx(87.5) and values["shunt.ttg"] == 940
    assert values["shunt.alarm"] is False
    assert device.decode(frames[1]) == {"shunt.cycles": 12, "shunt.charged": pytest.approx(60.12)}
    assert device.decode(frames[2]) == {}  # SOC unknown ('---') is no value


class SteadySource:
    """A frame source for FramePoller whose fields the test sets (healthy, no history block)."""

    fault = None

    def __init__(self, fields: dict) -> None:
        self.main = fields

    def fields(self, history: bool = True) -> tuple[dict, ...]:
        return (dict(self.main),)


def test_frame_poller_hands_the_same_mapping_while_the_fields_repeat_and_sees_a_changed_value_or_type() -> None:
    db = fixture_db()
    shunt = load_map(FIXTURES / "io_map_12v.yaml", db)[0]
    source = SteadySource({"V": 13288, "I": -1500, "SOC": 875, "Alarm": False, "PID": "0xA389"})
    poller = FramePoller(shunt, db.defs, source)
    first = poller.poll()
    assert first["bat.soc"] == pytest.approx(87.5) and first["shunt.alarm"] is False
    assert poller.poll() is first  # every mapped field as it was: the same mapping
    source.main["PID"] = "0xA38A"  # an unmapped field changed: nothing to decode
    assert poller.poll() is first
    source.main["SOC"] = 874
    changed = poller.poll()
    assert changed is not first and changed["bat.soc"] == pytest.approx(87.4)
    source.main["Alarm"] = 0  # equal to False, but not the same text: the device would send "0", not "OFF"
    assert "shunt.alarm" not in poller.poll()


SHUNT = """devices:
  shunt:
    driver: vedirect
    port: {path}
    timeout: 1s
    stale_after: 600ms
    backoff: {{initial: 100ms, max: 200ms}}
    inputs:
      - {{tag: bat.voltage, field: V}}
      - {{tag: bat.current, field: I}}
      - {{tag: bat.soc, field: SOC}}
      - {{tag: shunt.cycles, field: H4}}
"""


@pytest.fixture
def shunt(tmp_path: Path):
    line = PtyLine()
    db = fixture_db()
    h = Harness(load_map(write_map(tmp_path, SHUNT.format(path=line.path)), db), db)
    yield line, h
    h.stop()
    line.close()


def test_frames_over_a_pty_with_corrupt_truncated_and_missing_frames(shunt) -> None:
    line, h = shunt
    db = h.db
    assert db.quality["bat.voltage"] is Quality.INIT
    # Like the shunt, repeat the blocks: what arrives before the driver opened the port is flushed.
    assert wait_until(lambda: line.write(encode_frame(MAIN) + encode_frame(HISTORY)) or h.until(
        lambda db: db.quality["bat.voltage"] is Quality.GOOD and db.quality["shunt.cycles"] is Quality.GOOD, 0.1))
    h.until(lambda db: False, 0.1)  # let the repeated blocks drain
    errors = db.values["dev.shunt.errors"]
    assert db.values["bat.voltage"] == pytest.approx(13.288) and db.values["bat.soc"] == pytest.approx(87.5)
    assert db.values["dev.shunt.up"] is True and errors == 0

    corrupt = bytearray(encode_frame({**MAIN, "V": 13000}))
    corrupt[-1] ^= 0x55  # wrong checksum: dropped, counted, its fields BAD with the last valid value
    line.write(bytes(corrupt))
    assert h.until(lambda db: db.values["dev.shunt.errors_decode"] == 1)
    assert db.quality["bat.voltage"] is Quality.BAD and db.values["bat.voltage"] == pytest.approx(13.288)
    assert db.quality["shunt.cycles"] is Quality.GOOD  # not in that frame
    line.write(encode_frame({**MAIN, "V": 13100}))
    assert h.until(lambda db: db.quality["bat.voltage"] is Quality.GOOD and db.values["bat.voltage"] == 13.1)

    line.write(encode_frame({**MAIN, "V": 13200})[:50])  # cut off mid-block ...
    time.sleep(0.7)
    line.write(encode_frame({**MAIN, "V": 13300}))  # ... and the next block still parses
    assert h.until(lambda db: db.values["bat.voltage"] == pytest.approx(13.3) and db.quality["bat.voltage"] is Quality.GOOD)
    assert db.values["dev.shunt.errors_decode"] == 2

    start = time.monotonic()  # the shunt falls silent: STALE after 0.6 s, BAD (timeout) after 1 s
    assert h.until(lambda db: db.quality["bat.voltage"] is Quality.STALE)
    assert h.until(lambda db: db.quality["bat.voltage"] is Quality.BAD)
    assert time.monotonic() - start > 0.5  # not before stale_after; how late is no test's business
    assert db.values["dev.shunt.errors_timeout"] >= 1 and db.values["dev.shunt.up"] is False
    line.write(encode_frame(MAIN))
    assert h.until(lambda db: db.quality["bat.voltage"] is Quality.GOOD)


def test_missing_port_is_retried_with_backoff(tmp_path: Path) -> None:
    db = fixture_db()
    h = Harness(load_map(write_map(tmp_path, SHUNT.format(path=tmp_path / "ttyUSB9")), db), db)
    try:
        assert h.until(lambda db: db.values["dev.shunt.errors_refused"] >= 3)
        assert db.quality["bat.voltage"] is Quality.BAD
    finally:
        h.stop()
