"""IEC 61131-3 chart semantics, one table per rule: qualifiers, priority, no chained firing, .T, safe step."""

from __future__ import annotations

import pytest

# One chart for the qualifier tables: t.go moves a -> b, t.back moves b -> a; t.reset moves a -> c (which
# resets what S stored). Step b carries the action under test on t.out.
QUALIFIER_CHART = """\
name: q
initial: a
safe: a
outputs:
  t.out: {{}}
steps:
  a: {{}}
  b:
    actions:
      - {action}
  c:
    actions:
      - {{qualifier: R, set: t.out}}
transitions:
  - {{from: a, to: b, when: t.go}}
  - {{from: b, to: a, when: t.back}}
  - {{from: a, to: c, when: t.reset}}
  - {{from: c, to: a, when: not t.reset}}
"""

G, B, R = "go", "back", "reset"
# Each row: the action in step b, then per scan (inputs set true this scan, expected step, expected t.out).
# The first scan activates the initial step a; transitions are evaluated from the second scan on.
QUALIFIERS = {
    "N while active, dropped in the scan b leaves": ("{qualifier: N, set: t.out}", [
        ("", "a", False), (G, "b", True), ("", "b", True), (B, "a", False), ("", "a", False)]),
    "S stores until R": ("{qualifier: S, set: t.out}", [
        ("", "a", False), (G, "b", True), (B, "a", True), ("", "a", True), (R, "c", False), ("", "a", False)]),
    "P1 one scan on entry, again on re-entry": ("{qualifier: P1, set: t.out}", [
        ("", "a", False), (G, "b", True), ("", "b", False), (B, "a", False), (G, "b", True), ("", "b", False)]),
    "P0 one scan on exit": ("{qualifier: P0, set: t.out}", [
        ("", "a", False), (G, "b", False), ("", "b", False), (B, "a", True), ("", "a", False)]),
    "D after 2 s active, timer restarts on re-entry": ("{qualifier: D, set: t.out, time: 2s}", [
        ("", "a", False), (G, "b", False), ("", "b", False), ("", "b", True), ("", "b", True), (B, "a", False), (G, "b", False),
        ("", "b", False), ("", "b", True)]),
    "L for the first 2 s only": ("{qualifier: L, set: t.out, time: 2s}", [
        ("", "a", False), (G, "b", True), ("", "b", True), ("", "b", False), ("", "b", False), (B, "a", False), (G, "b", True)]),
    "D with a time from a tag (seconds)": ("{qualifier: D, set: t.out, time: t.x}", [
        ("", "a", False), (G, "b", False), ("", "b", False), ("", "b", False), ("", "b", True)]),
}


@pytest.mark.parametrize("case", list(QUALIFIERS))
def test_qualifier(rig, case: str) -> None:
    action, scans = QUALIFIERS[case]
    r = rig({"q": QUALIFIER_CHART.format(action=action)})
    r.db.values["t.x"] = 3.0
    for i, (inputs, step, out) in enumerate(scans):
        r.step(t_go=G in inputs, t_back=B in inputs, t_reset=R in inputs)
        assert (r.chart("q").step, r["t.out"]) == (step, out), f"scan {i} of {case!r}"


def test_p0_and_n_of_next_step_in_the_same_scan(rig) -> None:
    """The leaving step's P0 pulse has the last word in its exit scan; the new step's N holds after."""
    r = rig({"q": """\
        name: q
        initial: a
        safe: a
        outputs:
          t.num: {}
        steps:
          a:
            actions:
              - {qualifier: P0, set: t.num, value: 7}
          b:
            actions:
              - {qualifier: N, set: t.num, value: 3}
        transitions:
          - {from: a, to: b, when: t.go}
          - {from: b, to: a, when: not t.go}
        """})
    assert [r.step(t_go=go)["t.num"] for go in (False, True, True)] == [0.0, 7.0, 3.0]


