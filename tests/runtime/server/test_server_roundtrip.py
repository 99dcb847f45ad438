"""Round trips over a real socket: every data type and every table, with the pymodbus client (decoding with
pymodbus's own converters, not ours) and with mbpoll, a third-party C client, when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from server_helpers import RO_VALUES, sim_scan

from runtime.server import Server
from runtime.tags import TagDB

DT = ModbusTcpClient.DATATYPE
CONVERT = {"int16": DT.INT16, "uint16": DT.UINT16, "int32": DT.INT32, "uint32": DT.UINT32, "float32": DT.FLOAT32}

# ro tags: (name, dtype, scale) at their address; value = raw x scale
RO_REGISTERS = [("bat.current", "int16", 0.1), ("bat.soc", "uint16", 0.1), ("bat.energy", "int32", 1),
                ("stat.count", "uint32", 1), ("bat.voltage", "float32", 1), ("bms.state", "uint16", 1)]
# rw tags: (name, dtype, scale, value to write)
RW_REGISTERS = [("par.offset", "int16", 1, -777), ("par.limit", "uint16", 0.01, 12.34),
                ("par.energy", "int32", 1, -99999), ("par.count", "uint32", 1, 3_999_999_999),
                ("par.voltage", "float32", 1, 48.5), ("cmd.mode", "uint16", 1, 2)]


def decode(registers: list[int], dtype: str, scale: float) -> Any:
    raw = ModbusTcpClient.convert_from_registers(registers, CONVERT[dtype], word_order="big")
    return raw * scale if scale != 1 else raw


def encode(value: Any, dtype: str, scale: float) -> list[int]:
    raw = value / scale
    return ModbusTcpClient.convert_to_registers(raw if dtype == "float32" else round(raw), CONVERT[dtype])


@pytest.mark.parametrize(("name", "dtype", "scale"), RO_REGISTERS)
def test_ro_numbers_read_back_from_input_and_holding(server: Server, client: ModbusTcpClient, name: str,
                                                     dtype: str, scale: float) -> None:
    point = server.regmap.point(name)
    for read in (client.read_input_registers, client.read_holding_registers):
        response = read(point.address, count=point.width, device_id=1)
        assert not response.isError(), response
        assert decode(response.registers, dtype, scale) == pytest.approx(RO_VALUES[name])


def test_ro_bits_read_back_from_discrete_inputs_and_coils(client: ModbusTcpClient) -> None:
    assert client.read_discrete_inputs(0, count=1, device_id=1).bits[0] is True
    assert client.read_coils(0, count=4, device_id=1).bits[:4] == [True, False, False, False]
    assert client.read_discrete_inputs(3, count=1, device_id=1).bits[0] is False


@pytest.mark.parametrize(("name", "dtype", "scale", "value"), RW_REGISTERS)
def test_rw_numbers_write_latch_and_read_back(server: Server, client: ModbusTcpClient, db: TagDB, name: str,
                                              dtype: str, scale: float, value: Any) -> None:
    point = server.regmap.point(name)
    words = encode(value, dtype, scale)
    response = (client.write_register(point.address, words[0], device_id=1) if len(words) == 1
                else client.write_registers(point.address, words, device_id=1))
    assert not response.isError(), response
    scan = sim_scan(db, server)
    assert db[name] != pytest.approx(value)  # queued, not applied
    scan.step()
    assert db[name] == pytest.approx(value)
    server.settle()
    back = client.read_holding_registers(point.address, count=point.width, device_id=1)
    assert decode(back.registers, dtype, scale) == pytest.approx(value)


def test_coils_write_latch_and_read_back(server: Server, client: ModbusTcpClient, db: TagDB) -> None:
    assert not client.write_coil(1, True, device_id=1).isError()
    assert not client.write_coils(1, [False, True], device_id=1).isError()
    sim_scan(db, server).step()
    assert (db["io.relay"], db["io.pump"]) == (False, True)
    server.settle()
    assert client.read_coils(1, count=2, device_id=1).bits[:2] == [False, True]


def test_refusals_reach_the_client_as_exception_codes(client: ModbusTcpClient) -> None:
    assert client.write_register(0, 1, device_id=1).exception_code == 2  # read-only
    assert client.write_register(102, 1, device_id=1).exception_code == 3  # half of an int32
    assert client.write_register(100, 5000, device_id=1).exception_code == 3  # above max
    assert client.read_holding_registers(9, count=1, device_id=1).exception_code == 2  # unmapped
    assert client.read_input_registers(100, count=1, device_id=1).exception_code == 2  # rw is not input


# ---- mbpoll -----------------------------------------------------------------------------------------------------

MBPOLL = shutil.which("mbpoll")
needs_mbpoll = pytest.mark.skipif(MBPOLL is None, reason="mbpoll is not installed (apt-get install mbpoll)")


def mbpoll(server: Server, *options: str, write: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    host, port = server.address
    command = [MBPOLL or "mbpoll", "-m", "tcp", "-a", "1", "-0", "-1", "-o", "2", "-p", str(port), *options, host]
    if write:
        command += ["--", *write]
    return subprocess.run(command, capture_output=True, text=True, timeout=10)


def mbpoll_values(result: subprocess.CompletedProcess) -> dict[int, str]:
    assert result.returncode == 0, result.stderr
    # mbpoll prints "[address]: value", or "[address]: unsigned (signed)" for negative 16-bit values.
    lines = re.findall(r"^\[(\d+)\]:\s+(\S+)(?: \((-\d+)\))?$", result.stdout, re.MULTILINE)
    return {int(address): signed or value for address, value, signed in lines}


@pytest.mark.interop
@needs_mbpoll
def test_mbpoll_reads_every_table_and_type(server: Server) -> None:
    assert mbpoll_values(mbpoll(server, "-t", "3", "-r", "0", "-c", "2")) == {0: "-123", 1: "875"}
    assert mbpoll_values(mbpoll(server, "-t", "4:int", "-B", "-r", "2")) == {2: "-123456"}
    assert mbpoll_values(mbpoll(server, "-t", "3:int", "-B", "-r", "4")) == {4: str(3_000_000_000 - 2**32)}
    assert mbpoll_values(mbpoll(server, "-t", "3:float", "-B", "-r", "6")) == {6: "53.25"}
    assert mbpoll_values(mbpoll(server, "-t", "1", "-r", "0")) == {0: "1"}
    assert mbpoll_values(mbpoll(server, "-t", "0", "-r", "0", "-c", "4")) == {0: "1", 1: "0", 2: "0", 3: "0"}


@pytest.mark.interop
@needs_mbpoll
def test_mbpoll_writes_land_at_the_next_scan(server: Server, db: TagDB) -> None:
    assert mbpoll(server, "-t", "4", "-r", "100", write=(str(2**16 - 42),)).returncode == 0  # 16-bit: unsigned
    assert mbpoll(server, "-t", "4:int", "-B", "-r", "102", write=("-54321",)).returncode == 0
    assert mbpoll(server, "-t", "4:float", "-B", "-r", "106", write=("55.5",)).returncode == 0
    assert mbpoll(server, "-t", "0", "-r", "2", write=("1",)).returncode == 0
    refused = mbpoll(server, "-t", "4", "-r", "101", write=("20000",))
    assert refused.returncode != 0 and "Illegal data value" in refused.stderr
    sim_scan(db, server).step()
    assert (db["par.offset"], db["par.energy"], db["par.voltage"], db["io.pump"]) == (-42, -54321, 55.5, True)
    server.settle()
    assert mbpoll_values(mbpoll(server, "-t", "4:float", "-B", "-r", "106")) == {106: "55.5"}
