"""VE.Direct text protocol (Victron SmartShunt, BMV): frames over a serial port, fields mapped to tags.

The device talks on its own (19200 8N1, a block about every second); each field is ``\\r\\n<label>\\t<value>``
and a block ends with a ``Checksum`` field whose single byte makes the modulo-256 sum of the block zero.
HEX-protocol messages (``:...\\n``) may be interleaved; they are skipped and not part of the sum.

- ``VEDirectParser`` is sans-I/O: ``feed(bytes) -> [Frame]``. A frame with a wrong checksum comes back with
  ``ok=False`` and is dropped by the driver (counted as a decode error, its mapped fields turn BAD). A block
  cut off by a pause of more than ``GAP`` seconds (the device or cable stopped mid-block) is ended by
  ``reset()`` as a ``truncated`` frame, so the next block parses cleanly instead of failing with it.
- ``VEDirectDevice.decode(frame)`` maps labels to tags with the point's scale (default: the field's natural
  unit, see ``FIELDS``) and offset.
- ``VEDirectLink`` reads the port on the driver loop; no valid frame for ``timeout`` counts a timeout and
  turns the inputs BAD; a port that cannot be opened or disappears is retried with backoff (at least every
  second). A device that falls silent is heard again with its next block: the port stays open.

io_map.yaml keys of ``driver: vedirect`` (the common keys: config.py; a port carries one device)::

        port:                required. serial device, e.g. /dev/ttyUSB0
        baud:                bits per second, default 19200
        parity:              N | E | O, default N (8 data bits always)
        stopbits:            1 | 2, default 1
        timeout:             no valid frame for this long counts a timeout and turns the inputs BAD,
                             default 3s (a SmartShunt sends a block every second)
        inputs:
          - field:           required. V VS VM DM I P CE SOC TTG T Alarm Relay AR H1..H18
            scale:           default converts to the field's natural unit: V/VS/VM/H7/H8/H15/H16 mV -> V,
                             I mA -> A, CE/H1/H2/H3/H6 mAh -> Ah, SOC/DM permille -> %, H17/H18 -> kWh;
                             1 for the rest. Alarm and Relay are ON/OFF -> true/false (no scale).
            offset:          default 0
"""

from __future__ import annotations

import asyncio
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import serial

from runtime.config.schema import Optional, Required, Schema, number, one_of, positive_duration, tag_name
from runtime.drivers.base import Backoff, DeviceConfig, Driver, Health, Link, LinkContext
from runtime.drivers.keys import SERIAL, baud, serial_link
from runtime.drivers.state import DECODE, REFUSED, TIMEOUT
from runtime.tags import TagDef

# label -> default scale into the natural unit (V, A, W, Ah, %, min, degC, kWh)
FIELDS: dict[str, float] = {
    "V": 0.001, "VS": 0.001, "VM": 0.001, "DM": 0.1, "I": 0.001, "P": 1.0, "CE": 0.001, "SOC": 0.1,
    "TTG": 1.0, "T": 1.0, "Alarm": 1.0, "Relay": 1.0, "AR": 1.0,
    "H1": 0.001, "H2": 0.001, "H3": 0.001, "H4": 1.0, "H5": 1.0, "H6": 0.001, "H7": 0.001, "H8": 0.001,
    "H9": 1.0, "H10": 1.0, "H11": 1.0, "H12": 1.0, "H13": 1.0, "H14": 1.0, "H15": 0.001, "H16": 0.001,
    "H17": 0.01, "H18": 0.01,
}
ONOFF_FIELDS = frozenset({"Alarm", "Relay"})

GAP = 0.5  # s of silence inside a block that means it was cut off (a block streams in ~0.1 s)
_MAX_LABEL, _MAX_VALUE, _MAX_FIELDS = 16, 64, 64  # beyond these the stream is garbage, not VE.Direct

_WAIT, _KEY, _VALUE, _CHECKSUM, _HEX = range(5)
# One field as the byte machine takes it: label (no tab, CR or ':'), tab, value (no CR or ':'), then what it
# skips up to the next LF. A whole block: what precedes its first LF, its fields, the Checksum field and byte.
_FIELD_TEXT = rb"([^\t\r:]{0,16})\t([^\r:]{0,64})\r[^\n:]*\n"
_FIELD = re.compile(_FIELD_TEXT)
_BLOCK = re.compile(rb"[^\n:]*\n((?:" + _FIELD_TEXT.replace(b"(", b"(?:") + rb")*?)Checksum\t.", re.DOTALL)


