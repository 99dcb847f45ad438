"""Everything on the wire, against `battplc demo` on free ports: every tag `battplc tags` lists is readable over
Modbus TCP through the real server, each with its quality register; the README's first commands in another
terminal (`battplc get ...`, `mbpoll ...`) work as written (with the demo's port)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from demo_helpers import Demo, running_demo
from pymodbus.client import ModbusTcpClient

from runtime.server.image import NO_READING
from runtime.server.regmap import BITS, Point, RegisterMap
from runtime.site import REPO_ROOT, load_running_tags
from runtime.tags import Quality, TagType

README = REPO_ROOT / "README.md"
MARKERS = {"int16": 0x8000, "uint16": 0xFFFF, "int32": 0x80000000, "uint32": 0xFFFFFFFF}


def readme_commands(program: str) -> list[str]:
    """The README's command lines that start with ``program`` in the block after 'In another terminal'."""
    text = README.read_text()
    block = text[text.index("In another terminal"):]
    block = block[block.index("```sh") + 5:block.index("```", block.index("```sh") + 5)]
    lines = [shlex.join(shlex.split(line, comments=True)) for line in block.splitlines()]  # as a shell reads it
    return [line for line in lines if line.split(" ", 1)[0].endswith(program)]


def read_words(client: ModbusTcpClient, point: Point) -> list[int] | list[bool]:
    read = {"coil": client.read_coils, "discrete": client.read_discrete_inputs,
            "holding": client.read_holding_registers, "input": client.read_input_registers}[point.table]
    answer = read(point.address, count=point.width, device_id=1)
    assert not answer.isError(), f"{point.name}: {point.table} {point.address}: {answer}"
    return answer.bits[:1] if point.space == BITS else answer.registers[:point.width]


def read_quality(client: ModbusTcpClient, regmap: RegisterMap, name: str) -> Quality:
    quality = regmap.quality[name]
    answer = client.read_input_registers(quality.address, count=quality.width, device_id=1)
    assert not answer.isError(), f"{name}: quality register {quality.address}: {answer}"
    assert len(set(answer.registers)) == 1, f"{name}: the words of its quality differ: {answer.registers}"
    return Quality(answer.registers[0])


def wait_until_the_devices_answer(client: ModbusTcpClient, regmap: RegisterMap, timeout: float = 60) -> None:
    """The plant needs a few polls before every device is up; wait for that (not a timed assertion)."""
    devices = [p for p in regmap if p.name.startswith("dev.") and p.name.endswith(".up")]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(read_words(client, p)[0] for p in devices) and \
                read_quality(client, regmap, "bat.voltage") is Quality.GOOD:
            return
        time.sleep(0.2)
    raise AssertionError("the demo's devices did not all come up")


def value(point: Point, words: list[int] | list[bool]) -> float | bool:
    if point.space == BITS:
        return bool(words[0])
    return point.raw_value(b"".join(int(w).to_bytes(2, "big") for w in words))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    with running_demo(tmp_path_factory.mktemp("demo")) as running:
        yield running
    assert running.proc.returncode == 0


