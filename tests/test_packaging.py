"""Packaging: every direct dependency pinned exactly, every installed package pinned in constraints.txt."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            match = PIN.match(line)
            assert match, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonical(match[1])] = match[3]
    return pins


def direct_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]


@pytest.mark.parametrize("requirement", direct_dependencies())
def test_direct_dependency_is_pinned_and_agrees_with_constraints(requirement: str) -> None:
    match = PIN.match(requirement)
    assert match, f"pyproject.toml: {requirement!r} must be pinned with =="
    assert constraints().get(canonical(match[1])) == match[3], (
        f"{requirement} and constraints.txt disagree: run `make lock`")


def test_every_installed_package_is_in_constraints() -> None:
    pins = constraints()
    unpinned = []
    for dist in importlib.metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in ("battplc", "setuptools"):
            continue
        if pins.get(name) != dist.version:
            unpinned.append(f"{name}=={dist.version} (constraints: {pins.get(name, 'missing')})")
    assert not unpinned, "installed but not pinned in constraints.txt (run `make lock`): " + ", ".join(unpinned)
