"""aggregate: BMS units found by prefix, the battery as one, the shunt preferred, a missing BMS degrades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.site import load_site
from runtime.tags import Quality, TagDB, TagDef, TagType

ROOT = Path(__file__).resolve().parents[2]


def two_bms_db() -> TagDB:
    """The default site's tags plus a second, parallel BMS (bms2) with its own cells and sensors."""
    db = load_site(ROOT, with_programs=False)[1]
    for k in range(1, 9):
        db.declare(TagDef(f"bms2.cell_{k}", TagType.FLOAT, "V"))
    for name in ("temp_1", "temp_2", "voltage", "current", "soc"):
        db.declare(TagDef(f"bms2.{name}", TagType.FLOAT))
    db.declare(TagDef("bms2.capacity_ah", TagType.FLOAT, "Ah", default=320))
    db.declare(TagDef("bms2.charge_allowed", TagType.BOOL))
    db.declare(TagDef("bms2.discharge_allowed", TagType.BOOL))
    return db


SECOND = {**{f"bms2.cell_{k}": 3.31 for k in range(1, 9)}, "bms2.temp_1": 24.0, "bms2.temp_2": 23.0,
          "bms2.voltage": 26.5, "bms2.current": 0.0, "bms2.soc": 70.0, "bms2.charge_allowed": True,
          "bms2.discharge_allowed": True}


def test_one_bms_is_the_battery(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate"])
    bench.cells(3.30, 3.31, 3.29, 3.30, 3.35, 3.30, 3.28, 3.30)
    bench.set(bms1__temp_1=21.0, bms1__temp_2=18.5, shunt__current=-12.5, shunt__voltage=26.3)
    bench.run(1)
    assert bench["bat.cell_v_max"] == pytest.approx(3.35)
    assert bench["bat.cell_v_min"] == pytest.approx(3.28)
    assert (bench["bat.temp_max"], bench["bat.temp_min"]) == (21.0, 18.5)
    assert bench["bat.current"] == -12.5 and bench["bat.voltage"] == 26.3
    assert bench["bat.power"] == pytest.approx(26.3 * -12.5)
    assert bench["bms.count"] == 1 and bench["bms.online"] == 1 and not bench["alarm.bms_missing"]
    assert bench["bms.charge_allowed"] and bench["bms.discharge_allowed"]


def test_shunt_preferred_else_bms_current(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate"])
    bench.set(shunt__current=10.0, bms1__current=9.0, bms1__voltage=26.2, shunt__voltage=26.4)
    bench.run(1)
    assert bench["bat.current"] == 10.0 and bench["bat.voltage"] == 26.4
    bench.bad("shunt.current", "shunt.voltage", quality=Quality.STALE)
    bench.run(1)
    assert bench["bat.current"] == 9.0 and bench["bat.voltage"] == 26.2
    assert bench.quality("bat.current") is Quality.GOOD


def test_bms_flags_all_must_allow(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate"], db=two_bms_db())
    bench.set(SECOND)
    bench.run(1)
    assert bench["bms.charge_allowed"]
    bench.set(bms2__charge_allowed=False)
    bench.run(1)
    assert not bench["bms.charge_allowed"] and bench["bms.discharge_allowed"]


@pytest.mark.parametrize("isolatable", [True, False])
def test_two_bms_aggregate_and_one_missing_degrades(bench_factory: Any, isolatable: bool) -> None:
    bench = bench_factory(["aggregate", "limits"], db=two_bms_db())
    bench.set(SECOND)
    bench.set(par__packs_isolatable=isolatable)
    bench.set(bms1__soc=50.0, bms1__capacity_ah=320.0)
    bench.run(1)
    assert bench["bms.count"] == 2 and bench["bms.online"] == 2
    assert bench["bat.cell_v_max"] == pytest.approx(3.31) and bench["bat.temp_max"] == 24.0
    assert bench["bms.soc"] == pytest.approx(60.0)  # capacity-weighted
    full_ccl = bench["limits.ccl"]
    assert full_ccl > 0

    bench.bad("bms2.cell_3", quality=Quality.STALE)  # one unit stops answering
    bench.run(1)
    assert bench["alarm.bms_missing"] and bench["bms.online"] == 1
    assert bench["bat.cell_v_max"] == pytest.approx(3.30)  # from the unit still online
    assert bench["bms.charge_allowed"] and bench["bms.discharge_allowed"]  # the site keeps running
    # a pack with its own contactor is isolated and the other carries its share; packs on one bus cannot be
    # isolated, so the silent one (its cells unseen, perhaps at a cut) stops charge and discharge (issue 14)
    assert bench["limits.ccl"] == pytest.approx(full_ccl / 2 if isolatable else 0.0)
    assert bench["limits.dcl"] == 0.0 or isolatable


def test_limits_never_rise_because_a_bms_went_silent(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate", "limits"], db=two_bms_db())
    bench.set(SECOND)
    bench.set(par__packs_isolatable=True, bms2__cell_1=3.56)  # the second pack near its top: charge derated
    bench.run(1)
    before = bench["limits.ccl"]
    assert 0 < before < 0.25 * bench["par.ccl_max_c"] * bench["par.capacity_ah"]  # under half of the half
    bench.bad("bms2.cell_3", quality=Quality.STALE)  # the pack with the highest cell goes silent
    bench.run(600)  # the reporting pack's cells alone would allow half the full limit
    assert 0 < bench["limits.ccl"] <= before


def test_no_bms_online_makes_cell_values_bad(bench_factory: Any) -> None:
    bench = bench_factory(["aggregate"])
    bench.run(1)
    bench.bad("bms1.cell_1")
    bench.run(1)
    for name in ("bat.cell_v_max", "bat.cell_v_min", "bat.temp_max", "bat.temp_min"):
        assert bench.quality(name) is Quality.BAD, name
    assert not bench["bms.charge_allowed"] and not bench["bms.discharge_allowed"]
    assert bench["alarm.bms_missing"] and bench["bms.online"] == 0
    assert bench.quality("bat.current") is Quality.GOOD  # the shunt still measures
    bench.set(bms1__cell_1=3.3)
    bench.run(1)
    assert bench.quality("bat.cell_v_max") is Quality.GOOD and not bench["alarm.bms_missing"]
