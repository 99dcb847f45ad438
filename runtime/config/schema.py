"""Schema-first validation composed from small validators (in the spirit of ESPHome's config_validation).

A validator is a callable ``value -> value`` that raises ``Invalid`` with a message saying what is allowed.
``Schema`` and ``ListOf``/``MapOf`` walk nested documents, keep the key path and line of every value, and
collect every error into an ``Errors`` list instead of stopping at the first.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.config.errors import ConfigError, allowed, did_you_mean
from runtime.config.yamlloc import LocDict, LocList, line_of
from runtime.durations import DurationError, format_duration, parse_duration

Validator = Callable[[Any], Any]


class Invalid(Exception):
    """A value is not acceptable; the message says what is allowed."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Where:
    file: str
    line: int
    path: str

    def child(self, key: Any, container: Any) -> Where:
        line = line_of(container, key) or self.line
        if isinstance(key, int):
            return Where(self.file, line, f"{self.path}[{key}]")
        return Where(self.file, line, f"{self.path}.{key}" if self.path else str(key))


def where_in(raw: Any, root: Where, *keys: Any) -> Where:
    """file:line and key path of a value found by ``keys`` inside a loaded document (missing keys keep
    the line of the nearest existing parent)."""
    where, node = root, raw
    for key in keys:
        where = where.child(key, node)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return where


class Errors(list):
    """Collected ConfigErrors."""

    def add(self, where: Where, message: str) -> None:
        self.append(ConfigError(where.file, where.line, where.path, message))


def where_of(doc: Any, file: str = "<memory>", path: str = "") -> Where:
    if isinstance(doc, (LocDict, LocList)):
        return Where(doc.file, doc.line, path)
    return Where(file, 0, path)


def check(validator: Validator, value: Any, where: Where, errors: Errors) -> Any:
    """Apply any validator at ``where``; on failure record the error and return MISSING."""
    if isinstance(validator, Composite):
        return validator.walk(value, where, errors)
    try:
        return validator(value)
    except Invalid as exc:
        errors.add(where, str(exc))
        return MISSING


class Composite:
    """A validator that walks into containers and reports errors itself."""

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, value: Any) -> Any:
        errors = Errors()
        out = self.walk(value, where_of(value), errors)
        if errors:
            raise Invalid(errors[0].message)
        return out


@dataclass(frozen=True)
class Required:
    key: str


@dataclass(frozen=True)
class Optional:
    key: str
    default: Any = MISSING


class Schema(Composite):
    """A mapping with declared keys; unknown keys are errors with a 'did you mean'."""

    def __init__(self, fields: Mapping[Required | Optional, Validator], extra: Validator | None = None) -> None:
        self.fields = dict(fields)
        self.extra = extra

    def keys(self) -> list[str]:
        return [k.key for k in self.fields]

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:
        if value is None:
            value = LocDict(where.file, where.line)
        if not isinstance(value, dict):
            errors.add(where, f"expected a mapping with keys {allowed(self.keys())}, got {_show(value)}")
            return MISSING
        out: dict[str, Any] = {}
        known = set(self.keys())
        for key in value:
            if key not in known and self.extra is None:
                errors.add(where.child(key, value),
                           f"unknown key {key!r}{did_you_mean(key, known)}; allowed: {allowed(known)}")
        for spec, validator in self.fields.items():
            if spec.key in value:
                out[spec.key] = check(validator, value[spec.key], where.child(spec.key, value), errors)
            elif isinstance(spec, Required):
                errors.add(where, f"missing required key {spec.key!r}")
                out[spec.key] = MISSING
            elif spec.default is not MISSING:
                out[spec.key] = spec.default() if callable(spec.default) else spec.default
        if self.extra is not None:
            for key in value:
                if key not in known:
                    out[key] = check(self.extra, value[key], where.child(key, value), errors)
        return out


class ListOf(Composite):
    def __init__(self, item: Validator, min_len: int = 0) -> None:
        self.item = item
        self.min_len = min_len

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:
        if value is None:
            value = []
        if not isinstance(value, list):
            errors.add(where, f"expected a list, got {_show(value)}")
            return MISSING
        if len(value) < self.min_len:
            errors.add(where, f"expected at least {self.min_len} item(s), got {len(value)}")
        return [check(self.item, v, where.child(i, value), errors) for i, v in enumerate(value)]


class Given(Composite):
    """A key whose value may not be left empty (``key:`` with nothing after it); ``hint`` says what to write."""

    def __init__(self, inner: Validator, hint: str) -> None:
        self.inner = inner
        self.hint = hint

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:
        if value is None:
            errors.add(where, f"has no value; {self.hint}")
            return MISSING
        return check(self.inner, value, where, errors)


