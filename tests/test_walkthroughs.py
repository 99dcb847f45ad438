"""README's contributor walkthroughs, followed on a copy of the repository: the blocks marked
``<!-- walkthrough NAME: ACTION -->`` are applied in order (create, append, replace a line, insert before a line,
run shell lines with ``battplc`` as this checkout's command), then the test asserts that every command passed
and that the walkthrough touched only the files it names."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- walkthrough ([a-z-]+): (create|append|replace|insert|run)\s*(\S*)(?: before \"(.*)\")? -->\n"
                  r"```[a-z]*\n(.*?)```", re.S)
IGNORE = shutil.ignore_patterns(".venv", ".git", "var", "__pycache__", ".pytest_cache", ".ruff_cache", "build",
                                "*.egg-info")


def steps(name: str) -> list[tuple[str, str, str, str]]:
    """(action, path, anchor, text) of one walkthrough, in README order."""
    found = [(m.group(2), m.group(3), m.group(4) or "", m.group(5)) for m in MARK.finditer((ROOT / "README.md")
                                                                                             .read_text())
             if m.group(1) == name]
    assert found, f"README has no walkthrough {name!r}"
    return found


def files(tree: Path) -> dict[str, str]:
    return {p.relative_to(tree).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in tree.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and "var" not in p.parts}


def follow(name: str, tree: Path) -> list[str]:
    """Apply one walkthrough to ``tree``; return the output of its commands."""
    outputs = []
    for action, path, anchor, text in steps(name):
        target = tree / path
        if action == "create":
            target.write_text(text)
        elif action == "append":
            target.write_text(target.read_text() + text)
        elif action == "replace":  # the one line starting with the block's key (indentation included)
            key = text.split(":", 1)[0] + ":"
            lines = target.read_text().splitlines(keepends=True)
            hits = [i for i, line in enumerate(lines) if line.startswith(key)]
            assert len(hits) == 1, f"{path}: {len(hits)} lines start with {key!r}"
            lines[hits[0]] = text
            target.write_text("".join(lines))
        elif action == "insert":
            content = target.read_text()
            assert content.count(anchor + "\n") == 1, f"{path}: no single line {anchor!r}"
            target.write_text(content.replace(anchor + "\n", text + anchor + "\n"))
        else:
            for line in text.splitlines():
                command = re.sub(r"^battplc ", f"{sys.executable} -m runtime.cli ", line)
                done = subprocess.run(["bash", "-c", command], cwd=tree, capture_output=True, text=True,
                                      timeout=600)
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                outputs.append(done.stdout)
    return outputs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=IGNORE)
    return copy


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def test_add_a_chart_touches_programs_only(tree: Path) -> None:
    before = files(tree)
    outputs = follow("add-a-chart", tree)
    assert changed(before, files(tree)) == {"programs/reserve_watch.sfc.yaml", "programs/tags.yaml",
                                            "programs/README.md"}
    checks = [out for out in outputs if ": ok: site" in out]
    assert len(checks) == 2 and all("unload, reserve_watch, schedule" in out for out in checks)
    assert '"safety_violations": 0,' in outputs[-1] and '"reserve_watch": 0' in outputs[-1], outputs[-1]
    # The new chart takes the next chart slot on Modbus: no address of the recorded map moves.
    regmap = subprocess.run([sys.executable, "-m", "runtime.cli", "regmap", "--format", "csv"], cwd=tree,
                            capture_output=True, text=True, timeout=120)
    assert regmap.returncode == 0, regmap.stderr
    now = {row["tag"]: row["address"].split("-")[0] for row in csv.DictReader(io.StringIO(regmap.stdout))}
    snapshot = (ROOT / "tests" / "programs" / "regmap.snapshot.csv").read_text().splitlines()
    recorded = {row["tag"]: row["address"] for row in csv.DictReader(line for line in snapshot if not line.startswith("#"))}
    assert {tag: (address, now.get(tag)) for tag, address in recorded.items() if now.get(tag) != address} == {}
    assert now["sfc.reserve_watch.step"] == "12032" and now["prog.reserve_watch.faults"] == "12035"


def test_add_a_site_touches_its_folder_only(tree: Path) -> None:
    before = files(tree)
    outputs = follow("add-a-site", tree)
    assert changed(before, files(tree)) == {"examples/garage/tags.yaml", "examples/garage/io_map.yaml",
                                            "examples/garage/scenarios/day.yaml"}
    assert any("ok: site 'garage'" in out for out in outputs)
    table = next(out for out in outputs if out.startswith("name "))
    capacity = next(line for line in table.splitlines() if line.startswith("par.capacity_ah "))
    assert " 280 " in capacity and "overridden at examples/garage/tags.yaml" in capacity
    assert '"safety_violations": 0,' in outputs[-1], outputs[-1]


def test_replay_changes_no_file(tree: Path) -> None:
    before = files(tree)
    outputs = follow("replay", tree)
    assert changed(before, files(tree)) == set()
    single, what_if = outputs
    assert "  as configured\n" in single.splitlines()[1] + "\n" and "difference" in what_if.splitlines()[1]
    readme = (ROOT / "README.md").read_text()
    assert what_if in readme, "README shows the what-if output as it is"