PRIORITY_CHART = """\
name: p
initial: a
safe: a
outputs:
  t.out: {{}}
steps:
  a: {{}}
  b: {{actions: [{{qualifier: N, set: t.out}}]}}
  c: {{actions: [{{qualifier: N, set: t.out, value: false}}]}}
transitions:
  - {{from: a, to: {first}, when: t.go}}
  - {{from: a, to: {second}, when: t.go}}
  - {{from: b, to: a, when: not t.go}}
  - {{from: c, to: a, when: not t.go}}
"""


@pytest.mark.parametrize("first, second", [("b", "c"), ("c", "b")])
def test_divergence_takes_the_first_declared_transition(rig, first: str, second: str) -> None:
    r = rig({"p": PRIORITY_CHART.format(first=first, second=second)})
    r.step()
    assert r.step(t_go=True).chart("p").step == first


CHAIN_CHART = """\
name: chain
initial: a
safe: a
outputs:
  t.count: {hold: true}
steps:
  a: {}
  b: {actions: [{qualifier: P1, set: t.count, value: t.count + 1}]}
  c: {actions: [{qualifier: P1, set: t.count, value: t.count + 10}]}
transitions:
  - {from: a, to: b, when: t.go}
  - {from: b, to: c, when: t.go}
  - {from: c, to: a, when: t.go}
"""


def test_one_step_per_scan_even_when_the_next_condition_is_true(rig) -> None:
    r = rig({"chain": CHAIN_CHART})
    steps = [r.step(t_go=True).chart("chain").step for _ in range(5)]
    assert steps == ["a", "b", "c", "a", "b"]  # the first scan activates the initial step
    assert r["t.count"] == 1 + 10 + 1


TIMER_CHART = """\
name: tm
initial: a
safe: a
outputs:
  t.num: {}
steps:
  a: {actions: [{qualifier: N, set: t.num, value: b.T}]}
  b: {actions: [{qualifier: N, set: t.num, value: -1}]}
transitions:
  - {from: a, to: b, when: t.go}
  - {from: b, to: a, when: not t.go}
"""


def test_step_time_is_kept_after_leaving_and_reset_on_reentry(rig) -> None:
    r = rig({"tm": TIMER_CHART})
    r.step()
    r.step(t_go=True)
    times = [r.step()["sfc.tm.step_time"] for _ in range(3)]
    assert times == [1.0, 2.0, 3.0]
    r.step(t_go=False)  # b leaves 4 s after it began
    assert r["t.num"] == 4.0  # b.T kept at its last value, read from step a
    assert r.step()["t.num"] == 4.0
    r.step(t_go=True)
    assert (r["sfc.tm.step_time"], r.chart("tm").steps["b"].flag.t) == (0.0, 0.0)
    assert r.step()["sfc.tm.step_time"] == 1.0


SAFE_CHART = """\
name: s
requires: [t.x]
enable: t.mode != 'off'
initial: run
safe: stop
outputs:
  t.out: {}
  t.num: {idle: -5}
steps:
  stop: {actions: [{qualifier: P1, set: t.num, value: 99}]}
  run:
    actions:
      - {qualifier: N, set: t.out}
      - {qualifier: L, set: t.num, value: t.x, time: 1h}
transitions:
  - {from: stop, to: run, when: t.go}
  - {from: run, to: stop, when: t.back}
"""


def test_bad_required_input_forces_the_safe_step_and_recovery_goes_through_it(rig) -> None:
    r = rig({"s": SAFE_CHART})
    r.db.values["t.x"] = 4.0
    assert (r.step().chart("s").step, r["t.out"], r["t.num"]) == ("run", True, 4.0)
    r.bad("t.x")
    r.step(t_go=True)
    assert (r.chart("s").step, r["t.out"], r["t.num"], r["sfc.s.held"]) == ("stop", False, 99, True)
    assert (r.step()["t.num"], r.chart("s").step) == (-5, "stop")  # P1 was one scan; held, not leaving
    r.good("t.x")
    assert r.step(t_go=False).chart("s").step == "stop"  # recovered, waits for its own transition
    assert r["sfc.s.held"] is False
    assert (r.step(t_go=True).chart("s").step, r["t.out"]) == ("run", True)


