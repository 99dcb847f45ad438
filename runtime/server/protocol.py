"""Modbus/TCP on asyncio: MBAP framing per connection and the request handler (function code -> table -> tag).

The framing and the PDU handling are written here, lean, instead of going through pymodbus's server: one
request costs a header parse, a dict lookup and a slice of the register image, which is what lets the
server answer several times more requests than pymodbus's own server on the same core (see
tools/bench/bench_modbus.py). pymodbus is still the client everywhere (tests, ``battplc get/set``) and its
exception codes are used here.

Supported function codes: 01 read coils, 02 read discrete inputs, 03 read holding registers, 04 read input
registers, 05 write single coil, 06 write single register, 15 write multiple coils, 16 write multiple
registers. Every other code (diagnostics 08, the 0x41-0x45 debug codes some PLCs expose, ...) -> exception 01.

A frame with a protocol id other than 0 or a length field outside 2..254 cannot be trusted to find the
next frame, so the connection is closed (as the Modbus/TCP spec allows), after answering the complete
requests that came before it in the same read: a client must never retry a write that already landed.
A write the client may not make (``server.writers``) is answered with exception 01 and changes nothing.
Refused and accepted writes are logged through rate-limited logs (see access.RateLimitedLog).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymodbus.constants import ExcCodes

from runtime.server.access import certificate_roles
from runtime.server.image import RegisterImage, WriteQueue
from runtime.server.regmap import BITS, REGISTERS, Point, RegisterMap

if TYPE_CHECKING:
    from runtime.server.access import Gate, RateLimitedLog

MayWrite = Callable[[str], bool]

log = logging.getLogger("battplc.server")

MAX_PDU = 253  # bytes; the MBAP length field counts the unit id too, so it is at most 254
READ_BUFFER = 4096  # bytes read per callback: room for 15 maximal frames or ~340 small reads
WRITE_BUFFER = 16384  # answers queued for a client before the server stops reading its requests
MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000
MAX_WRITE_REGISTERS = 123
MAX_WRITE_BITS = 1968

TABLE_OF_SPACE = {BITS: "coil", REGISTERS: "holding"}


@dataclass
class ServerStats:
    """Counters for metrics and tests."""

    requests: int = 0
    exceptions: Counter = field(default_factory=Counter)  # exception code -> count
    writes_accepted: int = 0
    writes_refused: int = 0
    wrong_unit: int = 0
    connections_accepted: int = 0
    connections_peak: int = 0  # most connections open at once
    connections_refused: int = 0
    connections_idle_closed: int = 0
    connections_partial_closed: int = 0  # closed with a frame incomplete for frame_timeout
    connections_evicted: int = 0  # closed at the cap for a new client: the oldest unused one
    frames_malformed: int = 0
    steps_aside: int = 0  # times the server paused for a scan (see Server._step_aside)
    requests_by_function: Counter = field(default_factory=Counter)  # (function, result) -> count


FUNCTION_NAMES = {0x01: "read_coils", 0x02: "read_discrete_inputs", 0x03: "read_holding_registers",
                  0x04: "read_input_registers", 0x05: "write_single_coil", 0x06: "write_single_register",
                  0x0F: "write_multiple_coils", 0x10: "write_multiple_registers"}


_EXC_VALUES = frozenset(int(code) for code in ExcCodes)


class Refused(Exception):
    """A request the server answers with an exception code; the message says why (for the log)."""

    def __init__(self, code: ExcCodes, why: str, point: Point | None = None, new: Any = None) -> None:
        super().__init__(why)
        self.code = code
        self.point = point
        self.new = new


def limits_text(point: Point) -> str:
    """'min..max' of a tag for messages ('' for an open end)."""
    low, high = point.tag.min, point.tag.max
    return f"{'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"


def exception_pdu(function_code: int, code: int) -> bytes:
    """The exception response PDU: the function code with its high bit set, then the exception code."""
    return bytes((function_code | 0x80, code))


class RequestHandler:
    """One request PDU in, one response PDU out (None: no answer). Runs on the server's loop thread.

    ``current`` reads a tag's value from the scan's image, only for the log line of a write (old value).
    """

    def __init__(self, regmap: RegisterMap, image: RegisterImage, writes: WriteQueue, unit_id: int,
                 wrong_unit: str, current: Callable[[str], Any], stats: ServerStats,
                 refused_log: RateLimitedLog, accepted_log: RateLimitedLog) -> None:
        self.refused_log = refused_log
        self.accepted_log = accepted_log
        self.regmap = regmap
        self.image = image
        self.writes = writes
        self.unit_id = unit_id
        self.answer_wrong_unit = wrong_unit == "exception"
        self.current = current
        self.stats = stats
        self._may_write: MayWrite | None = None  # of the request being handled
        self.read_only = ""  # when set, the reason every write is refused (shadow mode)
        self._dispatch: dict[int, Callable[[int, bytes, str], bytes]] = {
            0x01: self._read_bits, 0x02: self._read_bits,
            0x03: self._read_registers, 0x04: self._read_registers,
            0x05: self._write_single_coil, 0x06: self._write_single_register,
            0x0F: self._write_multiple_coils, 0x10: self._write_multiple_registers,
        }

    def handle(self, unit: int, pdu: bytes, client: str, may_write: MayWrite | None = None) -> bytes | None:
        """Answer one request PDU from ``client`` (for the log) addressed to ``unit``; count it by result.
        ``may_write(tag)`` says whether this client may write a tag (None: it may write every rw tag)."""
        self._may_write = may_write
        response = self._answer(unit, pdu, client)
        if response is None:
            result = "no_answer"
        elif response[0] == pdu[0]:
            result = "ok"
        else:
            result = ExcCodes(response[1]).name.lower() if response[1] in _EXC_VALUES else f"exception_{response[1]}"
        # Unknown codes share one label so a fuzzing client cannot grow the metric without bound.
        self.stats.requests_by_function[(FUNCTION_NAMES.get(pdu[0], "other"), result)] += 1
        return response

    def _answer(self, unit: int, pdu: bytes, client: str) -> bytes | None:
        function_code = pdu[0]
        if unit != self.unit_id:
            self.stats.wrong_unit += 1
            if self.answer_wrong_unit:
                return exception_pdu(function_code, ExcCodes.GATEWAY_NO_RESPONSE)
            return None
        method = self._dispatch.get(function_code)
        if method is None:
            self.stats.exceptions[ExcCodes.ILLEGAL_FUNCTION] += 1
            return exception_pdu(function_code, ExcCodes.ILLEGAL_FUNCTION)
        return method(function_code, pdu, client)

    def _exception(self, function_code: int, code: ExcCodes) -> bytes:
        self.stats.exceptions[code] += 1
        return exception_pdu(function_code, code)

    # ---- reads (the hot path) -------------------------------------------------------------------------------

    def _read_registers(self, function_code: int, pdu: bytes, client: str) -> bytes:
        if len(pdu) != 5:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        address = pdu[1] << 8 | pdu[2]
        count = pdu[3] << 8 | pdu[4]
        if not 1 <= count <= MAX_READ_REGISTERS:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        if self.image.runs[function_code][address] < address + count:
            return self._exception(function_code, ExcCodes.ILLEGAL_ADDRESS)
        start = 2 * address
        return bytes((function_code, 2 * count)) + self.image.registers[start:start + 2 * count]

    def _read_bits(self, function_code: int, pdu: bytes, client: str) -> bytes:
        if len(pdu) != 5:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        address = pdu[1] << 8 | pdu[2]
        count = pdu[3] << 8 | pdu[4]
        if not 1 <= count <= MAX_READ_BITS:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        if self.image.runs[function_code][address] < address + count:
            return self._exception(function_code, ExcCodes.ILLEGAL_ADDRESS)
        data = self.image.packed_bits(address, count)
        return bytes((function_code, len(data))) + data

    # ---- writes ---------------------------------------------------------------------------------------------

    def _write_single_coil(self, function_code: int, pdu: bytes, client: str) -> bytes:
        if len(pdu) != 5 or pdu[3:5] not in (b"\xff\x00", b"\x00\x00"):
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        address = pdu[1] << 8 | pdu[2]
        return self._write(function_code, client, BITS, address, [pdu[3] == 0xFF], pdu)

    def _write_single_register(self, function_code: int, pdu: bytes, client: str) -> bytes:
        if len(pdu) != 5:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        address = pdu[1] << 8 | pdu[2]
        return self._write(function_code, client, REGISTERS, address, [pdu[3:5]], pdu)

    def _write_multiple_coils(self, function_code: int, pdu: bytes, client: str) -> bytes:
        if len(pdu) < 6:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        address = pdu[1] << 8 | pdu[2]
        count = pdu[3] << 8 | pdu[4]
        size = (count + 7) // 8
        if not 1 <= count <= MAX_WRITE_BITS or pdu[5] != size or len(pdu) != 6 + size:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        packed = int.from_bytes(pdu[6:], "little")
        values = [bool(packed >> i & 1) for i in range(count)]
        return self._write(function_code, client, BITS, address, values, pdu[:5])

    def _write_multiple_registers(self, function_code: int, pdu: bytes, client: str) -> bytes:
        if len(pdu) < 6:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        address = pdu[1] << 8 | pdu[2]
        count = pdu[3] << 8 | pdu[4]
        if not 1 <= count <= MAX_WRITE_REGISTERS or pdu[5] != 2 * count or len(pdu) != 6 + 2 * count:
            return self._exception(function_code, ExcCodes.ILLEGAL_VALUE)
        words = [pdu[6 + 2 * i:8 + 2 * i] for i in range(count)]
        return self._write(function_code, client, REGISTERS, address, words, pdu[:5])

    def _write(self, function_code: int, client: str, space: str, address: int, items: list[Any],
               reply: bytes) -> bytes:
        """Check a whole write request, queue it for the next latch as one group, log every tag."""
        table = TABLE_OF_SPACE[space]
        try:
            planned = self._plan(space, address, items)
        except Refused as refused:
            self.stats.writes_refused += 1
            self._log_refused(client, table, address, refused)
            return self._exception(function_code, refused.code)
        self.writes.put(tuple((point.name, value) for point, value in planned))
        self.stats.writes_accepted += 1
        for point, value in planned:
            self.accepted_log.log("write accepted from %s: %s %s -> %s (%s %d; lands at the next scan)", client,
                                  point.name, self._old(point), point.tag.format(value), table, point.address)
        return reply

    def _plan(self, space: str, address: int, items: list[Any]) -> list[tuple[Point, Any]]:
        """(point, value) for every tag a write covers, or Refused: 02 before 03, as the Modbus spec orders."""
        if self.read_only:
            raise Refused(ExcCodes.ILLEGAL_FUNCTION, self.read_only)
        end = address + len(items)
        if end > 65536:
            raise Refused(ExcCodes.ILLEGAL_ADDRESS, f"runs past address 65535 (to {end - 1})")
        points: list[Point] = []
        for at in range(address, end):
            point = self.regmap.owner(space, at)
            if point is None:
                raise Refused(ExcCodes.ILLEGAL_ADDRESS, f"no tag at {TABLE_OF_SPACE[space]} {at}")
            if not point.writable:
                item = items[at - address]
                raw = ("1" if item else "0") if space == BITS else "0x" + item.hex()
                raise Refused(ExcCodes.ILLEGAL_ADDRESS, "read-only", point, raw)
            if not points or points[-1] is not point:
                if self._may_write is not None and not self._may_write(point.name):
                    raise Refused(ExcCodes.ILLEGAL_FUNCTION, "this client may not write it (server.writers)", point)
                points.append(point)
        planned = []
        for point in points:
            first = point.address - address
            if first < 0 or point.end > end:
                raise Refused(ExcCodes.ILLEGAL_VALUE, f"covers half of a {point.dtype}", point)
            if space == BITS:
                value = items[first]
            else:
                data = b"".join(items[first:first + point.width])
                try:
                    value = point.decode(data)
                except ValueError as exc:
                    raise Refused(ExcCodes.ILLEGAL_VALUE, str(exc), point, "0x" + data.hex()) from None
            if not point.tag.in_range(value):
                raise Refused(ExcCodes.ILLEGAL_VALUE, f"outside {limits_text(point)}", point,
                              point.tag.format(value))
            planned.append((point, value))
        return planned

    def _old(self, point: Point) -> str:
        try:
            return point.tag.format(self.current(point.name))
        except (KeyError, IndexError, TypeError):
            return "?"

    def _log_refused(self, client: str, table: str, address: int, refused: Refused) -> None:
        point = refused.point
        if point is None:
            self.refused_log.log("write refused from %s: %s %d: %s (exception %02d)", client, table, address,
                                 refused, refused.code)
            return
        new = "" if refused.new is None else f" -> {refused.new}"
        self.refused_log.log("write refused from %s: %s %s%s: %s (exception %02d)", client, point.name,
                             self._old(point), new, refused, refused.code)


class Connection(asyncio.BufferedProtocol):
    """One client connection: MBAP framing, pipelined requests, back-pressure, idle bookkeeping.

    Requests are read into a small fixed buffer (``READ_BUFFER``), so one callback handles at most a few
    hundred pipelined requests before the loop serves other clients and other threads get a turn.
    Admission (allowlist, cap) and the idle sweep are the Gate's; TLS, when configured for this listener,
    is started only after admission, so a refused client never gets a handshake.
    """

    def __init__(self, handler: RequestHandler, gate: Gate, stats: ServerStats, tls: Any = None) -> None:
        self.handler = handler
        self.gate = gate
        self.stats = stats
        self.tls = tls
        self.transport: asyncio.BaseTransport | None = None
        self.client = "?"
        self.host = ""
        self.buffer = bytearray(READ_BUFFER)
        self.view = memoryview(self.buffer)
        self.filled = 0
        self.last_request = 0.0
        self.partial_since: float | None = None  # when the incomplete frame in the buffer began arriving
        self.may_write: MayWrite | None = None
        self.closed = False

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        """Admit or refuse the client; start TLS on a TLS listener."""
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.host = str(peer[0])
        self.client = f"[{peer[0]}]:{peer[1]}" if ":" in self.host else f"{peer[0]}:{peer[1]}"
        if not self.gate.admit(self):
            self.closed = True
            transport.abort()  # type: ignore[attr-defined]
            return
        transport.set_write_buffer_limits(high=WRITE_BUFFER)  # type: ignore[attr-defined]
        if self.tls is not None:
            transport.pause_reading()  # type: ignore[attr-defined]
            self.may_write = self.gate.writers.for_client(self.host, frozenset())  # until the certificate is seen
            self.gate.loop.create_task(self._start_tls())
        else:
            self.may_write = self.gate.writers.for_client(self.host, None)

    async def _start_tls(self) -> None:
        loop = self.gate.loop
        try:
            self.transport = await loop.start_tls(self.transport, self, self.tls, server_side=True,  # type: ignore[arg-type]
                                                  ssl_handshake_timeout=self.gate.handshake_timeout)
        except (TimeoutError, OSError, ConnectionError) as exc:
            self.gate.refusals.log("TLS handshake with %s failed: %s", self.client, exc or type(exc).__name__)
            self.close(abort=True)
            return
        if self.transport is None:
            self.close(abort=True)
            return
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER)  # type: ignore[attr-defined]
        cert = self.transport.get_extra_info("peercert") or {}
        subject = dict(item[0] for item in cert.get("subject", ()))
        roles = certificate_roles(cert)
        self.may_write = self.gate.writers.for_client(self.host, roles)
        log.info("TLS client %s authenticated as %r, roles: %s", self.client,
                 subject.get("commonName", "(no certificate)"), ", ".join(sorted(roles)) or "none")

    def connection_lost(self, exc: Exception | None) -> None:
        """Free the client's slot."""
        self.closed = True
        self.gate.release(self)

    def close(self, abort: bool = False) -> None:
        """Close now (abort: without flushing). Safe to call twice."""
        if self.transport is not None and not self.closed:
            self.closed = True
            if abort:
                self.transport.abort()  # type: ignore[attr-defined]
            else:
                self.transport.close()
        self.gate.release(self)

    @property
    def has_unsent_output(self) -> bool:
        """Answers still waiting to be taken by the client."""
        transport = self.transport
        return transport is not None and transport.get_write_buffer_size() > 0  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        # A client that sends requests but never reads the answers: stop reading its requests until
        # the socket drains, so it cannot make the server buffer without bound.
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[union-attr]

    # ---- framing --------------------------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next bytes from the socket go: the free end of the fixed read buffer."""
        return self.view[self.filled:]

    def buffer_updated(self, nbytes: int) -> None:
        """Answer every complete frame in the buffer (one write for all), keep a partial one for later."""
        buffer, view = self.buffer, self.view
        size = self.filled + nbytes
        position = 0
        replies = []
        handle = self.handler.handle
        may_write = self.may_write
        while size - position >= 6:  # transaction id, protocol id, length: enough to judge the header
            length = buffer[position + 4] << 8 | buffer[position + 5]
            if buffer[position + 2] or buffer[position + 3] or not 2 <= length <= MAX_PDU + 1:
                self.stats.frames_malformed += 1
                self.gate.malformed.log("closing %s: bad MBAP header %s (protocol id must be 0, length 2..%d)",
                                        self.client, buffer[position:position + 6].hex(" "), MAX_PDU + 1)
                self._close_after(replies)
                return
            end = position + 6 + length
            if end > size:
                break  # the rest of the frame has not arrived; the idle sweep drops a client that never sends it
            self.stats.requests += 1
            unit = buffer[position + 6]
            response = handle(unit, view[position + 7:end].tobytes(), self.client, may_write)
            if response is not None:
                replies.append(view[position:position + 4].tobytes() + (len(response) + 1).to_bytes(2, "big")
                               + bytes((unit,)) + response)
            position = end
        if position:
            buffer[:size - position] = buffer[position:size]  # keep the start of an incomplete frame
            self.last_request = self.gate.loop.time()
        self.filled = size - position
        if not self.filled:
            self.partial_since = None
        elif position or self.partial_since is None:
            self.partial_since = self.gate.loop.time()  # a new frame began arriving; the sweep times it
        if replies and not self.closed:
            self.transport.write(b"".join(replies))  # type: ignore[union-attr]

    def _close_after(self, replies: list[bytes]) -> None:
        """Close after answering the complete requests read before a bad frame (abort if they cannot go out)."""
        if replies and not self.closed:
            self.transport.write(b"".join(replies))  # type: ignore[union-attr]
        self.close(abort=self.has_unsent_output)
