"""Bit flips on the wire with the framing intact (the plant's ``bitflip`` sensor fault, the drivers' inline path,
the whole application): io_map's range/max_rate (runtime/drivers/state.py ``Plausibility``) keep them from the
programs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from runtime.site import REPO_ROOT
from tools.plantsim.scenario import load_scenario
from tools.plantsim.sim import Simulation


def run(site: Path, tmp_path: Path) -> dict[str, list[Any]]:
    """Six minutes of a sunny noon at 100 ms scans with bit 9 (512 mV) of cell 3 flipped for one second: the
    one answer of that second (poll 1 s)."""
    scenario = tmp_path / "flip.yaml"
    scenario.write_text(f"start: 2026-06-21T12:00:00\nduration: 6min\nscan: 100ms\nsite: {site}\n"
                        "plant: {soc: 50, temperature: 20, ambient: 20}\npv: 2000\nhouse: 400\nevents:\n"
                        "  - {at: 3min, fault: {device: bms1, kind: bitflip, tag: bms1.cell_3, value: 9, for: 1s}}\n",
                        encoding="utf-8")
    simulation = Simulation(load_scenario(scenario))
    seen: dict[str, list[Any]] = {"alarm": [], "cell_good": [], "input_bad": []}

    def observe(scan: Any) -> None:
        values, quality = scan.db.values, scan.db.quality
        seen["alarm"].append(values["alarm.cell_high"])
        if quality["bms1.cell_3"].name == "GOOD":
            seen["cell_good"].append(values["bms1.cell_3"])
        seen["input_bad"].append(values["alarm.input_bad"])
    simulation.scan.observers.append(observe)
    simulation.run()
    seen["implausible"] = [simulation.db.values["dev.bms1.errors_implausible"]]
    return seen


def test_a_flipped_cell_bit_is_refused_and_raises_no_false_cell_high(tmp_path: Path) -> None:
    seen = run(REPO_ROOT, tmp_path)
    assert seen["implausible"] == [1]
    assert not any(seen["alarm"])
    assert max(seen["cell_good"]) < 3.6  # the flipped 3.8 V never became a GOOD reading
    # what the interlocks see instead: a cell that is not GOOD for one poll, outputs safe meanwhile
    assert 1 <= sum(seen["input_bad"]) <= 11


def test_without_max_rate_the_same_flip_is_a_false_cell_high(tmp_path: Path) -> None:
    """The control: the flip is real and would trip the interlock, so the test above can fail."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO_ROOT / "tags.yaml", site / "tags.yaml")
    io_map = (REPO_ROOT / "io_map.yaml").read_text(encoding="utf-8")
    (site / "io_map.yaml").write_text(io_map.replace(", max_rate: 0.2}", "}"), encoding="utf-8")
    seen = run(site, tmp_path)
    assert seen["implausible"] == [0]
    assert any(seen["alarm"]) and max(seen["cell_good"]) > 3.65
