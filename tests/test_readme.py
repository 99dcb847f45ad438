"""The README as tests: every command in README.md's code blocks runs here, or says in the README why not.

What counts as a command:

* each line of a ```sh block (a trailing ``# comment`` is not part of it);
* each ``$ `` line of any other block (an example with its output);
* each ``battplc ...`` line of the command synopsis (an untyped block): it is not run, but every ``--option``
  it shows must be in that command's ``--help``.

Blocks marked ``<!-- walkthrough ... -->`` are followed by tests/test_walkthroughs.py instead. A command that
cannot run here (it runs forever, needs hardware, is this very test suite) ends with a visible comment
``# untested: REASON`` (or has it on the comment line below); a command without one must pass.

How a command runs is decided by ``RUNNERS``, first match wins; to teach the test a new kind of command, add a
line there:

* ``offline``: a ``battplc`` command that needs no controller runs with this checkout's Python in a scratch
  folder that links the repository's entries (so what it writes lands there); a ``sim`` without ``--duration``
  gets ``--duration 10min``, or runs to a minute past its ``--why-at`` (the whole shipped days are the scenario
  tests' job);
* ``live``: commands that talk to a running controller (``get``, ``set``, ``why``, ``alarms``, ``--live``,
  ``mbpoll``, ``curl``) run against the default site's controller started on free ports (its devices
  unreachable), with the README's ports 5020 and 9108 replaced by those.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from live_helpers import Live, start_live

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"(?P<mark><!-- walkthrough [^>]*-->\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)```", re.S)
DATA = {"yaml", "mermaid", "python", "markdown", "json", "csv", "ini", "toml"}
UNTESTED = re.compile(r"#.*\buntested: (?P<reason>[^)]+)\)?$")
BATTPLC = re.compile(r"^(\.venv/bin/)?battplc\b")
LIVE_SUBCOMMANDS = {"get", "set", "why", "alarms"}


@dataclass(frozen=True)
class Command:
    line: int  # in README.md
    text: str  # the command, without its trailing comment
    kind: str  # "shell" (run it) or "synopsis" (check its options)
    untested: str  # the README's reason not to run it, or ""

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def _split_comment(line: str) -> tuple[str, str]:
    """(command, comment): the comment starts at the first ``#`` outside quotes that follows a space."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip(), line[i:]
    return line.rstrip(), ""


def commands(text: str) -> list[Command]:
    """Every command of the README's code blocks, in order."""
    found = []
    for block in FENCE.finditer(text):
        if block["mark"] or block["lang"] in DATA:
            continue
        first = text.count("\n", 0, block.start("body")) + 1
        for offset, raw in enumerate(block["body"].splitlines()):
            line = raw.strip()
            if block["lang"] in ("sh", "bash"):
                command = line
            elif line.startswith("$ "):
                command = line[2:]
            elif block["lang"] == "" and BATTPLC.match(raw):
                synopsis = re.split(r"\s{2,}(?=[a-z(])", raw.strip())[0]  # the description column follows
                found.append(Command(first + offset, synopsis, "synopsis", ""))
                continue
            else:
                continue
            command, comment = _split_comment(command)
            reason = UNTESTED.search(comment)
            if command:
                found.append(Command(first + offset, command, "shell", reason["reason"].strip() if reason else ""))
            elif reason and found and found[-1].line == first + offset - 1:  # a comment line continues the one above
                found[-1] = replace(found[-1], untested=reason["reason"].strip())
    return found


ALL = commands(README.read_text())


# ---- running them --------------------------------------------------------------------------------------------

def _is_live(command: Command) -> bool:
    words = command.text.split()
    if words[0] in ("mbpoll", "curl"):
        return True
    return bool(BATTPLC.match(command.text)) and (words[1] in LIVE_SUBCOMMANDS and "--journal" not in words
                                                  or "--live" in words)


@dataclass
class Places:
    """What a runner may use: the shared live controller (started on first use) and the scratch folder."""

    live: Callable[[], Live]
    scratch: Path


