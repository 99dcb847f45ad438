"""The ``mqtt:`` block of tags.yaml's ``site:`` section: broker, TLS, credentials file, topics and rates.

Validated like every other key (file:line, key, what is allowed). The files it names (credentials, TLS
certificates) are checked at load too, relative to the site folder, so a typo fails ``battplc check``
instead of the first connect at night.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.schema import (
    Errors,
    Invalid,
    Optional,
    Required,
    Schema,
    boolean,
    duration,
    host,
    port,
    string,
)

_TOPIC = re.compile(r"^[^#+\s/][^#+\s]*[^#+\s/]$|^[^#+\s/]$")


def topic_prefix(value: Any) -> str:
    """A topic level path without wildcards, spaces or leading/trailing '/' (e.g. battplc/garage)."""
    value = string(value)
    if not _TOPIC.match(value) or "//" in value:
        raise Invalid(f"{value!r} is not a topic prefix; allowed: levels like battplc/garage, "
                      "no '+', '#', spaces, empty levels or leading/trailing '/'")
    return value


def client_id(value: Any) -> str:
    value = string(value)
    if not 1 <= len(value) <= 64 or not re.match(r"^[A-Za-z0-9._-]+$", value):
        raise Invalid(f"{value!r} is not a client id; allowed: 1..64 of A-Z a-z 0-9 . _ -")
    return value


def interval(lo: float, hi: float) -> Any:
    def validate(value: Any) -> float:
        seconds = duration(value)
        if not lo <= seconds <= hi:
            raise Invalid(f"{value!r} is out of range; allowed {lo:g}s..{hi:g}s")
        return seconds
    return validate


TLS = Schema({
    Optional("ca"): string,  # broker CA (default: the system's trust store)
    Optional("cert"): string,  # client certificate, with key, for brokers that authenticate clients by it
    Optional("key"): string,
    Optional("insecure", default=False): boolean,  # skip host name verification (self-signed test brokers)
})

MQTT = Schema({
    Optional("enabled", default=True): boolean,
    Required("host"): host,
    Optional("port"): port,  # default 1883, or 8883 with tls
    Optional("tls"): TLS,
    Optional("credentials"): string,  # a file holding "username:password" on its first line
    Optional("topic_prefix"): topic_prefix,  # default battplc/<site name>
    Optional("client_id"): client_id,  # default battplc-<site name>
    Optional("discovery", default=True): boolean,
    Optional("discovery_prefix", default="homeassistant"): topic_prefix,
    Optional("min_interval", default=1.0): interval(0.05, 3600),
    Optional("refresh", default=300.0): interval(1, 86400),
    Optional("keepalive", default=30.0): interval(5, 3600),
})


@dataclass(frozen=True)
class MqttSettings:
    """The resolved settings of one site's bridge (defaults filled in, paths absolute)."""

    host: str
    port: int
    topic_prefix: str
    client_id: str
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    min_interval: float = 1.0
    refresh: float = 300.0
    keepalive: float = 30.0
    tls: dict[str, Any] | None = None
    username: str | None = None
    password: str | None = None


def resolve(raw: dict[str, Any], site_name: str, base: Path) -> MqttSettings:
    """Settings with defaults and credentials read; OSError/ValueError if the credentials file is unusable."""
    tls = raw.get("tls")
    if tls is not None:
        tls = {key: str(_path(base, value)) if key in ("ca", "cert", "key") else value for key, value in tls.items()}
    username = password = None
    if raw.get("credentials"):
        username, password = read_credentials(_path(base, raw["credentials"]))
    return MqttSettings(
        host=raw["host"], port=raw.get("port") or (8883 if tls is not None else 1883),
        topic_prefix=raw.get("topic_prefix") or f"battplc/{site_name}",
        client_id=raw.get("client_id") or f"battplc-{site_name}",
        discovery=raw.get("discovery", True), discovery_prefix=raw.get("discovery_prefix", "homeassistant"),
        min_interval=raw.get("min_interval", 1.0), refresh=raw.get("refresh", 300.0),
        keepalive=raw.get("keepalive", 30.0), tls=tls, username=username, password=password)


def read_credentials(path: Path) -> tuple[str, str]:
    """(username, password) from the first line ``username:password`` of a file; ValueError if malformed."""
    line = path.read_text(encoding="utf-8").splitlines()[:1]
    user, sep, password = (line[0] if line else "").partition(":")
    if not sep or not user.strip():
        raise ValueError(f"{path}: the first line must be username:password")
    return user.strip(), password.rstrip("\r\n")


def check_files(site: Any, errors: Errors) -> None:
    """Load-time check of the files the ``mqtt:`` block names (site.where gives file:line)."""
    raw = site.settings.get("mqtt")
    if not isinstance(raw, dict):
        return
    if raw.get("credentials"):
        path = _path(site.dir, raw["credentials"])
        try:
            read_credentials(path)
        except OSError as exc:
            errors.add(site.where("mqtt", "credentials"), f"cannot read {path}: {exc.strerror or exc}")
        except ValueError as exc:
            errors.add(site.where("mqtt", "credentials"), str(exc))
    for key, value in (raw.get("tls") or {}).items():
        if key in ("ca", "cert", "key") and not _path(site.dir, value).is_file():
            errors.add(site.where("mqtt", "tls", key), f"no file {_path(site.dir, value)}")
    tls = raw.get("tls") or {}
    if ("cert" in tls) != ("key" in tls):
        errors.add(site.where("mqtt", "tls"), "cert and key go together: give both or neither")


def _path(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path