def test_enable_false_holds_the_safe_step(rig) -> None:
    r = rig({"s": SAFE_CHART})
    r.step()
    r.step(t_mode=1)  # 'off'
    assert (r.chart("s").step, r.chart("s").held, r["t.out"]) == ("stop", True, False)
    assert r.step(t_go=True).chart("s").step == "stop"
    assert r.step(t_mode=0).chart("s").step == "run"


def test_a_chart_whose_inputs_are_bad_at_start_begins_in_its_safe_step(rig) -> None:
    r = rig({"s": SAFE_CHART})
    r.bad("t.x")
    assert (r.step().chart("s").step, r["sfc.s.held"], r["sfc.s.step"]) == ("stop", True, 0)


def test_the_machine_is_called_only_when_a_transition_clears(rig, monkeypatch) -> None:
    r = rig({"chain": CHAIN_CHART})
    chart = r.chart("chain")
    calls = []
    original = chart.machine.trigger
    monkeypatch.setattr(chart.machine, "trigger", lambda name: calls.append(name) or original(name))
    for go in (False, False, True, False, False, True, True):
        r.step(t_go=go)
    assert calls == ["T1", "T2", "T3"]
    assert chart.machine.state == chart.step == "a"


def test_step_flags_of_another_chart_loaded_later(rig) -> None:
    """first reads second.busy.X although second loads after it; the flag is live within the scan."""
    r = rig({
        "first": """\
            name: first
            initial: watch
            safe: watch
            outputs: {t.out: {}}
            steps:
              watch: {actions: [{qualifier: N, set: t.out, value: second.busy.X and second.busy.T >= 1}]}
            transitions:
              - {from: watch, to: watch, when: 'false'}
            """,
        "second": """\
            name: second
            initial: idle
            safe: idle
            outputs: {t.num: {}}
            steps:
              idle: {actions: [{qualifier: N, set: t.num, value: 0}]}
              busy: {actions: [{qualifier: N, set: t.num, value: 1}]}
            transitions:
              - {from: idle, to: busy, when: t.go}
              - {from: busy, to: idle, when: not t.go}
            """})
    assert "sfc.second.step" in r.chart("first").reads
    outs = [r.step(t_go=go)["t.out"] for go in (False, True, True, True, False)]
    # first runs before second: it sees second's flags as second left them in the previous scan
    assert outs == [False, False, False, True, True]


def test_clock_variables_and_ok(rig) -> None:
    r = rig({"c": """\
        name: c
        initial: day
        safe: day
        outputs: {t.out: {}, t.num: {}}
        steps:
          day:
            actions:
              - {qualifier: N, set: t.out, value: ok(t.x) and weekday == 3}
              - {qualifier: N, set: t.num, value: now_h + dt}
          night: {}
        transitions:
          - {from: day, to: night, when: now_h >= 0.01}
          - {from: night, to: day, when: 'false'}
        """})
    r.step()  # SimClock starts 2026-01-01 00:00, a Thursday; the first scan is at 0 s with dt = period
    assert (r["t.out"], r["t.num"]) == (True, 1.0)
    r.bad("t.x")
    assert r.step()["t.out"] is False
    for _ in range(40):
        r.step()
    assert r.chart("c").step == "night"  # 36 s = 0.01 h


