"""Quality on the wire: the quality registers follow each scan's commit, and a number without a reading is served
as its type's marker until a reading comes back (then its current value, not the one from before)."""

from __future__ import annotations

import struct

from pymodbus.client import ModbusTcpClient
from server_helpers import sim_scan

from runtime.server import Server
from runtime.tags import Quality, TagDB


def registers(client: ModbusTcpClient, address: int, count: int) -> list[int]:
    answer = client.read_input_registers(address, count=count, device_id=1)
    assert not answer.isError(), answer
    return answer.registers


def test_quality_registers_and_markers_follow_the_scan(server: Server, db: TagDB, client: ModbusTcpClient) -> None:
    scan = sim_scan(db, server)
    assert registers(client, 20000, 9) == [0] * 9  # bat.* at 0..8 all GOOD
    db.set_input("bat.soc", 87.5, Quality.BAD, 0.0)  # register 1, uint16 x 0.1
    db.set_input("bat.voltage", 53.25, Quality.INIT, 0.0)  # registers 6-7, float32
    db.set_input("stat.count", 5, Quality.STALE, 0.0)  # registers 4-5, uint32
    db.quality["io.door"] = Quality.BAD  # bit 3
    scan.step()
    server.settle()
    assert registers(client, 20000, 9) == [0, 2, 0, 0, 1, 1, 3, 3, 0]
    assert registers(client, 40000, 4) == [0, 0, 0, 2]
    words = registers(client, 0, 9)
    assert words[1] == 0xFFFF  # BAD: the uint16 marker, not 875
    assert struct.unpack(">f", struct.pack(">HH", *words[6:8]))[0] != 53.25  # INIT: NaN
    assert words[4:6] == [0, 5]  # STALE keeps its (last) value; its quality says so
    db.set_input("bat.soc", 42.0, Quality.GOOD, 1.0)  # the reading comes back with a new value
    db.set_input("bat.voltage", 53.25, Quality.GOOD, 1.0)  # ... or with the value it had before
    scan.step()
    server.settle()
    assert registers(client, 20000, 9) == [0, 0, 0, 0, 1, 1, 0, 0, 0]
    words = registers(client, 0, 9)
    assert words[1] == 420 and struct.unpack(">f", struct.pack(">HH", *words[6:8]))[0] == 53.25


def test_quality_registers_refuse_writes(client: ModbusTcpClient) -> None:
    assert client.write_register(20100, 0, device_id=1).exception_code == 2  # par.offset's quality: read-only
    assert not client.read_holding_registers(20100, count=1, device_id=1).isError()
