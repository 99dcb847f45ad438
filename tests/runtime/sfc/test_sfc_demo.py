"""The demo site's traffic light as a scenario, and the benchmark's naive reference agreeing with the executor."""

from __future__ import annotations

from pathlib import Path

from runtime.clock import SimClock
from runtime.scan import Scan
from runtime.sfc import Chart
from runtime.site import load_site
from tools.bench.bench_sfc import NaiveChart, Runner, site_files

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"

# seconds after start -> (step, red, amber, green, walk, cycles); par.traffic_red_s = 8, green_s = 10
TIMELINE = [
    (0.0, ("red", True, False, False, False, 0)),
    (1.0, ("red", True, False, False, True, 0)),
    (8.0, ("red_amber", True, True, False, False, 0)),
    (9.5, ("green", False, False, True, False, 1)),
    (19.5, ("amber", False, True, False, False, 1)),
    (22.5, ("red", True, False, False, False, 1)),
]


def test_traffic_light_cycle() -> None:
    _, db, programs, _ = load_site(DEMO)
    scan = Scan(db, programs, SimClock(), period=0.1)
    traffic = next(p for p in programs if p.name == "traffic")
    seen = {}
    for n in range(230):
        scan.wait()
        scan.step()
        seen[round(n * 0.1, 1)] = (traffic.step, db.values["demo.red"], db.values["demo.amber"],
                                   db.values["demo.green"], db.values["demo.walk"], db.values["demo.cycles"])
    for at, expected in TIMELINE:
        assert seen[at] == expected, at
        assert at == 0.0 or seen[round(at - 0.1, 1)] != expected, at  # and not a scan earlier


def test_night_mode_blinks_and_off_holds_dark() -> None:
    _, db, programs, _ = load_site(DEMO)
    scan = Scan(db, programs, SimClock(), period=0.1)
    db.values["demo.traffic_mode"] = 2  # night
    amber = []
    for _ in range(30):
        scan.wait()
        scan.step()
        amber.append(db.values["demo.amber"])
    assert db.values["sfc.traffic.step"] == 0 and True in amber and False in amber
    db.values["demo.traffic_mode"] = 0  # off
    scan.wait()
    scan.step()
    assert (db.values["demo.amber"], db.values["sfc.traffic.held"]) == (False, True)


def test_naive_reference_fires_the_same_transitions(tmp_path) -> None:
    site_files(tmp_path)
    ours, naive = Runner(tmp_path, Chart), Runner(tmp_path, NaiveChart)
    for n in range(5000):
        ours.scan(n)
        naive.scan(n)
        assert ours.steps == naive.steps, n
    assert ours.fired == naive.fired > 10