@dataclass(frozen=True)
class FieldPoint:
    """tag <- one field of the text protocol, value = number * scale + offset (ON/OFF fields: true/false)."""

    tag: str
    field: str
    scale: float = 1.0
    offset: float = 0.0
    line: int = 0


@dataclass
class Frame:
    """One block: its fields (label -> text); ``ok`` when the checksum matched; ``reason`` why not."""

    fields: dict[str, str] = field(default_factory=dict)
    ok: bool = True
    reason: str = ""


class VEDirectParser:
    """Splits a VE.Direct text byte stream into frames; fed arbitrary chunks, keeps its state between them.

    Until the first complete block, the parser may have started mid-block: a bad first block is reported
    with reason ``partial`` (not a device fault) rather than ``checksum``.
    """

    def __init__(self) -> None:
        self.synced = False
        self._clear()

    def _clear(self) -> None:
        self._state = _WAIT
        self._resume = _WAIT
        self._sum = 0
        self._label = bytearray()
        self._value = bytearray()
        self._fields: dict[str, str] = {}
        self._dirty = False  # some byte of a block was seen since the last frame

    @property
    def in_block(self) -> bool:
        return self._dirty

    def reset(self) -> Frame | None:
        """End the current block (a pause cut it off); the truncated frame, or None between blocks."""
        frame = Frame(self._fields, False, "truncated") if self._dirty else None
        self._clear()
        return frame

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        position, end = 0, len(data)
        while position < end:
            if self._state == _WAIT and not self._dirty:  # between blocks: is a whole, well-formed one next?
                block = _BLOCK.match(data, position)
                if block is not None:
                    frame = self._whole_block(block)
                    if frame is not None:
                        frames.append(frame)
                        position = block.end()
                        continue
            position = self._bytes(data, position, end, frames)
        return frames

    def _bytes(self, data: bytes, position: int, end: int, frames: list[Frame]) -> int:
        """Byte by byte until a frame ends (a whole block may come next) or the data does; where it stopped."""
        for index in range(position, end):
            frame = self._byte(data[index])
            if frame is not None:
                frames.append(frame)
                return index + 1
        return end

    def _whole_block(self, block: re.Match[bytes]) -> Frame | None:
        """The frame of a complete block the byte machine would accept field by field, parsed in one go: the
        regular expression admits only what ``_byte`` takes as fields (no HEX, nothing abandoned, ended by
        its Checksum field), so the fields and the sum come out the same. None when it has too many fields
        (the byte machine abandons it)."""
        fields = _FIELD.findall(block.group(1))
        if len(fields) > _MAX_FIELDS:
            return None
        self._sum = (self._sum + sum(block.group(0))) & 0xFF
        self._fields = {label.decode("latin-1"): value.decode("latin-1") for label, value in fields}
        return self._finish()

    def _byte(self, byte: int) -> Frame | None:  # noqa: C901 - one small state machine reads best in one place
        state = self._state
        if state == _HEX:
            if byte == 0x0A:
                self._state = self._resume
            return None
        if byte == 0x3A and state != _CHECKSUM:  # ':' starts a HEX message, outside the checksum
            self._resume, self._state = state, _HEX
            return None
        self._sum = (self._sum + byte) & 0xFF
        self._dirty = True
        if state == _CHECKSUM:
            return self._finish()
        if state == _WAIT:
            if byte == 0x0A:
                self._state = _KEY
                self._label.clear()
            return None
        if state == _KEY:
            if byte == 0x09:
                self._state = _CHECKSUM if self._label == b"Checksum" else _VALUE
                self._value.clear()
            elif byte == 0x0D:
                self._state = _WAIT
            elif len(self._label) < _MAX_LABEL:
                self._label.append(byte)
            else:
                return self._abandon("label too long")
            return None
        if byte == 0x0D:  # _VALUE: a value ends where the next field's \r\n begins
            if len(self._fields) >= _MAX_FIELDS:
                return self._abandon("too many fields")
            self._fields[self._label.decode("latin-1")] = self._value.decode("latin-1")
            self._state = _WAIT
        elif len(self._value) < _MAX_VALUE:
            self._value.append(byte)
        else:
            return self._abandon("value too long")
        return None

    def _finish(self) -> Frame:
        ok = self._sum == 0
        reason = "" if ok else ("checksum" if self.synced else "partial")
        frame = Frame(self._fields, ok, reason)
        self.synced = True
        self._clear()
        return frame

    def _abandon(self, reason: str) -> Frame:
        frame = Frame(self._fields, False, reason)
        self.synced = False  # we are somewhere in garbage; the next block may start mid-way
        self._clear()
        return frame


