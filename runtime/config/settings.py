"""The `site:` section of tags.yaml as typed settings: read by attribute (``site.settings.server.port``), never by
string keys. Built from the mapping the schema (tags_schema.SITE) validated and filled with defaults, so the
defaults live in one place: the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from runtime.config.mqtt_schema import MQTT, MqttConfig, mqtt_config
from runtime.config.tags_schema import METRICS, RETAIN, SERVER, WEB


@dataclass(frozen=True)
class TlsSettings:
    port: int
    cert: str
    key: str
    ca: str | None = None
    only: bool = False  # no plain port: Modbus only over TLS


@dataclass(frozen=True)
class ServerSettings:
    """The Modbus TCP server for SCADA/HMI (`site.server`)."""

    enabled: bool
    listen: str
    port: int
    unit_id: int
    wrong_unit: str  # ignore | exception
    allow: tuple[str, ...]
    max_connections: int
    max_connections_per_client: int
    idle_timeout: float
    frame_timeout: float  # a frame incomplete for this long closes its connection
    writers: dict[str, tuple[str, ...]] | None = None  # tag group -> networks and role:NAME; None: all may
    tls: TlsSettings | None = None


@dataclass(frozen=True)
class MetricsSettings:
    """The Prometheus endpoint (`site.metrics`)."""

    enabled: bool
    listen: str
    port: int
    max_scrapes_per_s: int  # beyond it a scrape is answered 429 with Retry-After


@dataclass(frozen=True)
class WebSettings:
    """The operator page (`site.web`); writes only with a token, read from ``token_file`` (relative: from the
    site folder)."""

    enabled: bool
    listen: str
    port: int
    token_file: str | None = None


@dataclass(frozen=True)
class RetainSettings:
    """Where and how often retained tags are persisted (`site.retain`); a relative path is from the site."""

    path: str
    period: float


@dataclass(frozen=True)
class SiteSettings:
    name: str
    description: str
    scan_period: float
    scan_spin: float
    application: str | None  # a program folder: its tags.yaml gives programs, interlocks and tags
    programs: tuple[str, ...]
    interlocks: str | None
    server: ServerSettings
    metrics: MetricsSettings
    retain: RetainSettings
    web: WebSettings
    watchdog: bool
    mqtt: MqttConfig | None = None  # absent: no MQTT bridge

    def with_overrides(self, overrides: Mapping[str, Any]) -> SiteSettings:
        """These settings with some replaced; a section (server, metrics, retain, web) may be given as a partial
        mapping, checked and completed by its schema. An unknown key is a ValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"no site setting {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        changes = {key: section_of(key, value) if isinstance(value, Mapping) else value
                   for key, value in overrides.items()}
        return replace(self, **changes)


def server_settings(doc: Mapping[str, Any]) -> ServerSettings:
    """From a validated `server:` mapping (tags_schema.SERVER)."""
    tls = doc.get("tls")
    return ServerSettings(
        enabled=doc["enabled"], listen=doc["listen"], port=doc["port"], unit_id=doc["unit_id"],
        wrong_unit=doc["wrong_unit"], allow=tuple(doc["allow"]), max_connections=doc["max_connections"],
        max_connections_per_client=doc["max_connections_per_client"], idle_timeout=doc["idle_timeout"],
        frame_timeout=doc["frame_timeout"],
        writers={group: tuple(who) for group, who in doc["writers"].items()} if doc.get("writers") is not None
        else None,
        tls=TlsSettings(tls["port"], tls["cert"], tls["key"], tls.get("ca"), tls["only"]) if tls else None)


def section_of(key: str, value: Mapping[str, Any]) -> Any:
    """A typed section from a (possibly partial) mapping, validated by its schema."""
    if key == "server":
        return server_settings(SERVER(dict(value)))
    if key == "metrics":
        return MetricsSettings(**METRICS(dict(value)))
    if key == "retain":
        return RetainSettings(**RETAIN(dict(value)))
    if key == "mqtt":
        return mqtt_config(MQTT(dict(value)))
    if key == "web":
        return WebSettings(**WEB(dict(value)))
    raise ValueError(f"site setting {key!r} is not a section")


def site_settings(doc: Mapping[str, Any]) -> SiteSettings:
    """From the validated `site:` mapping (tags_schema.SITE; every default filled)."""
    return SiteSettings(
        name=doc["name"], description=doc["description"], scan_period=doc["scan_period"],
        scan_spin=doc["scan_spin"], application=doc.get("application"), programs=tuple(doc["programs"]), interlocks=doc.get("interlocks"),
        server=server_settings(doc["server"]), metrics=MetricsSettings(**doc["metrics"]),
        retain=RetainSettings(**doc["retain"]), web=WebSettings(**doc["web"]), watchdog=doc["watchdog"],
        mqtt=mqtt_config(doc["mqtt"]) if doc.get("mqtt") else None)
