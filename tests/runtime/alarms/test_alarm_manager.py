"""runtime/alarms/manager.py: ISA-18.2 alarm states, acknowledge, shelve, journal and EEMUA 191 flood counting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.alarms import Alarm, AlarmManager, AlarmRefused, AlarmState

S = AlarmState


def manager(latching: bool = False) -> AlarmManager:
    return AlarmManager({"cell_high": Alarm("cell_high", latching=latching), "temp": Alarm("temp")})


def states(m: AlarmManager) -> dict[str, AlarmState]:
    return {name: a.state for name, a in m.alarms.items()}


def test_raise_acknowledge_return() -> None:
    m = manager()
    m.update({"cell_high": True}, 1.0, "a")
    assert m.alarms["cell_high"].state is S.ACTIVE_UNACK and m.alarms["cell_high"].raised == 1
    m.acknowledge("alarm.cell_high", 2.0, "b")
    assert m.alarms["cell_high"].state is S.ACTIVE_ACK
    m.update({"cell_high": False}, 3.0, "c")
    assert m.alarms["cell_high"].state is S.NORMAL
    assert [(e.before, e.after, e.by) for e in m.journal] == [
        (S.NORMAL, S.ACTIVE_UNACK, "condition"), (S.ACTIVE_UNACK, S.ACTIVE_ACK, "operator"),
        (S.ACTIVE_ACK, S.NORMAL, "condition")]


def test_an_unacknowledged_alarm_that_returns_waits_for_its_acknowledge() -> None:
    m = manager()
    m.update({"temp": True}, 1.0, "a")
    m.update({"temp": False}, 2.0, "a")
    assert m.alarms["temp"].state is S.RETURNED_UNACK
    m.update({"temp": True}, 3.0, "a")  # back before anyone looked: annunciates again, counted again
    assert m.alarms["temp"].state is S.ACTIVE_UNACK and m.alarms["temp"].raised == 2
    m.update({"temp": False}, 4.0, "a")
    m.acknowledge("temp", 5.0, "a")
    assert m.alarms["temp"].state is S.NORMAL


def test_a_latching_alarm_never_returns_to_normal_without_an_acknowledge() -> None:
    m = manager(latching=True)
    m.update({"cell_high": True}, 1.0, "a")
    m.acknowledge("cell_high", 2.0, "a")
    m.update({"cell_high": False}, 3.0, "a")
    assert m.alarms["cell_high"].state is S.RETURNED_UNACK
    m.acknowledge("cell_high", 4.0, "a")
    assert m.alarms["cell_high"].state is S.NORMAL


@pytest.mark.parametrize("action, message", [
    (lambda m: m.acknowledge("temp", 1.0, "a"), "alarm temp is normal: there is nothing to acknowledge"),
    (lambda m: m.acknowledge("nope", 1.0, "a"), "no alarm 'nope'; alarms: cell_high, temp"),
    (lambda m: m.shelve("temp", 0, 1.0, "a"), "a shelve lasts more than 0 s and at most 86400 s, not 0 s"),
    (lambda m: m.shelve("temp", 90000, 1.0, "a"), "not 90000 s"),
    (lambda m: m.unshelve("temp", 1.0, "a"), "alarm temp is normal, not shelved"),
])
def test_refused_operator_actions_say_why_and_change_nothing(action, message: str) -> None:
    m = manager()
    before = states(m)
    with pytest.raises(AlarmRefused, match=message):
        action(m)
    assert states(m) == before and not m.journal


def test_a_shelved_alarm_stays_out_of_view_until_its_expiry() -> None:
    m = manager()
    m.update({"temp": True}, 0.0, "a")
    m.shelve("temp", 3600, 10.0, "a")
    assert m.alarms["temp"].state is S.SHELVED and m.standing() == []
    m.update({"temp": True}, 3000.0, "a")
    assert m.alarms["temp"].state is S.SHELVED
    changes = m.update({"temp": True}, 3610.0, "a")
    assert [(c.after, c.by) for c in changes] == [(S.ACTIVE_UNACK, "expiry")]
    assert [a.name for a in m.standing()] == ["temp"]


def test_an_acknowledged_alarm_that_never_left_comes_back_acknowledged_from_a_shelve() -> None:
    m = manager()
    m.update({"temp": True}, 0.0, "a")
    m.acknowledge("temp", 1.0, "a")
    m.shelve("temp", 60, 2.0, "a")
    m.unshelve("temp", 3.0, "a")
    assert m.alarms["temp"].state is S.ACTIVE_ACK
    m.shelve("temp", 60, 4.0, "a")
    m.update({"temp": False}, 5.0, "a")
    m.update({"temp": True}, 6.0, "a")  # left and came back while shelved: the operator must see it
    m.unshelve("temp", 7.0, "a")
    assert m.alarms["temp"].state is S.ACTIVE_UNACK


def test_a_flood_is_ten_raised_in_ten_minutes() -> None:
    alarms = {f"a{i}": Alarm(f"a{i}") for i in range(12)}
    m = AlarmManager(alarms)
    for i in range(9):
        m.update({f"a{j}": True for j in range(i + 1)}, i * 10.0, "a")
    assert not m.flood and m.floods == 0
    m.update({f"a{j}": True for j in range(10)}, 95.0, "a")
    assert m.flood and m.floods == 1
    m.update({}, 700.0, "a")  # the raised ones are older than the window now
    assert not m.flood and m.floods == 1


def test_the_journal_keeps_the_last_n_transitions() -> None:
    m = AlarmManager({"temp": Alarm("temp")}, journal_size=3)
    for i in range(10):
        m.update({"temp": i % 2 == 0}, float(i), "a")
    assert len(m.journal) == 3 and m.journal[-1].t == 9.0
    assert m.journal_records()[-1] == {"t": 9.0, "at": "a", "alarm": "temp", "from": "active-unacknowledged",
                                       "to": "returned-unacknowledged", "by": "condition"}


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["none", "ack", "shelve", "unshelve"])), max_size=60))
def test_an_alarm_is_normal_only_when_its_condition_is_false(steps) -> None:
    """Whatever the operator does, an active condition is never shown as normal, and raised counts every rise."""
    m = AlarmManager({"x": Alarm("x")})
    rises, last = 0, False
    for i, (condition, action) in enumerate(steps):
        m.update({"x": condition}, float(i), "a")
        rises += condition and not last
        last = condition
        try:
            if action == "ack":
                m.acknowledge("x", float(i), "a")
            elif action == "shelve":
                m.shelve("x", 5, float(i), "a")
            elif action == "unshelve":
                m.unshelve("x", float(i), "a")
        except AlarmRefused:
            pass
        if condition:
            assert m.alarms["x"].state is not S.NORMAL
    assert m.alarms["x"].raised == rises
