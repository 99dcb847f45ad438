"""The alarm manager in the scan: every ``alarm.<name>`` condition annunciated, acknowledged and shelved by tags.

After each commit (a scan observer, like the event log) the service hands the committed alarm conditions to the
``AlarmManager`` and publishes what an operator sees as tags, so SCADA, MQTT, a web page and the CLI all read
and act through the same image:

    alarms.<name>.state     enum  normal | active_unacknowledged | active_acknowledged | returned_unacknowledged
                                  | shelved; on Modbus in the alarm's slot of the register map's alarm block
                                  (alarms in declaration order, see runtime/server/regmap.py)
    alarms.<name>.raised    int   how often the condition became true (metrics)
    alarms.standing         int   alarms the operator should see (active or unacknowledged, not shelved)
    alarms.flood / .floods  EEMUA 191 flood now / floods begun (10 raised alarms within 10 minutes)
    alarms.transitions      int   journal entries since the controller started (metrics)

Operator actions are whitelisted writes of ``cmd.*`` tags (enums of the alarm names, so a wrong name is refused
on the wire as out of range). They land with the SCADA writes at the next latch and are carried out here, after
that scan's commit; the command tag goes back to ``none`` and ``alarms.result`` says what happened, with
``alarms.result_seq`` counting commands so a client can tell its answer from an older one:

    cmd.alarm_ack        none | all | <alarm>    acknowledge one alarm, or every one that can be
    cmd.alarm_shelve_s   int seconds (0..86400)  how long the next shelve lasts (write it first, or together)
    cmd.alarm_shelve     none | <alarm>          take the alarm out of view for cmd.alarm_shelve_s
    cmd.alarm_unshelve   none | <alarm>          put it back in view now
    alarms.result        none | done | nothing_to_acknowledge | not_shelved | bad_duration

A refused action changes nothing but the result. The journal (the last transitions) is kept in
``<retain folder>/alarms.json`` through its own retain writer, so it survives a restart and ``battplc alarms
--journal`` reads it whether the controller runs or not. A scan in which no condition changed, no command came
and nothing is shelved costs one tuple fetch and two comparisons.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runtime.alarms.manager import Alarm, AlarmManager, AlarmRefused, AlarmState, JournalEntry, Priority
from runtime.names import alarm_tag
from runtime.program import fetcher
from runtime.server.regmap import ALARM_SYSTEM_FIRST
from runtime.tags import AlarmSpec, ModbusMap, TagDB, TagDef, TagType

log = logging.getLogger("battplc.alarms")

STATES = tuple(state.label.replace("-", "_") for state in AlarmState)
RESULTS = ("none", "done", "nothing_to_acknowledge", "not_shelved", "bad_duration")
NONE, ALL = "none", "all"
MAX_SHELVE_S = 86400
JOURNAL_FILE = "alarms.json"

ACK, SHELVE, SHELVE_S, UNSHELVE = "cmd.alarm_ack", "cmd.alarm_shelve", "cmd.alarm_shelve_s", "cmd.alarm_unshelve"
RESULT, RESULT_SEQ = alarm_tag("", "result"), alarm_tag("", "result_seq")
STANDING, FLOOD, FLOODS, TRANSITIONS = (alarm_tag("", what) for what in ("standing", "flood", "floods",
                                                                         "transitions"))
# The alarm system's own registers; a 3-register write from SHELVE_S sets the duration and the alarm at once.
ADDRESSES = {name: ALARM_SYSTEM_FIRST + offset for name, offset in (
    (ACK, 0), (SHELVE_S, 1), (SHELVE, 3), (UNSHELVE, 4), (RESULT, 5), (RESULT_SEQ, 6), (STANDING, 7),
    (FLOODS, 8), (TRANSITIONS, 9), (FLOOD, 0))}


def is_alarm(tag: TagDef) -> bool:
    """A boolean ``alarm.<name>`` tag: a condition the manager annunciates."""
    return tag.is_bool and tag.name.startswith("alarm.") and tag.name.count(".") == 1


def alarm_names(defs: Iterable[TagDef]) -> list[str]:
    """The alarms of a tag table in declaration order (their codes in the command enums follow it)."""
    return [tag.name.removeprefix("alarm.") for tag in defs if is_alarm(tag)]


def _mapped(name: str, dtype: str = "uint16") -> ModbusMap:
    return ModbusMap(ADDRESSES[name], dtype)


def alarm_tags(defs: Iterable[TagDef]) -> list[TagDef]:
    """The tags the alarm system declares for the alarms among ``defs`` (none when there is no alarm).

    A pure function of the tag table, so the CLI builds the same register map as the running controller.
    """
    alarms = [tag for tag in defs if is_alarm(tag)]
    if not alarms:
        return []
    names = [tag.name.removeprefix("alarm.") for tag in alarms]
    clash = sorted({NONE, ALL} & set(names))
    if clash:
        raise ValueError(f"alarm.{clash[0]}: {clash[0]!r} is a reserved word of the alarm commands; rename it")
    out = []
    for tag, name in zip(alarms, names, strict=True):
        out += [
            TagDef(alarm_tag(name, "state"), TagType.ENUM, values=STATES,
                   description=f"ISA-18.2 state of alarm.{name} ({_spec(tag).priority} priority"
                               f"{', latching' if _spec(tag).latching else ''})"),
            TagDef(alarm_tag(name, "raised"), TagType.INT, "count", f"times alarm.{name} was raised"),
        ]
    targets = (NONE, *names)
    return out + [
        TagDef(ACK, TagType.ENUM, values=(NONE, ALL, *names), access="rw", modbus=_mapped(ACK),
               description="acknowledge an alarm (or all); back to none once done, see alarms.result"),
        TagDef(SHELVE_S, TagType.INT, "s", access="rw", min=0, max=MAX_SHELVE_S, default=7200,
               modbus=_mapped(SHELVE_S, "uint32"), description="how long the next cmd.alarm_shelve lasts"),
        TagDef(SHELVE, TagType.ENUM, values=targets, access="rw", modbus=_mapped(SHELVE),
               description="shelve an alarm for cmd.alarm_shelve_s; back to none once done"),
        TagDef(UNSHELVE, TagType.ENUM, values=targets, access="rw", modbus=_mapped(UNSHELVE),
               description="put a shelved alarm back in view; back to none once done"),
        TagDef(RESULT, TagType.ENUM, values=RESULTS, modbus=_mapped(RESULT), metric=False,
               description="what became of the last alarm command"),
        TagDef(RESULT_SEQ, TagType.INT, "count", max=65535, modbus=_mapped(RESULT_SEQ), metric=False,
               description="alarm commands carried out (wraps at 65536): a new answer in alarms.result"),
        TagDef(STANDING, TagType.INT, "count", modbus=_mapped(STANDING),
               description="alarms to see: active or unacknowledged, not shelved"),
        TagDef(FLOODS, TagType.INT, "count", modbus=_mapped(FLOODS),
               description="alarm floods begun (EEMUA 191: 10 raised within 10 minutes)"),
        TagDef(TRANSITIONS, TagType.INT, "count", modbus=_mapped(TRANSITIONS, "uint32"),
               description="alarm state changes since start (the journal)"),
        TagDef(FLOOD, TagType.BOOL, modbus=ModbusMap(ADDRESSES[FLOOD], "bool"),
               description="an alarm flood is on now"),
    ]


def _spec(tag: TagDef) -> AlarmSpec:
    return tag.alarm or AlarmSpec()


class AlarmService:
    """Scan observer: the alarm conditions into the manager, the operator's commands out of the image."""

    def __init__(self, db: TagDB, journal_path: Path | None = None, journal_size: int = 200) -> None:
        self.db = db
        alarms = [tag for tag in db.defs.values() if is_alarm(tag)]
        self.names = tuple(tag.name.removeprefix("alarm.") for tag in alarms)
        self.manager = AlarmManager({
            tag.name.removeprefix("alarm."): Alarm(tag.name.removeprefix("alarm."),
                                                   Priority[_spec(tag).priority.upper()], _spec(tag).latching,
                                                   tag.description)
            for tag in alarms}, journal_size=journal_size)
        for tag in alarm_tags(db.defs.values()):
            db.ensure(tag)
        self._conditions = fetcher(tuple(tag.name for tag in alarms))
        self._commands = fetcher((ACK, SHELVE, UNSHELVE) if alarms else ())
        self._last: tuple[Any, ...] = ()
        self._idle = (0, 0, 0) if alarms else ()
        self._seq = 0
        self.transitions = 0
        self._store: Any = None
        self._writer: Any = None
        if journal_path is not None and alarms:
            self._open_journal(journal_path)

    # ---- the scan -------------------------------------------------------------------------------------------

    def __call__(self, scan: Any) -> None:
        values = self.db.values
        conditions = self._conditions(values)
        commands = self._commands(values)
        if conditions == self._last and commands == self._idle and not self.manager.any_shelved:
            return
        t, at = scan.ctx.t, scan.ctx.now.isoformat(timespec="seconds")
        self._last = conditions
        changes = self.manager.update(dict(zip(self.names, conditions, strict=True)), t, at)
        if commands != self._idle:
            changes += self._carry_out(commands, t, at)
        if changes:
            self._publish(changes)
        self._publish_figures()

    def _carry_out(self, commands: tuple[int, int, int], t: float, at: str) -> list[JournalEntry]:
        """Each pending command, in the order ack, shelve, unshelve; every one gets a result."""
        ack, shelve, unshelve = commands
        defs, values = self.db.defs, self.db.values
        done: list[JournalEntry] = []
        for tag, code, action in ((ACK, ack, self._acknowledge), (SHELVE, shelve, self._shelve),
                                  (UNSHELVE, unshelve, self._unshelve)):
            if not code:
                continue
            target = defs[tag].values[code]
            try:
                done += action(target, t, at)
            except AlarmRefused as refusal:
                log.warning("%s %s refused: %s", tag, target, refusal)
                self._answer(refusal.reason)
            else:
                log.info("%s %s: done", tag, target)
                self._answer("done")
            values[tag] = 0
        return done

    def _acknowledge(self, target: str, t: float, at: str) -> list[JournalEntry]:
        if target != ALL:
            return [self.manager.acknowledge(target, t, at)]
        waiting = [a.name for a in self.manager.alarms.values()
                   if a.state in (AlarmState.ACTIVE_UNACK, AlarmState.RETURNED_UNACK)]
        if not waiting:
            raise AlarmRefused("no alarm is waiting for an acknowledge", "nothing_to_acknowledge")
        return [self.manager.acknowledge(name, t, at) for name in waiting]

    def _shelve(self, target: str, t: float, at: str) -> list[JournalEntry]:
        return [self.manager.shelve(target, float(self.db.values[SHELVE_S]), t, at)]

    def _unshelve(self, target: str, t: float, at: str) -> list[JournalEntry]:
        return [self.manager.unshelve(target, t, at)]

    def _answer(self, result: str) -> None:
        values = self.db.values
        self._seq = (self._seq + 1) % 65536
        values[RESULT] = RESULTS.index(result)
        values[RESULT_SEQ] = self._seq

    # ---- what the operator sees -------------------------------------------------------------------------------

    def _publish(self, changes: list[JournalEntry]) -> None:
        values, stamp = self.db.values, self.db.stamp
        for entry in changes:
            alarm = self.manager.alarms[entry.alarm]
            values[alarm_tag(alarm.name, "state")] = int(alarm.state)
            values[alarm_tag(alarm.name, "raised")] = alarm.raised
            stamp[alarm_tag(alarm.name, "state")] = entry.t
            # The event log already tells raised and cleared; what only the manager knows goes to info.
            log.log(logging.DEBUG if entry.by == "condition" else logging.INFO, "alarm %s: %s -> %s (%s)",
                    entry.alarm, entry.before.label, entry.after.label, entry.by)
        self.transitions += len(changes)
        if self._writer is not None:
            self._writer.submit({"journal": self.manager.journal_records(), "floods": self.manager.floods})

    def _publish_figures(self) -> None:
        values = self.db.values
        for alarm in self.manager.alarms.values():  # raised also counts while shelved, without a transition
            values[alarm_tag(alarm.name, "raised")] = alarm.raised
        values[STANDING] = len(self.manager.standing())
        values[FLOOD] = self.manager.flood
        values[FLOODS] = self.manager.floods
        values[TRANSITIONS] = self.transitions

    # ---- the retained journal ---------------------------------------------------------------------------------

    def _open_journal(self, path: Path) -> None:
        from runtime.retain import RetainStore, RetainWriter

        self._store = RetainStore(path, 1.0, log=log)
        saved = self._store.load()
        for record in saved.get("journal", [])[-self.manager.journal_size:]:
            entry = journal_entry(record)
            if entry is not None:
                self.manager.journal.append(entry)
        floods = saved.get("floods")
        self.manager.floods = floods if isinstance(floods, int) and floods >= 0 else 0
        self._writer = RetainWriter(self._store)

    def stop(self) -> None:
        """Write the journal a last time (controller stop)."""
        if self._writer is not None:
            self._writer.stop()


