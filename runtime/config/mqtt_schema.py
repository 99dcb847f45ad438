"""The ``mqtt:`` block of tags.yaml's ``site:`` section: its schema and its typed form (``site.settings.mqtt``).

Broker, TLS, a credentials file, topics and rates, validated like every other key (file:line, key, what is
allowed). The files it names are checked when the site is assembled (runtime/mqtt/settings.check_files).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.config.schema import (
    Invalid,
    Optional,
    Required,
    Schema,
    boolean,
    duration_range,
    host,
    port,
    role,
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
    Optional("min_interval", default=1.0): duration_range(0.05, 3600),
    Optional("refresh", default=300.0): duration_range(1, 86400),
    Optional("keepalive", default=30.0): duration_range(5, 3600),
    # Who MQTT commands are from, for server.writers: MQTT 3.1.1 messages carry no sender, so the bridge is one writer.
    Optional("writes_as", default="role:mqtt"): role,
})


@dataclass(frozen=True)
class MqttTls:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttConfig:
    """`site.mqtt` as written (file names relative to the site folder; defaults that depend on the site
    name are filled in when the bridge starts)."""

    enabled: bool
    host: str
    port: int | None
    tls: MqttTls | None
    credentials: str | None
    topic_prefix: str | None
    client_id: str | None
    discovery: bool
    discovery_prefix: str
    min_interval: float
    refresh: float
    keepalive: float
    writes_as: str = "role:mqtt"


def mqtt_config(doc: Mapping[str, Any]) -> MqttConfig:
    """From a validated `mqtt:` mapping (MQTT)."""
    tls = doc.get("tls")
    return MqttConfig(
        enabled=doc["enabled"], host=doc["host"], port=doc.get("port"),
        tls=MqttTls(**tls) if tls is not None else None, credentials=doc.get("credentials"),
        topic_prefix=doc.get("topic_prefix"), client_id=doc.get("client_id"), discovery=doc["discovery"],
        discovery_prefix=doc["discovery_prefix"], min_interval=doc["min_interval"], refresh=doc["refresh"],
        keepalive=doc["keepalive"], writes_as=doc["writes_as"])
