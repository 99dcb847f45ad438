"""The fuzz corpus (fuzz_corpus.py) through `battplc check` and the scenario loader: never a traceback.

Each broken site file is checked as ``battplc check`` does it (in-process, so an escaping exception fails
the test with its traceback); it must end in status 0 or 2, and every error line must name a file of the
site (or one of its charts), with a line number unless the file holds no YAML to point into. Each broken
scenario must load or raise ConfigErrors naming that file. ``make test`` runs every 10th mutant,
``make test-all`` all of them.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from fuzz_corpus import REPO_ROOT, SITE_FILES, Mutant, corpus

from runtime.cli import CONFIG_INVALID, main
from runtime.config.errors import ConfigErrors
from tools.plantsim.scenario import load_scenario

FAST_EVERY = 10
# Errors that concern a whole file, with no line to point at.
WHOLE_FILE = ("cannot read", "expected a mapping", "missing required key", "has no value", "no tags.yaml")


@cache
def mutants() -> list[Mutant]:
    return corpus()


def copy_site(folder: Path) -> None:
    """The default site in ``folder``: its tags.yaml and io_map.yaml, and its application (programs/)."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(REPO_ROOT / "programs", folder / "programs", ignore=shutil.ignore_patterns("drawings", "__pycache__"))
    for name in ("tags.yaml", "io_map.yaml"):
        shutil.copy(REPO_ROOT / name, folder / name)


def check_site(mutant: Mutant, folder: Path) -> list[str]:
    """`battplc check` on the default site with one file replaced by the mutant; the problems found."""
    copy_site(folder)
    (folder / mutant.base).write_bytes(mutant.data)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["check", str(folder)])
    if status == 0:
        return []
    if status != CONFIG_INVALID:
        return [f"exit status {status}, expected 0 or {CONFIG_INVALID}"]
    lines = [line for line in err.getvalue().splitlines() if not line.startswith(("20", "<"))]  # log lines
    errors, summary = lines[:-1], lines[-1] if lines else ""
    problems = [] if re.match(r"\d+ error\(s\); nothing was started", summary) else [f"no summary: {summary!r}"]
    files = (str(folder / "tags.yaml"), str(folder / "io_map.yaml"), str(folder / "programs"))
    for line in errors:
        if not line.startswith(files):
            problems.append(f"error names no file of the site: {line}")
        elif not re.match(r"[^:]+:\d+: ", line) and not any(words in line for words in WHOLE_FILE):
            problems.append(f"error without a line: {line}")
    return problems


def check_scenario(mutant: Mutant, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(mutant.base).name
    path.write_bytes(mutant.data)
    try:
        load_scenario(path)
    except ConfigErrors as exc:
        return [f"error names another file: {e}" for e in exc.errors if e.file != str(path)]
    return []


def run_corpus(selected: list[Mutant], tmp_path: Path) -> None:
    failures = []
    for i, mutant in enumerate(selected):
        check = check_scenario if mutant.is_scenario else check_site
        try:
            problems = check(mutant, tmp_path / f"m{i}")
        except Exception as exc:  # the point of the corpus: any escaping exception is a traceback for a user
            problems = [f"traceback: {type(exc).__name__}: {exc}"]
        failures.extend(f"{mutant.name}: {p}" for p in problems)
    assert not failures, f"{len(failures)} problem(s) in {len(selected)} mutants:\n" + "\n".join(failures[:40])


def test_corpus_is_large_and_deterministic() -> None:
    assert len(mutants()) >= 1000
    assert corpus()[:50] == mutants()[:50]
    kinds = {m.how.split("-")[0] for m in mutants()}
    assert {"binary", "truncated", "latin", "utf", "nested", "alias", "complex", "remove", "retype"} <= kinds


def test_the_base_files_are_valid(tmp_path: Path) -> None:
    """The corpus starts from files that load: a mutant's error is the mutation's."""
    for base in SITE_FILES:
        assert check_site(Mutant(base, "none", (REPO_ROOT / base).read_bytes()), tmp_path / "site") == []


def test_every_tenth_mutant_gives_no_traceback(tmp_path: Path) -> None:
    run_corpus(mutants()[::FAST_EVERY], tmp_path)


@pytest.mark.long
def test_the_whole_corpus_gives_no_traceback(tmp_path: Path) -> None:
    run_corpus(mutants(), tmp_path)


@pytest.mark.parametrize("settings, words", [
    ("scan_period: .nan", "must be a finite number of seconds, got nan"),
    ("scan_period: .inf", "must be a finite number of seconds, got inf"),
    ("scan_period: 1e308", "out of range; allowed 1ms..1min"),
    ("scan_period: 0.0001", "out of range"),
])
def test_check_refuses_a_scan_period_the_runtime_cannot_run(tmp_path: Path, settings: str, words: str) -> None:
    """As a user runs it: a separate process, exit status 2, one line naming file:line, no traceback."""
    copy_site(tmp_path)
    text = (REPO_ROOT / "tags.yaml").read_text()
    (tmp_path / "tags.yaml").write_text(re.sub(r"scan_period: \S+", settings, text, count=1))
    line = text[:text.index("scan_period")].count("\n") + 1
    done = subprocess.run([sys.executable, "-m", "runtime.cli", "check", str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == CONFIG_INVALID, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{tmp_path / 'tags.yaml'}:{line}: site.scan_period:" in done.stderr and words in done.stderr


@pytest.mark.parametrize("text, words", [
    ("", "missing required key 'devices'"),
    ("devices:\n", "has no value; write `devices: {}`"),
])
def test_an_io_map_without_devices_is_an_error_unless_written_empty(tmp_path: Path, text: str, words: str) -> None:
    copy_site(tmp_path)
    (tmp_path / "io_map.yaml").write_text(text)
    with pytest.raises(ConfigErrors, match=re.escape(words)):
        from runtime.site import load_site
        load_site(tmp_path, with_programs=False)
    (tmp_path / "io_map.yaml").write_text("devices: {}\n")
    assert check_site(Mutant("io_map.yaml", "none", b"devices: {}\n"), tmp_path / "empty") == []


def test_errors_of_every_file_come_in_one_run(tmp_path: Path) -> None:
    """A bad value in tags.yaml, in io_map.yaml and in a chart, all in one report."""
    copy_site(tmp_path)
    text = (tmp_path / "tags.yaml").read_text()
    (tmp_path / "tags.yaml").write_text(text.replace("unit: V", "unit: parsec", 1))
    (tmp_path / "io_map.yaml").write_text((REPO_ROOT / "io_map.yaml").read_text().replace("poll: 1s", "poll: .inf", 1))
    chart = tmp_path / "programs" / "keep.sfc.yaml"
    chart.write_text(chart.read_text() + "\nbogus_key: 1\n")
    from runtime.site import load_site
    with pytest.raises(ConfigErrors) as caught:
        load_site(tmp_path)
    files = {Path(e.file).name for e in caught.value.errors}
    assert files == {"tags.yaml", "io_map.yaml", "keep.sfc.yaml"}, caught.value
