"""The MQTT bridge against a real mosquitto: discovery payloads, values, availability, commands, removal.

The controller runs on a SimClock and is stepped by the test; the bridge's own threads talk to the broker.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import (
    SITE_YAML,
    Broker,
    Link,
    Subscriber,
    free_port,
    needs_mosquitto,
    wait_until,
    write_site,
)

from runtime.app import Controller
from runtime.clock import SimClock
from runtime.mqtt.bridge import Bridge, attach
from runtime.tags import Quality

pytestmark = [needs_mosquitto, pytest.mark.interop]

PREFIX = "battplc/t"
DISCOVERY = "homeassistant"
# Required keys per component (FACTS "Home automation conventions", HA MQTT discovery docs).
COMMON = {"name", "unique_id", "availability_topic", "device"}
REQUIRED = {
    "sensor": COMMON | {"state_topic"},
    "binary_sensor": COMMON | {"state_topic", "payload_on", "payload_off"},
    "number": COMMON | {"state_topic", "command_topic", "min", "max", "step"},
    "select": COMMON | {"state_topic", "command_topic", "options"},
    "switch": COMMON | {"state_topic", "command_topic"},
    "button": COMMON | {"command_topic", "payload_press"},
}
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "sw_version"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path).start()
    yield broker
    broker.stop()


@pytest.fixture
def sub(broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port, f"{DISCOVERY}/#", f"{PREFIX}/#")
    yield sub
    sub.close()


class Plant:
    """A controller of the test site with its bridge attached, stepped by the test."""

    def __init__(self, site: Path) -> None:
        self.plc = Controller(site, clock=SimClock(), services=False)
        self._stop = attach(self.plc)
        assert self._stop is not None
        self.bridge: Bridge = self.plc.parts["mqtt"]

    def scan(self, n: int = 1) -> None:
        for _ in range(n):
            self.plc.scan.wait()
            self.plc.scan.step()

    def until(self, condition: Any, timeout: float = 10.0) -> bool:
        """Scan (handing over snapshots) until ``condition()`` holds."""
        def step() -> bool:
            self.scan()
            return bool(condition())
        return wait_until(step, timeout)

    def close(self) -> None:
        self._stop()


@pytest.fixture
def plant(tmp_path: Path, broker: Broker) -> Iterator[Plant]:
    plant = Plant(write_site(tmp_path / "site", broker.port))
    yield plant
    plant.close()


def config_topic(component: str, tag: str) -> str:
    return f"{DISCOVERY}/{component}/t/{tag.replace('.', '_')}/config"


def test_discovery_values_quality_and_availability(plant: Plant, sub: Subscriber) -> None:
    assert plant.until(lambda: sub.text(f"{PREFIX}/state/par.min_soc") is not None)
    assert sub.text(f"{PREFIX}/status") == "online"
    expected = {"bat.voltage": "sensor", "bat.soc": "sensor", "energy.charged_kwh": "sensor",
                "soc.residual_kwh": "sensor", "charger.enable": "binary_sensor", "alarm.cell_high": "binary_sensor",
                "cmd.battery_off": "button", "cmd.alarm_ack": "button", "cmd.mode": "select",
                "par.min_soc": "number", "par.unmapped": "sensor"}
    assert wait_until(lambda: all(sub.get(config_topic(c, t)) for t, c in expected.items()))
    configs = {t: sub.json(config_topic(c, t)) for t, c in expected.items()}
    for tag, component in expected.items():
        config = configs[tag]
        assert REQUIRED[component] <= set(config), (tag, REQUIRED[component] - set(config))
        assert DEVICE_KEYS <= set(config["device"])
        assert config["availability_topic"] == f"{PREFIX}/status"
    # One device for the site; unique ids are unique.
    assert len({json_key(c["device"]) for c in configs.values()}) == 1
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    # Energy counters work in the HA energy dashboard; stored energy is not a counter.
    assert (configs["energy.charged_kwh"]["device_class"], configs["energy.charged_kwh"]["state_class"],
            configs["energy.charged_kwh"]["unit_of_measurement"]) == ("energy", "total_increasing", "kWh")
    assert (configs["soc.residual_kwh"]["device_class"], configs["soc.residual_kwh"]["state_class"]) == \
        ("energy_storage", "measurement")
    assert (configs["bat.voltage"]["device_class"], configs["bat.voltage"]["unit_of_measurement"]) == ("voltage", "V")
    assert configs["bat.soc"]["device_class"] == "battery"
    assert configs["alarm.cell_high"]["device_class"] == "problem"
    assert configs["charger.enable"]["device_class"] == "running"
    assert configs["cmd.mode"]["options"] == ["auto", "off", "force_charge", "hold"]
    assert (configs["par.min_soc"]["min"], configs["par.min_soc"]["max"], configs["par.min_soc"]["step"]) == \
        (0, 50, 0.1)
    assert "command_topic" not in configs["par.unmapped"]  # rw without a register: not commandable
    # A private tag (metric: false) is not published.
    assert not any("internal" in topic for topic in sub.latest)
    # Values and quality, retained.
    assert sub.text(f"{PREFIX}/state/bat.voltage") == "26.4"
    assert sub.text(f"{PREFIX}/state/energy.charged_kwh") == "123.45"
    assert sub.text(f"{PREFIX}/state/cmd.mode") == "auto"
    assert sub.text(f"{PREFIX}/quality/bat.voltage") == "GOOD"
    # On change: a new value is published after the next snapshot.
    plant.plc.db.values["bat.voltage"] = 27.1
    assert plant.until(lambda: sub.text(f"{PREFIX}/state/bat.voltage") == "27.1")
    plant.plc.db.quality["bat.voltage"] = Quality.BAD  # a device went down
    assert plant.until(lambda: sub.text(f"{PREFIX}/quality/bat.voltage") == "BAD")
    retained = Subscriber(plant.bridge.settings.port, f"{PREFIX}/state/#")
    try:
        assert wait_until(lambda: retained.text(f"{PREFIX}/state/bat.voltage") == "27.1")
    finally:
        retained.close()


def json_key(value: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in value.items()))


def command(plant: Plant, sub: Subscriber, tag: str, payload: str, retain: bool = False) -> dict[str, Any]:
    before = len(sub.results())
    sub.publish(f"{PREFIX}/set/{tag}", payload, retain=retain)
    assert wait_until(lambda: len(sub.results()) > before)
    return sub.results()[before]


def test_commands_land_at_the_latch_and_refusals_change_nothing(plant: Plant, sub: Subscriber) -> None:
    assert plant.until(lambda: plant.bridge.connected and sub.text(f"{PREFIX}/state/par.min_soc") == "10")
    db = plant.plc.db
    result = command(plant, sub, "par.min_soc", "12.5")
    assert result == {"tag": "par.min_soc", "payload": "12.5", "result": "accepted", "value": "12.5"}
    assert db["par.min_soc"] == 10.0  # not before the latch
    plant.scan()
    assert db["par.min_soc"] == 12.5
    assert plant.until(lambda: sub.text(f"{PREFIX}/state/par.min_soc") == "12.5")

    assert command(plant, sub, "cmd.mode", "hold")["result"] == "accepted"
    plant.scan()
    assert db["cmd.mode"] == 3

    refusals = {
        ("par.min_soc", "75"): "outside 0..50",
        ("par.min_soc", "nan"): "not a finite number",
        ("par.min_soc", "twelve"): "expected a number",
        ("bat.voltage", "30"): "read-only",
        ("alarm.cell_high", "0"): "read-only",
        ("no.such_tag", "1"): "unknown tag",
        ("par.unmapped", "2"): "no register",
        ("cmd.mode", "discharge"): "not one of auto, off, force_charge, hold",
    }
    before = dict(db.values)
    for (tag, payload), reason in refusals.items():
        result = command(plant, sub, tag, payload)
        assert result["result"] == "refused" and reason in result["reason"], (tag, payload, result)
        assert result["tag"] == tag and result["payload"] == payload
    plant.scan(3)
    assert {k: v for k, v in db.values.items() if not k.startswith("scan.")} == \
        {k: v for k, v in before.items() if not k.startswith("scan.")}
    assert plant.bridge.commands.writes.latched == 2
    assert plant.bridge.stats.commands == {"accepted": 2, "refused": len(refusals)}


def test_a_retained_command_is_not_applied_at_connect(tmp_path: Path, broker: Broker, sub: Subscriber) -> None:
    sub.publish(f"{PREFIX}/set/par.min_soc", "20", retain=True)  # left on the broker, e.g. by a misconfigured HMI
    plant = Plant(write_site(tmp_path / "site", broker.port))
    try:
        assert wait_until(lambda: sub.results())
        assert sub.results()[0]["reason"].startswith("retained command ignored")
        plant.scan(3)
        assert plant.plc.db["par.min_soc"] == 10.0
    finally:
        plant.close()
        sub.publish(f"{PREFIX}/set/par.min_soc", "", retain=True)


def test_buttons_pulse_their_tag(plant: Plant, sub: Subscriber) -> None:
    assert plant.until(lambda: plant.bridge.connected)
    assert wait_until(lambda: sub.json(config_topic("button", "cmd.battery_off")) is not None)
    config = sub.json(config_topic("button", "cmd.battery_off"))
    sub.publish(config["command_topic"], config["payload_press"])
    assert wait_until(lambda: plant.bridge.stats.commands["accepted"] == 1)
    plant.scan()
    assert plant.plc.db["cmd.battery_off"] is True


def test_will_says_offline_when_the_link_dies_and_state_comes_back(tmp_path: Path, broker: Broker,
                                                                   sub: Subscriber) -> None:
    link = Link(broker.port)
    link.up()
    plant = Plant(write_site(tmp_path / "site", link.port))
    try:
        assert plant.until(lambda: sub.text(f"{PREFIX}/state/bat.voltage") == "26.4")
        assert sub.text(f"{PREFIX}/status") == "online"
        link.cut()  # the broker loses the client without a DISCONNECT: it publishes the will
        assert wait_until(lambda: sub.text(f"{PREFIX}/status") == "offline", timeout=90)
        plant.plc.db.values["bat.voltage"] = 25.0  # changes while away are published after the reconnect
        plant.scan(3)
        link.up()
        assert plant.until(lambda: sub.text(f"{PREFIX}/status") == "online", timeout=90)
        assert plant.until(lambda: sub.text(f"{PREFIX}/state/bat.voltage") == "25")
        assert plant.bridge.stats.connects == 2
    finally:
        plant.close()
        link.cut()


def test_broker_restart_republishes_discovery_and_state(plant: Plant, broker: Broker) -> None:
    assert plant.until(lambda: plant.bridge.connected)
    broker.stop()  # no persistence: the restarted broker has no retained message at all
    assert wait_until(lambda: not plant.bridge.connected)
    plant.scan(3)
    broker.start()
    fresh = Subscriber(broker.port, f"{DISCOVERY}/#", f"{PREFIX}/#")
    try:
        assert plant.until(lambda: fresh.text(f"{PREFIX}/status") == "online", timeout=90)
        assert plant.until(lambda: fresh.text(f"{PREFIX}/state/energy.charged_kwh") == "123.45"
                           and fresh.get(config_topic("select", "cmd.mode")))
        assert fresh.text(f"{PREFIX}/quality/energy.charged_kwh") == "GOOD"
    finally:
        fresh.close()
    assert plant.bridge.stats.connects == 2


def test_a_removed_tag_removes_its_entity(tmp_path: Path, broker: Broker) -> None:
    site = write_site(tmp_path / "site", broker.port)
    first = Plant(site)
    watch = Subscriber(broker.port, f"{DISCOVERY}/#")
    try:
        assert first.until(lambda: watch.get(config_topic("sensor", "soc.residual_kwh")))
    finally:
        first.close()
    lines = SITE_YAML.splitlines(keepends=True)
    write_site(site, broker.port, "".join(line for line in lines if "soc.residual_kwh" not in line))
    second = Plant(site)
    try:
        assert second.until(lambda: watch.get(config_topic("sensor", "soc.residual_kwh")) == b"")
        assert second.bridge.stats.entities_removed == 1
        assert watch.get(config_topic("sensor", "bat.voltage"))  # the others stay
    finally:
        second.close()
        watch.close()
    late = Subscriber(broker.port, f"{DISCOVERY}/#")  # a new HA instance sees no retained config for it
    try:
        assert wait_until(lambda: late.get(config_topic("sensor", "bat.voltage")))
        assert late.get(config_topic("sensor", "soc.residual_kwh")) is None
    finally:
        late.close()


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_credentials_from_a_file(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "plc", "s3cret:x"], check=True)
    broker = Broker(tmp_path, extra=f"allow_anonymous false\npassword_file {passwords}\n")
    broker.config.write_text(broker.config.read_text().replace("allow_anonymous true\n", ""))
    broker.start()
    try:
        site = tmp_path / "site"
        write_site(site, broker.port, SITE_YAML.replace("refresh: 1h}", "refresh: 1h, credentials: mqtt.secret}"))
        (site / "mqtt.secret").write_text("plc:s3cret:x\n")
        plant = Plant(site)
        try:
            assert plant.until(lambda: plant.bridge.connected)
        finally:
            plant.close()
    finally:
        broker.stop()


def test_periodic_refresh_and_home_assistant_restart_send_everything_again(tmp_path: Path, broker: Broker,
                                                                           sub: Subscriber) -> None:
    plant = Plant(write_site(tmp_path / "site", broker.port, SITE_YAML.replace("refresh: 1h", "refresh: 1s")))
    topic = f"{PREFIX}/state/bat.voltage"

    def count(name: str) -> int:
        return sum(1 for t, _, _ in list(sub.messages) if t == name)

    try:
        assert plant.until(lambda: count(topic) == 1)
        assert plant.until(lambda: count(topic) >= 2)  # unchanged, sent again by the refresh
        config = config_topic("select", "cmd.mode")
        seen = count(config)
        sub.publish(f"{DISCOVERY}/status", "online")  # Home Assistant restarted
        assert plant.until(lambda: count(config) > seen)
    finally:
        plant.close()


def test_a_dead_broker_leaves_the_scan_running(tmp_path: Path) -> None:
    plant = Plant(write_site(tmp_path / "site", free_port()))  # nobody listens there
    try:
        plant.scan(50)
        plant.plc.db.values["par.min_soc"] = 20.0
        plant.scan(50)
        assert plant.plc.scan.count == 100
        assert not plant.bridge.connected and plant.bridge.stats.published == 0
        assert all(thread.is_alive() for thread in plant.bridge.threads)  # still trying, in the background
    finally:
        plant.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed (to make a test certificate)")
def test_tls_with_the_broker_certificate_verified(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(site / "broker.key"), "-out", str(site / "broker.pem"), "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls_port = free_port()
    broker = Broker(tmp_path, extra=f"listener {tls_port} 127.0.0.1\ncafile {site / 'broker.pem'}\n"
                                    f"certfile {site / 'broker.pem'}\nkeyfile {site / 'broker.key'}\n")
    broker.start()
    sub = Subscriber(broker.port, f"{PREFIX}/#")  # the plain listener, for the test's own subscriber
    try:
        write_site(site, tls_port, SITE_YAML.replace("refresh: 1h}", "refresh: 1h, tls: {ca: broker.pem}}"))
        plant = Plant(site)
        try:
            assert plant.until(lambda: sub.text(f"{PREFIX}/state/bat.voltage") == "26.4")
            assert plant.bridge.settings.port == tls_port
        finally:
            plant.close()
    finally:
        sub.close()
        broker.stop()


# server.writers: parameters for the bridge's role, commands for the engineer's certificate only.
WRITERS = "  server: {enabled: false, writers: {par: [role:mqtt], cmd: [role:engineer]}}\n"


def _with_writers(writers: str, mqtt_extra: str = "") -> str:
    text = SITE_YAML.replace("  server: {enabled: false}\n", writers)
    return text.replace("refresh: 1h}", f"refresh: 1h{mqtt_extra}}}")


def test_server_writers_authorize_mqtt_commands_by_the_bridge_role(tmp_path: Path, broker: Broker,
                                                                    sub: Subscriber) -> None:
    plant = Plant(write_site(tmp_path / "site", broker.port, _with_writers(WRITERS)))
    try:
        assert plant.until(lambda: plant.bridge.connected and sub.text(f"{PREFIX}/state/cmd.mode") == "auto")
        db = plant.plc.db
        assert command(plant, sub, "par.min_soc", "12.5")["result"] == "accepted"  # par grants role:mqtt
        before = dict(db.values)
        for tag, payload in (("cmd.mode", "hold"), ("cmd.battery_off", "1")):
            result = command(plant, sub, tag, payload)
            assert result["result"] == "refused", result
            assert "server.writers" in result["reason"] and "role:mqtt" in result["reason"], result
            assert "'cmd' tags" in result["reason"], result
        plant.scan(3)
        assert db["par.min_soc"] == 12.5
        assert (db["cmd.mode"], db["cmd.battery_off"]) == (before["cmd.mode"], before["cmd.battery_off"])
        assert plant.bridge.commands.writes.latched == 1
        assert plant.bridge.stats.commands == {"accepted": 1, "refused": 2}
        # Home Assistant is offered no control the bridge may not use: cmd.* are shown, not commanded.
        shown = {"cmd.mode": "sensor", "cmd.battery_off": "binary_sensor", "par.min_soc": "number"}
        assert wait_until(lambda: all(sub.get(config_topic(c, t)) for t, c in shown.items()))
        assert "command_topic" not in sub.json(config_topic("sensor", "cmd.mode"))
        assert sub.json(config_topic("sensor", "cmd.mode"))["options"] == ["auto", "off", "force_charge", "hold"]
        assert sub.get(config_topic("select", "cmd.mode")) is None
        assert sub.get(config_topic("button", "cmd.battery_off")) is None
    finally:
        plant.close()


def test_the_bridge_role_is_configurable_and_a_role_granted_nothing_writes_nothing(
        tmp_path: Path, broker: Broker, sub: Subscriber) -> None:
    plant = Plant(write_site(tmp_path / "a", broker.port, _with_writers(WRITERS, ", writes_as: role:engineer")))
    try:
        assert plant.until(lambda: plant.bridge.connected)
        assert command(plant, sub, "cmd.mode", "hold")["result"] == "accepted"
        assert command(plant, sub, "par.min_soc", "12.5")["result"] == "refused"
        plant.scan()
        assert (plant.plc.db["cmd.mode"], plant.plc.db["par.min_soc"]) == (3, 10.0)
    finally:
        plant.close()
    nobody = "  server: {enabled: false, writers: {'*': [127.0.0.0/8]}}\n"  # networks judge Modbus clients only
    plant = Plant(write_site(tmp_path / "b", broker.port, _with_writers(nobody)))
    try:
        assert plant.until(lambda: plant.bridge.connected)
        results = [command(plant, sub, tag, value) for tag, value in (("par.min_soc", "20"), ("cmd.mode", "off"))]
        assert [r["result"] for r in results] == ["refused", "refused"]
        plant.scan(2)
        assert plant.plc.db["par.min_soc"] == 10.0 and plant.plc.db["cmd.mode"] == 0
        assert plant.bridge.commands.writes.latched == 0
    finally:
        plant.close()
