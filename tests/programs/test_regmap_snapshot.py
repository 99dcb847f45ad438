"""The default site's register map against its checked-in snapshot (regmap.snapshot.csv): no tag may move or
disappear silently, since SCADA/HMI clients address registers, not tag names. A new tag may take a free
address (overlaps are config errors); its line joins the snapshot when someone records it there. The runtime's
own tags (scan.*, prog.*, sfc.*, dev.*, addresses from 10000 by their owners' slots) are guarded alike."""

from __future__ import annotations

import csv
from pathlib import Path

from runtime.server.regmap import RegisterMap
from runtime.site import REPO_ROOT, load_running_tags

SNAPSHOT = Path(__file__).with_name("regmap.snapshot.csv")


def snapshot() -> dict[str, tuple[str, int]]:
    rows = csv.DictReader(line for line in SNAPSHOT.read_text().splitlines() if not line.startswith("#"))
    return {row["tag"]: (row["space"], int(row["address"])) for row in rows}


def test_no_register_moved_or_vanished() -> None:
    now = {p.name: (p.space, p.address) for p in RegisterMap.from_tags(load_running_tags(REPO_ROOT)[1].defs.values())}
    recorded = snapshot()
    assert len(recorded) > 250  # the whole map, not a stray fragment
    assert {"scan.count", "sfc.unload.step", "dev.bms1.up", "prog.interlocks.fault"} <= recorded.keys()
    moved = {tag: f"{was} -> {now.get(tag, 'gone')}" for tag, was in recorded.items() if now.get(tag) != was}
    assert moved == {}, f"registers moved or removed (a breaking change for SCADA; if on purpose, edit {SNAPSHOT})"
