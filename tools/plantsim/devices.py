"""The plant as devices: register banks and VE.Direct frames that io_map.yaml reads, with fault injection.

The register layout is not repeated here: each bank is built from the site's io_map points (addresses, data
types, word order, scale, offset), so the plant serves exactly what the runtime reads. What this file
knows is the *meaning* of each tag on the device side: ``MEASURED`` says which plant quantity a device
reports for an input tag (``bms1.cell_3`` is the third cell's voltage), ``DRIVEN`` which plant input an
output tag drives (``charger.voltage_sp`` is the charger module's CV setpoint).

- ``RegisterBank``: the registers and bits of one Modbus device. ``read(unit, table, address, count)``
  encodes the plant's present values (once per plant step) and returns the slice; ``write(...)`` stores the
  words and decodes every output point it touched into the plant. These are the callables the drivers'
  ``SyncPoller`` wants, and what the TCP servers of ``serve.py`` answer from.
- ``ShuntFrames``: the two VE.Direct text blocks a SmartShunt sends every second, from the plant's shunt.
- Faults, per device (``set_fault``): ``offline`` (no answer: ``NoAnswer`` in-process, silence on the wire),
  ``timeout`` (the answer comes too late: ``NoAnswer`` in-process, a delayed answer on the wire) and
  ``garbage`` (Modbus exception answers alternating with short answers; VE.Direct blocks with a wrong
  checksum alternating with truncated ones).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from operator import attrgetter, getitem
from typing import Any

from runtime.config.errors import ConfigError, ConfigErrors
from runtime.drivers.base import DeviceConfig, Poller
from runtime.drivers.codec import BIT_TABLES, RANGE, InputPoint, OutputPoint, decode_raw, interpolate
from runtime.drivers.config import DRIVERS
from runtime.drivers.vedirect import encode_frame
from runtime.tags import TagDef
from tools.plantsim.model import Plant
from tools.plantsim.plant.sensors import SensorFault

FAULT_KINDS = ("offline", "timeout", "garbage")

# JK-style alarm bits (the JK PB alarm word, as far as the model has causes for them)
ALARM_BITS = {
    ("charge", "cell_ov"): 1 << 4,
    ("charge", "temp_high"): 1 << 8,
    ("charge", "temp_low"): 1 << 9,
    ("discharge", "cell_uv"): 1 << 11,
    ("discharge", "temp_low"): 1 << 9,
    ("discharge", "temp_high"): 1 << 15,
}


def bms_alarms(bms: Any) -> int:
    return (ALARM_BITS.get(("charge", bms.charge_block_reason), 0)
            | ALARM_BITS.get(("discharge", bms.discharge_block_reason), 0))


MAX_PACKS = 8
Reading = Callable[[], Any]  # a measure bound to one plant's objects: the bank's encoding loop calls it bare


def _zero() -> float:
    return 0.0


class PackMeasure:
    """What BMS ``bms<n>`` measures on its own pack (``packs[n - 1]``); 0 where the plant has fewer packs
    (or the pack fewer cells). ``pack_reading(pack)`` binds the quantity to a pack's own objects (the pack and
    its cell and sensor lists live, updated in place, as long as the plant), None where the pack lacks it."""

    __slots__ = ("index", "pack_reading")

    def __init__(self, index: int, pack_reading: Callable[[Any], Reading | None]) -> None:
        self.index = index
        self.pack_reading = pack_reading

    def bind(self, plant: Plant) -> Reading:
        """The reading as a call without arguments (no plant walk per call: a C-level getter where it can be)."""
        packs = plant.packs
        reading = self.pack_reading(packs[self.index]) if self.index < len(packs) else None
        return reading if reading is not None else _zero

    def __call__(self, plant: Plant) -> Any:
        return self.bind(plant)()


def _item(name: str, k: int) -> Callable[[Any], Reading | None]:
    """The k-th entry of a list attribute of the pack (cell voltages, temperature sensors)."""
    def reading(pack: Any) -> Reading | None:
        values = getattr(pack, name)
        return partial(getitem, values, k) if k < len(values) else None
    return reading


def _attribute(path: str) -> Callable[[Any], Reading]:
    return lambda pack: partial(attrgetter(path), pack)


def _unit(number: int) -> dict[str, PackMeasure]:
    """What BMS ``bms<number>`` measures: its own pack (packs[number - 1])."""
    index = number - 1
    prefix = f"bms{number}"
    measures = {
        **{f"cell_{k + 1}": _item("cell_voltages", k) for k in range(32)},
        "voltage": _attribute("voltage"),
        "current": _attribute("current"),
        "soc": _attribute("bms.soc_pct"),
        "temp_1": _item("temperatures", 0),
        "temp_2": _item("temperatures", 1),
        "capacity_ah": _attribute("capacity_ah"),
        "charge_allowed": _attribute("bms.charge_allowed"),
        "discharge_allowed": _attribute("bms.discharge_allowed"),
        "alarms": lambda pack: partial(bms_alarms, pack.bms),
    }
    return {f"{prefix}.{name}": PackMeasure(index, reading) for name, reading in measures.items()}


# input tag -> what the device measures in the plant, in the tag's unit
MEASURED: dict[str, Callable[[Plant], Any]] = {
    **{tag: measure for n in range(1, MAX_PACKS + 1) for tag, measure in _unit(n).items()},
    # (attrgetter: the banks read these every plant step, and a C-level getter is the cheapest call)
    "grid.power": attrgetter("meter.grid_power"),
    "pv.power": attrgetter("meter.pv_power"),
    "house.power": attrgetter("meter.house_power"),
    "charger.voltage": attrgetter("charger.output_voltage"),
    "charger.current": attrgetter("charger.current"),
    "inverter.power": attrgetter("inverter.ac_power"),
}


def bind(measure: Callable[[Plant], Any], plant: Plant) -> Reading:
    """A MEASURED entry as a call without arguments on ``plant``."""
    return measure.bind(plant) if isinstance(measure, PackMeasure) else partial(measure, plant)


def _set(obj: Callable[[Plant], Any], attr: str, kind: type) -> Callable[[Plant, Any], None]:
    def drive(plant: Plant, value: Any) -> None:
        setattr(obj(plant), attr, kind(value))
    return drive


# output tag -> the plant input it drives
DRIVEN: dict[str, Callable[[Plant, Any], None]] = {
    "charger.enable": _set(lambda p: p.charger, "enable", bool),
    "charger.voltage_sp": _set(lambda p: p.charger, "voltage_sp", float),
    "charger.current_sp": _set(lambda p: p.charger, "current_sp", float),
    "inverter.enable": _set(lambda p: p.inverter, "enable", bool),
    "inverter.power_sp": _set(lambda p: p.inverter, "power_sp", float),
    "heater.enable": _set(lambda p: p.pack, "heater_on", bool),
    "fan.enable": _set(lambda p: p.pack, "fan_on", bool),
}


class NoAnswer(TimeoutError):
    """The simulated device did not answer (offline, or too late for the request's timeout)."""


class ExceptionAnswer(Exception):
    """The simulated device answered with a Modbus exception (code 4, device failure)."""


def unknown_tags(configs: Iterable[DeviceConfig]) -> list[str]:
    """Points the plant cannot serve: input tags without a MEASURED meaning, output tags without a DRIVEN one."""
    missing = []
    for config in configs:
        missing += [p.tag for p in config.inputs if isinstance(p, InputPoint) and p.tag not in MEASURED]
        missing += [p.tag for p in config.outputs if p.tag not in DRIVEN]
    return missing


# ---- Modbus devices ----------------------------------------------------------------------------------------

Encoder = Callable[[], None]


class Table:
    """The words (or bits) of one table of a bank: a list over the addresses the device maps, so a read of
    them is one slice; any other address reads as blank (0 or False) and keeps what is written to it."""

    def __init__(self, span: tuple[int, int], blank: int | bool) -> None:
        self.first, end = span
        self.cells: list[Any] = [blank] * (end - self.first)
        self.blank = blank
        self._elsewhere: dict[int, Any] = {}

    def get(self, address: int) -> Any:
        i = address - self.first
        return self.cells[i] if 0 <= i < len(self.cells) else self._elsewhere.get(address, self.blank)

    __getitem__ = get

    def put(self, address: int, value: Any) -> None:
        i = address - self.first
        if 0 <= i < len(self.cells):
            self.cells[i] = value
        else:
            self._elsewhere[address] = value

    def read(self, address: int, count: int) -> list[Any]:
        i = address - self.first
        if i >= 0 and i + count <= len(self.cells):
            return self.cells[i:i + count]
        return [self.get(a) for a in range(address, address + count)]


# An integer point, for the bank's encoding loop: (reading, cells, index of the (high) word, index of the low
# word or None for a 16-bit point, offset, 1 / scale, lowest and highest raw value of its type).
IntegerPoint = tuple[Reading, list[Any], int, "int | None", float, float, int, int]


def _integer_point(point: InputPoint, table: Table, measure: Reading | None) -> IntegerPoint | None:
    """An (u)int16/(u)int32 input with a plant measure, as the encoding loop of ``RegisterBank`` takes it."""
    if measure is None or point.table in BIT_TABLES or point.type not in RANGE:
        return None
    index = point.address - table.first  # the bank's span covers every point
    first, second = (index, index + 1) if point.word_order == "big" else (index + 1, index)
    lo, hi = RANGE[point.type]
    return (measure, table.cells, first, second if point.width == 2 else None, point.offset, 1.0 / point.scale,
            lo, hi)


def _encode_integers(points: list[IntegerPoint]) -> None:
    """Integer points written the way a device's firmware does: rounded half away from zero and clamped to
    the type (a reading saturates instead of wrapping); one loop, as most of a BMS's registers are these."""
    for measure, cells, first, second, offset, inverse_scale, lo, hi in points:
        raw = (measure() - offset) * inverse_scale
        n = int(raw + 0.5) if raw >= 0 else -int(0.5 - raw)
        n = lo if n < lo else (hi if n > hi else n)
        if second is None:
            cells[first] = n & 0xFFFF
        else:
            n &= 0xFFFFFFFF
            cells[first] = n >> 16
            cells[second] = n & 0xFFFF


def _encoder(point: InputPoint, table: Table, measure: Reading | None) -> Encoder:
    """A function that writes the present plant value of a bit or float point into the bank's registers.

    This is the device's side of the wire, written independently of the drivers' decoder (the tests prove
    the round trip through it). Integer points go through ``_encode_integers``.
    """
    if measure is None:
        return lambda: None
    cells, index = table.cells, point.address - table.first  # the bank's span covers every point
    if point.table in BIT_TABLES:
        def put_bit() -> None:
            cells[index] = bool(measure())
        return put_bit
    if point.type == "bit":
        mask = 1 << (point.bit or 0)

        def put_flag() -> None:
            word = cells[index]
            cells[index] = (word | mask) if measure() else (word & ~mask)
        return put_flag
    first, second = (index, index + 1) if point.word_order == "big" else (index + 1, index)
    pack = struct.Struct(">f").pack
    unpack = struct.Struct(">HH").unpack
    scale, offset = point.scale, point.offset

    def put_float() -> None:
        cells[first], cells[second] = unpack(pack((measure() - offset) / scale))
    return put_float


def _decoder(point: OutputPoint) -> Callable[[Table, Table], Any]:
    """The tag value a device reads from the registers (or coil) its output point was written to."""
    if point.table == "coil":
        return lambda registers, coils: coils.get(point.address)
    inverse = sorted((raw, value) for value, raw in point.lookup)  # raw -> value, by raw

    def value(registers: Table, coils: Table) -> Any:
        words = [registers.get(point.address + i) for i in range(point.width)]
        raw = decode_raw(words, point.type, point.word_order)
        if inverse:
            return interpolate(inverse, raw)
        return raw * point.scale + point.offset
    return value


class RegisterBank:
    """The registers of one simulated Modbus device: inputs encoded from the plant, writes decoded into it."""

    def __init__(self, config: DeviceConfig, plant: Plant, lock: threading.Lock | None = None) -> None:
        self.config = config
        self.plant = plant
        self.lock = lock or threading.Lock()
        self.fault: str | None = None
        spans = self.spans()
        self.tables = {table: Table(spans.get(table, (0, 0)), False if table in BIT_TABLES else 0)
                       for table in ("holding", "input", "coil", "discrete")}
        self.registers = {table: self.tables[table] for table in ("holding", "input")}
        self.bits = {table: self.tables[table] for table in BIT_TABLES}
        self.writes = 0  # stores from a client: shadow mode is proven by none over a run (tests/runtime/test_shadow.py)
        self._garbage_turn = 0
        self.sensor_faults: dict[str, SensorFault] = {}
        self._build_encoders()
        self._outputs: dict[tuple[str, int], list[tuple[OutputPoint, Any]]] = {}
        for point in config.outputs:
            decode = _decoder(point)
            for i in range(point.width):
                self._outputs.setdefault((point.table, point.address + i), []).append((point, decode))
        self._stamp: float | None = None
        self.refresh()

    def _measure(self, point: InputPoint) -> Reading | None:
        """What the device reports for a point: the plant's quantity, through its sensor fault if it has one."""
        measure = MEASURED.get(point.tag)
        if measure is None:
            return None
        reading = bind(measure, self.plant)
        fault = self.sensor_faults.get(point.tag)
        if fault is None:
            return reading
        fault.scale, fault.offset = point.scale, point.offset
        plant = self.plant
        return lambda: fault.apply(reading(), plant.time_s)

    def _build_encoders(self) -> None:
        integers = [(_integer_point(p, self.tables[p.table], self._measure(p)), p) for p in self.config.inputs]
        self._integers = [integer for integer, _ in integers if integer is not None]
        self._encoders = [_encoder(p, self.tables[p.table], self._measure(p))
                          for integer, p in integers if integer is None]

    def set_sensor_fault(self, tag: str, fault: SensorFault | None) -> None:
        """Start (or with None end) a sensor fault on one of the device's input tags."""
        if tag not in {p.tag for p in self.config.inputs}:
            raise KeyError(tag)
        if fault is None:
            self.sensor_faults.pop(tag, None)
        else:
            fault.since = self.plant.time_s
            self.sensor_faults[tag] = fault
        self._build_encoders()
        self._stamp = None
        self.refresh()

    def spans(self) -> dict[str, tuple[int, int]]:
        """table -> (first, end) address range the device answers for (inputs and outputs)."""
        spans: dict[str, tuple[int, int]] = {}
        points: list[Any] = [*self.config.inputs, *self.config.outputs]
        for p in points:
            first, end = spans.get(p.table, (p.address, p.address + p.width))
            spans[p.table] = (min(first, p.address), max(end, p.address + p.width))
        return spans

    def refresh(self) -> None:
        """Encode the plant's present values, once per plant step."""
        stamp = self.plant.time_s
        if stamp == self._stamp:
            return
        self._stamp = stamp
        _encode_integers(self._integers)
        for encode in self._encoders:
            encode()

    def _check_fault(self) -> None:
        fault = self.fault
        if fault is None:
            return
        if fault == "garbage":
            raise ExceptionAnswer(f"{self.config.name}: exception 4 (device failure)")
        raise NoAnswer(f"{self.config.name}: {fault}")

    def read(self, unit: int, table: str, address: int, count: int) -> list[Any]:
        """Registers (ints) or bits (bools) as the device answers a read in-process; raises while faulted."""
        if self.fault is None:
            return self.load(table, address, count)
        if self.fault == "garbage":
            self._garbage_turn ^= 1
            if self._garbage_turn:  # every other answer is one register short instead of an exception
                return self.load(table, address, count - 1)
        self._check_fault()
        return self.load(table, address, count)

    def write(self, unit: int, table: str, address: int, values: Sequence[Any]) -> None:
        """A write in-process; raises while faulted (the device never saw it)."""
        self._check_fault()
        self.store(table, address, values)

    def load(self, table: str, address: int, count: int) -> list[Any]:
        """The present registers or bits, fault or not (the wire server applies faults itself)."""
        with self.lock:
            if self.plant.time_s != self._stamp:  # refresh()'s own test, here to save the call on repeat reads
                self.refresh()
            return self.tables[table].read(address, count)

    def store(self, table: str, address: int, values: Sequence[Any]) -> None:
        """Keep written words (or coils) and drive the plant inputs of every output point they touch."""
        self.writes += 1
        with self.lock:
            store = self.tables[table]
            touched: dict[str, Any] = {}
            for i, value in enumerate(values):
                store.put(address + i, bool(value) if table in BIT_TABLES else int(value) & 0xFFFF)
                for point, decode in self._outputs.get((table, address + i), ()):
                    touched[point.tag] = decode
            for tag, decode in touched.items():
                drive = DRIVEN.get(tag)
                if drive is not None:
                    drive(self.plant, decode(self.tables["holding"], self.tables["coil"]))


# ---- VE.Direct ---------------------------------------------------------------------------------------------

class ShuntFrames:
    """The VE.Direct text blocks of a SmartShunt, from the plant's shunt model, with its history fields."""

    PID = "0xA389"

    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.fault: str | None = None
        self._garbage_turn = 0
        self._v_min = self._v_max = plant.shunt.voltage
        self._deepest_ah = plant.shunt.consumed_ah
        self._drawn_ah = 0.0
        self._full_at = 0.0 if plant.shunt.soc >= 1.0 else None
        self._syncs = plant.shunt.syncs
        self._stamp = plant.time_s

    def fields(self, history: bool = True) -> tuple[dict[str, Any], ...]:
        """The main block and (with ``history``) the history block, as label -> value."""
        p = self.plant
        s = p.shunt
        dt = p.time_s - self._stamp
        self._stamp = p.time_s
        if s.current < 0:
            self._drawn_ah += s.current * dt / 3600.0
        volts = s.voltage
        if volts < self._v_min:
            self._v_min = volts
        elif volts > self._v_max:
            self._v_max = volts
        if s.consumed_ah < self._deepest_ah:
            self._deepest_ah = s.consumed_ah
        if s.syncs != self._syncs:
            self._syncs = s.syncs
            self._full_at = p.time_s
        main = {
            "PID": self.PID, "V": round(volts * 1000), "T": round(s.temperature),
            "I": round(s.current * 1000), "P": round(s.power), "CE": round(s.consumed_ah * 1000),
            "SOC": s.soc_permille, "TTG": round(s.time_to_go_min), "Alarm": False, "AR": 0,
            "BMV": "SmartShunt 300A/50mV", "FW": "0417", "MON": 0,
        }
        if not history:
            return (main,)
        since_full = int(p.time_s - self._full_at) if self._full_at is not None else 0
        return main, {
            "H1": round(self._deepest_ah * 1000), "H2": round(s.consumed_ah * 1000), "H3": 0, "H4": 0, "H5": 0,
            "H6": round(self._drawn_ah * 1000), "H7": round(self._v_min * 1000), "H8": round(self._v_max * 1000),
            "H9": since_full, "H10": s.syncs, "H11": 0, "H12": 0, "H15": 0, "H16": 0,
            "H17": round(p.discharged_kwh * 100), "H18": round(p.charged_kwh * 100),
        }

    def frame(self) -> bytes:
        """The bytes the shunt sends this second: two blocks, faulted as set (b'' when silent)."""
        main, history = self.fields()
        data = encode_frame(main) + encode_frame(history)
        if self.fault is None:
            return data
        if self.fault != "garbage":
            return b""
        self._garbage_turn ^= 1
        if self._garbage_turn:  # a flipped bit: the checksum no longer adds up
            i = data.index(b"\nV\t") + 3  # the first digit of the voltage
            return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
        return data[: len(data) // 3]  # cut off mid-block


# ---- the whole site ----------------------------------------------------------------------------------------

# The simulated device of each kind a driver names (``Driver.simulated``): (plant, config, lock) -> device.
COUNTERPARTS: dict[str, Callable[[Plant, DeviceConfig, threading.Lock], Any]] = {
    "registers": lambda plant, config, lock: RegisterBank(config, plant, lock),
    "vedirect_text": lambda plant, config, lock: ShuntFrames(plant),
}


class PlantDevices:
    """Every device of a site's io_map, served from one plant: banks, shunt frames, faults, pollers.

    Each device's driver names the kind of simulated device it talks to; a driver without one is an error
    naming the device's file:line (a site the plant cannot serve must not be simulated as something else).
    """

    def __init__(self, plant: Plant, configs: Iterable[DeviceConfig], lock: threading.Lock | None = None) -> None:
        self.plant = plant
        self.lock = lock or threading.Lock()
        self.configs = {c.name: c for c in configs}
        self.simulated: dict[str, Any] = {}
        errors = []
        for name, config in self.configs.items():
            driver = DRIVERS.get(config.driver)
            make = COUNTERPARTS.get(driver.simulated) if driver is not None else None
            if make is None:
                served = ", ".join(d.name for d in DRIVERS.values() if d.simulated in COUNTERPARTS)
                errors.append(ConfigError(config.file, config.line, f"devices.{name}",
                                          f"the plant simulator has no simulated device for driver "
                                          f"{config.driver!r}; it simulates: {served}"))
            else:
                self.simulated[name] = make(plant, config, self.lock)
        if errors:
            raise ConfigErrors(errors)
        self.banks = {n: d for n, d in self.simulated.items() if isinstance(d, RegisterBank)}
        self.shunts = {n: d for n, d in self.simulated.items() if isinstance(d, ShuntFrames)}

    @property
    def names(self) -> list[str]:
        return list(self.configs)

    def set_fault(self, device: str, kind: str | None) -> None:
        """Start (``kind`` one of FAULT_KINDS) or end (None) a fault of one device."""
        if kind is not None and kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; allowed: {', '.join(FAULT_KINDS)}")
        self.simulated[device].fault = kind

    def set_sensor_fault(self, device: str, tag: str, fault: SensorFault | None) -> None:
        """Start (or with None end) a sensor fault on one input ``tag`` of ``device``; a shunt's ``current``,
        ``voltage`` or ``soc`` lie inside the shunt model, where its own coulomb counter sees them."""
        if device in self.shunts:
            self.plant.shunt.set_fault(tag.rsplit(".", 1)[-1], fault)
        elif device in self.banks:
            self.banks[device].set_sensor_fault(tag, fault)
        else:
            raise KeyError(device)

    def faults(self) -> dict[str, str]:
        return {name: device.fault for name, device in self.simulated.items() if device.fault}

    def pollers(self, defs: Mapping[str, TagDef], wire: bool = False) -> list[Poller]:
        """One inline poller per device, through its driver's own decode path (for ``InlinePort``); ``wire``
        sends byte streams (VE.Direct blocks) through the byte parser too."""
        return [DRIVERS[config.driver].inline_poller(config, defs, self.simulated[name], wire)
                for name, config in self.configs.items()]