def encode_frame(fields: Mapping[str, Any]) -> bytes:
    """A complete block with its checksum (for simulators and tests). Booleans become ON/OFF."""
    body = bytearray()
    for label, value in fields.items():
        text = ("ON" if value else "OFF") if isinstance(value, bool) else str(value)
        body += b"\r\n" + label.encode("latin-1") + b"\t" + text.encode("latin-1")
    body += b"\r\nChecksum\t"
    body.append((-sum(body)) & 0xFF)
    return bytes(body)


class VEDirectDevice:
    """The field -> tag mapping of one VE.Direct device, without I/O."""

    def __init__(self, config: DeviceConfig, defs: Mapping[str, TagDef] | None = None) -> None:
        self.config = config
        self.defs = defs or {}
        self.by_field: dict[str, list[FieldPoint]] = {}
        for point in config.inputs:
            self.by_field.setdefault(point.field, []).append(point)
        # label -> (tag, text -> value) of its points, made once: a device sends a block every second
        self._conversions = {label: [(p.tag, self.conversion(p)) for p in points]
                             for label, points in self.by_field.items()}
        # label -> (text, its values) of the last block: most fields read as they did a second ago
        self._last: dict[str, tuple[str, list[tuple[str, Any]]]] = {}

    def conversion(self, point: FieldPoint) -> Callable[[str], Any]:
        """text -> tag value for a point's field; it raises ValueError when the text is not a value ('---')."""
        tag = self.defs.get(point.tag)
        coerce = tag.number_coercer if tag is not None else None
        if point.field in ONOFF_FIELDS:
            def on_off(text: str) -> Any:
                word = text.strip().upper()
                if word not in ("ON", "OFF"):
                    raise ValueError(f"{point.field}: expected ON or OFF, got {text!r}")
                return word == "ON" if coerce is None else coerce(word == "ON")
            return on_off
        scale, offset = point.scale, point.offset

        def number(text: str) -> Any:
            value = int(text.strip()) * scale + offset
            if not math.isfinite(value):
                raise ValueError(f"{point.field}: {text!r} is not a number")
            return value if coerce is None else coerce(value)
        return number

    def decode(self, frame: Frame) -> dict[str, Any]:
        """{tag: value} for every mapped field in the frame whose text is a valid value."""
        out: dict[str, Any] = {}
        conversions = self._conversions
        for label, text in frame.fields.items():
            if label in conversions:
                out.update(self.field_values(label, text))
        return out

    def field_values(self, label: str, text: str) -> list[tuple[str, Any]]:
        """(tag, value) of the points of one mapped field's text; those whose text is no valid value left out."""
        seen = self._last.get(label)
        if seen is None or seen[0] != text:  # the same text converts to the same values
            seen = self._last[label] = (text, self._convert(label, text))
        return seen[1]

    def _convert(self, label: str, text: str) -> list[tuple[str, Any]]:
        values = []
        for tag, convert in self._conversions[label]:
            try:
                values.append((tag, convert(text)))
            except (TypeError, ValueError):
                continue
        return values