def _offline(command: Command, places: Places) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command.text)
    if words[1] == "sim" and "--duration" not in words:
        words += ["--duration", _sim_duration(words)]
    return _run([sys.executable, "-m", "runtime.cli", *words[1:]], cwd=places.scratch)


def _sim_duration(words: list[str]) -> str:
    """10 minutes, or up to a minute past the moment --why-at asks about (the shipped days start at 00:00)."""
    if "--why-at" not in words:
        return "10min"
    hours, minutes = words[words.index("--why-at") + 1].split(":")[:2]
    return f"{int(hours) * 60 + int(minutes) + 1}min"


def _live(command: Command, places: Places) -> subprocess.CompletedProcess[str]:
    controller = places.live()
    text = command.text.replace("5020", str(controller.port)).replace("9108", str(controller.metrics_port))
    if BATTPLC.match(text):
        text = BATTPLC.sub(f"{shlex.quote(sys.executable)} -m runtime.cli", text) + f" --port {controller.port}"
    return _run(["bash", "-o", "pipefail", "-c", text])


def _run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


# (does this runner take the command?, run it); the first that takes it runs it
RUNNERS: list[tuple[Callable[[Command], bool], Callable[[Command, Places], subprocess.CompletedProcess[str]]]] = [
    (_is_live, _live),
    (lambda c: bool(BATTPLC.match(c.text)), _offline),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Places]:
    """One controller for all live commands, started on first use; a folder that looks like the repository
    (its entries linked) where offline commands may write their files."""
    started: list[Live] = []

    def live() -> Live:
        if not started:
            started.append(start_live(tmp_path_factory.mktemp("readme-live"), metrics=True))
        return started[0]

    scratch = tmp_path_factory.mktemp("readme-repo")
    for entry in ROOT.iterdir():
        if entry.name not in (".venv", ".git", "var"):
            (scratch / entry.name).symlink_to(entry)
    yield Places(live, scratch)
    for controller in started:
        controller.stop()


@pytest.mark.parametrize("command", [c for c in ALL if c.kind == "shell"], ids=str)
def test_readme_command_runs(command: Command, places: Places) -> None:
    if command.untested:
        pytest.skip(f"the README says: untested: {command.untested}")
    runner = next((run for takes, run in RUNNERS if takes(command)), None)
    assert runner is not None, (f"{command}: the README test does not know how to run this; add a runner to "
                                "RUNNERS in tests/test_readme.py, or end the line with `# untested: why`")
    done = runner(command, places)
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    assert "Traceback" not in done.stderr, f"{command}:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("command", [c for c in ALL if c.kind == "synopsis"], ids=str)
def test_readme_synopsis_shows_real_options(command: Command) -> None:
    words = command.text.split()
    if words[1].startswith("-"):  # battplc --version: the option of the command itself
        helps = _help([])
    else:
        helps = _help([words[1]])
        for word in words[2:]:  # sub-actions (params export|import|reset) have their own options
            if re.fullmatch(r"[a-z]+", word):
                helps += _help([words[1], word], check=False)
    shown = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", " ".join(words[1:])))
    missing = sorted(option for option in shown if not re.search(rf"(?<![\w-]){re.escape(option)}\b", helps))
    assert not missing, f"{command}: battplc {words[1]} has no {', '.join(missing)}"


def _help(words: list[str], check: bool = True) -> str:
    """``battplc WORDS --help``; with check=False, "" when those words are not a command."""
    done = _run([sys.executable, "-m", "runtime.cli", *words, "--help"])
    assert done.returncode == 0 or not check, done.stderr
    return done.stdout if done.returncode == 0 else ""


def test_the_readme_has_commands_of_each_kind() -> None:
    """The parser finds what is there: a README reorganised into blocks it skips would test nothing."""
    kinds = {c.kind for c in ALL}
    assert kinds == {"shell", "synopsis"}
    assert sum(1 for c in ALL if c.kind == "shell" and not c.untested) >= 8
    assert all(c.untested or any(takes(c) for takes, _ in RUNNERS) for c in ALL if c.kind == "shell")