class MapOf(Composite):
    """A mapping of name -> item, names checked by ``key``."""

    def __init__(self, key: Validator, item: Validator) -> None:
        self.key = key
        self.item = item

    def walk(self, value: Any, where: Where, errors: Errors) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            errors.add(where, f"expected a mapping, got {_show(value)}")
            return MISSING
        out = {}
        for k, v in value.items():
            sub = where.child(k, value)
            if check(self.key, k, sub, errors) is MISSING:
                continue
            out[k] = check(self.item, v, sub, errors)
        return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


# ---- scalar validators ---------------------------------------------------------------------------------

def string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {_show(value)}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {_show(value)}")
    return value


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer, got {_show(value)}")
    return value


def number(value: Any) -> float:
    """A finite number: NaN and infinity break every comparison and calculation they reach."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"expected a number, got {_show(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise Invalid("too large a number (beyond any float)") from None
    if not math.isfinite(result):
        raise Invalid(f"expected a finite number, got {value!r}")
    return result


def nonzero_number(value: Any) -> float:
    """A finite number other than 0 (a scale or divisor)."""
    result = number(value)
    if result == 0:
        raise Invalid("must not be 0 (it is a factor: every value would become 0, or a division by 0)")
    return result


def int_range(lo: int, hi: int) -> Validator:
    def validate(value: Any) -> int:
        value = integer(value)
        if not lo <= value <= hi:
            raise Invalid(f"{value} is out of range; allowed {lo}..{hi}")
        return value
    return validate


def number_range(lo: float | None = None, hi: float | None = None) -> Validator:
    def validate(value: Any) -> float:
        value = number(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise Invalid(f"{value:g} is out of range; allowed {'' if lo is None else f'{lo:g}'}.."
                          f"{'' if hi is None else f'{hi:g}'}")
        return value
    return validate


def one_of(*choices: str) -> Validator:
    def validate(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"{value!r} is not allowed{did_you_mean(value, choices)}; allowed: {allowed(choices)}")
        return value
    return validate


def scalar(value: Any) -> Any:
    """A boolean, number or string, kept as written (the type is checked against its tag later)."""
    if not isinstance(value, (bool, int, float, str)):
        raise Invalid(f"expected a boolean, number or name, got {_show(value)}")
    return value


# The longest duration a config may give: timers beyond a year are typos, and far larger values (1e308)
# overflow the clock arithmetic they reach.
MAX_DURATION = 366 * 86400.0


def duration(value: Any) -> float:
    """Seconds from a number or a text like '100ms', '30s', '6h20min'; finite, 0..MAX_DURATION."""
    return duration_range(0.0, MAX_DURATION)(value)


def duration_range(lo: float, hi: float) -> Validator:
    """A duration within lo..hi seconds (both included)."""
    def validate(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise Invalid(f"expected a duration like 100ms, 30s, 6h20min, got {_show(value)}")
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise Invalid(str(exc)) from None
        if not lo <= seconds <= hi:
            raise Invalid(f"{value!r} is out of range; allowed {format_duration(lo)}..{format_duration(hi)}")
        return seconds
    return validate


def positive_duration(value: Any) -> float:
    seconds = duration(value)
    if seconds <= 0:
        raise Invalid(f"duration must be greater than zero, got {value!r}")
    return seconds


_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def tag_name(value: Any) -> str:
    value = string(value)
    if not _NAME.match(value):
        raise Invalid(f"{value!r} is not a tag name; use lower-case dotted words like 'bat.cell_v_max'")
    return value


_IDENT = re.compile(r"^[a-z][a-z0-9_-]*$")


def identifier(value: Any) -> str:
    value = string(value)
    if not _IDENT.match(value):
        raise Invalid(f"{value!r} is not a name; use lower-case letters, digits, '_' or '-'")
    return value


def host(value: Any) -> str:
    value = string(value)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]+$", value):
            raise Invalid(f"{value!r} is not an IP address or host name") from None
    return value


def network(value: Any) -> str:
    value = string(value)
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise Invalid(f"{value!r} is not a network like 192.168.1.0/24 or 127.0.0.1") from None
    return value


_ROLE = re.compile(r"^role:[A-Za-z0-9_.-]+$")


def role(value: Any) -> str:
    """``role:NAME``: a writer identity of server.writers (a TLS client certificate's OU, or the MQTT bridge's)."""
    if isinstance(value, str) and _ROLE.match(value):
        return value
    raise Invalid(f"{value!r} is not a role; allowed: role:NAME, NAME of letters, digits, '.', '_' or '-'")


def port(value: Any) -> int:
    return int_range(0, 65535)(value)


def any_of(*validators: Validator, describe: str) -> Validator:
    def validate(value: Any) -> Any:
        for v in validators:
            try:
                return v(value)
            except Invalid:
                continue
        raise Invalid(f"expected {describe}, got {_show(value)}")
    return validate
