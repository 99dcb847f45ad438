"""What machine a benchmark ran on: cores, CPU model, kernel, Python."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str | int]:
    return {"cores": os.cpu_count() or 1, "cpu": cpu_model(), "kernel": platform.release(),
            "python": platform.python_version(), "platform": platform.platform()}
