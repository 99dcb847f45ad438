"""Shared test hygiene (`battplc` entry points install their own root log handler; undo it after each test) and
a live controller of the default site on free ports, for the commands that talk to a running one."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_helpers import Live, start_live


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
    """The default site's controller scanning on free ports, its devices unreachable (see start_live)."""
    live = start_live(tmp_path)
    try:
        yield live
    finally:
        live.stop()
