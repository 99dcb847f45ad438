"""`battplc demo` on free ports: the repository's site copied to a scratch folder with every port (SCADA server,
metrics, the plant's Modbus devices) moved to one the OS says is free, and the demo started as a user would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from live_helpers import free_port

from runtime.site import REPO_ROOT

# The ports the repository's site uses: SCADA server, metrics (tags.yaml); the plant's devices (io_map.yaml).
SITE_PORTS = {"tags.yaml": (5020, 9108), "io_map.yaml": (5021, 5022, 5023, 5024)}


@dataclass
class Demo:
    site: Path
    ports: dict[int, int]  # the site's port -> the port this demo uses
    proc: subprocess.Popen[str]
    banner: str

    @property
    def server_port(self) -> int:
        return self.ports[5020]

    @property
    def metrics_port(self) -> int:
        return self.ports[9108]


def demo_site(folder: Path) -> dict[int, int]:
    """Copy the repository's site into ``folder`` with its ports replaced by free ones; return the mapping."""
    ports: dict[int, int] = {}
    for name, numbers in SITE_PORTS.items():
        text = (REPO_ROOT / name).read_text()
        for number in numbers:
            ports[number] = free_port()
            text, found = re.subn(rf"\bport: {number}\b", f"port: {ports[number]}", text)
            assert found == 1, f"{name} no longer says 'port: {number}'"
        (folder / name).write_text(text)
    return ports


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """The process's stdout lines up to and including the first that holds ``needle``. The lines are read on a
    thread, so a process that stops printing (a port taken, a hang) fails the test at ``timeout`` instead of
    blocking it forever; the thread ends at the needle, or at EOF once the test kills the process."""
    lines: list[str] = []
    found = threading.Event()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in iter(stdout.readline, ""):
            lines.append(line)
            if needle in line:
                found.set()
                return

    threading.Thread(target=read, name="wait_for_line", daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"{needle!r} not printed within {timeout} s; got {lines}")
    return lines


@contextmanager
def running_demo(folder: Path) -> Iterator[Demo]:
    """A demo of the repository's site on free ports, stopped with Ctrl-C (SIGINT) at the end."""
    ports = demo_site(folder)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "demo", str(folder)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # A liveness bound, not a timing figure: a start took over 30 s at load average 21.
        banner = "".join(wait_for_line(proc, "metrics", timeout=120))
        yield Demo(folder, ports, proc, banner)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
