"""``battplc regmap``, ``battplc get`` and ``battplc set``: the register map, and reading and writing tags of a
running controller over Modbus/TCP, addressed by tag name through the map generated from tags.yaml.

``get``/``set`` use the pymodbus client, like any SCADA would, so they exercise the real server: a refused
write shows the exception code the server answered, and an accepted one lands at the next scan. With
``--tls`` (or ``--cert``) they speak Modbus/TCP Security to the site's ``server.tls.port``, with a client
certificate (``--cert``/``--key``) whose OU is the role ``server.writers`` grants writes to.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path
from typing import Any

from runtime.config.errors import did_you_mean
from runtime.config.settings import ServerSettings
from runtime.server.image import NO_READING
from runtime.server.protocol import limits_text
from runtime.server.regmap import BITS, Point, RegisterMap, render_csv, render_markdown
from runtime.site import REPO_ROOT, load_running_tags
from runtime.tags import Quality, TagDef, TagType

EXCEPTION_TEXT = {
    1: "illegal function, or this client may not write that tag (server.writers)",
    2: "illegal address: no such tag there, or the tag is read-only",
    3: "illegal value: out of min..max, bad quantity, or half of a 32-bit value",
    4: "server failure",
    11: "no answer from that unit id",
}


class CliError(Exception):
    """A problem the operator can fix; printed as one line, exit status 1."""


def load_map(directory: Path) -> tuple[RegisterMap, ServerSettings, dict[str, TagDef]]:
    """The register map of every tag a controller running the site has, its ``site.server`` settings and the
    tags by name (config errors raise)."""
    site, db = load_running_tags(directory)
    try:
        return RegisterMap.from_tags(db.defs.values()), site.settings.server, db.defs
    except ValueError as exc:  # more runtime tags than their register block holds
        raise CliError(str(exc)) from None


# ---- regmap -------------------------------------------------------------------------------------------------

def cmd_regmap(args: argparse.Namespace) -> int:
    """battplc regmap: print the map of a site folder's tags.yaml."""
    regmap, _, _ = load_map(args.dir)
    render = render_csv if args.format == "csv" else render_markdown
    sys.stdout.write(render(regmap))
    return 0


# ---- get / set ----------------------------------------------------------------------------------------------

def _connect(args: argparse.Namespace, settings: ServerSettings) -> Any:
    import logging

    from pymodbus.client import ModbusTcpClient

    # The CLI reports failures itself, one line each; pymodbus's own error log would only repeat them.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    host = args.host or settings.listen
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    tls = settings.tls
    if args.tls or args.cert:
        from pymodbus.client import ModbusTlsClient

        port = args.port or (tls.port if tls else 802)
        client = ModbusTlsClient(host, port=port, sslctx=client_tls_context(args), timeout=args.timeout, retries=0)
    else:
        if tls and tls.only:
            raise CliError("the site's server listens for TLS only (server.tls.only): add --tls --cert FILE --key FILE")
        port = args.port or settings.port
        client = ModbusTcpClient(host, port=port, timeout=args.timeout, retries=0)
    if not client.connect():
        raise CliError(f"cannot connect to {host}:{port}: is the controller running with its server enabled"
                       f"{' and does the server accept this certificate' if args.tls or args.cert else ''}?")
    return client


def _unit(args: argparse.Namespace, settings: ServerSettings) -> int:
    return args.unit if args.unit is not None else settings.unit_id


def client_tls_context(args: argparse.Namespace) -> ssl.SSLContext:
    """TLS 1.2+ client context: the server checked against --ca, our certificate from --cert/--key."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
        # A PLC on the LAN is reached by IP address, rarely by the name in its certificate; the chain is checked.
        context.check_hostname = False
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"TLS files: {exc}") from None
    return context


def _call(point: Point, action: str, request: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one client request; a timeout or an exception response becomes a CliError naming the tag."""
    from pymodbus.exceptions import ModbusException

    try:
        response = request(*args, **kwargs)
    except ModbusException as exc:
        raise CliError(f"{point.name}: {action} failed: {exc} (a wrong --unit gets no answer)") from None
    if response.isError():
        code = getattr(response, "exception_code", 0)
        raise CliError(f"{point.name}: {action} refused with exception {code:02d} "
                       f"({EXCEPTION_TEXT.get(code, 'unknown')})")
    return response


def read_point(client: Any, point: Point, unit: int) -> Any:
    """Read one tag from its home table and decode it."""
    read = {
        "coil": client.read_coils, "discrete": client.read_discrete_inputs,
        "holding": client.read_holding_registers, "input": client.read_input_registers,
    }[point.table]
    response = _call(point, "read", read, point.address, count=point.width, device_id=unit)
    if point.space == BITS:
        return bool(response.bits[0])
    data = b"".join(word.to_bytes(2, "big") for word in response.registers[:point.width])
    return point.raw_value(data)


def read_quality(client: Any, regmap: RegisterMap, point: Point, unit: int) -> Quality:
    """Read the quality register of a tag."""
    quality = regmap.quality[point.name]
    response = _call(point, "quality read", client.read_input_registers, quality.address, count=1, device_id=unit)
    code = response.registers[0]
    if code not in Quality._value2member_map_:
        raise CliError(f"{point.name}: quality register {quality.address} holds {code}, which is no quality code")
    return Quality(code)


def reading_text(point: Point, value: Any, quality: Quality) -> str:
    """'value unit', with the quality when it is not GOOD; no number at all when there is no reading."""
    if quality in NO_READING:
        return f"no reading ({quality.name})"
    unit = f" {point.tag.unit}" if point.tag.unit else ""
    text = f"{point.tag.format(point.tag.coerce(value))}{unit}"
    return text if quality is Quality.GOOD else f"{text} ({quality.name})"


