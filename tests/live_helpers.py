"""A running controller for the commands that talk to one: free ports, and the handle the fixture yields."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
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

    def stop(self) -> None:
        """Stop the scan and wait for the controller to close (outputs safe, retained files written)."""
        self.controller.scan.stop()
        self.thread.join(10)

    @property
    def target(self) -> list[str]:
        return ["--port", str(self.port)]
