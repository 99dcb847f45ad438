"""The event log (chart steps, alarms) and the journal-friendly log format."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runtime.app import Controller
from runtime.clock import SimClock
from runtime.events import EventLog, JournalFormatter, configure_logging, logfmt, writes_to_journal
from runtime.program import Program, ScanContext
from runtime.scan import Scan
from runtime.tags import TagDB, TagDef, TagType

REPO = Path(__file__).resolve().parents[2]


class Script(Program):
    """Sets the chart's step in the image directly (as charts do) and stages alarm writes, at given scans."""

    name = "script"
    writes = frozenset({"alarm.cell_high", "alarm.temp"})

    def __init__(self, plan: dict[int, dict[str, Any]]) -> None:
        self.plan = plan

    def scan(self, ctx: ScanContext) -> None:
        for tag, value in self.plan.get(ctx.count + 1, {}).items():
            if tag.startswith("sfc."):
                ctx.db.values[tag] = value
            else:
                ctx.write(tag, value)


def make_scan(plan: dict[int, dict[str, Any]]) -> Scan:
    db = TagDB.from_defs([
        TagDef("sfc.unload.step", TagType.ENUM, values=("idle", "wait", "discharge")),
        TagDef("sfc.load.step", TagType.ENUM, values=("idle", "cc", "cv")),
        TagDef("alarm.cell_high", TagType.BOOL, description="a cell is high"),
        TagDef("alarm.temp", TagType.BOOL),
        TagDef("alarm.count", TagType.INT),  # not a boolean: not an alarm
        TagDef("bat.voltage", TagType.FLOAT, "V"),
    ])
    scan = Scan(db, [Script(plan)], SimClock(start=datetime(2026, 3, 1, 6, 0)), period=1.0)
    scan.observers.append(EventLog(db))
    return scan


def events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "battplc.events"]


def test_step_changes_and_alarms_make_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    scan = make_scan({
        3: {"sfc.unload.step": 2},  # scan 3 starts at t = 2 s
        5: {"alarm.cell_high": True, "sfc.load.step": 1},
        40: {"alarm.cell_high": False},
        3603: {"sfc.unload.step": 0},
    })
    with caplog.at_level(logging.INFO, "battplc.events"):
        scan.run(max_scans=4000)
    assert events(caplog) == [
        ("INFO", "event=step chart=unload from=idle to=discharge after=2s at=2026-03-01T06:00:02"),
        ("INFO", "event=step chart=load from=idle to=cc after=4s at=2026-03-01T06:00:04"),
        ("WARNING", "event=alarm alarm=cell_high state=raised at=2026-03-01T06:00:04"),
        ("INFO", "event=alarm alarm=cell_high state=cleared after=35s at=2026-03-01T06:00:39"),
        ("INFO", "event=step chart=unload from=discharge to=idle after=1h at=2026-03-01T07:00:02"),
    ]


def test_nothing_is_logged_while_nothing_changes(caplog: pytest.LogCaptureFixture) -> None:
    scan = make_scan({})
    scan.db.values["bat.voltage"] = 26.0
    with caplog.at_level(logging.DEBUG, "battplc.events"):
        scan.run(max_scans=500)
    assert events(caplog) == []


def test_an_alarm_active_at_start_or_declared_later_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    scan = make_scan({2: {"alarm.temp": True}})
    scan.db.values["alarm.cell_high"] = True  # raised before the event log was made: its starting point
    scan.observers = [EventLog(scan.db)]
    scan.db.declare(TagDef("alarm.late", TagType.BOOL))
    scan.programs[0].writes = frozenset({"alarm.temp", "alarm.late"})
    scan.programs[0].plan[4] = {"alarm.late": True}
    with caplog.at_level(logging.INFO, "battplc.events"):
        scan.run(max_scans=5)
    assert [message.split(" at=")[0] for _, message in events(caplog)] == [
        "event=alarm alarm=temp state=raised",
        "event=alarm alarm=late state=raised",
    ]


@pytest.mark.parametrize(("fields", "line"), [
    ({"event": "step", "chart": "unload"}, "event=step chart=unload"),
    ({"msg": "two words"}, 'msg="two words"'),
    ({"msg": 'say "hi"'}, r'msg="say \"hi\""'),
    ({"msg": "a=b"}, 'msg="a=b"'),
    ({"msg": ""}, 'msg=""'),
    ({"msg": "line\nbreak", "n": 3}, r'msg="line\nbreak" n=3'),
    ({"path": r"C:\x"}, r'path="C:\\x"'),
])
def test_logfmt(fields: dict[str, Any], line: str) -> None:
    assert logfmt(fields) == line


def record(level: int, message: str, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("battplc.scan", level, __file__, 1, message, None, exc_info)
    rec.__dict__.update(extra)
    return rec


def test_journal_lines_carry_the_priority_and_are_logfmt() -> None:
    formatter = JournalFormatter()
    assert formatter.format(record(logging.WARNING, "program unload raised")) == \
        '<4>level=warning logger=battplc.scan msg="program unload raised"'
    assert formatter.format(record(logging.INFO, "event=step chart=unload from=idle to=wait", logfmt=True)) == \
        "<6>level=info logger=battplc.scan event=step chart=unload from=idle to=wait"
    assert formatter.format(record(logging.DEBUG, "x")).startswith("<7>")
    assert formatter.format(record(logging.CRITICAL, "x")).startswith("<2>")
    lines = formatter.format(record(logging.ERROR, "failed", exc=True)).splitlines()
    assert lines[0] == "<3>level=error logger=battplc.scan msg=failed"
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: boom"


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_writes_journal_lines_only_to_the_journal(tmp_path: Path, root_logging: None) -> None:
    with open(tmp_path / "stderr", "w") as stream:
        status = os.fstat(stream.fileno())
        journal = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        assert writes_to_journal(stream, journal)
        assert not writes_to_journal(stream, {"JOURNAL_STREAM": "1:2"})
        assert not writes_to_journal(stream, {})

        handler = configure_logging(stream=stream, environ=journal)
        assert isinstance(handler.formatter, JournalFormatter)
        assert logging.getLogger().handlers == [handler] and logging.getLogger().level == logging.INFO
        logging.getLogger("battplc.test").warning("to the journal")

        handler = configure_logging(verbose=True, stream=stream, environ={})
        assert not isinstance(handler.formatter, JournalFormatter)
        assert logging.getLogger().level == logging.DEBUG
        logging.getLogger("battplc.test").info("to a terminal")
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert lines[0] == '<4>level=warning logger=battplc.test msg="to the journal"'
    assert lines[1].endswith(" INFO battplc.test: to a terminal") and lines[1][:4].isdigit()


def test_the_controller_keeps_an_event_log(tmp_path: Path) -> None:
    site = tmp_path / "demo"
    shutil.copytree(REPO / "examples" / "demo", site, ignore=shutil.ignore_patterns("var"))
    plant = Controller(site, clock=SimClock(), services=False)
    try:
        assert sum(isinstance(observer, EventLog) for observer in plant.scan.observers) == 1
    finally:
        plant.close()
