"""``battplc params export|import|reset``: the site's parameters (``par.*``) as a YAML file an owner can keep,
edit and load again.

Two places hold the parameters, and each command works on either:

* the site's retain file (the default): what the controller loads at its next start. Only while the controller
  is stopped; the command refuses when the site's Modbus server answers, since a running controller would write
  its own values over the file.
* ``--live``: a running controller over Modbus/TCP, through the same whitelisted writes as SCADA (each lands at
  the next scan and is retained by the controller as usual).

``import`` checks the whole file first, all or nothing: every key must be a parameter of the site, every value
of its type and within its min..max; each problem is reported with file:line and nothing is written.
``reset`` puts every parameter back to its default from tags.yaml and needs ``--yes``.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigError, ConfigErrors, did_you_mean
from runtime.config.yamlloc import LocDict, load_file
from runtime.tags import TagDef, TagType

PREFIX = "par."


def parameters(tags: Iterable[TagDef]) -> dict[str, TagDef]:
    """The parameters of a tag table: writable tags named ``par.*``, by name, sorted."""
    return {tag.name: tag for tag in sorted(tags, key=lambda t: t.name)
            if tag.name.startswith(PREFIX) and tag.access == "rw"}


# ---- the file -----------------------------------------------------------------------------------------------

def export_yaml(params: Mapping[str, TagDef], values: Mapping[str, Any], source: str) -> str:
    """The parameters as YAML, one ``name: value`` line each with its unit, range and default as a comment."""
    lines = [f"# battplc parameters from {source}; edit and load with `battplc params import FILE`.",
             "# Each line: name: value  # unit, allowed range, default (tags.yaml)"]
    for name, tag in params.items():
        value = values.get(name, tag.initial)
        limits = f"{_number(tag.min)}..{_number(tag.max)}" if tag.min is not None or tag.max is not None else ""
        if tag.type == TagType.ENUM:
            limits = "|".join(tag.values)
        notes = ", ".join(n for n in (tag.unit, limits, f"default {_yaml(tag, tag.initial)}") if n)
        lines.append(f"{name}: {_yaml(tag, value)}  # {notes}")
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _yaml(tag: TagDef, value: Any) -> str:
    if tag.type == TagType.BOOL:
        return "true" if value else "false"
    if tag.type == TagType.ENUM:
        return tag.format(value)
    if tag.type == TagType.FLOAT:
        return repr(float(value))
    return str(int(value))


def read_params(path: Path, params: Mapping[str, TagDef]) -> dict[str, Any]:
    """The values of a parameter file, checked whole: ConfigErrors (file:line each) if anything is wrong."""
    doc = load_file(path)
    if doc is None:
        doc = LocDict(str(path), 1)
    if not isinstance(doc, dict):
        raise ConfigErrors([ConfigError(str(path), getattr(doc, "line", 0), "",
                                        "a parameter file is a mapping of par.<name>: value")])
    errors: list[ConfigError] = []
    values: dict[str, Any] = {}
    for name, raw in doc.items():
        line = doc.line_of(name) if isinstance(doc, LocDict) else 0
        tag = params.get(str(name))
        if tag is None:
            errors.append(ConfigError(str(path), line, str(name), f"not a parameter of this site"
                                      f"{did_you_mean(str(name), params)}; parameters are the rw par.* tags "
                                      f"(`battplc params export` lists them)"))
            continue
        problem = _check(tag, raw)
        if isinstance(problem, str):
            errors.append(ConfigError(str(path), line, str(name), problem))
        else:
            values[tag.name] = problem[0]
    if errors:
        raise ConfigErrors(errors)
    return values


def _check(tag: TagDef, raw: Any) -> tuple[Any] | str:
    """(value,) in the tag's type and range, or what is wrong with ``raw``."""
    if tag.type == TagType.BOOL and not isinstance(raw, bool):
        return f"{raw!r} is not true or false"
    if tag.type in (TagType.INT, TagType.FLOAT) and (isinstance(raw, bool) or not isinstance(raw, int | float)):
        return f"{raw!r} is not a number"
    if tag.type == TagType.INT and not float(raw).is_integer():
        return f"{raw!r} is not a whole number"
    if tag.type == TagType.ENUM and raw not in tag.values:
        return f"{raw!r} is not one of {', '.join(tag.values)}"
    value = tag.coerce(raw)
    if not tag.in_range(value):
        return f"{raw!r} is outside {_number(tag.min)}..{_number(tag.max)}{' ' + tag.unit if tag.unit else ''}"
    return (value,)


# ---- where the values live ----------------------------------------------------------------------------------

