"""Crash test for runtime/retain.py: SIGKILL a saving process at random moments, then load what it left.

A child process loads the retain file, then saves a counter and a timestamp in a loop, printing each counter
once its save returned. The test kills it 20-80 ms after it reports it started, 200 times, and after every
kill a fresh store must load a complete state: never defaults once a save succeeded, the counter never going
back, and never older than the last save the child reported done. The child saves back to back (a tiny
min interval), so most kills land inside a save, which is where the crash safety is at stake.
"""

from __future__ import annotations

import logging
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.retain import RetainStore, check_values
from runtime.tags import TagDef, TagType

REPO_ROOT = Path(__file__).resolve().parents[2]
KILLS = 200
MIN_INTERVAL_S = 0.001
CHILD_LIFE_S = (0.02, 0.08)
STARTUP_TIMEOUT_S = 10.0
# What the child saves, as tags: every load after a kill is checked value by value, as the controller does.
DEFS = {"counter": TagDef("counter", TagType.INT, retain=True), "stamp": TagDef("stamp", TagType.FLOAT, retain=True)}

CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from runtime.retain import RetainStore, check_values
from runtime.tags import TagDef, TagType

store = RetainStore(Path(sys.argv[1]), min_interval_s=float(sys.argv[3]))
counter = store.load().get("counter", 0)
print("started", counter, flush=True)
while True:
    counter += 1
    stamp = time.monotonic()
    store.update({"counter": counter, "stamp": stamp})
    if store.maybe_save():
        print(counter, stamp, flush=True)
"""


def run_child_until_killed(script: Path, retain_path: Path, rng: random.Random) -> list[tuple[int, float]]:
    """Start the child, SIGKILL it at a random moment after it started; the saves it reported, in order."""
    child = subprocess.Popen(
        # -S skips site-packages: the child needs only the standard library and this tree, and starts faster.
        [sys.executable, "-S", str(script), str(retain_path), str(REPO_ROOT), str(MIN_INTERVAL_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        readable, _, _ = select.select([child.stdout], [], [], STARTUP_TIMEOUT_S)
        started = child.stdout.readline() if readable else b""
        if not started.startswith(b"started "):
            child.kill()
            child.wait()
            pytest.fail(f"child did not start: {started!r} {child.stderr.read().decode()}")
        time.sleep(rng.uniform(*CHILD_LIFE_S))
        child.send_signal(signal.SIGKILL)
        child.wait()
        output = child.stdout.read().decode()
    finally:
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    complete_lines = output.split("\n")[:-1]  # a line cut by the kill has no newline and is not a report
    return [(int(counter), float(stamp)) for counter, stamp in (line.split() for line in complete_lines)]


@pytest.mark.slow
def test_sigkill_during_saves_always_leaves_a_recent_valid_state(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    retain_path = tmp_path / "state" / "retain.json"
    rng = random.Random()
    quiet = logging.getLogger("tests.crash")  # the fallback warnings after a kill mid-rotation are expected
    loaded_counter = 0
    saved_once = False
    kills_inside_a_save = 0

    for kill in range(KILLS):
        reports = run_child_until_killed(script, retain_path, rng)
        saved_once = saved_once or bool(reports)
        kills_inside_a_save += retain_path.with_suffix(".json.tmp").exists()
        store = RetainStore(retain_path, log=quiet)
        state = store.load(check_values(DEFS))
        assert store.fallback is None or not store.fallback.endswith("defaults"), store.fallback

        context = f"kill {kill}: loaded {state}, child reported {reports[-3:]}"
        if saved_once:
            assert state.keys() == {"counter", "stamp"}, context
        if reports:
            last_counter, _ = reports[-1]
            assert state["counter"] >= last_counter, "a save reported done was lost; " + context
        if state:
            assert state["counter"] >= loaded_counter, "counter went back; " + context
            loaded_counter = state["counter"]

    assert saved_once
    # Proves the kills did hit the write path; were it near zero this test would show nothing.
    assert kills_inside_a_save >= KILLS // 10, (
        f"only {kills_inside_a_save} of {KILLS} kills landed inside a save"
    )