def test_a_chart_reading_only_dt_sees_each_scans_dt(rig) -> None:
    """Without now_h or weekday a chart stores ctx.dt itself (no CLOCK call): its steady scan and the entry of a
    step in a later scan both see that scan's dt, also after an overrun made a scan longer than the period."""
    r = rig({"d": """\
        name: d
        initial: a
        safe: a
        outputs: {t.num: {}, t.x: {hold: true}}
        steps:
          a: {actions: [{qualifier: N, set: t.num, value: t.num + dt}]}
          b: {actions: [{qualifier: P1, set: t.x, value: dt * 10}, {qualifier: N, set: t.num, value: t.num + dt}]}
        transitions:
          - {from: a, to: b, when: t.go}
        """})
    assert "CLOCK" not in r.chart("d").steps["a"].run.__code__.co_names
    r.step()
    r.step()
    assert r["t.num"] == 2.0
    r.scan.clock.advance(1.5)  # a late scan: the loop skips a slot, the next scan starts 2 s after the last
    r.step()
    assert r["t.num"] == 4.0
    r.step()
    r.scan.clock.advance(1.5)
    r.step(t_go=True)
    assert (r.chart("d").step, r["t.x"], r["t.num"]) == ("b", 20.0, 7.0)


def test_values_are_converted_to_the_output_type(rig) -> None:
    r = rig({"v": """\
        name: v
        initial: a
        safe: a
        outputs: {t.count: {}, t.num: {}, t.state: {idle: busy}}
        steps:
          a:
            actions:
              - {qualifier: N, set: t.count, value: t.x * 2}
              - {qualifier: N, set: t.num, value: t.n}
              - {qualifier: N, set: t.state, value: "'idle' if t.x > 1 else 'busy'"}
          b: {}
        transitions:
          - {from: a, to: b, when: 'false'}
          - {from: b, to: a, when: 'true'}
        """})
    r.db.values.update({"t.x": 1.3, "t.n": 4})
    r.step()
    assert (r["t.count"], r["t.num"], r["t.state"]) == (3, 4.0, 0)
    assert (type(r["t.count"]), type(r["t.num"])) == (int, float)


def test_hold_output_keeps_its_value_when_no_action_drives_it(rig) -> None:
    r = rig({"chain": CHAIN_CHART})
    r.db.values["t.count"] = 5
    r.step()
    r.step(t_go=True)
    assert [r.step(t_go=False)["t.count"] for _ in range(3)] == [6, 6, 6]


def test_program_contract(rig) -> None:
    r = rig({"s": SAFE_CHART})
    chart = r.chart("s")
    assert chart.name == "s"
    assert chart.writes == {"t.out", "t.num"}
    assert chart.reads == {"t.x", "t.mode", "t.go", "t.back"}
    assert chart.file.endswith("s.sfc.yaml") and chart.line == 1
    declared = {tag.name: tag for tag in chart.declare()}
    assert declared["sfc.s.step"].values == ("stop", "run") and declared["sfc.s.step"].metric
    assert declared["sfc.s.step_time"].unit == "s"
    assert set(declared) == {"sfc.s.step", "sfc.s.step_time", "sfc.s.held"}


def test_a_raising_expression_faults_the_chart_and_its_outputs_go_safe(rig) -> None:
    r = rig({"z": """\
        name: z
        initial: a
        safe: a
        outputs: {t.num: {}}
        steps:
          a: {actions: [{qualifier: N, set: t.num, value: 10 / t.x}]}
        transitions:
          - {from: a, to: a, when: 'false'}
        """})
    r.db.values["t.x"] = 2.0
    assert r.step()["t.num"] == 5.0
    r.db.values["t.x"] = 0.0
    assert (r.step()["t.num"], r["prog.z.fault"]) == (0.0, True)


def test_guard_reading_a_step_time_means_that_step_in_every_step(rig) -> None:
    """The guard is shared by every step's code; b.T in it is b's time, also while another step runs."""
    r = rig({"g": """\
        name: g
        enable: b.T < 3
        initial: a
        safe: a
        outputs: {t.out: {}}
        steps:
          a: {}
          b: {actions: [{qualifier: N, set: t.out}]}
        transitions:
          - {from: a, to: b, when: t.go}
          - {from: b, to: a, when: 'false'}
        """})
    r.step()
    steps = [r.step(t_go=True).chart("g").step for _ in range(6)]
    assert steps == ["b", "b", "b", "a", "a", "a"]  # b held 3 s, then a is held: b.T stays 3
    assert r.chart("g").held