def write_point(client: Any, point: Point, value: Any, unit: int) -> None:
    """Write one tag: a coil, one register, or both words of a 32-bit value in a single request."""
    if point.space == BITS:
        _call(point, "write", client.write_coil, point.address, bool(value), device_id=unit)
        return
    data = point.encode(value)
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    if len(words) == 1:
        _call(point, "write", client.write_register, point.address, words[0], device_id=unit)
    else:
        _call(point, "write", client.write_registers, point.address, words, device_id=unit)


def parse_value(point: Point, text: str) -> Any:
    """A command-line value in the tag's type: numbers for int/float tags, names or codes for enums."""
    tag = point.tag
    try:
        if tag.type in (TagType.INT, TagType.FLOAT):
            number = float(text)
            if tag.type == TagType.INT and not number.is_integer():
                raise ValueError(f"{tag.name}: expected a whole number, got {text!r}")
            return tag.coerce(number)
        return tag.coerce(text)
    except ValueError as exc:
        message = str(exc)
        raise CliError(message if tag.name in message else f"{tag.name}: expected a number, got {text!r}") from None


def _points(regmap: RegisterMap, names: list[str]) -> list[Point]:
    points = []
    for name in names:
        try:
            points.append(regmap.point(name))
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
    return points


def cmd_get(args: argparse.Namespace) -> int:
    """battplc get: read tags from a running controller, one "name = value unit" line each, with the quality
    when it is not GOOD; a tag that cannot be read is named on stderr with the reason, and the others are
    still read. Exit 1 if any failed."""
    regmap, settings, defs = load_map(args.dir)
    failed = 0
    points = []
    for name in args.tags:
        if name not in defs:
            print(f"battplc get: {name}: unknown tag{did_you_mean(name, defs)}", file=sys.stderr)
            failed += 1
        elif name not in regmap.by_name:
            print(f"battplc get: {name}: has no modbus mapping (not served; see battplc regmap)", file=sys.stderr)
            failed += 1
        else:
            points.append(regmap.point(name))
    if points:
        client = _connect(args, settings)
        try:
            for point in points:
                try:
                    value = read_point(client, point, _unit(args, settings))
                    quality = read_quality(client, regmap, point, _unit(args, settings))
                    print(f"{point.name} = {reading_text(point, value, quality)}")
                except (CliError, ValueError) as exc:
                    print(f"battplc get: {exc}", file=sys.stderr)
                    failed += 1
        finally:
            client.close()
    return 1 if failed else 0


def cmd_set(args: argparse.Namespace) -> int:
    """battplc set: check every TAG VALUE pair locally first, then write them in order."""
    regmap, settings, _ = load_map(args.dir)
    pairs = args.assignments
    if len(pairs) % 2:
        raise CliError("set takes TAG VALUE pairs, e.g. battplc set par.blink_period 0.5")
    planned = []
    for point, text in zip(_points(regmap, pairs[0::2]), pairs[1::2], strict=True):
        if not point.writable:
            raise CliError(f"{point.name} is read-only (access: ro in tags.yaml)")
        value = parse_value(point, text)
        if not point.tag.in_range(value):
            raise CliError(f"{point.name}: {text} is outside {limits_text(point)}")
        planned.append((point, value))
    client = _connect(args, settings)
    try:
        for point, value in planned:
            write_point(client, point, value, _unit(args, settings))
            print(f"{point.name} <- {point.tag.format(value)}: accepted, lands at the next scan")
    finally:
        client.close()
    return 0


# ---- wiring -------------------------------------------------------------------------------------------------

def _guard(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CliError as exc:
            print(f"battplc {args.command}: {exc}", file=sys.stderr)
            return 1
    return run


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=REPO_ROOT,
                        help="site folder whose tags.yaml has the map (default: the repository root)")
    parser.add_argument("--host", help="server address (default: the site's server.listen)")
    parser.add_argument("--port", type=int, help="server port (default: the site's server.port)")
    parser.add_argument("--unit", type=int, help="unit id (default: the site's server.unit_id)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)")
    parser.add_argument("--tls", action="store_true",
                        help="Modbus/TCP Security: connect to the site's server.tls.port (implied by --cert)")
    parser.add_argument("--cert", help="client certificate (PEM); its OU is the role for server.writers")
    parser.add_argument("--key", help="private key of --cert (default: inside the --cert file)")
    parser.add_argument("--ca", help="CA certificate that signed the server's (default: the system's CAs)")


def register(subparsers: Any) -> None:
    """Add regmap, get and set to the battplc command."""
    p = subparsers.add_parser("regmap", help="print the Modbus register map generated from tags.yaml")
    p.add_argument("dir", nargs="?", type=Path, default=REPO_ROOT,
                   help="site folder with tags.yaml (default: the repository root)")
    p.add_argument("--format", choices=("md", "csv"), default="md", help="Markdown table (default) or CSV")
    p.set_defaults(func=_guard(cmd_regmap))

    p = subparsers.add_parser("get", help="read tags from a running controller over Modbus/TCP")
    p.add_argument("tags", nargs="+", metavar="TAG")
    _client_options(p)
    p.set_defaults(func=_guard(cmd_get))

    p = subparsers.add_parser("set", help="write tags of a running controller over Modbus/TCP (TAG VALUE ...)")
    p.add_argument("assignments", nargs="+", metavar="TAG VALUE")
    _client_options(p)
    p.set_defaults(func=_guard(cmd_set))
