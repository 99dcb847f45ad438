"""A deterministic corpus of broken config and scenario files, mutated from the shipped ones.

Every entry is one file of the default site (tags.yaml, io_map.yaml, the application's programs/tags.yaml) or
one scenario, broken in one way:

* bytes: random binary, truncation, a NUL or another control character, Latin-1 / UTF-16 / UTF-32 text,
  flipped bytes, a tab indent;
* YAML shapes: nesting far deeper than any config, an alias bomb, an alias inside itself, lists and
  mappings as keys, a plain ``.``, numbers Python cannot hold (5,000 digits, ``1e400``);
* content: every key shape (a key path with tag, device and list names generalised) removed, and retyped
  to null, text, NaN, infinities, 1e308, huge and negative numbers, booleans, lists and mappings.

The same seed gives the same corpus, byte for byte, on every machine. ``python -m tests.runtime.config.
fuzz_corpus OUT`` writes it to a folder to look at or to feed ``battplc check`` by hand.
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
SITE_FILES = ("tags.yaml", "io_map.yaml", "programs/tags.yaml")
SEED = 16

# Values a key is retyped to; each key shape gets RETYPES_PER_SHAPE of them, rotating, so that across the
# shapes every value reaches every part of the schema.
RETYPES: list[Any] = [None, "", "text", ".", 0, -1, 1e308, float("nan"), float("inf"), float("-inf"), 10**40,
                      -(10**40), True, False, [], {}, [1, [2, 3]], {"k": {"j": 1}}, 0.5, "12:30", "-1s", "1e308s"]
RETYPES_PER_SHAPE = {"site": 6, "scenario": 3}  # scenarios share most shapes, so fewer each
HUGE_NUMBER = "9" * 5000
ALIAS_BOMB = ("bomb_a: &a [x, x, x, x, x, x, x, x, x, x]\nbomb_b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "bomb_c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nbomb_d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
              "bomb_e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nbomb_f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
              "bomb_g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n")


@dataclass(frozen=True)
class Mutant:
    """One broken file: which base file it replaces (repo-relative), how it was broken, its bytes."""

    base: str
    how: str
    data: bytes

    @property
    def is_scenario(self) -> bool:
        return self.base not in SITE_FILES

    @property
    def name(self) -> str:
        digest = hashlib.sha1(self.data).hexdigest()[:8]
        return f"{self.base.replace('/', '_').removesuffix('.yaml')}-{self.how}-{digest}"


def base_files() -> list[str]:
    """The shipped files the corpus starts from: the default site's files and every scenario."""
    scenarios = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "scenarios").glob("*.yaml"))
    return [*SITE_FILES, *scenarios]


def corpus(seed: int = SEED) -> list[Mutant]:
    """Every mutant of every base file, in a fixed order."""
    rng = random.Random(seed)
    out: list[Mutant] = []
    for base in base_files():
        data = (REPO_ROOT / base).read_bytes()
        out.extend(Mutant(base, how, mutated) for how, mutated in _byte_mutants(data, rng))
        retypes = RETYPES_PER_SHAPE["site" if base in SITE_FILES else "scenario"]
        out.extend(Mutant(base, how, mutated) for how, mutated in _tree_mutants(data, rng, retypes))
    return out


# ---- bytes -------------------------------------------------------------------------------------------------

