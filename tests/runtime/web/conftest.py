"""`battplc demo` on free ports with the operator page writable, for the page's HTTP and browser tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from live_helpers import free_port

from runtime.site import REPO_ROOT

TOKEN = "0123456789abcdef0123456789abcdef"


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    url: str
    modbus_port: int
    site: Path
    token: str = TOKEN

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=5) as response:
            return json.loads(response.read())


def on_free_ports(site: Path) -> dict[str, int]:
    """Rewrite a copied site's tags.yaml and io_map.yaml so every listener takes a free port."""
    io_map = (site / "io_map.yaml").read_text()
    io_map = re.sub(r"port: (50\d\d)\b", lambda m: f"port: {free_port()}", io_map)
    (site / "io_map.yaml").write_text(io_map)
    ports = {"server": free_port(), "metrics": free_port(), "web": free_port()}
    tags = (site / "tags.yaml").read_text()
    tags = tags.replace("server: {listen: 127.0.0.1, port: 5020, unit_id: 1}",
                        f"server: {{listen: 127.0.0.1, port: {ports['server']}, unit_id: 1}}")
    tags = tags.replace("metrics: {listen: 127.0.0.1, port: 9108}",
                        f"metrics: {{listen: 127.0.0.1, port: {ports['metrics']}}}")
    tags = tags.replace("web: {listen: 127.0.0.1, port: 8480}",
                        f"web: {{listen: 127.0.0.1, port: {ports['web']}, token_file: web.token}}")
    assert f"port: {ports['web']}" in tags, "the repository's tags.yaml changed its server/metrics lines"
    (site / "tags.yaml").write_text(tags)
    (site / "web.token").write_text(TOKEN + "\n")
    return ports


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The repository's site and plant as `battplc demo` runs them, on free ports, with a write token."""
    site = tmp_path_factory.mktemp("site")
    for name in ("tags.yaml", "io_map.yaml"):
        shutil.copy(REPO_ROOT / name, site / name)
    ports = on_free_ports(site)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "demo", str(site)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{ports['web']}/"
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120  # a liveness bound: a start took > 30 s at load average 21
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Operator page:" in line:
            break
    else:
        proc.kill()
    assert any(url in line for line in lines), "".join(lines)
    # Keep reading its output so a full pipe never blocks the demo.
    drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
    try:
        yield Demo(proc, url, ports["server"], site)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        drain.wait(timeout=5)