def journal_entry(record: Any) -> JournalEntry | None:
    """A journal record read back from the retain file; None for one that does not make sense."""
    by_label = {state.label: state for state in AlarmState}
    try:
        return JournalEntry(float(record["t"]), str(record["at"]), str(record["alarm"]), by_label[record["from"]],
                            by_label[record["to"]], str(record["by"]))
    except (KeyError, TypeError, ValueError):
        return None


def journal_path(site: Any) -> Path:
    """``alarms.json`` next to the site's retain file."""
    retain = Path(site.settings.retain.path)
    return (retain if retain.is_absolute() else site.dir / retain).parent / JOURNAL_FILE


def attach(controller: Any) -> AlarmService | None:
    """Declare the alarm tags and observe the scan; the journal is retained when services run (not in sims)."""
    from runtime.config.errors import ConfigErrors
    from runtime.config.schema import Errors
    from runtime.config.tags_schema import check_register_overlaps

    db = controller.db
    if not any(is_alarm(tag) for tag in db.defs.values()):
        return None
    errors = Errors()  # the alarm system's registers must not sit on a site's own
    check_register_overlaps([*db.defs.values(), *alarm_tags(db.defs.values())], errors)
    if errors:
        raise ConfigErrors(errors)
    journal = journal_path(controller.site) if controller.services else None
    service = AlarmService(db, journal)
    controller.scan.observers.append(service)
    return service


__all__ = ["AlarmService", "RESULTS", "STATES", "alarm_names", "alarm_tags", "attach", "is_alarm", "journal_entry",
           "journal_path"]