def _byte_mutants(data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    text = data.decode("utf-8")
    yield "binary", rng.randbytes(rng.randrange(1, 4096))
    yield "binary-in-file", data[:len(data) // 2] + rng.randbytes(64) + data[len(data) // 2:]
    yield "empty", b""
    yield "only-comment", b"# nothing here\n"
    for _ in range(4):
        yield "truncated", data[:rng.randrange(1, len(data))]
    for char in ("\x00", "\x07", "\x1b", "\x7f", "\ufffe"):
        at = rng.randrange(len(text))
        yield f"char-{ord(char):x}", (text[:at] + char + text[at:]).encode("utf-8")
    yield "latin-1", (text.replace("#", "# \u00e9t\u00e9 \u00b0C", 3) + "x: caf\u00e9\n").encode("latin-1",
                                                                                                  "replace")
    yield "utf-16", text.encode("utf-16")
    yield "utf-32", text.encode("utf-32")
    yield "utf-8-bom", text.encode("utf-8-sig")
    for _ in range(3):
        flipped = bytearray(data)
        for at in rng.sample(range(len(data)), 8):
            flipped[at] ^= 1 << rng.randrange(8)
        yield "bit-flips", bytes(flipped)
    lines = text.splitlines(keepends=True)
    indented = [i for i, line in enumerate(lines) if line.startswith("  ") and line.strip()]
    if indented:
        at = rng.choice(indented)
        yield "tab-indent", "".join(lines[:at] + ["\t" + lines[at].lstrip(" ")] + lines[at + 1:]).encode()
    for depth in (70, 1000, 20000):
        yield f"nested-{depth}", _replace_a_value(lines, rng, "[" * depth + "]" * depth)
        yield f"nested-map-{depth}", _replace_a_value(lines, rng, "{a: " * depth + "1" + "}" * depth)
    yield "alias-bomb", (ALIAS_BOMB + text).encode()
    yield "alias-bomb-value", _replace_a_value(lines, rng, "&x [*x]")
    yield "alias-self", ("loop: &l {<<: *l}\n" + text).encode()
    yield "undefined-alias", _replace_a_value(lines, rng, "*nowhere")
    yield "complex-key", ("? [a, b]\n: 1\n" + text).encode()
    yield "mapping-key", _replace_a_value(lines, rng, "{{x: 1}: 2}")
    yield "list-key-value", _replace_a_value(lines, rng, "{[1, 2]: 3}")
    for value in (".", "-.", "0x_", "0o_", "._", HUGE_NUMBER, "-" + HUGE_NUMBER, "1e400", "-.inf", ".nan",
                  "!!binary aGVsbG8=", "!!set {a, b}", "!!python/object:os.system x", "!!timestamp 2026-13-45",
                  "2026-02-30", "|\n  block\n  text"):
        yield f"value-{_slug(value)}", _replace_a_value(lines, rng, value)
    yield "document-is-list", b"- a\n- b\n"
    yield "document-is-scalar", b"hello\n"
    yield "two-documents", (text + "\n---\n" + text).encode()
    yield "duplicate-document-key", (text + "\n" + lines[0] if lines else text).encode()


def _replace_a_value(lines: list[str], rng: random.Random, value: str) -> bytes:
    """The file with the value of one random `key: value` line replaced by ``value``."""
    candidates = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith(("#", "-"))]
    at = rng.choice(candidates)
    key, _, _ = lines[at].partition(": ")
    return "".join(lines[:at] + [f"{key}: {value}\n"] + lines[at + 1:]).encode("utf-8")


def _slug(value: str) -> str:
    text = "".join(c if c.isalnum() else "_" for c in value)[:16]
    return text if value[:1] not in "-" else "neg" + text


# ---- content -----------------------------------------------------------------------------------------------

def _tree_mutants(data: bytes, rng: random.Random, retypes: int) -> Iterator[tuple[str, bytes]]:
    """Every key shape removed, and retyped to a rotating choice of RETYPES."""
    doc = yaml.load(data, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass
    turn = rng.randrange(len(RETYPES))
    for shape, path in _shapes(doc):
        yield f"remove-{shape}", _dump(_edit(doc, path, None, remove=True))
        for _ in range(retypes):
            value = RETYPES[turn % len(RETYPES)]
            turn += 1
            yield f"retype-{shape}-{type(value).__name__}", _dump(_edit(doc, path, value))


class _PlainLoader(yaml.SafeLoader):
    """Reads the base files with the project's scalar rules (12:30 and off stay strings)."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                                                              "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _shapes(doc: Any) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(shape, first concrete path) of every key; names below the top two levels and indexes are generalised."""
    seen: set[str] = set()

    def walk(node: Any, path: tuple[Any, ...], shape: tuple[str, ...]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            generic = "*" if isinstance(key, int) or (len(path) == 1 and path[0] in ("tags", "devices")) else str(key)
            child_shape = (*shape, generic)
            text = ".".join(child_shape)
            if text not in seen:
                seen.add(text)
                yield text.replace("*", "N"), (*path, key)
            yield from walk(child, (*path, key), child_shape)

    yield from walk(doc, (), ())


def _edit(doc: Any, path: tuple[Any, ...], value: Any, remove: bool = False) -> Any:
    """A deep copy of ``doc`` with the item at ``path`` replaced by ``value`` (or removed)."""
    if not path:
        return value
    copy = list(doc) if isinstance(doc, list) else dict(doc)
    head, rest = path[0], path[1:]
    if rest:
        copy[head] = _edit(doc[head], rest, value, remove)
    elif remove:
        del copy[head]
    else:
        copy[head] = value
    return copy


def _dump(doc: Any) -> bytes:
    # libyaml's dumper when present: the corpus dumps tags.yaml a few hundred times.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, width=1000).encode("utf-8")


def write(folder: Path, seed: int = SEED) -> int:
    """Write the corpus to ``folder`` (one file per mutant); return how many."""
    folder.mkdir(parents=True, exist_ok=True)
    mutants = corpus(seed)
    for mutant in mutants:
        (folder / f"{mutant.name}.yaml").write_bytes(mutant.data)
    return len(mutants)


if __name__ == "__main__":
    print(f"{write(Path(sys.argv[1]))} files written to {sys.argv[1]}")
