"""A running controller for the commands that talk to one: free ports, and the handle the fixture yields."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Live:
    """The default site's controller scanning in a thread: its Modbus port and the CLI options to reach it."""

    controller: Any
    port: int
    thread: threading.Thread
    metrics_port: int | None = None

    def stop(self) -> None:
        """Stop the scan and wait for the controller to close (outputs safe, retained files written)."""
        self.controller.scan.stop()
        self.thread.join(10)

    @property
    def target(self) -> list[str]:
        return ["--port", str(self.port)]


def start_live(scratch: Path, metrics: bool = False) -> Live:
    """The default site with its server (and metrics, if asked) on free ports, retain in ``scratch`` and every
    device pointed at a closed port (so its inputs go BAD and the interlocks hold the outputs safe)."""
    from runtime.app import Controller
    from runtime.site import REPO_ROOT, load_site

    site = load_site(REPO_ROOT, with_programs=False)[0]
    devices = {d.name: {"port": free_port() if d.driver == "modbus_tcp" else str(scratch / "no-tty")}
               for d in site.devices}
    port, metrics_port = free_port(), free_port() if metrics else None
    controller = Controller(REPO_ROOT, period=0.02, device_overrides=devices, overrides={
        "server": {"port": port}, "metrics": {"enabled": metrics, "port": metrics_port or 9108},
        "retain": {"path": str(scratch / "var" / "retain.json")}})
    thread = threading.Thread(target=controller.run, daemon=True)
    thread.start()
    return Live(controller, port, thread, metrics_port)
