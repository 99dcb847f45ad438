"""runtime/alarms/service.py: alarm conditions into the manager after commit, states and figures as tags, and the
operator's commands through cmd.* tags with a result SCADA can read back."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runtime.alarms.service import AlarmService, alarm_tags
from runtime.clock import SimClock
from runtime.program import Program, ScanContext
from runtime.scan import Scan
from runtime.tags import AlarmSpec, ModbusMap, TagDB, TagDef, TagType


class Conditions(Program):
    """Writes the alarm conditions it is told to."""

    name = "conditions"
    writes = frozenset({"alarm.cell_high", "alarm.info"})

    def __init__(self) -> None:
        self.now: dict[str, bool] = {"alarm.cell_high": False, "alarm.info": False}

    def scan(self, ctx: ScanContext) -> None:
        for name, value in self.now.items():
            ctx.write(name, value)


def make(journal: Path | None = None) -> tuple[Scan, Conditions, AlarmService]:
    db = TagDB.from_defs([
        TagDef("alarm.cell_high", TagType.BOOL, modbus=ModbusMap(113, "bool"),
               alarm=AlarmSpec("high", latching=True)),
        TagDef("alarm.info", TagType.BOOL, alarm=AlarmSpec("low")),
        TagDef("alarm.count", TagType.INT),  # not a boolean: not an alarm
    ])
    program = Conditions()
    scan = Scan(db, [program], SimClock(start=datetime(2026, 3, 1, 6, 0)), period=1.0)
    service = AlarmService(db, journal)
    scan.observers.append(service)
    return scan, program, service


def tick(scan: Scan) -> None:
    """One scan in its slot (the simulated clock moves on in wait)."""
    scan.wait()
    scan.step()


def state(scan: Scan, alarm: str) -> str:
    tag = scan.db.defs[f"alarms.{alarm}.state"]
    return tag.format(scan.db.values[tag.name])


def command(scan: Scan, tag: str, value: Any) -> str:
    """A SCADA write landing at the next latch, then that scan; the answer in alarms.result."""
    db = scan.db
    db.values[tag] = db.defs[tag].coerce(value)
    seq = db.values["alarms.result_seq"]
    tick(scan)
    assert db.values["alarms.result_seq"] == (seq + 1) % 65536
    assert db.values[tag] == 0, "a command goes back to none once carried out"
    return db.defs["alarms.result"].format(db.values["alarms.result"])


def test_states_follow_conditions_and_latching_waits_for_an_acknowledge() -> None:
    scan, program, _ = make()
    tick(scan)
    assert state(scan, "cell_high") == "normal"
    program.now["alarm.cell_high"] = True
    tick(scan)
    assert state(scan, "cell_high") == "active_unacknowledged"
    assert scan.db.values["alarms.standing"] == 1
    assert scan.db.values["alarms.cell_high.raised"] == 1
    program.now["alarm.cell_high"] = False
    tick(scan)
    assert state(scan, "cell_high") == "returned_unacknowledged"
    assert command(scan, "cmd.alarm_ack", "cell_high") == "done"
    assert state(scan, "cell_high") == "normal"
    assert scan.db.values["alarms.standing"] == 0
    assert scan.db.values["alarms.transitions"] == 3


def test_a_refused_action_answers_with_the_reason_and_changes_nothing() -> None:
    scan, _, service = make()
    tick(scan)
    journal = list(service.manager.journal)
    assert command(scan, "cmd.alarm_ack", "cell_high") == "nothing_to_acknowledge"
    assert command(scan, "cmd.alarm_ack", "all") == "nothing_to_acknowledge"
    assert command(scan, "cmd.alarm_unshelve", "info") == "not_shelved"
    assert list(service.manager.journal) == journal
    assert state(scan, "cell_high") == "normal"


def test_shelve_for_the_written_duration_then_back_in_view_at_expiry() -> None:
    scan, program, _ = make()
    scan.db.values["cmd.alarm_shelve_s"] = 3
    program.now["alarm.info"] = True
    assert command(scan, "cmd.alarm_shelve", "info") == "done"
    assert state(scan, "info") == "shelved"
    assert scan.db.values["alarms.standing"] == 0
    for _ in range(4):
        tick(scan)
    assert state(scan, "info") == "active_unacknowledged"


def test_ack_all_acknowledges_every_waiting_alarm() -> None:
    scan, program, _ = make()
    program.now.update({"alarm.cell_high": True, "alarm.info": True})
    tick(scan)
    assert command(scan, "cmd.alarm_ack", "all") == "done"
    assert {state(scan, "cell_high"), state(scan, "info")} == {"active_acknowledged"}


def test_the_journal_is_retained_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "alarms.json"
    scan, program, service = make(path)
    program.now["alarm.cell_high"] = True
    tick(scan)
    service.stop()
    _, _, again = make(path)
    assert again.manager.journal_records() == service.manager.journal_records()
    assert again.manager.journal_records()[-1]["to"] == "active-unacknowledged"
    again.stop()


def test_state_registers_sit_in_the_alarm_block_in_declaration_order() -> None:
    from runtime.names import ALARMS
    from runtime.server.regmap import ALARM_SYSTEM_FIRST, BLOCKS, RegisterMap

    defs = [TagDef("alarm.cell_high", TagType.BOOL, modbus=ModbusMap(113, "bool")), TagDef("alarm.x", TagType.BOOL),
            TagDef("bat.soc", TagType.FLOAT, modbus=ModbusMap(1))]  # a site register the old scheme collided with
    tags = {tag.name: tag for tag in alarm_tags(defs)}
    regmap = RegisterMap.from_tags([*defs, *tags.values()])
    first = BLOCKS[ALARMS].first
    assert regmap.by_name["alarms.cell_high.state"].address == first
    assert regmap.by_name["alarms.x.state"].address == first + BLOCKS[ALARMS].slot
    assert regmap.by_name["cmd.alarm_ack"].address == ALARM_SYSTEM_FIRST
    assert tags["cmd.alarm_ack"].values == ("none", "all", "cell_high", "x")
    with pytest.raises(ValueError, match="reserved"):
        alarm_tags([TagDef("alarm.all", TagType.BOOL)])
