"""Configs for owners without a broker, generated from the register map: Home Assistant and evcc over Modbus.

``battplc export homeassistant`` prints a Home Assistant ``modbus:`` block (one sensor per mapped number, one
binary sensor per mapped bool) and ``battplc export evcc`` an evcc custom battery meter (power, soc, and the
evcc battery modes written to ``cmd.mode``). Scales are taken from the register map's own decoding (the value
one raw count stands for), so they follow the map whatever convention its ``scale`` key uses.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from runtime.mqtt.discovery import is_energy_counter, is_event_counter, object_id, unit_fields
from runtime.server.regmap import BITS, Point, RegisterMap
from runtime.site import REPO_ROOT, load_site
from runtime.tags import TagType

HA_INPUT = {"input": "input", "holding": "holding", "discrete": "discrete_input", "coil": "coil"}
SCAN_INTERVAL = 10  # s, Home Assistant polls each sensor this often
# evcc's battery modes (its external battery control) -> cmd.mode. evcc has no discharge mode; battplc
# never exports battery energy in any mode, so 'normal' is auto (discharge covers the house only).
EVCC_MODES = {1: ("normal", "auto"), 2: ("hold", "hold"), 3: ("charge", "force_charge")}
EVCC_POWER = "bat.power"  # + = charging in battplc; evcc counts battery discharge as +
EVCC_SOC = "bat.soc"
EVCC_MODE = "cmd.mode"


def value_per_count(point: Point) -> float:
    """The tag value one raw count of the register stands for (HA's and evcc's ``scale``: value = raw x scale)."""
    number = point if point.tag.type == TagType.FLOAT else replace(point, tag=replace(point.tag, type=TagType.FLOAT))
    if point.dtype == "float32":
        return float(number.decode(struct.pack(">f", 1.0)))
    return float(number.decode((1).to_bytes(2 * point.width, "big")))


def precision(scale: float) -> int:
    """Decimals that show one raw count (0.01 -> 2, 1 -> 0)."""
    return max(0, math.ceil(-math.log10(scale) - 1e-9)) if 0 < scale < 1 else 0


def homeassistant(regmap: RegisterMap, site_name: str, host: str, port: int, unit_id: int) -> dict[str, Any]:
    """The ``modbus:`` document for Home Assistant's own Modbus integration."""
    sensors, binary = [], []
    for point in regmap:
        tag = point.tag
        entry: dict[str, Any] = {"name": f"battplc {tag.name}", "unique_id": f"battplc_{site_name}_{object_id(tag.name)}",
                                 "slave": unit_id, "address": point.address, "input_type": HA_INPUT[point.table],
                                 "scan_interval": SCAN_INTERVAL}
        if point.space == BITS:
            binary.append(entry)
            continue
        scale = value_per_count(point)
        entry.update({"data_type": point.dtype, "scale": scale, "precision": precision(scale)})
        if tag.type != TagType.ENUM:
            entry.update(unit_fields(tag))
            entry["state_class"] = "total_increasing" if is_energy_counter(tag) or is_event_counter(tag) \
                else "measurement"
        sensors.append(entry)
    hub = {"name": f"battplc_{site_name}", "type": "tcp", "host": host, "port": port,
           "sensors": sensors, "binary_sensors": binary}
    return {"modbus": [hub]}


def evcc(regmap: RegisterMap, host: str, port: int, unit_id: int) -> dict[str, Any]:
    """An evcc ``meters:`` entry: a custom battery meter with power, soc and battery mode control."""
    def register(name: str, kind: str) -> dict[str, Any]:
        point = regmap.point(name)
        return {"source": "modbus", "uri": f"{host}:{port}", "id": unit_id,
                "register": {"address": point.address, "type": kind, "decode": point.dtype}}

    power, soc, mode = regmap.point(EVCC_POWER), regmap.point(EVCC_SOC), regmap.point(EVCC_MODE)
    cases = [{"case": case, "set": {"source": "const", "value": mode.tag.values.index(ours),
                                    "set": register(EVCC_MODE, "writesingle")}}
             for case, (_, ours) in EVCC_MODES.items()]
    meter = {
        "name": "battplc",
        "type": "custom",
        "power": {**register(EVCC_POWER, "input"), "scale": -value_per_count(power)},
        "soc": {**register(EVCC_SOC, "input"), "scale": value_per_count(soc)},
        "batterymode": {"source": "switch", "switch": cases},
    }
    return {"meters": [meter]}


def render(document: dict[str, Any], header: str) -> str:
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def cmd_export(args: argparse.Namespace) -> int:
    site, db, _, _ = load_site(args.dir, with_programs=False)
    server = site.settings.server
    host = args.host or server.listen
    port = args.port or server.port
    unit_id = server.unit_id
    regmap = RegisterMap.from_tags(db.defs.values())
    if args.target == "homeassistant":
        text = render(homeassistant(regmap, site.name, host, port, unit_id),
                      f"Home Assistant modbus: for battplc site {site.name!r}, from its register map "
                      "(battplc export homeassistant).\nvalue = raw x scale; 32-bit values high word first.")
    else:
        modes = ", ".join(f"{evcc_name} -> cmd.mode {ours}" for evcc_name, ours in EVCC_MODES.values())
        text = render(evcc(regmap, host, port, unit_id),
                      f"evcc battery meter for battplc site {site.name!r} (battplc export evcc).\n"
                      f"power: + = discharging (evcc's sign); battery modes: {modes}.")
    sys.stdout.write(text)
    return 0


def register(subparsers: Any) -> None:
    """Add ``battplc export`` to the command."""
    p = subparsers.add_parser("export", help="print a Home Assistant modbus: or an evcc meter config for the site")
    p.add_argument("target", choices=("homeassistant", "evcc"))
    p.add_argument("dir", nargs="?", type=Path, default=REPO_ROOT,
                   help="site folder with tags.yaml (default: the repository root)")
    p.add_argument("--host", help="address HA/evcc reach the controller at (default: site.server.listen)")
    p.add_argument("--port", type=int, help="Modbus port (default: site.server.port)")
    p.set_defaults(func=cmd_export)