@pytest.mark.slow
def test_every_tag_of_battplc_tags_is_readable_over_modbus_with_its_quality(demo: Demo) -> None:
    listed = subprocess.run([sys.executable, "-m", "runtime.cli", "tags", str(demo.site)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    site, db = load_running_tags(demo.site)
    assert sorted(names) == sorted(db.defs) and len(names) > 250  # the CLI lists what a controller has
    regmap = RegisterMap.from_tags(db.defs.values())
    assert [n for n in names if n not in regmap.by_name] == []  # every tag has an address

    with ModbusTcpClient("127.0.0.1", port=demo.server_port, timeout=3, retries=0) as client:
        wait_until_the_devices_answer(client, regmap)
        seen: dict[str, tuple[float | bool, Quality]] = {}
        for name in names:
            point = regmap.point(name)
            words = read_words(client, point)
            quality = read_quality(client, regmap, name)
            if quality in NO_READING and point.space != BITS:  # no reading: never a plain number
                assert int.from_bytes(b"".join(int(w).to_bytes(2, "big") for w in words), "big") == \
                    MARKERS.get(point.dtype, 0x7FC00000), f"{name} is {quality.name} but reads {words}"
            seen[name] = (value(point, words), quality)
        beat = regmap.point("scan.count")
        heartbeats = [value(beat, read_words(client, beat))]
        while heartbeats[-1] == heartbeats[0] and len(heartbeats) < 100:  # one scan is 100 ms
            time.sleep(0.05)
            heartbeats.append(value(beat, read_words(client, beat)))

    good = {name for name, (_, quality) in seen.items() if quality is Quality.GOOD}
    assert len(good) > 0.9 * len(names), sorted(set(names) - good)
    assert 20 < seen["bat.voltage"][0] < 30  # an 8S pack, from the plant through the drivers and the server
    assert all(seen[f"dev.{d}.up"] == (True, Quality.GOOD) for d in ("bms1", "shunt", "meter", "charger", "inverter"))
    assert 0 <= seen["dev.meter.age"][0] < 10 and seen["dev.meter.last_good"][0] > 1.7e9
    unload = db.defs["sfc.unload.step"]
    assert regmap.point("sfc.unload.step").tag.type == TagType.ENUM
    assert 0 <= seen["sfc.unload.step"][0] < len(unload.values)
    assert seen["prog.unload.fault"] == (False, Quality.GOOD) and seen["prog.energy.faults"] == (0, Quality.GOOD)
    assert seen["energy.house_total"][0] >= 0 and seen["schedule.time_s"][0] > 1.7e9
    assert heartbeats[-1] > heartbeats[0] >= seen["scan.count"][0] > 0  # the heartbeat counts on


@pytest.mark.slow
def test_the_readmes_battplc_get_line_prints_every_tag(demo: Demo) -> None:
    (line,) = readme_commands("battplc")[:1]
    argv = shlex.split(line)
    assert argv[1] == "get" and argv[2:] == ["bat.soc", "bat.voltage", "sfc.unload.step"]
    steps = "|".join(load_running_tags(demo.site)[1].defs["sfc.unload.step"].values)
    run = subprocess.run([sys.executable, "-m", "runtime.cli", *argv[1:], "--port", str(demo.server_port)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert re.fullmatch(r"bat\.soc = \d+(\.\d+)? %", lines[0]), lines
    assert re.fullmatch(r"bat\.voltage = 2\d(\.\d+)? V", lines[1]), lines
    assert re.fullmatch(rf"sfc\.unload\.step = ({steps})", lines[2]), lines


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (Debian package mbpoll)")
def test_the_readmes_mbpoll_lines_read_their_ranges(demo: Demo) -> None:
    lines = readme_commands("mbpoll")
    assert len(lines) == 2  # the values and their qualities
    for line in lines:
        argv = shlex.split(line.replace("-p 5020", f"-p {demo.server_port}"))
        assert str(demo.server_port) in argv
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0 and "Illegal" not in run.stdout + run.stderr, run.stdout + run.stderr
        count = int(argv[argv.index("-c") + 1])
        start = int(argv[argv.index("-r") + 1])
        answered = re.findall(r"^\[(\d+)\]:\s+(-?\d+)", run.stdout, re.MULTILINE)
        assert [int(a) for a, _ in answered] == list(range(start, start + count)), run.stdout
        if start >= 20000:
            assert {int(v) for _, v in answered} <= {int(q) for q in Quality}


def test_the_readme_lines_the_demo_tests_run_are_there() -> None:
    assert readme_commands("battplc")[0].startswith(".venv/bin/battplc get ")
    assert all(" -0 " in line and "-p 5020" in line for line in readme_commands("mbpoll"))


def test_a_demo_site_copy_moves_every_port(tmp_path: Path) -> None:
    from demo_helpers import demo_site

    ports = demo_site(tmp_path)
    text = (tmp_path / "tags.yaml").read_text() + (tmp_path / "io_map.yaml").read_text()
    assert not re.search(r"\bport: (5020|5021|5022|5023|5024|9108)\b", text)
    assert all(f"port: {new}" in text for new in ports.values())
