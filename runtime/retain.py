"""Retained tags: the values that must survive a restart (parameters tuned from the HMI, state of charge).

The scan hands the current retained values over at commit time (`RetainStore.update`, or `RetainWriter.submit`
to keep file I/O off the scan thread); they are written at most once per `min_interval_s`, and at shutdown.

File format (JSON, human-readable so an engineer can inspect it on the box)::

    {"version": 1, "saved_at": "<ISO wall time>", "values": {tag: value}, "crc": <crc32 of canonical values>}

Crash safety. A save writes `<file>.tmp` and fsyncs it, renames the current main file (which this store wrote
or loaded, so it is known good) to `<file>.bak`, renames the temp file over the main file and fsyncs the
folder. Killed at any moment, the main file holds a complete save, or it is missing and `.bak` holds the save
before (a power cut may also undo renames not yet synced, leaving the previous complete save); a save reports
success only once the main file holds it. So `load()` never returns state older than one save interval plus
the save in flight; it falls back to `.bak`, then to defaults, with one WARNING line naming the bad file and
why. Rotating by rename, not by copy, keeps it to one file write per save, which matters on an SD card.

Bad files. Whatever a file holds (binary, cut short, numbers of 5,000 digits, `true` where a float belongs,
NaN, values outside a tag's min..max, an enum code a newer tags.yaml no longer has), `load()` never raises:
with a ``check`` (see `check_values`) every value must fit its tag exactly, or the whole file counts as bad
and the next one is tried. `fallback` then says what happened; the controller raises `alarm.retain_lost`.
Saved names the tags no longer declare are not an error (a tag was dropped or renamed): they are skipped.

Where. A relative `retain.path` is taken from the site folder, or, under systemd with `StateDirectory=`
(environment variable STATE_DIRECTORY), from the state directory, the one place the service may write.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.tags import TagDef

FORMAT_VERSION = 1
# Integers beyond this are not counters or timestamps but damage (and may not fit the Modbus map).
INT_LIMIT = 2**63
Check = Callable[[Mapping[str, Any]], list[str]]


def canonical_json(values: Mapping[str, Any]) -> str:
    """The one text form of `values` that the crc covers: sorted keys, no whitespace, ASCII only."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def values_crc(values: Mapping[str, Any]) -> int:
    """crc32 of the canonical JSON of `values`, as stored in the file's "crc" field."""
    return zlib.crc32(canonical_json(values).encode("ascii"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Snapshot:
    values: dict[str, Any]
    saved_at: str


class _Unusable(Exception):
    """A retain file that cannot be used; the message completes "<file> is ..."."""

    def __init__(self, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing


class RetainStore:
    """Loads and saves retained values in one JSON file plus its previous good copy (`.bak`).

    Use it from one thread only: the scan (via `maybe_save`) or a `RetainWriter`.
    """

    def __init__(
        self,
        path: Path,
        min_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger | None = None,
        *,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = Path(path)
        self.backup_path = self.path.with_suffix(self.path.suffix + ".bak")
        # A fixed temp name (not mkstemp) so that a process killed mid-write leaves one stale file, not one per kill.
        self._temp_path = self.path.with_suffix(self.path.suffix + ".tmp")
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._wall_clock = wall_clock
        self.log = log or logging.getLogger(__name__)
        self._latest: dict[str, Any] = {}
        # What the main file is known to hold; None when it is missing, bad or unknown. Only a known-good main
        # file may be rotated to .bak, otherwise a save could replace the last good copy with a bad one.
        self._saved: dict[str, Any] | None = None
        self._dirty = False
        self._last_write_at: float | None = None
        self._write_failing = False
        # After load(): None if the main file was used (or neither file exists yet), else what was used instead.
        self.fallback: str | None = None

    def load(self, check: Check | None = None) -> dict[str, Any]:
        """Retained values from the main file, else from `.bak`, else {} (use defaults). Never raises on bad files.

        ``check(values)`` lists what is wrong with a file's values (empty: usable); see `check_values`.
        """
        self._check = check
        self.fallback = None
        try:
            snapshot = _read_snapshot(self.path, check)
        except _Unusable as main_problem:
            return self._load_fallback(main_problem)
        self.log.info(
            "retain: loaded %d values from %s (saved at %s)",
            len(snapshot.values),
            self.path,
            snapshot.saved_at,
        )
        self._latest = dict(snapshot.values)
        self._saved = dict(snapshot.values)
        self._dirty = False
        return snapshot.values

    def _load_fallback(self, main_problem: _Unusable) -> dict[str, Any]:
        backup_name = self.backup_path.name
        try:
            snapshot = _read_snapshot(self.backup_path, self._check)
        except _Unusable as backup_problem:
            if main_problem.missing and backup_problem.missing:
                self.log.warning(
                    "retain: no retained values in %s or %s; using defaults (expected on the first start)",
                    self.path,
                    backup_name,
                )
            else:
                self.log.warning(
                    "retain: %s is %s and %s is %s; using defaults",
                    self.path,
                    main_problem,
                    backup_name,
                    backup_problem,
                )
                self.fallback = f"{self.path.name} is {main_problem} and {backup_name} is {backup_problem}: defaults"
            self._latest, self._saved, self._dirty = {}, None, False
            return {}
        self.log.warning(
            "retain: %s is %s; using previous copy %s from %s",
            self.path,
            main_problem,
            backup_name,
            snapshot.saved_at,
        )
        if not main_problem.missing:  # a missing main file with a good .bak is a save cut by a crash: normal
            self.fallback = f"{self.path.name} is {main_problem}: {backup_name} from {snapshot.saved_at}"
        self._latest, self._saved = dict(snapshot.values), None
        # .bak is now the only good copy: rewrite the main file at the first chance, so there are two again.
        self._dirty = True
        return snapshot.values

    def update(self, values: Mapping[str, Any]) -> None:
        """Take the current retained values (called every scan); cheap when nothing changed."""
        if values == self._latest:
            return
        self._latest = dict(values)
        self._dirty = self._latest != self._saved

    @property
    def dirty(self) -> bool:
        """True while the newest values are not yet on disk."""
        return self._dirty

    def maybe_save(self) -> bool:
        """Write if dirty and `min_interval_s` has passed since the last write; True if a write succeeded."""
        if not self._dirty:
            return False
        now = self._clock()
        if self._last_write_at is not None and now - self._last_write_at < self.min_interval_s:
            return False
        return self._write(now)

    def flush(self) -> None:
        """Write now if dirty, whatever the interval (shutdown, or a writer thread that paces itself)."""
        if self._dirty:
            self._write(self._clock())

    def _write(self, now: float) -> bool:
        # Counted from the attempt, so a failing disk is retried once per interval, not every scan.
        self._last_write_at = now
        values = self._latest
        document = {
            "version": FORMAT_VERSION,
            "saved_at": self._wall_clock().isoformat(timespec="seconds"),
            "values": values,
            "crc": values_crc(values),
        }
        data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("ascii")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_synced(self._temp_path, data)
            if self._saved is not None:
                os.replace(self.path, self.backup_path)
                self._saved = None  # until the replace below lands there is no main file
            os.replace(self._temp_path, self.path)
            _fsync_directory(self.path.parent)
        except OSError as error:
            self._saved = None  # the main file may be gone or stale now: do not rotate it over the good .bak
            if not self._write_failing:
                self.log.warning(
                    "retain: cannot write %s (%s); keeping values in memory, retrying every %g s",
                    self.path,
                    error,
                    self.min_interval_s,
                )
            self._write_failing = True
            return False
        if self._write_failing:
            self.log.info("retain: writing %s works again", self.path)
            self._write_failing = False
        self._saved = values
        self._dirty = False
        return True


def _read_snapshot(path: Path, check: Check | None = None) -> _Snapshot:
    snapshot = _parse_snapshot(path)
    problems = check(snapshot.values) if check is not None else []
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise _Unusable(f"corrupt ({problems[0]}{more})")
    return snapshot


def _parse_snapshot(path: Path) -> _Snapshot:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _Unusable("missing", missing=True) from None
    except OSError as error:
        raise _Unusable(f"unreadable ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unusable("corrupt (not UTF-8 text)") from None
    if not text.strip():
        raise _Unusable("empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        # A complete save starts with "{" and ends with "}"; a cut-short one starts right but ends early.
        stripped = text.strip()
        if stripped.startswith("{") and (not stripped.endswith("}") or error.pos >= len(text.rstrip())):
            raise _Unusable("truncated") from None
        raise _Unusable(
            f"corrupt (not JSON: {error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    except RecursionError:
        raise _Unusable("corrupt (nested too deeply)") from None
    except ValueError:  # e.g. an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise _Unusable("corrupt (a number Python cannot read)") from None
    return _check_document(document)


def _check_document(document: object) -> _Snapshot:
    if not isinstance(document, dict):
        raise _Unusable("corrupt (not a retain document)")
    version = document.get("version")
    if version != FORMAT_VERSION:
        raise _Unusable(f"corrupt (version {version!r}, expected {FORMAT_VERSION})")
    values = document.get("values")
    if not isinstance(values, dict):
        raise _Unusable("corrupt (no values)")
    try:
        crc = values_crc(values)
    except ValueError:  # json.dumps of a huge integer, or NaN in a strict dump
        raise _Unusable("corrupt (a value that cannot be written back)") from None
    if document.get("crc") != crc:
        raise _Unusable("corrupt (crc mismatch)")
    saved_at = document.get("saved_at")
    return _Snapshot(values, saved_at if isinstance(saved_at, str) else "an unknown time")


def value_problem(tag: TagDef, value: Any) -> str | None:
    """What is wrong with a saved value for ``tag`` (None: it fits exactly, as the runtime saved it)."""
    if tag.type == "bool":
        ok = isinstance(value, bool)
    elif tag.type == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < INT_LIMIT \
            and math.isfinite(value)
    elif tag.type == "enum":  # the runtime saves codes; a name is what a person editing the file writes
        ok = value in tag.values if isinstance(value, str) else \
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(tag.values)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) < INT_LIMIT
    if not ok:
        shown = repr(value) if len(repr(value)) <= 24 else f"a {type(value).__name__} of {len(repr(value))} characters"
        return f"{tag.name} = {shown} is not a {tag.type}" + (f" of {len(tag.values)} names" if tag.values else "")
    if not tag.in_range(value):
        return f"{tag.name} = {value!r} is outside {tag.min}..{tag.max}"
    return None


def check_values(defs: Mapping[str, TagDef]) -> Check:
    """A ``check`` for `RetainStore.load`: every saved value of a declared retained tag must fit it."""
    def check(values: Mapping[str, Any]) -> list[str]:
        problems = []
        for name, value in values.items():
            tag = defs.get(name)
            if tag is not None and tag.retain:
                problem = value_problem(tag, value)
                if problem:
                    problems.append(problem)
        return problems
    return check


def resolve_path(setting: str, site_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """The retain file for a `retain.path` setting: absolute as given; relative from systemd's state
    directory (STATE_DIRECTORY, set by StateDirectory=) when there is one, else from the site folder."""
    path = Path(setting)
    if path.is_absolute():
        return path
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return (Path(state) if state else site_dir) / path


def writable_problem(path: Path) -> str | None:
    """Why retained values could not be saved at ``path`` (None: they can), checked without writing."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # save() creates the missing folders: the first existing one must be writable
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable by this user"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable by this user"
    return None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_directory(directory: Path) -> None:
    # Makes the renames durable across a power cut; a SIGKILL alone would not need it.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RetainWriter:
    """Saves a `RetainStore` from a daemon thread, so file I/O and fsync never delay a scan.

    The scan calls `submit()` each commit (a dict copy, no lock, no wake-up); the thread wakes once per
    `period_s` (default: the store's `min_interval_s`), writes if the values changed, and `stop()` writes the
    last values before returning. The thread starts with the writer.
    """

    def __init__(self, store: RetainStore, period_s: float | None = None) -> None:
        self._store = store
        self._period_s = store.min_interval_s if period_s is None else period_s
        self._pending: dict[str, Any] | None = None
        self._stop_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retain-writer", daemon=True)
        self._thread.start()

    def submit(self, values: Mapping[str, Any]) -> None:
        """Hand over the newest retained values; never blocks. Only the newest submission is kept."""
        # One reference assignment is atomic, so the thread sees either the old or the new dict, never a mix.
        self._pending = dict(values)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write the last submitted values and end the thread (wait at most `timeout_s`)."""
        self._stop_requested.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._store.log.warning(
                "retain: final write of %s still running after %g s", self._store.path, timeout_s
            )

    def _run(self) -> None:
        stopping = False
        while not stopping:
            stopping = self._stop_requested.wait(self._period_s)
            pending = self._pending
            try:
                if pending is not None:
                    self._store.update(pending)
                # The wait above paces the writes, so no need to ask the store's interval as well.
                self._store.flush()
            except Exception:
                # A value JSON cannot hold is a programming error; say so loudly, but keep persisting.
                self._store.log.exception("retain: saving %s failed", self._store.path)
