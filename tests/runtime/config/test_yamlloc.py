"""YAML loading keeps lines, refuses duplicates, and reads numbers the YAML 1.2 way."""

import pytest

from runtime.config.errors import ConfigErrors
from runtime.config.yamlloc import LocDict, load_text


def test_lines_of_keys_and_items() -> None:
    doc = load_text("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yaml")
    assert isinstance(doc, LocDict)
    assert doc.line_of("a") == 1 and doc.line_of("b") == 2
    assert doc["b"].line_of(1) == 4
    assert doc["b"][1].line_of("c") == 4


@pytest.mark.parametrize(("text", "value"), [
    ("v: 12:30", "12:30"), ("v: 05:30", "05:30"), ("v: 0x10", 16), ("v: 1_000", 1000), ("v: 017", 17),
    ("v: 1.5", 1.5), ("v: 1e3", 1000.0), ("v: 10ms", "10ms"), ("v: true", True), ("v: -3", -3),
])
def test_scalars(text: str, value: object) -> None:
    assert load_text(text)["v"] == value


def test_duplicate_keys_name_both_lines() -> None:
    with pytest.raises(ConfigErrors, match=r"f.yaml:3: b: duplicate key 'b'; first given at line 2"):
        load_text("a:\n  b: 1\n  b: 2\n", "f.yaml")


@pytest.mark.parametrize(("text", "value"), [("v: off", "off"), ("v: on", "on"), ("v: yes", "yes"),
                                             ("v: false", False), ("v: True", True)])
def test_only_true_false_are_booleans(text: str, value: object) -> None:
    assert load_text(text)["v"] == value
