"""``battplc alarms``: the alarms of a running controller over Modbus/TCP, acknowledge and shelve them, and the
journal of the last transitions.

Actions go the way every client's do (SCADA, MQTT, a web page): a write of ``cmd.alarm_ack``,
``cmd.alarm_shelve_s`` + ``cmd.alarm_shelve`` or ``cmd.alarm_unshelve``, carried out after the next scan; the
command then reads ``alarms.result_seq`` until it moves and prints ``alarms.result``. A refused action (nothing
to acknowledge, not shelved) exits 1 with the reason and changes nothing. The journal is read from the site's
retained ``alarms.json`` (the controller need not run).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from runtime.alarms.service import (
    ACK,
    ALL,
    RESULT,
    RESULT_SEQ,
    SHELVE,
    SHELVE_S,
    STANDING,
    UNSHELVE,
    alarm_names,
    journal_path,
)
from runtime.cli_args import duration_arg
from runtime.names import alarm_tag
from runtime.server.cli import (
    CliError,
    _client_options,
    _connect,
    _guard,
    _unit,
    load_map,
    read_point,
    write_point,
)
from runtime.site import REPO_ROOT, load_tag_table

REFUSALS = {
    "nothing_to_acknowledge": "there is nothing to acknowledge",
    "not_shelved": "it is not shelved",
    "bad_duration": "a shelve lasts more than 0 s and at most 24 h",
}


class Link:
    """One connection to a running controller, addressed through the site's map plus the alarm tags."""

    def __init__(self, args: argparse.Namespace) -> None:
        # The map of every tag the running controller has (its alarm slots included), as `battplc get` uses it.
        self.regmap, self.settings, self.defs = load_map(args.dir)
        self.alarms = alarm_names(self.defs.values())
        if not self.alarms:
            raise CliError(f"the site in {args.dir} declares no alarm.<name> tags")
        self.timeout = args.timeout
        self.client = _connect(args, self.settings)
        self.unit = _unit(args, self.settings)

    def read(self, name: str) -> Any:
        return read_point(self.client, self.regmap.point(name), self.unit)

    def write(self, name: str, value: Any) -> None:
        write_point(self.client, self.regmap.point(name), self.defs[name].coerce(value), self.unit)

    def command(self, writes: list[tuple[str, Any]]) -> str:
        """Write a command, wait until the controller answers it, return the result's name."""
        before = self.read(RESULT_SEQ)
        for name, value in writes:
            self.write(name, value)
        deadline = time.monotonic() + self.timeout
        while self.read(RESULT_SEQ) == before:
            if time.monotonic() > deadline:
                raise CliError(f"no answer to {writes[-1][0]} within {self.timeout:g} s: is the controller scanning?")
            time.sleep(0.02)
        return self.defs[RESULT].format(self.read(RESULT))

    def close(self) -> None:
        self.client.close()


def _alarm(link: Link, name: str, allow_all: bool = False) -> str:
    name = name.removeprefix("alarm.")
    if name in link.alarms or (allow_all and name == ALL):
        return name
    raise CliError(f"no alarm {name!r}; alarms: {', '.join(link.alarms)}{' (or all)' if allow_all else ''}")


def _act(link: Link, what: str, name: str, writes: list[tuple[str, Any]]) -> int:
    result = link.command(writes)
    if result == "done":
        print(f"{what} {name}: done")
        return 0
    state = ""
    if name != ALL:
        tag = link.defs[alarm_tag(name, "state")]
        state = f" ({name} is {tag.format(link.read(tag.name))})"
    print(f"{what} {name}: refused, {REFUSALS.get(result, result)}{state}; nothing changed")
    return 1


def show(link: Link) -> None:
    """One line per alarm: name, priority, condition, state; then how many stand."""
    rows = [("alarm", "priority", "condition", "state", "description")]
    for name in link.alarms:
        tag = link.defs[f"alarm.{name}"]
        condition = link.read(tag.name) if tag.modbus is not None else None
        state_tag = link.defs[alarm_tag(name, "state")]
        state = state_tag.format(link.read(state_tag.name)) if state_tag.name in link.regmap.by_name else "?"
        rows.append((name, tag.alarm.priority if tag.alarm else "medium",
                     "?" if condition is None else ("on" if condition else "off"), state, tag.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    print(f"standing: {link.read(STANDING)}")


def cmd_alarms(args: argparse.Namespace) -> int:
    if args.journal is not None:
        return show_journal(args.dir, args.journal)
    link = Link(args)
    try:
        if args.ack:
            name = _alarm(link, args.ack, allow_all=True)
            return _act(link, "acknowledge", name, [(ACK, name)])
        if args.shelve:
            name, seconds = _alarm(link, args.shelve[0]), _shelve_seconds(args.shelve[1])
            return _act(link, f"shelve for {args.shelve[1]}", name, [(SHELVE_S, seconds), (SHELVE, name)])
        if args.unshelve:
            name = _alarm(link, args.unshelve)
            return _act(link, "unshelve", name, [(UNSHELVE, name)])
        show(link)
        return 0
    finally:
        link.close()


def _shelve_seconds(text: str) -> int:
    try:
        seconds = duration_arg(text)
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"shelve duration {text!r}: {exc}") from None
    if seconds > 86400:
        raise CliError(f"shelve duration {text!r}: at most 24h (EEMUA 191: nothing leaves view for longer)")
    return max(1, round(seconds))


def show_journal(directory: Path, count: int) -> int:
    """The last ``count`` journal entries from the site's retained alarms.json."""
    path = journal_path(load_tag_table(directory))
    try:
        records = json.loads(path.read_text())["values"]["journal"]
    except FileNotFoundError:
        print(f"no alarm journal yet ({path})")
        return 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"{path}: not an alarm journal ({exc})") from None
    for record in records[-count:] if count else records:
        print(f"{record['at']}  {record['alarm']}: {record['from']} -> {record['to']} ({record['by']})")
    return 0


def register(subparsers: Any) -> None:
    """Add ``battplc alarms``."""
    p = subparsers.add_parser("alarms", help="alarms of a running controller: list, acknowledge, shelve; journal")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--ack", metavar="NAME", help="acknowledge an alarm (or all)")
    action.add_argument("--shelve", nargs=2, metavar=("NAME", "DURATION"), help="shelve an alarm, e.g. cell_low 2h")
    action.add_argument("--unshelve", metavar="NAME", help="put a shelved alarm back in view")
    action.add_argument("--journal", nargs="?", type=int, const=20, metavar="N",
                        help="the last N transitions from the retained journal (default 20; 0: all)")
    _client_options(p)
    p.set_defaults(func=_guard(cmd_alarms), dir=REPO_ROOT)
