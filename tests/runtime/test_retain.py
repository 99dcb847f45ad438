"""Tests for runtime/retain.py: file format, fallbacks on bad files, save pacing, the writer thread."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.retain import RetainStore, RetainWriter, values_crc

VALUES = {
    "par.cell_v_max": 3.55,
    "bat.soc": 42.5,
    "cmd.mode": "auto",
    "heater.enable": True,
    "scan.overruns": 7,
}
SAVED_AT = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_store(path: Path, clock: FakeClock | None = None, min_interval_s: float = 5.0) -> RetainStore:
    return RetainStore(
        path, min_interval_s=min_interval_s, clock=clock or FakeClock(), wall_clock=lambda: SAVED_AT
    )


def save(path: Path, values: dict) -> None:
    """Save as a running PLC would (load, then write); its log lines stay out of the store under test."""
    store = RetainStore(
        path, min_interval_s=5.0, log=logging.getLogger("tests.setup"), wall_clock=lambda: SAVED_AT
    )
    store.load()
    store.update(values)
    store.flush()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "runtime.retain" and record.levelno == logging.WARNING
    ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "retain.json"


def test_round_trip(path: Path) -> None:
    save(path, VALUES)

    assert make_store(path).load() == VALUES
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["saved_at"] == "2026-11-20T10:00:00+00:00"
    assert document["crc"] == values_crc(VALUES)


def test_save_keeps_previous_save_as_bak(path: Path) -> None:
    save(path, {"bat.soc": 1.0})
    save(path, {"bat.soc": 2.0})

    assert json.loads(path.read_text())["values"] == {"bat.soc": 2.0}
    assert json.loads(path.with_name("retain.json.bak").read_text())["values"] == {"bat.soc": 1.0}
    assert not path.with_name("retain.json.tmp").exists()


def test_corrupt_main_uses_bak_with_one_warning(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(path, {"bat.soc": 1.0})
    save(path, {"bat.soc": 2.0})
    path.write_bytes(b"\0" * 64)  # what an unsynced file can look like after a power cut

    with caplog.at_level(logging.INFO):
        assert make_store(path).load() == {"bat.soc": 1.0}

    assert warnings(caplog) == [
        f"retain: {path} is corrupt (not JSON: Expecting value at line 1 column 1); "
        "using previous copy retain.json.bak from 2026-11-20T10:00:00+00:00"
    ]


def test_missing_main_uses_bak(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(path, {"bat.soc": 1.0})
    save(path, {"bat.soc": 2.0})
    path.unlink()  # killed between the two renames of a save

    assert make_store(path).load() == {"bat.soc": 1.0}
    assert warnings(caplog) == [
        f"retain: {path} is missing; using previous copy retain.json.bak from 2026-11-20T10:00:00+00:00"
    ]


def test_both_corrupt_gives_defaults(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(path, {"bat.soc": 1.0})
    save(path, {"bat.soc": 2.0})
    path.write_text("garbage")
    path.with_name("retain.json.bak").write_text("")

    assert make_store(path).load() == {}
    assert len(warnings(caplog)) == 1
    assert warnings(caplog)[0].startswith(f"retain: {path} is corrupt (not JSON: ")
    assert warnings(caplog)[0].endswith("and retain.json.bak is empty; using defaults")


def test_first_start_gives_defaults(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert make_store(path).load() == {}
    assert warnings(caplog) == [
        f"retain: no retained values in {path} or retain.json.bak; using defaults (expected on the first start)"
    ]


def test_truncated_file_at_every_length(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(path, VALUES)
    data = path.read_bytes()
    assert data.endswith(b"}\n")

    for length in range(1, len(data) - 1):  # the copy without its final newline is still complete
        path.write_bytes(data[:length])
        caplog.clear()
        assert make_store(path).load() == {}, length
        assert warnings(caplog) == [
            f"retain: {path} is truncated and retain.json.bak is missing; using defaults"
        ], length


def test_crc_mismatch(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(path, VALUES)
    document = json.loads(path.read_text())
    document["values"]["bat.soc"] = 99.0  # valid JSON, wrong content: a flipped bit or a hand edit
    path.write_text(json.dumps(document))

    assert make_store(path).load() == {}
    assert warnings(caplog) == [
        f"retain: {path} is corrupt (crc mismatch) and retain.json.bak is missing; using defaults"
    ]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([1, 2], "corrupt (not a retain document)"),
        ({"version": 2, "values": {}, "crc": 0}, "corrupt (version 2, expected 1)"),
        ({"version": 1, "crc": 0}, "corrupt (no values)"),
    ],
)
def test_wrong_document_shape(
    path: Path, caplog: pytest.LogCaptureFixture, document: object, reason: str
) -> None:
    path.write_text(json.dumps(document))

    assert make_store(path).load() == {}
    assert warnings(caplog) == [f"retain: {path} is {reason} and retain.json.bak is missing; using defaults"]


def test_save_after_bak_recovery_keeps_the_good_bak(path: Path) -> None:
    save(path, {"bat.soc": 1.0})
    save(path, {"bat.soc": 2.0})
    path.write_text("garbage")
    store = make_store(path)

    assert store.load() == {"bat.soc": 1.0}
    assert store.dirty  # the only good copy is .bak: rewrite the main file soon
    store.update({"bat.soc": 3.0})
    store.flush()

    assert json.loads(path.read_text())["values"] == {"bat.soc": 3.0}
    assert json.loads(path.with_name("retain.json.bak").read_text())["values"] == {"bat.soc": 1.0}


def test_min_interval_respected(path: Path) -> None:
    clock = FakeClock()
    store = make_store(path, clock)
    store.load()

    assert store.maybe_save() is False  # nothing to write yet
    store.update({"bat.soc": 1.0})
    assert store.maybe_save() is True  # the first write is not held back
    clock.now = 1.0
    store.update({"bat.soc": 2.0})
    assert store.maybe_save() is False
    clock.now = 4.999
    assert store.maybe_save() is False
    assert make_store(path).load() == {"bat.soc": 1.0}
    clock.now = 5.0
    assert store.maybe_save() is True
    assert make_store(path).load() == {"bat.soc": 2.0}
    clock.now = 20.0
    store.update({"bat.soc": 2.0})  # same values as saved: nothing to do
    assert store.maybe_save() is False


def test_update_back_to_saved_values_is_not_dirty(path: Path) -> None:
    store = make_store(path)
    store.load()
    store.update({"bat.soc": 1.0})
    store.flush()
    store.update({"bat.soc": 2.0})
    store.update({"bat.soc": 1.0})

    assert not store.dirty


def test_update_copies_the_values(path: Path) -> None:
    store = make_store(path)
    store.load()
    values = {"bat.soc": 1.0}
    store.update(values)
    values["bat.soc"] = 2.0  # the scan reuses its dict

    store.flush()
    assert make_store(path).load() == {"bat.soc": 1.0}


def test_flush_writes_regardless_of_interval(path: Path) -> None:
    store = make_store(path)
    store.load()
    store.update({"bat.soc": 1.0})
    store.flush()
    store.update({"bat.soc": 2.0})
    store.flush()  # same fake instant as the first write

    assert make_store(path).load() == {"bat.soc": 2.0}


def test_flush_without_changes_writes_nothing(path: Path) -> None:
    store = make_store(path)
    store.load()
    store.flush()

    assert not path.exists()


def test_folder_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "battplc" / "retain.json"
    save(path, VALUES)

    assert make_store(path).load() == VALUES


def test_write_failure_is_logged_once_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    clock = FakeClock()
    store = make_store(blocker / "retain.json", clock)
    store.update({"bat.soc": 1.0})

    assert store.maybe_save() is False
    clock.now = 5.0
    assert store.maybe_save() is False
    assert store.dirty
    assert len(warnings(caplog)) == 1
    assert warnings(caplog)[0].startswith(f"retain: cannot write {blocker / 'retain.json'} (")

    blocker.unlink()
    clock.now = 10.0
    assert store.maybe_save() is True
    assert make_store(blocker / "retain.json").load() == {"bat.soc": 1.0}


def test_writer_thread_saves_newest_and_flushes_on_stop(path: Path) -> None:
    store = RetainStore(path, min_interval_s=3600.0)
    store.load()
    writer = RetainWriter(store)
    writer.submit({"bat.soc": 1.0})
    writer.submit({"bat.soc": 2.0})
    writer.stop()

    assert make_store(path).load() == {"bat.soc": 2.0}


def test_writer_thread_saves_periodically(path: Path) -> None:
    store = RetainStore(path, min_interval_s=0.01)
    store.load()
    writer = RetainWriter(store)
    try:
        writer.submit({"bat.soc": 1.0})
        deadline = time.monotonic() + 5.0
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert make_store(path).load() == {"bat.soc": 1.0}  # written before stop()
    finally:
        writer.stop()
