"""README walkthrough "Add a driver" followed on a copy of the repository, and the README's io_map example.

The copy is edited exactly as the walkthrough says (its driver file taken from the README itself), then
``battplc check`` runs in it as a separate process, so the real tree is never touched.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SKIP = shutil.ignore_patterns(".venv", ".git", "bench-results", "__pycache__", ".pytest_cache", "*.egg-info")


def section(title: str) -> str:
    start = README.index(f"\n### {title}\n") if f"\n### {title}\n" in README else README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def battplc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)


def python(repo: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository (sources, sites, docs; no venv, no git)."""
    copy = tmp_path / "battplc"
    shutil.copytree(ROOT, copy, ignore=SKIP)
    return copy


def test_the_add_a_driver_walkthrough_works_on_a_copy(repo: Path, tmp_path: Path) -> None:
    walk = section("Add a driver")
    driver_code, = blocks(walk, "python")
    io_map, = blocks(walk, "yaml")
    # step 1: the driver file, as the README gives it
    (repo / "runtime/drivers/sysfs.py").write_text(driver_code)
    # step 2: the one registry line (and its import), as the README spells them
    config = repo / "runtime/drivers/config.py"
    text = config.read_text()
    for old, new in (("from runtime.drivers import modbus, vedirect", "from runtime.drivers import modbus, sysfs, vedirect"),
                     ("(*modbus.DRIVERS, vedirect.DRIVER)", "(*modbus.DRIVERS, vedirect.DRIVER, sysfs.DRIVER)")):
        assert old in text and new in walk, f"the walkthrough's step 2 no longer matches config.py: {old!r}"
        text = text.replace(old, new)
    config.write_text(text)
    assert [str(p.relative_to(repo)) for p in sorted(repo.rglob("*.py")) if "__pycache__" not in p.parts
            and not (ROOT / p.relative_to(repo)).exists()] == ["runtime/drivers/sysfs.py"]
    assert [rel for rel in ("runtime/drivers/config.py",)
            if not filecmp.cmp(repo / rel, ROOT / rel, shallow=False)] == ["runtime/drivers/config.py"]

    # a site using the driver: its one tag, the README's io_map with the file pointed into tmp_path
    temp = tmp_path / "temp"
    temp.write_text("48312\n")
    site = tmp_path / "site"
    site.mkdir()
    (site / "tags.yaml").write_text("site: {name: pi}\ntags:\n  pi.cpu_temp: {type: float, unit: degC, min: -40, "
                                    "max: 125}\n")
    (site / "io_map.yaml").write_text(io_map.replace("/sys/class/thermal/thermal_zone0/temp", str(temp)))
    checked = battplc(repo, "check", str(site))
    assert checked.returncode == 0, checked.stderr
    assert "1 devices" in checked.stdout
    # the same site is an unknown driver to the repository without the walkthrough's two edits
    unknown = battplc(ROOT, "check", str(site))
    assert unknown.returncode == 2 and "unknown driver 'sysfs'" in unknown.stderr

    # a point whose scale cannot represent its tag is an error with file:line, no traceback
    (site / "io_map.yaml").write_text(io_map.replace("scale: 0.001", "scale: 1000"))
    bad = battplc(repo, "check", str(site))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{site / 'io_map.yaml'}:7: devices.pi.inputs[0].scale: scale 1000 cannot represent tag 'pi.cpu_temp'" \
        in bad.stderr

    # the link reads the file under the real DriverManager; the plant simulator refuses the device by file:line
    (site / "io_map.yaml").write_text(io_map.replace("/sys/class/thermal/thermal_zone0/temp", str(temp))
                                      .replace("poll: 5s", "poll: 50ms").replace("stale_after: 12s", "stale_after: 1s"))
    run = python(repo, f"""
import time
from runtime.config.errors import ConfigErrors
from runtime.config.schema import Errors
from runtime.drivers.config import load_io_map
from runtime.drivers.manager import DriverManager
from runtime.tags import Quality, TagDB, TagDef
from tools.plantsim.devices import PlantDevices
from tools.plantsim.model import Plant, PlantConfig
db, errors = TagDB(), Errors()
db.ensure(TagDef("pi.cpu_temp", "float", "degC", min=-40, max=125))
devices = load_io_map({str(site / 'io_map.yaml')!r}, db, errors)
assert not errors, errors
manager = DriverManager(devices, db)
manager.start()
deadline = time.monotonic() + 30
while db.quality["pi.cpu_temp"] is not Quality.GOOD and time.monotonic() < deadline:
    time.sleep(0.05)
    manager.latch(db, time.monotonic())
manager.stop()
print("value", round(db.values["pi.cpu_temp"], 6), db.values["dev.pi.up"])
try:
    PlantDevices(Plant(PlantConfig()), devices)
except ConfigErrors as exc:
    print("sim", exc)
""")
    assert run.returncode == 0, run.stderr
    assert "value 48.312 True" in run.stdout
    assert f"sim {site / 'io_map.yaml'}:2: devices.pi: the plant simulator has no simulated device for " \
           f"driver 'sysfs'" in run.stdout


def test_check_rejects_the_old_readme_io_map_example_and_takes_the_new(repo: Path, tmp_path: Path) -> None:
    example, = blocks(section("io_map.yaml reference"), "yaml")
    assert "charger.voltage_sp" in example and "scale: 0.01" in example
    site = repo  # the repository's own site, with the README's io_map
    (site / "io_map.yaml").write_text(example)
    good = battplc(repo, "check", str(site))
    assert good.returncode == 0, good.stderr
    # the example as README had it: value = raw x scale, so 27.2 V would have been written as raw 0
    line = 1 + example[:example.index("charger.voltage_sp")].count("\n")
    (site / "io_map.yaml").write_text(example.replace("scale: 0.01", "scale: 100"))
    bad = battplc(repo, "check", str(site))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert (f"{site / 'io_map.yaml'}:{line}: devices.bms1.outputs[0].scale: scale 100 cannot represent tag "
            f"'charger.voltage_sp' (0..32 V)") in bad.stderr
    assert "use scale 0.1 or finer" in bad.stderr
