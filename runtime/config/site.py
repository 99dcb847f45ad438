"""Load a site folder: tags.yaml (site settings + tag database), io_map.yaml (devices), and its programs.

Every problem in every file is collected first, then raised once as ConfigErrors, so a person fixes the
whole config in one pass. Nothing here starts threads or opens sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigError, ConfigErrors
from runtime.config.schema import MISSING, Errors, Where, where_in, where_of
from runtime.config.tags_schema import TAGS_FILE, build_tags, check_register_overlaps
from runtime.config.yamlloc import load_file
from runtime.tags import TagDB, TagDef

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Site:
    dir: Path
    settings: dict[str, Any]
    tags: list[TagDef]
    devices: list[Any] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    raw_settings: Any = None  # the `site:` mapping as loaded, for line numbers
    arbitration: dict[str, list[str]] = field(default_factory=dict)  # tag -> charts, highest priority first

    @property
    def arbitrated(self) -> set[str]:
        """Outputs several charts may drive (their tags declare an arbitration)."""
        return set(self.arbitration)

    def where(self, *keys: Any) -> Where:
        """file:line and key path of a key under `site:` in tags.yaml, e.g. where("programs", 2)."""
        root = Where(str(self.files.get("tags", "")), getattr(self.raw_settings, "line", 0), "site")
        return where_in(self.raw_settings, root, *keys)

    @property
    def name(self) -> str:
        return self.settings["name"]

    @property
    def scan_period(self) -> float:
        return self.settings["scan_period"]

    def program_dirs(self) -> list[Path]:
        """Where program names are looked up: the site's own programs/ first, then the shipped ones."""
        dirs = [self.dir / "programs", REPO_ROOT / "programs"]
        return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))

    def new_db(self) -> TagDB:
        return TagDB.from_defs(self.tags)


def load_tags(path: Path, errors: Errors, arbitration: dict[str, list[str]] | None = None) \
        -> tuple[dict[str, Any], list[TagDef], Any]:
    """Validated `site:` settings, the TagDefs and the raw `site:` mapping (for line numbers); fills
    ``arbitration`` (if given) with tag -> the charts of its `arbitration:` list."""
    try:
        raw = load_file(path)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
        return {}, [], None
    doc = TAGS_FILE.walk(raw, where_of(raw, str(path)), errors)
    if doc is MISSING:
        return {}, [], None
    tags_raw = raw.get("tags") if isinstance(raw, dict) else None
    tags = build_tags(doc.get("tags") or {}, tags_raw, str(path), errors) if doc.get("tags") is not MISSING else []
    check_register_overlaps(tags, errors)
    if arbitration is not None and isinstance(doc.get("tags"), dict):
        arbitration.update({name: t["arbitration"] for name, t in doc["tags"].items()
                            if isinstance(t, dict) and t.get("arbitration")})
    settings = doc.get("site")
    raw_site = raw.get("site") if isinstance(raw, dict) else None
    return (settings if isinstance(settings, dict) else {}), tags, raw_site


def load_site(directory: Path | str, with_programs: bool = True) -> tuple[Site, TagDB, list[Any], Any]:
    """Load and check everything; return (site, tag db, programs in order, interlocks program or None)."""
    from runtime.loader import load_programs  # programs need the tag db built here

    directory = Path(directory)
    errors = Errors()
    tags_path = directory / "tags.yaml"
    if not tags_path.is_file():
        raise ConfigErrors([ConfigError(str(tags_path), 0, "", "no tags.yaml in this folder; a site folder holds "
                                                                 "tags.yaml and io_map.yaml")])
    arbitration: dict[str, list[str]] = {}
    settings, tags, raw_site = load_tags(tags_path, errors, arbitration)
    site = Site(directory, settings, tags, files={"tags": tags_path}, raw_settings=raw_site, arbitration=arbitration)
    db = site.new_db()
    io_path = directory / "io_map.yaml"
    if io_path.is_file():
        site.files["io_map"] = io_path
        site.devices = _load_io_map(io_path, db, errors)
    programs: list[Any] = []
    interlocks = None
    if with_programs and not errors:
        programs, interlocks = load_programs(site, db, errors)
    if errors:
        raise ConfigErrors(errors)
    return site, db, programs, interlocks


def _load_io_map(path: Path, db: TagDB, errors: Errors) -> list[Any]:
    try:
        from runtime.drivers.config import load_io_map
    except ModuleNotFoundError as exc:
        if exc.name != "runtime.drivers.config":
            raise
        errors.append(ConfigError(str(path), 0, "", "this build has no device drivers to read io_map.yaml"))
        return []
    return load_io_map(path, db, errors)
