"""The MQTT bridge: every public tag on a broker, Home Assistant discovery, commands back, off the scan path.

One thread, and the hand-over: the scan observer copies the tag image at most once per ``min_interval``
and puts the copy in a ``SimpleQueue`` (never blocks, never waits for the broker). The bridge's thread takes
the newest copy and publishes, as retained messages, what changed since it last published (value and
quality), every tag once per ``refresh``, and everything again after each (re)connect. It works between
scans: it pauses just before each scan's deadline and goes on after that scan's commit. paho's socket work
runs on this same thread (``client.loop``), not on one of paho's own, so nothing of the bridge competes with
the scan for the GIL at its deadline. A lost connection is retried with a doubling back-off (1 s to 60 s);
the broker publishes ``offline`` on the status topic through the last will. When the broker is slow and the
previous batch is still unsent, a batch is skipped (counted) instead of queueing without bound.

Topics under the prefix (default ``battplc/<site>``): ``status`` (online/offline), ``state/<tag>``,
``quality/<tag>`` (GOOD/STALE/BAD/INIT), ``set/<tag>`` (commands), ``result`` (one JSON per command).

Commands are authorized by ``server.writers`` for one writer, the bridge's role ``mqtt.writes_as``: MQTT 3.1.1
messages carry no sender identity (the broker's ACLs decide who may publish on ``set/``). Discovery offers
Home Assistant controls only for the tags that role may write.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from runtime.clock import RealClock
from runtime.mqtt.commands import Commands
from runtime.mqtt.discovery import Entity, Topics, device, entity, node_id
from runtime.mqtt.settings import MqttSettings, resolve
from runtime.server.access import WritePolicy
from runtime.server.protocol import MayWrite
from runtime.server.regmap import Point, RegisterMap
from runtime.tags import Quality, TagDB, TagDef, TagType

log = logging.getLogger("battplc.mqtt")

RECONNECT_MIN = 1  # s, doubled up to RECONNECT_MAX after each failed attempt
RECONNECT_MAX = 60
IDLE_POLL = 0.02  # s the thread waits for network traffic when there is nothing to publish
STEP_ASIDE_LIMIT = 1.0  # s a paused batch waits for the scan's commit before it goes on regardless
STOP_TIMEOUT = 2.0  # s the 'offline' message may take on a clean stop
# The publisher pauses this long before each scan's deadline (at most a tenth of the period), so the scan never
# waits for the GIL or a CPU the bridge holds; it goes on after the scan committed (as the Modbus server does).
QUIET_GUARD = 0.001

Snapshot = tuple[dict[str, Any], dict[str, Quality]]


@dataclass
class BridgeStats:
    connects: int = 0
    disconnects: int = 0
    cycles: int = 0
    published: int = 0
    skipped_busy: int = 0  # cycles skipped because the previous batch was still unsent
    entities_removed: int = 0
    commands: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "refused": 0})


def value_text(tag: TagDef, value: Any) -> str:
    """The state payload: enum names, 1/0 for booleans, 'None' (HA's unknown) for NaN."""
    if tag.type == TagType.FLOAT and isinstance(value, float) and not math.isfinite(value):
        return "None"
    return tag.format(value)


class Bridge:
    """One site's connection to one broker."""

    def __init__(self, db: TagDB, settings: MqttSettings, site_name: str, description: str = "",
                 commands: Commands | None = None, may_write: MayWrite | None = None) -> None:
        """``may_write``: ``server.writers`` judged for ``settings.writes_as`` (None: every rw tag)."""
        self.db = db
        self.settings = settings
        self.may_write = may_write
        self.topics = Topics(settings.topic_prefix)
        self.node = node_id(site_name)
        self.device = device(site_name, description, _version())
        self.commands = commands or Commands(db, RegisterMap.from_tags(db.defs.values()))
        self.stats = BridgeStats()
        # (image copy or None for "go on", time to pause by): the scan's only hand-over, never blocking.
        self._inbox: queue.SimpleQueue[tuple[Snapshot | None, float]] = queue.SimpleQueue()
        self._paused = False  # the publisher stopped mid-batch for a scan and waits for its commit
        self._next_snapshot = -math.inf
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._resync = True  # publish discovery and every tag at the next cycle (set again on each connect)
        self._public: list[TagDef] = []
        self._declared = -1
        self._entities: dict[str, Entity] = {}  # discovery topic -> entity, of the current public tags
        self._sent: dict[str, tuple[str, str]] = {}  # tag -> (value, quality) last published
        self._next_refresh = 0.0
        self._thread: threading.Thread | None = None
        self._socket_open = False  # connect() succeeded and no disconnect since (CONNACK may still be due)
        self._tried = False  # connect() once, reconnect() after
        self._failures = 0  # failed attempts since the last good connection
        self._next_attempt = 0.0
        self.client = self._new_client()

    # ---- scan thread ------------------------------------------------------------------------------------------

    def observe(self, scan: Any) -> None:
        """Scan observer (after commit): hand a copy of the image over when one is due; never blocks.

        With a real clock each hand-over carries the time the publisher must pause by (just before the next
        scan's deadline); a publisher that paused in the middle of a batch is woken after the next commit.
        """
        started = scan.ctx.t
        snapshot = None
        if started >= self._next_snapshot:
            self._next_snapshot = started + self.settings.min_interval - 1e-6
            if self._inbox.qsize() < 2:  # a stalled publisher does not make copies pile up
                snapshot = self.db.snapshot()
        if snapshot is not None or self._paused:
            self._paused = False
            if isinstance(scan.clock, RealClock):
                quiet = scan.deadline + scan.period - min(QUIET_GUARD, scan.period / 10)
            else:
                quiet = math.inf
            self._inbox.put((snapshot, quiet))

    # ---- life cycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the bridge's thread; it connects in the background (a broker that is down is retried)."""
        self._plan()
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Say 'offline' (if connected), disconnect and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * STOP_TIMEOUT + self.client.connect_timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def threads(self) -> list[threading.Thread]:
        """The bridge's one thread (for CPU accounting)."""
        return [self._thread] if self._thread is not None else []

    # ---- the bridge's thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        """Network and publishing on one thread: paho's I/O runs here (``client.loop``), not on a thread of its
        own, so nothing of the bridge holds the GIL while it steps aside for a scan."""
        batch: Iterator[None] | None = None
        quiet = math.inf
        while not self._stop.is_set():
            if not self._link_up():
                continue
            items = self._take()
            if batch is not None and self._paused and not items:
                try:  # stepping aside: the scan's commit wakes us (bounded: a scan that stopped cannot hold us)
                    items = [self._inbox.get(timeout=STEP_ASIDE_LIMIT)] + self._take()
                except queue.Empty:
                    self._paused, quiet = False, math.inf
            if items:
                quiet = items[-1][1]  # the latest scan's
                newest = next((snapshot for snapshot, _ in reversed(items) if snapshot is not None), None)
                if newest is not None:
                    batch = self._batch(*newest)  # an unfinished batch is dropped: this one is newer
            if batch is not None:
                try:
                    if not self._publish_until(batch, quiet):
                        self._paused = True  # the next scan is due: go on after its commit
                        continue
                except Exception:  # never let one bad batch end publishing
                    log.exception("MQTT publish cycle failed")
                batch = None
            if self.client.loop(timeout=IDLE_POLL) == mqtt.MQTT_ERR_NO_CONN:  # read, write, keepalive
                self._socket_open = False
        self._say_goodbye()

    def _take(self) -> list[tuple[Snapshot | None, float]]:
        """Everything the scan handed over since the last look (never waits)."""
        items = []
        while not self._inbox.empty():
            items.append(self._inbox.get_nowait())
        return items

    def _link_up(self) -> bool:
        """Whether the socket is open; else try to (re)connect once the back-off allows (True if that worked)."""
        if self._socket_open:
            return True
        now = time.monotonic()
        if now < self._next_attempt:
            self._stop.wait(min(IDLE_POLL, self._next_attempt - now))
            return False
        s = self.settings
        try:
            if self._tried:
                self.client.reconnect()
            else:
                self._tried = True
                self.client.connect(s.host, s.port, keepalive=round(s.keepalive))
        except (OSError, ValueError) as exc:
            self._failures += 1
            self._next_attempt = now + self._backoff()
            if self._failures == 1:
                log.warning("MQTT broker %s:%d not reachable (%s); retrying with back-off up to %d s", s.host,
                            s.port, exc, RECONNECT_MAX)
            return False
        self._socket_open = True
        return True

    def _backoff(self) -> float:
        """Seconds to the next attempt: 1 after a connection that worked, doubling with each failure, <= 60."""
        return float(min(RECONNECT_MAX, RECONNECT_MIN * 2 ** min(self._failures, 6)))

    def _say_goodbye(self) -> None:
        """On stop: 'offline' on the status topic (the will covers every other way of going), then DISCONNECT."""
        if self._connected.is_set():
            info = self.client.publish(self.topics.status, "offline", qos=1, retain=True)
            deadline = time.monotonic() + STOP_TIMEOUT
            while not info.is_published() and self.client.is_connected() and time.monotonic() < deadline:
                self.client.loop(timeout=0.05)
        self.client.disconnect()
        self.client.loop(timeout=0.05)

    @staticmethod
    def _publish_until(batch: Iterator[None], quiet: float) -> bool:
        """Run a batch until it is done (True) or the scan's quiet time begins (False)."""
        for _ in batch:
            if time.monotonic() >= quiet:
                return False
        return True

    def _batch(self, values: dict[str, Any], quality: dict[str, Quality]) -> Iterator[None]:
        """Publish what is due, yielding between messages so the caller can pause it for a scan."""
        if not self._connected.is_set():
            return
        if self.client.want_write():
            self.stats.skipped_busy += 1
            return
        self.stats.cycles += 1
        now = time.monotonic()
        if len(self.db.defs) != self._declared:
            self._plan()
            self._resync = True
        full = self._resync or now >= self._next_refresh
        if self._resync:
            if self.settings.discovery:
                for topic, item in list(self._entities.items()):
                    self._publish(topic, json.dumps(item.config, separators=(",", ":")), qos=1)
                    yield
            self._resync = False
        sent = self._sent
        for tag in self._public:
            name = tag.name
            value = values.get(name)
            if value is None:
                continue
            text, grade = value_text(tag, value), Quality(quality[name]).name
            last = sent.get(name)
            if full or last is None or last[0] != text:
                self._publish(self.topics.state(name), text)
                yield
            if full or last is None or last[1] != grade:
                self._publish(self.topics.quality(name), grade)
                yield
            sent[name] = (text, grade)
        if full:  # only a finished full batch counts as the refresh
            self._next_refresh = now + self.settings.refresh

    def _publish(self, topic: str, payload: str, qos: int = 0) -> None:
        self.client.publish(topic, payload, qos=qos, retain=True)
        self.stats.published += 1

    def _plan(self) -> None:
        """The public tags (those exported as metrics) and their entities, redone when tags were declared."""
        defs = self.db.defs
        self._declared = len(defs)
        self._public = [tag for tag in defs.values() if tag.metric]
        entities = (entity(tag, self._commandable(tag.name), self.topics, self.device) for tag in self._public)
        self._entities = {e.topic(self.settings.discovery_prefix, self.node): e for e in entities}

    def _commandable(self, name: str) -> Point | None:
        """The register of a tag MQTT commands may set: the whitelist and ``server.writers`` for this bridge.
        Home Assistant is offered no control (number, select, button) for a tag the bridge may not write."""
        point = self.commands.writable(name)
        return point if point is not None and (self.may_write is None or self.may_write(name)) else None

    # ---- network thread (paho callbacks) ---------------------------------------------------------------------

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=mqtt.MQTTv311)
        client.will_set(self.topics.status, "offline", qos=1, retain=True)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set(ca_certs=s.tls.get("ca"), certfile=s.tls.get("cert"), keyfile=s.tls.get("key"))
            client.tls_insecure_set(bool(s.tls.get("insecure")))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._failures += 1
            log.warning("MQTT broker %s:%d refused the connection: %s", self.settings.host, self.settings.port,
                        reason)
            return
        self.stats.connects += 1
        self._failures = 0  # the back-off starts over after a good connection
        log.info("MQTT connected to %s:%d as %s", self.settings.host, self.settings.port, self.settings.client_id)
        client.publish(self.topics.status, "online", qos=1, retain=True)
        subscriptions = [(self.topics.commands, 1)]
        if self.settings.discovery:
            dp = self.settings.discovery_prefix
            subscriptions += [(f"{dp}/+/{self.node}/+/config", 1), (f"{dp}/status", 1)]
        client.subscribe(subscriptions)
        self._resync = True
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._socket_open = False
        self._next_attempt = time.monotonic() + self._backoff()
        if was and not self._stop.is_set():
            self.stats.disconnects += 1
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting with back-off", self.settings.host,
                        self.settings.port, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        set_prefix = self.topics.command("")
        if topic.startswith(set_prefix):
            self._command(topic[len(set_prefix):], message)
        elif topic.endswith("/config"):
            self._retained_config(topic, message)
        elif message.payload == b"online":  # Home Assistant (re)started: it wants discovery and states again
            self._resync = True

    def _command(self, name: str, message: mqtt.MQTTMessage) -> None:
        payload = message.payload.decode("utf-8", "replace")
        if message.retain:
            # A retained command would be applied again at every reconnect: never act on one.
            outcome = {"tag": name, "payload": payload, "result": "refused",
                       "reason": "retained command ignored: publish commands without the retain flag"}
            self.stats.commands["refused"] += 1
        else:
            result = self.commands.submit(name, payload, f"mqtt {self.settings.host} as {self.settings.writes_as}",
                                          self.may_write)
            outcome = result.as_json()
            if not result.accepted and self.commands.writable(name) and self._commandable(name) is None:
                outcome["reason"] += (f": MQTT commands write as {self.settings.writes_as} (mqtt.writes_as), "
                                      f"which server.writers does not grant for '{name.split('.', 1)[0]}' tags")
            self.stats.commands["accepted" if result.accepted else "refused"] += 1
        self.client.publish(self.topics.result, json.dumps(outcome), qos=1, retain=False)

    def _retained_config(self, topic: str, message: mqtt.MQTTMessage) -> None:
        """A discovery config on the broker: remove it if its tag is gone (entities published before)."""
        if message.payload and topic not in self._entities:
            log.info("removing Home Assistant entity %s: its tag is no longer public", topic)
            self.client.publish(topic, b"", qos=1, retain=True)
            self.stats.entities_removed += 1


