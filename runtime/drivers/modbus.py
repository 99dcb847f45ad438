"""Modbus TCP and RTU devices on pymodbus async clients, and their sans-I/O register model.

- ``Device``: the read plan, decode and encode of one device (io_map points), no I/O at all.
- ``SyncPoller``: one poll/commit of a ``Device`` inline against callables (the simulator's register bank).
- ``ModbusLink``: one connection (a TCP socket to a device or gateway, or an RS485 bus on a serial port)
  with every device behind it, served by one asyncio task. Devices are polled each at its own period;
  queued writes go first. Requests on one connection are serialized (Modbus allows one at a time on a bus
  and most gateways expect it), so devices on different connections never wait for each other.

Faults, per device: a request that gets no answer within ``timeout`` is retried ``retries`` times and then
counts a timeout; an exception answer counts an exception (not retried); a short or undecodable answer a
decode error. The failing block's tags turn BAD at once (values kept). After a timeout or a lost connection
the rest of that poll is skipped and the device is *probed* instead of polled: at each of its poll slots one
short request (one register of its first block, a single attempt), so a dead unit behind a gateway costs
its siblings at most one ``timeout`` per poll period, and a device that answers again is polled at once:
back within two poll periods (measured: tools/bench/bench_recovery.py). A connection that cannot be made is
retried with its own backoff, capped at the poll period for the same reason. After a (re)connect or a
device's return every output is written again, the queued ones first: values the scan made while the
device was away (its charts held safe meanwhile, see runtime/sfc/load.py) reach it before anything else.

io_map.yaml keys of ``driver: modbus_tcp`` and ``driver: modbus_rtu`` (the common keys: config.py)::

        # connection, modbus_tcp
        host:                required. IP address or host name of the device or gateway
        port:                TCP port, default 502. Devices with the same host and port share one
                             connection (a gateway with several unit ids); its requests are serialized.
        # connection, modbus_rtu
        port:                required. serial device, e.g. /dev/ttyUSB0 (several devices may share a port:
                             one RS485 bus; they must agree on baud, parity, stopbits)
        baud:                bits per second, default 9600
        parity:              N | E | O, default N (8 data bits always)
        stopbits:            1 | 2, default 1
        # polling
        unit:                unit id (slave id), default 1; 0..255 on TCP, 1..247 on RTU
        poll:                poll period, default 1s (a duration: 100ms, 1s, 2.5s)
        timeout:             answer timeout per request, default 1s
        retries:             extra attempts after a timeout, default 1 (exception answers are not retried)
        max_gap:             merge points of one table into one request when at most this many unused
                             registers (bits for coil/discrete) lie between them, default 8; 0 merges only
                             contiguous points. A request never exceeds 125 registers or 2000 bits.
        inputs:
          - table:           holding | input | coil | discrete, default holding
            address:         required. 0..65535, as sent on the wire (register 40001 is holding 0)
            type:            int16 | uint16 | int32 | uint32 | float32 | bit; default uint16, and bit for
                             coil/discrete (the only type there)
            bit:             0..15, with type bit on a holding/input register: that bit of the register
            word_order:      big | little, for 32-bit types: big = high word first (default)
            scale:           value = raw * scale + offset, default 1 (a calibration factor is a scale)
            offset:          default 0
        outputs:
          - table:           holding | coil, default holding
            address:         required. 0..65535
            type:            int16 | uint16 | int32 | uint32 | float32 for holding (default uint16);
                             bit for coil (the default there)
            word_order:      big | little, for 32-bit types
            scale, offset:   value = raw * scale + offset, so raw = (value - offset) / scale, rounded;
                             e.g. scale 0.01 for a 0..32 V setpoint (27.2 V is raw 2720)
            lookup:          instead of scale/offset: [[value, raw], ...] with increasing values; raw is
                             interpolated linearly between pairs and held flat outside (e.g. a PWM duty
                             for a charger module's voltage setpoint)
            write:           on_change (default): written when the scan commits a new value, and with
                             the image's value at start and after every reconnect; cyclic: also rewritten
                             at every poll (for devices that drop a setpoint that is not refreshed).
                             A write counts once the device confirms it; an unanswered one is retried.
            failsafe:        see config.py
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from operator import is_
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from runtime.config.schema import (
    Invalid,
    ListOf,
    Optional,
    Required,
    Schema,
    host,
    int_range,
    number,
    one_of,
    port,
    positive_duration,
    tag_name,
)
from runtime.drivers.base import Backoff, DeviceConfig, Driver, Health, Link, LinkContext
from runtime.drivers.codec import (
    BIT_TABLES,
    RANGE,
    WIDTH,
    BlockDecoder,
    DecodeError,
    InputPoint,
    OutputPoint,
    ReadBlock,
    Write,
    encode_output,
    fits,
    plan_reads,
)
from runtime.drivers.keys import SERIAL, baud, failsafe_value, serial_link
from runtime.drivers.state import DECODE, EXCEPTION, REFUSED, TIMEOUT
from runtime.tags import TagDef

log = logging.getLogger("battplc.drivers")

ReadFn = Callable[[int, str, int, int], Sequence[Any]]
WriteFn = Callable[[int, str, int, list[Any]], None]


class Device:
    """The register model of one Modbus device: what to read, how to decode it, how to encode outputs."""

    def __init__(self, config: DeviceConfig, defs: Mapping[str, TagDef] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.unit = config.unit
        self.defs = defs or {}
        self.plan: list[ReadBlock] = plan_reads(config.inputs, config.unit, config.max_gap)
        # Each block of the plan compiled once (by the block's identity: the plan never changes).
        self._coercers = {p.tag: self.defs[p.tag].number_coercer for p in config.inputs if p.tag in self.defs}
        self._decoders = {id(block): BlockDecoder(block, self._coercers) for block in self.plan}
        self.outputs: dict[str, list[OutputPoint]] = {}
        for point in config.outputs:
            self.outputs.setdefault(point.tag, []).append(point)

    def decode(self, block: ReadBlock, data: Sequence[Any]) -> dict[str, Any]:
        """{tag: value} of the block's points; a point that is not representable (NaN, bad enum) is left out.

        Raises DecodeError for a short block or a register value that is not a 16-bit word."""
        return self.decoder(block).decode(data)

    def decoder(self, block: ReadBlock) -> BlockDecoder:
        decoder = self._decoders.get(id(block))
        if decoder is None or decoder.block is not block:  # a block of someone else's plan
            decoder = BlockDecoder(block, self._coercers)
        return decoder

    def encode(self, tag: str, value: Any) -> list[Write]:
        """The writes that put ``value`` into every output point of ``tag`` (none if not an output here)."""
        return [encode_output(point, value, self.unit) for point in self.outputs.get(tag, ())]

    def failsafe(self, defs: Mapping[str, TagDef] | None = None) -> dict[str, Any]:
        """Fail-safe value of every output: the point's ``failsafe``, else the tag's safe value."""
        defs = defs or self.defs
        out = {}
        for tag, points in self.outputs.items():
            given = points[0].failsafe
            tag_def = defs.get(tag)
            if given is not None:
                out[tag] = tag_def.coerce(given) if tag_def else given
            elif tag_def is not None:
                out[tag] = tag_def.safe_value
        return out


class SyncPoller:
    """One poll or commit of a device, inline: no asyncio, no sockets (the simulator's register banks)."""

    def __init__(self, device: Device, read: ReadFn, write: WriteFn) -> None:
        self.device = device
        self.config = device.config
        self.read = read
        self.write = write
        # per block: its read, arguments bound (a C-level call), and its decoder (a poll runs every scan)
        self._requests = [(partial(read, block.unit, block.table, block.address, block.count),
                           device.decoder(block).shared) for block in device.plan]
        # the decoded blocks of the last poll, and all of them in one mapping
        self._blocks: list[Mapping[str, Any] | None] = [None] * len(self._requests)
        self._values: Mapping[str, Any] = {}

    def poll(self) -> Mapping[str, Any]:
        """Read and decode every block; an exception raised by ``read`` propagates.

        Read-only, and the very mapping of the last poll when every block decoded as it did then (a block
        decoder hands its last mapping again for the same words): the read group then skips its checks."""
        requests = self._requests
        if len(requests) == 1:  # most devices: one block, its decoder's mapping is the poll's
            read, decode = requests[0]
            return decode(read())
        blocks = [decode(read()) for read, decode in requests]
        if not all(map(is_, blocks, self._blocks)):
            self._blocks = blocks
            self._values = values = {}
            for block in blocks:
                values.update(block)
        return self._values

    def commit(self, outputs: Mapping[str, Any]) -> None:
        """Write those ``outputs`` that belong to this device."""
        mine = self.device.outputs
        for tag, value in outputs.items():
            if tag in mine:  # the scan hands every changed tag to every device
                for request in self.device.encode(tag, value):
                    self.write(request.unit, request.table, request.address, list(request.values))


# ---- the asyncio driver ------------------------------------------------------------------------------------

class _Failed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


_UNREACHABLE = (TIMEOUT, REFUSED)


class _Polled:
    """A device on a link: its model, schedule, health, backoff and output queue."""

    def __init__(self, config: DeviceConfig, ctx: LinkContext) -> None:
        self.device = Device(config, ctx.defs)
        self.config = config
        self.health = Health(config.name, ctx)
        self.next_due = 0.0
        self.reachable = True
        self.commanded: dict[str, Any] = {}  # last value the scan gave each output
        self.pending: dict[str, Any] = {}  # writes not yet confirmed by the device
        self.cyclic = tuple(p.tag for p in config.outputs if p.write == "cyclic")


class ModbusLink(Link):
    """One Modbus connection and the devices behind it, polled by one task."""

    def __init__(self, configs: Sequence[DeviceConfig], ctx: LinkContext) -> None:
        super().__init__(configs, ctx)
        self.polled = [_Polled(c, ctx) for c in configs]
        self.by_name = {p.config.name: p for p in self.polled}
        first = configs[0]
        self.where = f"{first.host}:{first.port}" if first.driver == "modbus_tcp" else str(first.port)
        # Shared connections reconnect as eagerly as their most eager device asks, and at least once per poll
        # period: a gateway that accepts again is back within two polls.
        cap = min(min(c.backoff_max, c.poll) for c in configs)
        self.backoff = Backoff(min(cap, *(c.backoff_initial for c in configs)), cap)
        self._timeout = max(c.timeout for c in configs)
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None  # made on the loop
        for polled in self.polled:
            for index, block in enumerate(polled.device.plan):
                ctx.sink.declare((polled.config.name, index), block.tags, polled.config.stale_after)

    @staticmethod
    def _new_client(config: DeviceConfig, timeout: float) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        # Retries and reconnects are ours (per device, with backoff), so pymodbus gets neither.
        common = {"timeout": timeout, "retries": 0, "reconnect_delay": 0, "name": config.name}
        if config.driver == "modbus_tcp":
            return AsyncModbusTcpClient(config.host, port=int(config.port), **common)
        return AsyncModbusSerialClient(str(config.port), framer=FramerType.RTU, baudrate=config.baud, bytesize=8,
                                       parity=config.parity, stopbits=config.stopbits, **common)

    # ---- interface --------------------------------------------------------------------------------------

    def write(self, device: str, outputs: Mapping[str, Any]) -> None:
        polled = self.by_name[device]
        polled.commanded.update(outputs)
        polled.pending.update(outputs)
        self.wake()

    def _client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self.client is None:  # pymodbus binds its client to the running loop at construction
            self.client = self._new_client(self.configs[0], self._timeout)
        return self.client

    async def run(self) -> None:
        client = self._client()
        start = self.ctx.monotonic()
        for polled in self.polled:
            polled.next_due = start + self.phase * polled.config.poll
        while not self.stopping:
            if not client.connected and not await self._connect():
                continue
            for polled in self.polled:
                if polled.pending and polled.reachable and not self.stopping and not await self._write(polled):
                    self._unreachable(polled, self.ctx.monotonic(), 0)
            polled = min(self.polled, key=lambda p: p.next_due)
            delay = polled.next_due - self.ctx.monotonic()
            if delay > 0:
                await self.pause(delay)
            elif not self.stopping:
                await (self._poll(polled) if polled.reachable else self._probe(polled))

    async def flush(self, timeout: float) -> None:
        pending = [p for p in self.polled if p.pending]
        if not pending:
            return
        try:
            async with asyncio.timeout(timeout):
                client = self._client()
                if not client.connected and not await client.connect():
                    raise _Failed(REFUSED, f"cannot connect to {self.where}")
                for polled in pending:
                    await self._write(polled)
        except (TimeoutError, _Failed) as exc:
            log.error("fail-safe outputs of %s not confirmed: %s", self.name, exc or "timeout")
        for polled in pending:
            if polled.pending:
                log.error("device %s did not confirm fail-safe output(s) %s", polled.config.name,
                          ", ".join(sorted(polled.pending)))

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()

    # ---- internals --------------------------------------------------------------------------------------

    async def _connect(self) -> bool:
        if await self._client().connect():
            self.backoff.reset()
            now = self.ctx.monotonic()
            for polled in self.polled:
                polled.pending.update(polled.commanded)  # a device that restarted gets its outputs back
                if not polled.reachable:  # back after a failure: poll now rather than after its backoff
                    polled.reachable = True
                    polled.next_due = min(polled.next_due, now)
            return True
        for polled in self.polled:
            polled.health.fail(REFUSED, f"cannot connect to {self.where}")
            polled.reachable = False
            self._publish_bad(polled, 0)
        await self.pause(self.backoff.next())
        return False

    async def _poll(self, polled: _Polled) -> None:
        config = polled.config
        now = self.ctx.monotonic()
        # Fixed rate without bursts: a poll that ran late skips the slots it missed.
        due = polled.next_due + config.poll
        polled.next_due = due if due > now else now + config.poll
        for tag in polled.cyclic:
            if tag in polled.commanded:
                polled.pending.setdefault(tag, polled.commanded[tag])
        if polled.pending and not await self._write(polled):
            self._unreachable(polled, now, 0)
            return
        complete = True
        for index, block in enumerate(polled.device.plan):
            if self.stopping:
                return
            try:
                data = await self._request(polled, _reader(self._client(), block), bits=block.table in BIT_TABLES)
                values = polled.device.decode(block, data)
            except DecodeError as exc:
                polled.health.fail(DECODE, str(exc))
                self._publish_bad(polled, index, index + 1)
                complete = False
                continue
            except _Failed as exc:
                polled.health.fail(exc.kind, exc.detail)
                complete = False
                if exc.kind in _UNREACHABLE:
                    self._unreachable(polled, now, index)
                    return
                self._publish_bad(polled, index, index + 1)
                continue
            self.ctx.sink.publish((config.name, index), values, self.ctx.monotonic())
            if len(values) < len(block.points):
                missing = sorted(set(block.tags) - set(values))
                polled.health.fail(DECODE, f"cannot represent {', '.join(missing)}")
                complete = False
        polled.reachable = True
        if complete:
            polled.health.good()

    def _unreachable(self, polled: _Polled, now: float, first_block: int) -> None:
        """Device did not answer: its inputs go BAD and it is probed, not polled, from its next slot on."""
        self._publish_bad(polled, first_block)
        polled.reachable = False
        polled.next_due = max(polled.next_due, now + polled.config.poll)

    async def _probe(self, polled: _Polled) -> None:
        """One short request to an unreachable device at its poll slot; when it answers, poll it at once."""
        plan = polled.device.plan
        now = self.ctx.monotonic()
        polled.next_due = now + polled.config.poll
        if plan:
            first = plan[0]
            probe = ReadBlock(first.unit, first.table, first.address, 1, ())
            try:
                await self._request(polled, _reader(self._client(), probe), bits=first.table in BIT_TABLES,
                                    attempts=1)
            except _Failed as exc:
                if exc.kind in _UNREACHABLE:
                    polled.health.fail(exc.kind, exc.detail)
                    return
                # an exception answer: the device is there again, the poll will tell the rest
        polled.reachable = True
        polled.pending.update(polled.commanded)  # it missed writes, or restarted: every output again
        polled.next_due = now
        await self._poll(polled)

    def _publish_bad(self, polled: _Polled, start: int, stop: int | None = None) -> None:
        now = self.ctx.monotonic()
        for index in range(start, len(polled.device.plan) if stop is None else stop):
            self.ctx.sink.publish((polled.config.name, index), {}, now)

    async def _write(self, polled: _Polled) -> bool:
        """Send the queued outputs; False when the device is unreachable (they stay queued)."""
        for tag, value in list(polled.pending.items()):
            try:
                for request in polled.device.encode(tag, value):
                    await self._request(polled, _writer(self._client(), request), bits=False)
            except _Failed as exc:
                polled.health.fail(exc.kind, f"write {tag}: {exc.detail}")
                if exc.kind in _UNREACHABLE:
                    return False
                # The device refused this value (exception answer): retrying it every poll cannot help.
            if polled.pending.get(tag) is value:
                del polled.pending[tag]
        return True

    async def _request(self, polled: _Polled, call: Callable[[], Awaitable[ModbusPDU]], bits: bool,
                       attempts: int | None = None) -> list[Any]:
        """One request with the device's timeout and retries (or ``attempts``); the answer's data, or _Failed."""
        config = polled.config
        client = self._client()
        attempts = config.retries + 1 if attempts is None else attempts
        for _attempt in range(attempts):
            if not client.connected:
                raise _Failed(REFUSED, f"connection to {self.where} lost")
            try:
                # pymodbus times out on its own at the link's timeout; this bounds devices with a shorter one.
                async with asyncio.timeout(config.timeout * 1.1):
                    response = await call()
            except (TimeoutError, ModbusIOException):
                continue
            except ConnectionException as exc:
                raise _Failed(REFUSED, str(exc)) from None
            except ModbusException as exc:
                raise _Failed(DECODE, str(exc)) from None
            if response.isError():
                raise _Failed(EXCEPTION, f"exception code {getattr(response, 'exception_code', '?')} "
                                         f"(function {response.function_code & 0x7F})")
            return list(response.bits) if bits else list(response.registers)
        raise _Failed(TIMEOUT, f"no answer from unit {config.unit} within {config.timeout:g}s "
                               f"({attempts} attempt(s))")


def _reader(client: Any, block: ReadBlock) -> Callable[[], Awaitable[ModbusPDU]]:
    method = {"holding": client.read_holding_registers, "input": client.read_input_registers,
              "coil": client.read_coils, "discrete": client.read_discrete_inputs}[block.table]
    return lambda: method(block.address, count=block.count, device_id=block.unit)


def _writer(client: Any, request: Write) -> Callable[[], Awaitable[ModbusPDU]]:
    if request.table == "coil":
        return lambda: client.write_coil(request.address, bool(request.values[0]), device_id=request.unit)
    if len(request.values) == 1:
        return lambda: client.write_register(request.address, int(request.values[0]), device_id=request.unit)
    return lambda: client.write_registers(request.address, [int(v) for v in request.values],
                                          device_id=request.unit)


def make_links(devices: list[DeviceConfig], ctx: LinkContext) -> list[Link]:
    """One link per connection: devices with the same host:port or serial port share it."""
    groups: dict[tuple[str, ...], list[DeviceConfig]] = {}
    for device in devices:
        groups.setdefault(DRIVERS_BY_NAME[device.driver].link_key(device), []).append(device)
    return [ModbusLink(group, ctx) for group in groups.values()]


def inline_poller(config: DeviceConfig, defs: Mapping[str, TagDef], bank: Any, wire: bool = False) -> SyncPoller:
    """The simulator's poller over a register bank (``read``/``write`` as ``SyncPoller`` takes them)."""
    return SyncPoller(Device(config, defs), bank.read, bank.write)


# ---- io_map.yaml: keys and point rules ---------------------------------------------------------------------

INPUT_TABLES = ("holding", "input", "coil", "discrete")
OUTPUT_TABLES = ("holding", "coil")
WORD_ORDERS = ("big", "little")


def pair(value: Any) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise Invalid(f"expected a [value, raw] pair, got {value!r}")
    return number(value[0]), number(value[1])


_POINT = {
    Required("tag"): tag_name,
    Required("address"): int_range(0, 65535),
    Optional("type"): one_of(*WIDTH),
    Optional("word_order"): one_of(*WORD_ORDERS),
    Optional("scale"): number,
    Optional("offset"): number,
}

INPUT = Schema({
    **_POINT,
    Optional("table", default="holding"): one_of(*INPUT_TABLES),
    Optional("bit"): int_range(0, 15),
})

OUTPUT = Schema({
    **_POINT,
    Optional("table", default="holding"): one_of(*OUTPUT_TABLES),
    Optional("write", default="on_change"): one_of("on_change", "cyclic"),
    Optional("failsafe"): failsafe_value,
    Optional("lookup"): ListOf(pair, min_len=2),
})

_POLLING = {
    Optional("poll", default=DeviceConfig.poll): positive_duration,
    Optional("timeout", default=DeviceConfig.timeout): positive_duration,
    Optional("retries", default=DeviceConfig.retries): int_range(0, 10),
    Optional("max_gap", default=DeviceConfig.max_gap): int_range(0, 124),
}

TCP_KEYS = {
    **_POLLING,
    Required("host"): host,
    Optional("port", default=502): port,
    Optional("unit", default=DeviceConfig.unit): int_range(0, 255),
}

RTU_KEYS = {
    **_POLLING,
    **SERIAL,
    Optional("baud", default=DeviceConfig.baud): baud,
    Optional("unit", default=DeviceConfig.unit): int_range(1, 247),
}


def input_point(p: dict, rules: Any) -> InputPoint | None:
    """A validated input point of io_map.yaml, checked against its table, type and tag (``config.PointRules``)."""
    table = p["table"]
    type_ = p.get("type") or ("bit" if table in BIT_TABLES else "uint16")
    ok = _point_type(p, type_, table, rules)
    if ok and type_ != "bit":
        ok = rules.scale(p.get("scale", 1.0), p.get("offset", 0.0), output=False)
    if type_ == "bit":
        ok = _bit(p, table, rules) and ok
    elif "bit" in p:
        rules.error("bit", f"'bit' is only for type bit, this point is {type_}")
        ok = False
    if not ok:
        return None
    return InputPoint(p["tag"], table, p["address"], type_, p.get("bit"), p.get("word_order", "big"),
                      p.get("scale", 1.0), p.get("offset", 0.0), line=rules.where.line)


def output_point(p: dict, rules: Any) -> OutputPoint | None:
    """A validated output point: type against table, a lookup or a scale that can encode the tag's range."""
    table = p["table"]
    type_ = p.get("type") or ("bit" if table == "coil" else "uint16")
    ok = _point_type(p, type_, table, rules)
    lookup = tuple(p.get("lookup") or ())
    if ok and type_ != "bit" and not lookup:
        ok = rules.scale(p.get("scale", 1.0), p.get("offset", 0.0), output=True, raw_range=RANGE.get(type_))
    if table == "holding" and type_ == "bit":
        rules.error("type", "a single bit is written to a coil; write a holding register as a whole "
                            "(int16/uint16/...)")
        ok = False
    if lookup:
        ok = _lookup(lookup, type_, p, rules) and ok
    if not ok:
        return None
    return OutputPoint(p["tag"], table, p["address"], type_, p.get("word_order", "big"), p.get("scale", 1.0),
                       p.get("offset", 0.0), p["write"], p.get("failsafe"), lookup, line=rules.where.line)


def _point_type(p: dict, type_: str, table: str, rules: Any) -> bool:
    """Type against table, 32-bit-only keys, bits without scale, and the address range."""
    ok = True
    if table in BIT_TABLES and type_ != "bit":
        rules.error("type", f"a {table} is a single bit: use type bit, not {type_}")
        ok = False
    if "word_order" in p and WIDTH[type_] != 2:
        rules.error("word_order", f"word_order applies to 32-bit types only, this point is {type_}")
        ok = False
    if type_ == "bit" and ("scale" in p or "offset" in p):
        rules.error(None, "a bit has no scale or offset")
        ok = False
    if p["address"] + WIDTH[type_] - 1 > 65535:
        rules.error("address", f"a {type_} at address {p['address']} runs past 65535 (it needs {WIDTH[type_]} "
                               f"registers)")
        ok = False
    return ok


def _bit(p: dict, table: str, rules: Any) -> bool:
    if table in BIT_TABLES and "bit" in p:
        rules.error("bit", f"'bit' selects a bit of a register; a {table} is already one bit, drop it")
        return False
    if table not in BIT_TABLES and "bit" not in p:
        rules.error("type", "type bit on a register needs 'bit: 0..15'")
        return False
    return True


def _lookup(lookup: tuple[tuple[float, float], ...], type_: str, p: dict, rules: Any) -> bool:
    if "scale" in p or "offset" in p:
        rules.error("lookup", "use either lookup or scale/offset, not both")
        return False
    values = [v for v, _ in lookup]
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        rules.error("lookup", f"lookup values must increase strictly, got {values}")
        return False
    bad = [r for _, r in lookup if not fits(r, type_)]
    if bad:
        rules.error("lookup", f"raw value(s) {bad} do not fit {type_}")
        return False
    return True


def _tcp_link(config: DeviceConfig) -> tuple[str, ...]:
    return ("tcp", config.host, str(config.port))


_COMMON = {"input_schema": INPUT, "input_point": input_point, "output_schema": OUTPUT, "output_point": output_point,
           "make_links": make_links, "simulated": "registers", "inline_poller": inline_poller}
DRIVERS = (
    Driver("modbus_tcp", "Modbus TCP", TCP_KEYS, link_key=_tcp_link, **_COMMON),
    Driver("modbus_rtu", "Modbus RTU", RTU_KEYS, link_key=serial_link, **_COMMON),
)
DRIVERS_BY_NAME = {driver.name: driver for driver in DRIVERS}
