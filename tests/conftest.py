"""Shared test hygiene (`battplc` entry points install their own root log handler; undo it after each test) and
a live controller of the default site on free ports, for the commands that talk to a running one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_helpers import Live, free_port


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# ---- a running controller of the default site, on free ports -----------------------------------------------

@pytest.fixture
def live_controller(tmp_path: Path) -> Iterator[Live]:
    """The default site with its server on a free port, no metrics, retain in tmp_path and every device pointed
    at a closed port (so its inputs go BAD and the interlocks hold the outputs safe)."""
    from runtime.app import Controller
    from runtime.site import REPO_ROOT, load_site

    site = load_site(REPO_ROOT, with_programs=False)[0]
    devices = {d.name: {"port": free_port() if d.driver == "modbus_tcp" else str(tmp_path / "no-tty")}
               for d in site.devices}
    port = free_port()
    controller = Controller(REPO_ROOT, period=0.02, device_overrides=devices, overrides={
        "server": {"port": port}, "metrics": {"enabled": False},
        "retain": {"path": str(tmp_path / "var" / "retain.json")}})
    thread = threading.Thread(target=controller.run, daemon=True)
    thread.start()
    try:
        yield (live := Live(controller, port, thread))
    finally:
        live.stop()
