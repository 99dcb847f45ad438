"""A tiny site builder for chart tests: tags.yaml + charts in a temporary folder, scanned on a SimClock."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from runtime.clock import SimClock
from runtime.config.errors import ConfigErrors
from runtime.scan import Scan
from runtime.sfc import Chart
from runtime.site import load_site
from runtime.tags import Quality

BASE_TAGS = """\
  t.go: {type: bool, access: rw}
  t.back: {type: bool, access: rw}
  t.reset: {type: bool, access: rw}
  t.flag: {type: bool, access: rw}
  t.x: {type: float, access: rw}
  t.n: {type: int, access: rw}
  t.mode: {type: enum, values: [auto, off, force_charge], access: rw}
  t.out: {type: bool}
  t.num: {type: float}
  t.count: {type: int}
  t.state: {type: enum, values: [idle, busy]}
"""


def write_site(folder: Path, charts: dict[str, str], tags: str = "", programs: Iterable[str] | None = None) -> Path:
    """A site folder with the base tags plus ``tags`` (more entries under tags:) and one NAME.sfc.yaml per
    chart (text is dedented)."""
    (folder / "programs").mkdir(parents=True, exist_ok=True)
    names = list(programs if programs is not None else charts)
    (folder / "tags.yaml").write_text(f"site:\n  name: test\n  programs: [{', '.join(names)}]\ntags:\n"
                                      + BASE_TAGS + textwrap.indent(textwrap.dedent(tags), "  "))
    for name, text in charts.items():
        (folder / "programs" / f"{name}.sfc.yaml").write_text(textwrap.dedent(text))
    return folder


class Rig:
    """A loaded site scanned once per simulated second."""

    def __init__(self, folder: Path) -> None:
        self.site, self.db, self.programs, _ = load_site(folder)
        for program in self.programs:
            program.start(self.db)
        self.scan = Scan(self.db, self.programs, SimClock(), period=1.0)

    def chart(self, name: str) -> Chart:
        return next(p for p in self.programs if p.name == name)

    def step(self, **inputs: Any) -> Rig:
        """Set inputs (t_go=True sets t.go), then run one scan."""
        for key, value in inputs.items():
            self.db.values[key.replace("_", ".", 1)] = value
        self.scan.wait()
        self.scan.step()
        return self

    def bad(self, tag: str) -> None:
        self.db.set_quality(tag, Quality.BAD)

    def good(self, tag: str) -> None:
        self.db.set_quality(tag, Quality.GOOD)

    def __getitem__(self, tag: str) -> Any:
        return self.db.values[tag]


@pytest.fixture
def rig(tmp_path: Path) -> Callable[..., Rig]:
    def make(charts: dict[str, str], tags: str = "", programs: Iterable[str] | None = None) -> Rig:
        return Rig(write_site(tmp_path, charts, tags, programs))
    return make


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(charts, tags="", programs=None) -> the site folder in tmp_path."""
    def make(charts: dict[str, str], tags: str = "", programs: Iterable[str] | None = None) -> Path:
        return write_site(tmp_path, charts, tags, programs)
    return make


@pytest.fixture
def load_errors(tmp_path: Path) -> Callable[..., list]:
    """Load a site that must fail; return its errors."""
    def load(charts: dict[str, str], tags: str = "", programs: Iterable[str] | None = None) -> list:
        folder = write_site(tmp_path, charts, tags, programs)
        with pytest.raises(ConfigErrors) as info:
            load_site(folder)
        return info.value.errors
    return load


@pytest.fixture
def line_of() -> Callable[[Path, str], int]:
    """line_of(path, text): the 1-based number of the first line of ``path`` containing ``text``."""
    def find(path: Path, text: str) -> int:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if text in line:
                return number
        raise AssertionError(f"{text!r} not in {path}")
    return find
