"""The mqtt: block of tags.yaml: every mistake named with file:line and what is allowed; files checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cli import main
from runtime.config.errors import ConfigErrors
from runtime.mqtt.settings import resolve
from runtime.site import load_site

HEAD = """\
site:
  name: garage
  mqtt:
"""
TAIL = """\
tags:
  bat.voltage: {type: float, unit: V}
"""

# (mqtt lines, expected line, key path, words in the message)
CASES = [
    ("    port: 1883\n", 3, "site.mqtt", ["missing required key 'host'"]),
    ("    host: broker\n    prot: 1883\n", 5, "site.mqtt.prot", ["unknown key 'prot'", "did you mean 'port'"]),
    ("    host: 'my broker'\n", 4, "site.mqtt.host", ["not an IP address or host name"]),
    ("    host: broker\n    port: 70000\n", 5, "site.mqtt.port", ["70000"]),
    ("    host: broker\n    topic_prefix: battplc/#\n", 5, "site.mqtt.topic_prefix", ["no '+', '#'"]),
    ("    host: broker\n    client_id: 'a b'\n", 5, "site.mqtt.client_id", ["allowed: 1..64"]),
    ("    host: broker\n    min_interval: 10ms\n", 5, "site.mqtt.min_interval", ["allowed 50ms..1h"]),
    ("    host: broker\n    writes_as: mqtt\n", 5, "site.mqtt.writes_as", ["allowed: role:NAME"]),
    ("    host: broker\n    credentials: nowhere.secret\n", 5, "site.mqtt.credentials", ["cannot read",
                                                                                       "nowhere.secret"]),
    ("    host: broker\n    tls: {ca: ca.pem}\n", 5, "site.mqtt.tls.ca", ["no file", "ca.pem"]),
    ("    host: broker\n    tls: {cert: c.pem}\n", 5, "site.mqtt.tls", ["cert and key go together"]),
]


@pytest.mark.parametrize("mqtt, line, path, words", CASES, ids=[c[2] + ":" + c[3][0][:20] for c in CASES])
def test_bad_mqtt_settings_name_file_line_and_key(tmp_path: Path, mqtt: str, line: int, path: str,
                                                  words: list[str]) -> None:
    (tmp_path / "tags.yaml").write_text(HEAD + mqtt + TAIL)
    with pytest.raises(ConfigErrors) as caught:
        load_site(tmp_path, with_programs=False)
    errors = [e for e in caught.value.errors if e.path == path]
    assert errors, caught.value.errors
    assert errors[0].line == line and errors[0].file == str(tmp_path / "tags.yaml")
    for word in words:
        assert word in errors[0].message


def test_malformed_credentials_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tags.yaml").write_text(HEAD + "    host: broker\n    credentials: mqtt.secret\n" + TAIL)
    (tmp_path / "mqtt.secret").write_text("no colon here\n")
    assert main(["check", str(tmp_path)]) == 2  # an invalid config
    err = capsys.readouterr().err
    assert f"{tmp_path / 'tags.yaml'}:5: site.mqtt.credentials:" in err
    assert "the first line must be username:password" in err and "Traceback" not in err


def test_defaults_follow_the_site(tmp_path: Path) -> None:
    (tmp_path / "tags.yaml").write_text(HEAD + "    host: broker.lan\n    tls: {}\n" + TAIL)
    site, _, _, _ = load_site(tmp_path, with_programs=False)
    settings = resolve(site.settings.mqtt, site.name, site.dir)
    assert (settings.host, settings.port, settings.topic_prefix, settings.client_id) == \
        ("broker.lan", 8883, "battplc/garage", "battplc-garage")
    assert (settings.min_interval, settings.refresh, settings.discovery_prefix) == (1.0, 300.0, "homeassistant")
    assert settings.writes_as == "role:mqtt"
    assert load_site(_plain(tmp_path / "plain"), with_programs=False)[0].settings.mqtt is None


def _plain(directory: Path) -> Path:
    directory.mkdir()
    (directory / "tags.yaml").write_text("site:\n  name: p\n" + TAIL)
    return directory
