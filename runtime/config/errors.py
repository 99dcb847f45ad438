"""Config errors a person can act on: file, line, key path, the bad value and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigError:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigErrors(Exception):
    """All errors found while loading; raised once, after everything was checked."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = sorted(set(errors), key=lambda e: (e.file, e.line, e.path, e.message))
        super().__init__("\n".join(str(e) for e in self.errors))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def allowed(choices: Iterable[str], limit: int = 12) -> str:
    items = sorted(str(c) for c in choices)
    shown = ", ".join(items[:limit])
    return shown + (", ..." if len(items) > limit else "")
