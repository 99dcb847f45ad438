"""YAML loading that keeps where every key and item came from.

PyYAML forgets positions once it builds Python objects; config errors must name ``file:line``. This loader
builds ``LocDict``/``LocList`` that remember the line of the node itself and of each key or item, refuses
duplicate keys (plain YAML silently keeps the last one), and resolves scalars the YAML 1.2 way for numbers:
``12:30`` stays the string "12:30" instead of becoming the base-60 integer 750, and only true/false are
booleans (``off`` stays the string "off").

Whatever the bytes, loading ends in a document or in ConfigErrors naming the file (and the line where there
is one), never in a traceback: text that is not UTF-8, control characters, nesting deeper than MAX_DEPTH,
aliases that expand to more than MAX_NODES nodes (an "alias bomb"), an alias inside itself, a list or
mapping used as a key, numbers Python cannot hold, and YAML types a config has no use for (!!binary, !!set,
!!omap, !!pairs) are all errors.
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


# Deeper than any config needs, shallow enough that composing and validating stay far from Python's
# recursion limit.
MAX_DEPTH = 64
# Nodes a document may hold once every alias is expanded: the biggest shipped file has about 8,000.
MAX_NODES = 200_000


class _Loader(yaml.SafeLoader):
    duplicate_errors: list[ConfigError]
    depth: int = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            # A scalar the resolver took for a number or date that Python cannot build: 2026-02-30, or an
            # integer of more digits than int() converts (sys.get_int_max_str_digits).
            text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
            shown = repr(text) if len(text) <= 24 else f"a {len(text)}-character value"
            raise yaml.constructor.ConstructorError(None, None, f"{shown} is not a usable {node.tag.rsplit(':', 1)[-1]}"
                                                    f" ({str(exc).split(':')[0]})", node.start_mark) from None

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph that is cyclic or expands (through aliases) to more than MAX_NODES nodes.

    PyYAML shares an aliased node instead of copying it, so a small file can describe a structure of
    billions of nodes that the validators would then walk; sizes are counted per node, once.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.composer.ComposerError(None, None, "an alias refers to a node that contains it",
                                              node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return 1
        open_nodes.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(key)
        if total > MAX_NODES:
            raise yaml.composer.ComposerError(None, None, f"aliases expand this to more than {MAX_NODES:,} "
                                              f"values (an alias bomb?)", node.start_mark)
        sizes[key] = total
        return total

    size(root)


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
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F][0-9a-fA-F_]*|0o[0-7][0-7_]*)$"),
    list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    # A digit is required somewhere: a lone "." or "-." is a string, as YAML 1.2 says.
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    if text.lower().startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.lower().startswith("0x") else int(text)


def _refuse(loader: _Loader, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(None, None, f"YAML type !!{node.tag.rsplit(':', 1)[-1]} has no use in a config; write "
                                            f"a plain value, list or mapping", node.start_mark)


def _map(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    loader.flatten_mapping(node)
    out = LocDict(loader.name, node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(key, (dict, list)):
            loader.duplicate_errors.append(ConfigError(loader.name, line, "", "a key must be a name or a number, "
                                                       f"not a {'mapping' if isinstance(key, dict) else 'list'}"))
            continue
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
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


def load_text(text: str, name: str = "<memory>") -> Any:
    """Parse YAML text; raise ConfigErrors with file:line on syntax errors and duplicate keys."""
    loader = None
    try:
        # The reader checks every character when it is built: a NUL byte fails here already.
        loader = _Loader(text)
        loader.name = name
        loader.duplicate_errors = []
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "syntax error"
        if isinstance(exc, (yaml.scanner.ScannerError, yaml.parser.ParserError)):
            problem = f"YAML syntax: {problem}"
        raise ConfigErrors([ConfigError(name, line, "", problem)]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigErrors([ConfigError(name, line, "", f"character {exc.character!r} is not allowed in YAML "
                                                        f"(a binary file, or text with control characters?)")]) from None
    except yaml.YAMLError as exc:
        raise ConfigErrors([ConfigError(name, 0, "", f"YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicate_errors:
        raise ConfigErrors(loader.duplicate_errors)
    return doc


def load_file(path: Path | str) -> Any:
    """Load one YAML file, errors naming the file as given."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigErrors([ConfigError(str(path), 0, "", f"cannot read: {exc.strerror or exc}")]) from None
    return load_text(decode(data, str(path)), str(path))


def decode(data: bytes, name: str) -> str:
    """UTF-8 text (a leading byte order mark allowed); anything else is a ConfigErrors naming the line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigErrors([ConfigError(name, line, "", f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column "
                                                        f"{column}; save the file as UTF-8")]) from None