def attach(controller: Any) -> Callable[[], None] | None:
    """Start the bridge for a controller whose site has an enabled ``mqtt:`` block; return its stop."""
    site = controller.site
    config = site.settings.mqtt
    if config is None or not config.enabled:
        return None
    try:
        settings = resolve(config, site.name, site.dir)
    except (OSError, ValueError) as exc:  # checked at load; a file can still vanish before start
        log.error("MQTT not started: %s (check site.mqtt in tags.yaml)", exc)
        return None
    commands = Commands(controller.db, RegisterMap.from_tags(controller.db.defs.values()),
                        unit_id=site.settings.server.unit_id)
    if controller.shadow:  # the server's rule, on the server's write path
        commands.handler.read_only = "shadow mode: writes are refused"
    policy = WritePolicy(site.settings.server.writers)
    if policy.groups is not None:
        granted = policy.groups_of(settings.writes_as)
        log.info("MQTT commands write as %s: server.writers grants it %s", settings.writes_as,
                 f"the tag groups {', '.join(granted)}" if granted else "no tag group (every command is refused)")
    bridge = Bridge(controller.db, settings, site.name, site.settings.description, commands,
                    policy.for_role(settings.writes_as))
    controller.scan.ports.append(commands.writes)
    controller.scan.observers.append(bridge.observe)
    bridge.start()
    controller.parts["mqtt"] = bridge
    return bridge.stop


def _version() -> str:
    try:
        return version("battplc")
    except PackageNotFoundError:
        return "unknown"
