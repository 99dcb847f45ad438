"""Structured log lines fit for the journal, and the event log of chart steps and alarms.

Event log. ``EventLog`` is a scan observer: at each commit it compares the active step of every chart
(``sfc.<chart>.step``) and every alarm (boolean tags ``alarm.<name>``) with the previous commit and logs one
logfmt line per change on the ``battplc.events`` logger::

    event=step chart=unload from=idle to=discharge after=6h20min at=2026-01-01T06:20:00
    event=alarm alarm=cell_high state=raised at=2026-01-01T06:21:13
    event=alarm alarm=cell_high state=cleared after=35s at=2026-01-01T06:21:48

``after`` is how long the previous step (or the alarm) lasted, on the scan's clock (for a first change: since
the first scan); ``at`` is the site's wall time of the scan, so a simulated day reads right too. Raised alarms
are warnings, the rest info. When nothing changed, a scan costs one C-level fetch of the watched values into a
tuple and one tuple comparison (0.6 us with 6 charts and 10 alarms).

Journal. ``configure_logging`` sends every record to stderr. When stderr is the journal (systemd sets
``JOURNAL_STREAM`` to its device:inode), each record is one logfmt line behind a ``<N>`` syslog priority prefix,
which journald stores as the entry's priority (``journalctl -p warning`` works) and strips from the text::

    <4>level=warning logger=battplc.scan msg="program unload raised; its outputs go to their safe values"
    <6>level=info logger=battplc.events event=step chart=unload from=idle to=discharge ...

journald adds the time, so these lines carry none; in a terminal the lines start with the time instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, TextIO

from runtime.durations import format_duration
from runtime.tags import TagDB, TagDef, TagType

log = logging.getLogger("battplc.events")
NOISY_LIBRARIES = ("transitions", "pymodbus")

TERMINAL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# syslog priorities (sd-daemon(3)): journald reads a leading "<N>" as the entry's priority.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


# ---- logfmt ------------------------------------------------------------------------------------------------

def logfmt(fields: Mapping[str, Any]) -> str:
    """``key=value`` pairs; a value with spaces, quotes or ``=`` (or an empty one) is double-quoted."""
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items())


def _value(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\\\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


# ---- the event log -----------------------------------------------------------------------------------------

def is_step_tag(tag: TagDef) -> bool:
    """``sfc.<chart>.step``: the enum of a chart's steps."""
    parts = tag.name.split(".")
    return len(parts) == 3 and parts[0] == "sfc" and parts[2] == "step" and tag.type == TagType.ENUM


def is_alarm(tag: TagDef) -> bool:
    """A boolean tag ``alarm.<name>``."""
    return tag.name.startswith("alarm.") and tag.is_bool


class EventLog:
    """Scan observer that logs chart step changes and alarms raised or cleared (see the module docstring)."""

    def __init__(self, db: TagDB, logger: logging.Logger = log) -> None:
        self.db = db
        self.log = logger
        self._names: tuple[str, ...] = ()
        self._fetch: Callable[[Mapping[str, Any]], tuple[Any, ...]] = lambda values: ()
        self._last: tuple[Any, ...] = ()
        self._since: dict[str, float] = {}  # tag -> scan time of its last change (or of the first scan)
        self._watch()  # the starting point: the values now, before the first scan
        self._declared = -1  # the first scan watches again, to start the clocks

    def _watch(self, t: float | None = None) -> None:
        """(Re)build the list of watched tags; a newly watched tag starts from its value and time now."""
        defs, values = self.db.defs, self.db.values
        known = dict(zip(self._names, self._last, strict=True))
        steps = sorted(name for name, tag in defs.items() if is_step_tag(tag))
        alarms = sorted(name for name, tag in defs.items() if is_alarm(tag))
        names = tuple(steps + alarms)
        self._names = names
        self._last = tuple(known.get(name, values[name]) for name in names)
        self._declared = len(defs)
        if t is not None:
            for name in names:
                self._since.setdefault(name, t)
        if len(names) > 1:
            self._fetch = itemgetter(*names)
        elif names:
            only = names[0]
            self._fetch = lambda values: (values[only],)
        else:
            self._fetch = lambda values: ()

    def __call__(self, scan: Any) -> None:
        """The observer: compare the watched tags with the last commit, log what changed."""
        db = self.db
        if len(db.defs) != self._declared:
            self._watch(scan.ctx.t)
        current = self._fetch(db.values)
        if current == self._last:
            return
        for name, before, now in zip(self._names, self._last, current, strict=True):
            if before != now:
                self._report(scan, name, before, now)
        self._last = current

    def _report(self, scan: Any, name: str, before: Any, now: Any) -> None:
        t = scan.ctx.t
        after = format_duration(max(0.0, t - self._since[name]))  # how long the old state lasted
        self._since[name] = t
        at = scan.ctx.now.isoformat(timespec="seconds")
        tag = self.db.defs[name]
        if tag.type == TagType.ENUM:
            fields = {"event": "step", "chart": name.split(".")[1], "from": tag.format(before),
                      "to": tag.format(now), "after": after, "at": at}
            self.log.info(logfmt(fields), extra={"logfmt": True})
        elif now:
            fields = {"event": "alarm", "alarm": name.removeprefix("alarm."), "state": "raised", "at": at}
            self.log.warning(logfmt(fields), extra={"logfmt": True})
        else:
            fields = {"event": "alarm", "alarm": name.removeprefix("alarm."), "state": "cleared", "after": after,
                      "at": at}
            self.log.info(logfmt(fields), extra={"logfmt": True})


# ---- journal-friendly logging ------------------------------------------------------------------------------

class JournalFormatter(logging.Formatter):
    """One logfmt line per record behind a ``<N>`` priority prefix; traceback lines carry the prefix too."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        head = logfmt({"level": record.levelname.lower(), "logger": record.name})
        body = message if getattr(record, "logfmt", False) else logfmt({"msg": message})
        prefix = f"<{_priority(record.levelno)}>"
        lines = [f"{prefix}{head} {body}"]
        if record.exc_info:
            lines += [prefix + line for line in self.formatException(record.exc_info).splitlines()]
        if record.stack_info:
            lines += [prefix + line for line in self.formatStack(record.stack_info).splitlines()]
        return "\n".join(lines)


def _priority(level: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if level >= threshold:
            return _PRIORITY[threshold]
    return _PRIORITY[logging.DEBUG]


def writes_to_journal(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``stream`` is the journal stream systemd named in JOURNAL_STREAM (device:inode)."""
    expected = environ.get("JOURNAL_STREAM", "")
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"


def configure_logging(verbose: bool = False, stream: TextIO | None = None,
                      environ: Mapping[str, str] = os.environ) -> logging.Handler:
    """Log everything to ``stream`` (stderr): journal lines under systemd, timed lines in a terminal."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if writes_to_journal(stream, environ)
                         else logging.Formatter(TERMINAL_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The state-machine library logs every chart transition at INFO and pymodbus every listener and retry;
    # our own event log and drivers already say what matters, once.
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    return handler