class RetainFile:
    """The site's retain file, while the controller is stopped."""

    def __init__(self, site: Any) -> None:
        from runtime.retain import RetainStore

        retain = Path(site.settings.retain.path)
        self.path = retain if retain.is_absolute() else site.dir / retain
        self.site = site
        self.store = RetainStore(self.path)
        self.saved = self.store.load()

    def read(self, params: Mapping[str, TagDef]) -> dict[str, Any]:
        out = {}
        for name, tag in params.items():
            try:
                value = tag.coerce(self.saved[name]) if name in self.saved else tag.initial
            except (TypeError, ValueError):
                value = tag.initial  # the controller would skip it too and start from the default
            out[name] = value if tag.in_range(value) else tag.initial
        return out

    def write(self, values: Mapping[str, Any], params: Mapping[str, TagDef]) -> None:
        not_retained = sorted(name for name in values if not params[name].retain)
        if not_retained:
            raise ParamsError(f"{', '.join(not_retained)} not retained (retain: false in tags.yaml), so a file "
                              "cannot hold them; set them on the running controller with --live")
        _refuse_if_running(self.site)
        self.store.update({**self.saved, **values})
        self.store.flush()
        if self.store.dirty:
            raise ParamsError(f"cannot write {self.path} (see the warning above); nothing changed")


class Live:
    """A running controller over Modbus/TCP."""

    def __init__(self, site: Any, args: argparse.Namespace) -> None:
        from runtime.server.cli import _connect, _unit
        from runtime.server.regmap import RegisterMap

        self.regmap = RegisterMap.from_tags(site.tags)
        self.client = _connect(args, site.settings.server)
        self.unit = _unit(args, site.settings.server)
        self.path = "the running controller"

    def read(self, params: Mapping[str, TagDef]) -> dict[str, Any]:
        from runtime.server.cli import read_point

        return {name: read_point(self.client, self.regmap.point(name), self.unit)
                for name in params if name in self.regmap.by_name}

    def write(self, values: Mapping[str, Any], params: Mapping[str, TagDef]) -> None:
        from runtime.server.cli import write_point

        unmapped = sorted(name for name in values if name not in self.regmap.by_name)
        if unmapped:
            raise ParamsError(f"{', '.join(unmapped)} not on Modbus (no modbus: in tags.yaml); nothing was written")
        for name, value in values.items():
            write_point(self.client, self.regmap.point(name), value, self.unit)


class ParamsError(Exception):
    """A problem the owner can fix; one line, exit 1."""


def _refuse_if_running(site: Any) -> None:
    server = site.settings.server
    if not server.enabled:
        return
    host = "127.0.0.1" if server.listen in ("0.0.0.0", "::") else server.listen
    try:
        with socket.create_connection((host, server.port), timeout=0.5):
            pass
    except OSError:
        return
    raise ParamsError(f"a controller answers on {host}:{server.port}: it would write its own values over the "
                      "retain file; stop it first, or use --live to work on the running controller")


# ---- the commands -------------------------------------------------------------------------------------------

def cmd_params(args: argparse.Namespace) -> int:
    from runtime.site import load_tag_table

    site = load_tag_table(args.dir)
    params = parameters(site.tags)
    try:
        if args.action == "reset" and not args.yes:
            raise ParamsError(f"reset puts all {len(params)} parameters back to their defaults; add --yes to do it")
        incoming = read_params(args.file, params) if args.action == "import" else None
        target: RetainFile | Live = Live(site, args) if args.live else RetainFile(site)
        if args.action == "export":
            text = export_yaml(params, target.read(params), str(target.path))
            if args.output:
                args.output.write_text(text, encoding="utf-8")
                print(f"{len(params)} parameters from {target.path} -> {args.output}")
            else:
                sys.stdout.write(text)
            return 0
        values = incoming if incoming is not None else {name: tag.initial for name, tag in params.items()}
        before = target.read(params)
        target.write(values, params)
        changed = [name for name, value in values.items() if before.get(name) != value]
        print(f"{len(values)} parameters written to {target.path} ({len(changed)} changed"
              f"{': ' + ', '.join(changed[:8]) + (' ...' if len(changed) > 8 else '') if changed else ''})")
        return 0
    except ParamsError as exc:
        print(f"battplc params {args.action}: {exc}", file=sys.stderr)
        return 1
    except ConfigErrors as exc:  # the file: every problem, then nothing written
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s); nothing was written", file=sys.stderr)
        return 1


def register(subparsers: Any) -> None:
    """Add ``battplc params export|import|reset``."""
    from runtime.server.cli import _client_options

    p = subparsers.add_parser("params", help="export, import or reset the parameters (par.*) of a site",
                              description=__doc__.split("\n\n")[0])
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, helptext in (("export", "write the parameters as YAML"),
                           ("import", "load a parameter file (checked whole first)"),
                           ("reset", "put every parameter back to its default")):
        a = actions.add_parser(name, help=helptext)
        if name == "import":
            a.add_argument("file", type=Path, metavar="FILE", help="the YAML file (as export writes it)")
        if name == "export":
            a.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
        if name == "reset":
            a.add_argument("--yes", action="store_true", help="really reset")
        a.add_argument("--live", action="store_true",
                       help="work on the running controller over Modbus/TCP instead of the retain file")
        _client_options(a)
        a.set_defaults(func=cmd_params)