class VEDirectLink(Link):
    """One VE.Direct device on its serial port, read on the driver loop."""

    def __init__(self, config: DeviceConfig, ctx: LinkContext) -> None:
        super().__init__([config], ctx)
        self.config = config
        self.device = VEDirectDevice(config, ctx.defs)
        self.health = Health(config.name, ctx)
        # A port that failed is opened again at least every second (the device sends a block a second), so a
        # shunt plugged back in is read again within two of its blocks.
        cap = min(config.backoff_max, config.poll)
        self.backoff = Backoff(min(config.backoff_initial, cap), cap)
        self.parser = VEDirectParser()
        self._last_byte = 0.0
        self._last_frame = 0.0
        for label, points in self.device.by_field.items():
            ctx.sink.declare((config.name, label), [p.tag for p in points], config.stale_after)

    def _open(self) -> serial.Serial:
        parity = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}[self.config.parity]
        return serial.Serial(str(self.config.port), baudrate=self.config.baud, parity=parity,
                             stopbits=self.config.stopbits, bytesize=8, timeout=0)

    async def run(self) -> None:
        while not self.stopping:
            try:
                port = self._open()
            except (serial.SerialException, OSError) as exc:
                self.health.fail(REFUSED, f"cannot open {self.config.port}: {exc}")
                self._publish_bad(self.device.by_field)
                await self.pause(self.backoff.next())
                continue
            try:
                reason = await self._listen(port)
            finally:
                port.close()
            if reason is None:  # asked to stop
                return
            self.health.fail(REFUSED, f"{self.config.port}: {reason}")
            self._publish_bad(self.device.by_field)
            await self.pause(self.backoff.next())

    async def _listen(self, port: serial.Serial) -> str | None:
        """Feed the parser until the port fails (return why) or the link stops (None)."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[str] = loop.create_future()
        fd = port.fileno()
        self.parser = VEDirectParser()
        self._last_byte = self._last_frame = self.ctx.monotonic()

        def readable() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError as exc:
                data, reason = b"", str(exc)
            else:
                reason = "end of file"
            if not data:
                if not lost.done():
                    lost.set_result(reason)
                return
            now = self.ctx.monotonic()
            if now - self._last_byte > GAP:
                self._end_block(now)
            self._last_byte = now
            for frame in self.parser.feed(data):
                self._frame(frame, now)

        loop.add_reader(fd, readable)
        try:
            while not lost.done() and not self.stopping:
                await asyncio.wait([lost], timeout=min(GAP / 2, self.config.timeout / 4))
                self._watch(self.ctx.monotonic())
        finally:
            loop.remove_reader(fd)
        return lost.result() if lost.done() else None

    def _watch(self, now: float) -> None:
        if self.parser.in_block and now - self._last_byte > GAP:
            self._end_block(now)
        if now - self._last_frame > self.config.timeout:
            self.health.fail(TIMEOUT, f"no valid frame for {self.config.timeout:g}s")
            self._publish_bad(self.device.by_field)
            self._last_frame = now  # one timeout per silent period, not one per check

    def _end_block(self, now: float) -> None:
        frame = self.parser.reset()
        if frame is not None:
            self._frame(frame, now)

    def _frame(self, frame: Frame, now: float) -> None:
        by_field = self.device.by_field
        mapped = [label for label in frame.fields if label in by_field]
        if frame.ok:
            values = self.device.decode(frame)
            for label in mapped:
                tags = [p.tag for p in by_field[label]]
                self.ctx.sink.publish((self.config.name, label), {t: values[t] for t in tags if t in values}, now)
            self._last_frame = now
            self.backoff.reset()
            self.health.good()
        elif frame.reason != "partial":
            self.health.fail(DECODE, f"dropped a frame: {frame.reason}")
            self._publish_bad(mapped)

    def _publish_bad(self, labels: Any) -> None:
        now = self.ctx.monotonic()
        for label in labels:
            self.ctx.sink.publish((self.config.name, label), {}, now)


def make_links(devices: list[DeviceConfig], ctx: LinkContext) -> list[Link]:
    """One link per device: a VE.Direct port carries a single device."""
    return [VEDirectLink(device, ctx) for device in devices]


# ---- the simulator's side ----------------------------------------------------------------------------------

def field_text(value: Any) -> str:
    """A field value as the device writes it on the wire (booleans as ON/OFF)."""
    return ("ON" if value else "OFF") if isinstance(value, bool) else str(value)


class FramePoller:
    """A VE.Direct device for ``InlinePort``: each poll is one second of a simulated device's output.

    ``source`` (tools/plantsim/devices.py ``ShuntFrames``) gives ``fields(history) -> blocks`` (label ->
    value), ``frame() -> bytes`` (b'' when silent) and ``fault``. Healthy blocks are handed to the field
    decoder as parsed frames (label -> the exact text the device sends), skipping the byte framing just as
    the Modbus path skips the TCP framing; with ``wire`` (and always while the device is faulted) the bytes go
    through ``VEDirectParser``, so a corrupt or cut-off block is judged by the real parser. The tests prove
    both give the same values.
    """

    def __init__(self, config: DeviceConfig, defs: Mapping[str, TagDef], source: Any, wire: bool = False) -> None:
        self.config = config
        self.frames = source
        self.device = VEDirectDevice(config, defs)
        self.parser = VEDirectParser()
        self.wire = wire
        self.mapped = frozenset(self.device.by_field)
        self.history = any(label.startswith("H") for label in self.mapped)
        # label -> (the field's last value, its (tag, value) pairs): most fields send what they sent a second
        # ago, and the same value (of the same type: True is not 1) is the same text
        self._seen: dict[str, tuple[Any, list[tuple[str, Any]]]] = {}
        self._labels = tuple(self.device.by_field)
        # the mapped fields of the last healthy poll as sent (None: not sent) and their types, and its values
        self._sent: tuple[Any, ...] | None = None
        self._kinds: tuple[type, ...] = ()
        self._values: Mapping[str, Any] = {}

    def poll(self) -> Mapping[str, Any]:
        """The values of one second's blocks, read-only: the very mapping of the last poll when every mapped
        field came as it did then (most seconds of a steady shunt; the read group then skips its checks)."""
        frames = self.frames
        if frames.fault is None and not self.wire:
            blocks = frames.fields(history=self.history)
            sent: tuple[Any, ...] = ()
            for block in blocks:  # C-level lookups of the mapped labels only
                sent += tuple(map(block.get, self._labels))
            kinds = tuple(map(type, sent))
            if sent != self._sent or kinds != self._kinds:
                self._sent, self._kinds = sent, kinds
                self._values = self._decode_fields(blocks)
            return self._values
        return self._from_wire(frames.frame())

    def _decode_fields(self, blocks: tuple[Mapping[str, Any], ...]) -> dict[str, Any]:
        """The values of healthy blocks, as the field decoder makes them of the text the device sends."""
        # the decoder ignores labels it has no point for, so only the mapped ones are spelled out
        mapped, seen, device = self.mapped, self._seen, self.device
        values: dict[str, Any] = {}
        for block in blocks:
            for label, value in block.items():
                if label in mapped:
                    last = seen.get(label)
                    if last is None or last[0] != value or last[0].__class__ is not value.__class__:
                        last = seen[label] = (value, device.field_values(label, field_text(value)))
                    values.update(last[1])
        return values

    def _from_wire(self, data: bytes) -> dict[str, Any]:
        if not data:
            raise TimeoutError(f"{self.config.name}: no frame")
        values: dict[str, Any] = {}
        parsed = self.parser.feed(data)
        cut = self.parser.reset()  # the next second starts a fresh block, as after a pause on the wire
        if cut is not None:
            parsed.append(cut)
        for frame in parsed:
            if frame.ok:
                values.update(self.device.decode(frame))
        if not values:
            raise ValueError(f"{self.config.name}: no valid frame ({', '.join(f.reason for f in parsed)})")
        return values

    def commit(self, outputs: Mapping[str, Any]) -> None:
        """A SmartShunt takes no writes."""


# ---- io_map.yaml: keys and point rules ---------------------------------------------------------------------

INPUT = Schema({
    Required("tag"): tag_name,
    Required("field"): one_of(*FIELDS),
    Optional("scale"): number,
    Optional("offset"): number,
})

KEYS = {
    **SERIAL,
    Optional("baud", default=19200): baud,
    Optional("timeout", default=3.0): positive_duration,
}


def input_point(p: dict, rules: Any) -> FieldPoint | None:
    """A validated field point: ON/OFF fields take no scale; the others default to the field's natural unit."""
    field_ = p["field"]
    if field_ in ONOFF_FIELDS:
        if "scale" in p or "offset" in p:
            rules.error(None, f"field {field_} is ON/OFF (true/false); it takes no scale or offset")
            return None
    elif not rules.scale(p.get("scale", FIELDS[field_]), p.get("offset", 0.0), output=False):
        return None
    return FieldPoint(p["tag"], field_, p.get("scale", FIELDS[field_]), p.get("offset", 0.0), line=rules.where.line)


DRIVER = Driver("vedirect", "VE.Direct", KEYS, INPUT, input_point, link_key=serial_link, make_links=make_links,
                simulated="vedirect_text", inline_poller=FramePoller, shares_link=False)
