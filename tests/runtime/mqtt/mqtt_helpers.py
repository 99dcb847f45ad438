"""A real mosquitto on a free loopback port, a recording paho subscriber, a cuttable TCP link, a test site."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from live_helpers import free_port

MOSQUITTO = shutil.which("mosquitto") or (Path("/usr/sbin/mosquitto") if Path("/usr/sbin/mosquitto").exists()
                                           else None)
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed (.ci/run installs it: "
                                                               "apt-get install mosquitto)")

# A small site: one of each kind of entity, an energy counter the way #15 will declare them, an alarm, a
# button, a select, numbers, a tag that is rw but has no register (not commandable), a private tag.
SITE_YAML = """\
site:
  name: t
  description: test bank
  scan_period: 100ms
  server: {enabled: false}
  metrics: {enabled: false}
  retain: {path: var/retain.json}
  mqtt: {host: 127.0.0.1, port: PORT, topic_prefix: battplc/t, min_interval: 50ms, refresh: 1h}
tags:
  bat.voltage: {type: float, unit: V, default: 26.4, modbus: {address: 0, dtype: uint16, scale: 0.01}}
  bat.soc: {type: float, unit: "%", default: 55.5, modbus: {address: 1, dtype: uint16, scale: 0.1}}
  energy.charged_kwh:
    type: float
    unit: kWh
    retain: true
    default: 123.45
    modbus: {address: 2, dtype: uint32, scale: 0.01}
  soc.residual_kwh: {type: float, unit: kWh, default: 4.2, modbus: {address: 4, dtype: uint16, scale: 0.01}}
  charger.enable: {type: bool, modbus: {address: 0}}
  alarm.cell_high: {type: bool, modbus: {address: 1}}
  cmd.battery_off: {type: bool, access: rw, modbus: {address: 2}}
  cmd.mode:
    type: enum
    values: [auto, "off", force_charge, hold]
    access: rw
    default: auto
    modbus: {address: 10, dtype: uint16}
  par.min_soc:
    type: float
    unit: "%"
    access: rw
    default: 10
    min: 0
    max: 50
    modbus: {address: 11, dtype: uint16, scale: 0.1}
  par.unmapped: {type: float, access: rw, default: 1, min: 0, max: 5}
  internal.secret: {type: int, metric: false, default: 7}
"""


def write_site(directory: Path, port: int, text: str = SITE_YAML) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tags.yaml").write_text(text.replace("PORT", str(port)))
    return directory


class Broker:
    """mosquitto on 127.0.0.1 with a generated config (anonymous, no persistence unless asked)."""

    def __init__(self, directory: Path, extra: str = "") -> None:
        self.port = free_port()
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        # As root mosquitto drops to user 'mosquitto' unless told otherwise, and could not read the test's files.
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
                               f"log_type all\nlog_dest file {directory}/mosquitto.log\n{extra}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        if not wait_until(lambda: _accepts(self.port), timeout=10):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll until ``condition()`` holds; a bound on a failure, not a timed assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


class Subscriber:
    """A real paho client recording the newest payload (and every message) per topic."""

    def __init__(self, port: int, *topics: str) -> None:
        self.latest: dict[str, bytes] = {}
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{id(self)}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.latest[message.topic] = message.payload
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def get(self, topic: str) -> bytes | None:
        with self._lock:
            return self.latest.get(topic)

    def text(self, topic: str) -> str | None:
        payload = self.get(topic)
        return None if payload is None else payload.decode()

    def json(self, topic: str) -> Any:
        payload = self.get(topic)
        return json.loads(payload) if payload else None

    def results(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/result")]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Link:
    """A TCP forwarder 127.0.0.1:port -> target that can be cut (like a pulled cable) and restored."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close every socket at once: the broker sees the client vanish without a DISCONNECT."""
        for sock in [self._listener, *self._sockets]:
            if sock is not None:
                _close(sock)
        self._sockets.clear()
        self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        _close(sock)


def _close(sock: socket.socket) -> None:
    """Shut down, then close: a bare close() leaves the connection open while another thread is in recv()."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
