"""A site's tags.yaml merged over the tag contract of the programs it runs (their folder's tags.yaml).

The rules, each an error with file:line when broken:
- the programs' tags.yaml declares every tag and parameter they read and write; a tag declared by two
  contract files is an error;
- a site's `tags:` holds its own tags (device tags, extras); one that an application already declares is an
  error (the site changes it under `overrides:`);
- a site's `overrides:` may change `default`, `min`, `max` and `description` of an application tag; an
  override of an unknown tag or of any other key is an error; the merged tag is checked as a whole (a default
  outside the range is reported at the override's line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigErrors, did_you_mean
from runtime.config.schema import MISSING, Errors, Schema, Where, where_of
from runtime.config.tags_schema import OVERRIDABLE, build_tag, check_register_overlaps
from runtime.config.yamlloc import line_of, load_file
from runtime.tags import TagDef


@dataclass
class TagsFile:
    """One loaded, validated tags.yaml (a site's or a contract)."""

    path: Path
    doc: dict[str, Any]
    raw: Any

    def where(self, section: str, name: str) -> Where:
        container = self.raw.get(section) if isinstance(self.raw, dict) else None
        return Where(str(self.path), line_of(container, name), f"{section}.{name}")

    def section(self, name: str) -> dict[str, Any]:
        value = self.doc.get(name)
        return value if isinstance(value, dict) else {}


def read_tags_file(path: Path, schema: Schema, errors: Errors) -> TagsFile | None:
    """Load and validate one file; None (with the errors added) when it cannot be read at all."""
    try:
        raw = load_file(path)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
        return None
    doc = schema.walk(raw, where_of(raw, str(path)), errors)
    return None if doc is MISSING else TagsFile(path, doc, raw)


@dataclass
class MergedTags:
    tags: list[TagDef] = field(default_factory=list)
    overridden: dict[str, Where] = field(default_factory=dict)  # tag -> the site's override
    arbitration: dict[str, list[str]] = field(default_factory=dict)  # tag -> charts, highest priority first


def merge_tags(contracts: list[TagsFile], site: TagsFile | None, errors: Errors) -> MergedTags:
    """The site's tags and overrides over its programs' contracts: contract tags first, then the site's own."""
    declared: dict[str, tuple[dict[str, Any], Where]] = {}
    for contract in contracts:
        for name, t in contract.section("tags").items():
            where = contract.where("tags", name)
            if name in declared:
                first = declared[name][1]
                errors.add(where, f"{name!r} is already declared by {first.file}:{first.line}; a tag has one owner")
                continue
            declared[name] = (t, where)
    application = dict(declared)
    merged = MergedTags()
    if site is not None:
        _apply_overrides(site, declared, merged, errors)
        for name, t in site.section("tags").items():
            where = site.where("tags", name)
            if name in application:
                owner = application[name][1]
                errors.add(where, f"{name!r} is the application's tag ({owner.file}:{owner.line}); a site may "
                                  f"change its {', '.join(OVERRIDABLE)} under overrides:, not declare it again")
                continue
            declared[name] = (t, where)
    for name, (t, where) in declared.items():
        tag = build_tag(name, t, merged.overridden.get(name, where), where, errors)
        if tag is not None:
            merged.tags.append(tag)
        if isinstance(t, dict) and t.get("arbitration") and t["arbitration"] is not MISSING:
            merged.arbitration[name] = t["arbitration"]
    check_register_overlaps(merged.tags, errors)
    return merged


def _apply_overrides(site: TagsFile, declared: dict[str, tuple[dict[str, Any], Where]], merged: MergedTags,
                     errors: Errors) -> None:
    for name, override in site.section("overrides").items():
        where = site.where("overrides", name)
        if name not in declared:
            errors.add(where, f"no application tag {name!r} to override{did_you_mean(name, declared)}; "
                              "the site's own tags go under tags:")
            continue
        if not isinstance(override, dict):
            continue
        t, declared_at = declared[name]
        changes = {k: v for k, v in override.items() if k in OVERRIDABLE and v is not MISSING}
        declared[name] = ({**t, **changes}, declared_at)
        merged.overridden[name] = where
