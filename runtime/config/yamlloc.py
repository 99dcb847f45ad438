"""YAML loading that keeps where every key and item came from.

PyYAML forgets positions once it builds Python objects; config errors must name ``file:line``. This loader
builds ``LocDict``/``LocList`` that remember the line of the node itself and of each key or item, refuses
duplicate keys (plain YAML silently keeps the last one), and resolves scalars the YAML 1.2 way for numbers:
``12:30`` stays the string "12:30" instead of becoming the base-60 integer 750, and only true/false are
booleans (``off`` stays the string "off").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from runtime.config.errors import ConfigError, ConfigErrors


class LocDict(dict):
    """A mapping that knows its file, its own line and the line of each key."""

    __slots__ = ("file", "line", "key_lines")

    def __init__(self, file: str = "<memory>", line: int = 0) -> None:
        super().__init__()
        self.file = file
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LocList(list):
    """A sequence that knows its file, its own line and the line of each item."""

    __slots__ = ("file", "line", "item_lines")

    def __init__(self, file: str = "<memory>", line: int = 0) -> None:
        super().__init__()
        self.file = file
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def line_of(container: Any, key: Any) -> int:
    """Line of ``key`` inside ``container`` (0 when unknown)."""
    if isinstance(container, (LocDict, LocList)):
        return container.line_of(key)
    return 0


class _Loader(yaml.SafeLoader):
    duplicate_errors: list[ConfigError]


# YAML 1.1 reads 12:30 as 750 and 0o17-style octals from "017"; a config for people wants neither.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.1 also reads on/off/yes/no as booleans, which would turn a mode named `off` into False.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    if text.lower().startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.lower().startswith("0x") else int(text)


def _map(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    loader.flatten_mapping(node)
    out = LocDict(loader.name, node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicate_errors.append(
                ConfigError(loader.name, line, str(key), f"duplicate key {key!r}; first given at line {out.key_lines[key]}")
            )
            continue
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _seq(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    out = LocList(loader.name, node.start_mark.line + 1)
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:map", _map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _seq)


def load_text(text: str, name: str = "<memory>") -> Any:
    """Parse YAML text; raise ConfigErrors with file:line on syntax errors and duplicate keys."""
    loader = _Loader(text)
    loader.name = name
    loader.duplicate_errors = []
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigErrors([ConfigError(name, line, "", f"YAML syntax: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigErrors([ConfigError(name, 0, "", f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if loader.duplicate_errors:
        raise ConfigErrors(loader.duplicate_errors)
    return doc


def load_file(path: Path | str) -> Any:
    """Load one YAML file, errors naming the file as given."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigErrors([ConfigError(str(path), 0, "", f"cannot read: {exc.strerror}")]) from None
    return load_text(text, str(path))
