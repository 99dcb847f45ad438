"""The bridge without a broker: what a cycle publishes, and that a slow broker is not fed without bound."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import write_site

from runtime.mqtt.bridge import Bridge
from runtime.mqtt.settings import resolve
from runtime.site import load_site
from runtime.tags import Quality


def publish(bridge: Bridge, values: dict[str, Any], quality: dict[str, Quality]) -> None:
    """One batch, all at once (no scan to step aside for)."""
    assert bridge._publish_until(bridge._batch(values, quality), math.inf)


@pytest.fixture
def bridge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bridge:
    site, db, _, _ = load_site(write_site(tmp_path, 1883), with_programs=False)
    bridge = Bridge(db, resolve(site.settings.mqtt, site.name, site.dir), site.name)
    bridge._plan()
    bridge._connected.set()  # as after a CONNACK
    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(bridge.client, "publish", lambda topic, payload, **kw: sent.append((topic, payload)))
    bridge.sent = sent  # type: ignore[attr-defined]
    return bridge


def test_first_cycle_sends_discovery_and_every_tag_then_only_changes(bridge: Bridge) -> None:
    values, quality = bridge.db.snapshot()
    publish(bridge, values, quality)
    sent = bridge.sent  # type: ignore[attr-defined]
    public = [t for t in bridge.db.defs.values() if t.metric]
    assert len(sent) == 3 * len(public)  # a discovery config, a value and a quality each
    sent.clear()
    values["bat.voltage"] = 25.0
    quality["bat.soc"] = Quality.STALE
    publish(bridge, values, quality)
    assert sent == [("battplc/t/state/bat.voltage", "25"), ("battplc/t/quality/bat.soc", "STALE")]


def test_a_slow_broker_skips_cycles_instead_of_queueing(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.client, "want_write", lambda: True)  # the previous batch is still unsent
    values, quality = bridge.db.snapshot()
    for _ in range(5):
        publish(bridge, values, quality)
    assert bridge.sent == [] and bridge.stats.skipped_busy == 5  # type: ignore[attr-defined]
    monkeypatch.setattr(bridge.client, "want_write", lambda: False)
    publish(bridge, values, quality)
    assert bridge.sent and bridge.stats.cycles == 1  # type: ignore[attr-defined]


def test_a_batch_paused_for_a_scan_goes_on_where_it_stopped(bridge: Bridge) -> None:
    values, quality = bridge.db.snapshot()
    batch = bridge._batch(values, quality)
    slices = 0
    while not bridge._publish_until(batch, time.monotonic()):  # the scan is due after every message
        slices += 1
    sent = bridge.sent  # type: ignore[attr-defined]
    assert slices == len(sent)  # one message per slice, none twice, none lost
    assert len(set(sent)) == len(sent) == 3 * sum(1 for t in bridge.db.defs.values() if t.metric)
