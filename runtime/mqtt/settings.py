"""What the bridge connects with: ``site.settings.mqtt`` (runtime/config/mqtt_schema.py) resolved for one site.

Defaults that depend on the site are filled in (topic prefix, client id, port), file names are made absolute
from the site folder and the credentials file is read. ``check_files`` runs when the site is assembled, so
a missing or malformed file fails ``battplc check`` with file:line instead of the first connect at night.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.mqtt_schema import MqttConfig
from runtime.config.schema import Errors


@dataclass(frozen=True)
class MqttSettings:
    """The resolved settings of one site's bridge (defaults filled in, paths absolute, credentials read)."""

    host: str
    port: int
    topic_prefix: str
    client_id: str
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    min_interval: float = 1.0
    refresh: float = 300.0
    keepalive: float = 30.0
    tls: dict[str, Any] | None = None  # ca, cert, key (absolute) and insecure
    username: str | None = None
    password: str | None = None
    writes_as: str = "role:mqtt"  # the one writer identity of every MQTT command under server.writers


def resolve(config: MqttConfig, site_name: str, base: Path) -> MqttSettings:
    """Settings with defaults and credentials read; OSError/ValueError if the credentials file is unusable."""
    tls = None
    if config.tls is not None:
        files = {"ca": config.tls.ca, "cert": config.tls.cert, "key": config.tls.key}
        tls = {key: str(_path(base, name)) if name else None for key, name in files.items()}
        tls["insecure"] = config.tls.insecure
    username = password = None
    if config.credentials:
        username, password = read_credentials(_path(base, config.credentials))
    return MqttSettings(
        host=config.host, port=config.port or (8883 if tls is not None else 1883),
        topic_prefix=config.topic_prefix or f"battplc/{site_name}",
        client_id=config.client_id or f"battplc-{site_name}",
        discovery=config.discovery, discovery_prefix=config.discovery_prefix, min_interval=config.min_interval,
        refresh=config.refresh, keepalive=config.keepalive, tls=tls, username=username, password=password,
        writes_as=config.writes_as)


def read_credentials(path: Path) -> tuple[str, str]:
    """(username, password) from the first line ``username:password`` of a file; ValueError if malformed."""
    line = path.read_text(encoding="utf-8").splitlines()[:1]
    user, sep, password = (line[0] if line else "").partition(":")
    if not sep or not user.strip():
        raise ValueError(f"{path}: the first line must be username:password")
    return user.strip(), password.rstrip("\r\n")


def check_files(site: Any, errors: Errors) -> None:
    """Check the files the site's ``mqtt:`` block names (site.where gives file:line)."""
    config: MqttConfig | None = site.settings.mqtt
    if config is None:
        return
    if config.credentials:
        path = _path(site.dir, config.credentials)
        try:
            read_credentials(path)
        except OSError as exc:
            errors.add(site.where("mqtt", "credentials"), f"cannot read {path}: {exc.strerror or exc}")
        except ValueError as exc:
            errors.add(site.where("mqtt", "credentials"), str(exc))
    tls = config.tls
    if tls is None:
        return
    for key, name in (("ca", tls.ca), ("cert", tls.cert), ("key", tls.key)):
        if name and not _path(site.dir, name).is_file():
            errors.add(site.where("mqtt", "tls", key), f"no file {_path(site.dir, name)}")
    if (tls.cert is None) != (tls.key is None):
        errors.add(site.where("mqtt", "tls"), "cert and key go together: give both or neither")


def _path(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path
