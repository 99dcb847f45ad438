"""Assemble a site folder: its tags.yaml over the tag contract of the programs it runs, its devices
(io_map.yaml) and its programs.

A site runs an application (`site.application: programs`): a program folder, looked up in the site folder
first, then in the repository, whose tags.yaml gives the scan order (`programs`, `interlocks`) and declares
every tag the programs use. A site may instead list `programs`/`interlocks` itself; the tags.yaml of each
program folder it draws from is merged all the same.

This sits on top: it uses the config library (runtime/config/), the drivers' io_map loader and the program
loader; none of them import it. Every problem in every file is collected first, then raised once as
ConfigErrors, so a person fixes the whole config in one pass. Nothing here starts threads or opens sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigError, ConfigErrors
from runtime.config.merge import MergedTags, TagsFile, merge_tags, read_tags_file
from runtime.config.schema import MISSING, Errors, Where, where_in
from runtime.config.settings import SiteSettings, site_settings
from runtime.config.tags_schema import CONTRACT_FILE, SITE, TAGS_FILE
from runtime.drivers.config import load_io_map
from runtime.loader import find_program, load_programs
from runtime.mqtt.settings import check_files as check_mqtt_files
from runtime.scan import runtime_tags
from runtime.tags import TagDB, TagDef

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Site:
    dir: Path
    settings: SiteSettings
    tags: list[TagDef]
    devices: list[Any] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    raw_settings: Any = None  # the `site:` mapping as loaded, for line numbers
    arbitration: dict[str, list[str]] = field(default_factory=dict)  # tag -> charts, highest priority first
    overridden: dict[str, Where] = field(default_factory=dict)  # application tag -> the site's override
    order: TagsFile | None = None  # the application's tags.yaml, when it gives the scan order

    @property
    def arbitrated(self) -> set[str]:
        """Outputs several charts may drive (their tags declare an arbitration)."""
        return set(self.arbitration)

    def where(self, *keys: Any) -> Where:
        """file:line and key path of a key under `site:` in tags.yaml, e.g. where("programs", 2)."""
        if self.order is not None and keys and keys[0] in ("programs", "interlocks"):
            return where_in(self.order.raw, Where(str(self.order.path), 1, ""), *keys)
        root = Where(str(self.files.get("tags", "")), getattr(self.raw_settings, "line", 0), "site")
        return where_in(self.raw_settings, root, *keys)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def scan_period(self) -> float:
        return self.settings.scan_period

    def program_dirs(self) -> list[Path]:
        """Where program names are looked up: the application's folder, the site's own programs/, then the
        shipped ones."""
        app = self.application_dir()
        dirs = [*([app] if app else []), self.dir / "programs", REPO_ROOT / "programs"]
        return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))

    def application_dir(self) -> Path | None:
        """The folder named by `site.application`: in the site folder, else in the repository."""
        name = self.settings.application
        if not name:
            return None
        found = [d for d in (self.dir / name, REPO_ROOT / name) if (d / "tags.yaml").is_file()]
        return found[0].resolve() if found else None

    def contract_files(self) -> list[Path]:
        """The tags.yaml of every program folder the site runs a program from: the application's contract."""
        names = [*self.settings.programs, *([self.settings.interlocks] if self.settings.interlocks else [])]
        folders = [path.parent for path in (find_program(self, name) for name in names) if path is not None]
        return [folder / "tags.yaml" for folder in dict.fromkeys(folders) if (folder / "tags.yaml").is_file()]

    def source(self, name: str) -> str:
        """Where a tag comes from: its declaration, and the site's override if any."""
        tag = next(t for t in self.tags if t.name == name)
        text = f"{_short(tag.file)}:{tag.line}"
        override = self.overridden.get(name)
        return f"{text}, overridden at {_short(override.file)}:{override.line}" if override else text

    def new_db(self) -> TagDB:
        return TagDB.from_defs(self.tags)


def _short(file: str) -> str:
    """A file name relative to the working folder when it lies below it."""
    try:
        return str(Path(file).resolve().relative_to(Path.cwd()))
    except ValueError:
        return file


def load_tag_table(directory: Path | str, errors: Errors | None = None) -> Site:
    """The site's settings and merged tag table (tags.yaml over its programs' contracts), without devices or
    programs. With ``errors`` the problems are added there; without, they raise ConfigErrors."""
    own = errors if errors is not None else Errors()
    directory = Path(directory)
    tags_path = directory / "tags.yaml"
    if not tags_path.is_file():
        raise ConfigErrors([ConfigError(str(tags_path), 0, "", "no tags.yaml in this folder; a site folder holds "
                                                                 "tags.yaml and io_map.yaml")])
    site_file = read_tags_file(tags_path, TAGS_FILE, own)
    doc = site_file.doc.get("site") if site_file else None
    settings = site_settings(doc if isinstance(doc, dict) and _complete(doc) else SITE({}))
    raw_site = site_file.raw.get("site") if site_file and isinstance(site_file.raw, dict) else None
    site = Site(directory, settings, [], files={"tags": tags_path}, raw_settings=raw_site)
    if settings.application:
        _take_the_application_order(site, own)
    contracts = [c for c in (read_tags_file(path, CONTRACT_FILE, own) for path in site.contract_files()) if c]
    merged: MergedTags = merge_tags(contracts, site_file, own)
    site.tags, site.arbitration, site.overridden = merged.tags, merged.arbitration, merged.overridden
    if errors is None and own:
        raise ConfigErrors(own)
    return site


def _take_the_application_order(site: Site, errors: Errors) -> None:
    """`site.application`: the programs and interlocks come from the application's tags.yaml."""
    settings = site.settings
    where = site.where("application")
    if settings.programs or settings.interlocks:
        errors.add(where, "a site with an application takes its programs and interlocks from the application's "
                          "tags.yaml; list them there, or drop `application:` and list them here")
    folder = site.application_dir()
    if folder is None:
        errors.add(where, f"no application {settings.application!r}: looked for {settings.application}/tags.yaml "
                          f"in {site.dir} and in {REPO_ROOT}")
        return
    order = read_tags_file(folder / "tags.yaml", CONTRACT_FILE, Errors())  # its errors come with the merge
    if order is None:
        return
    site.order = order
    # A value that failed validation (reported with the merge) is MISSING: no order from it, no crash.
    programs, interlocks = order.doc.get("programs"), order.doc.get("interlocks")
    site.settings = replace(settings, programs=tuple(p for p in programs if isinstance(p, str))
                            if isinstance(programs, list) else (),
                            interlocks=interlocks if isinstance(interlocks, str) else None)


def _complete(doc: Any) -> bool:
    """A `site:` mapping without a value that failed validation (those were reported already)."""
    if isinstance(doc, dict):
        return all(_complete(v) for v in doc.values())
    return doc is not MISSING


def load_site(directory: Path | str, with_programs: bool = True) -> tuple[Site, TagDB, list[Any], Any]:
    """Load and check everything; return (site, tag db, programs in order, interlocks program or None)."""
    errors = Errors()
    site = load_tag_table(directory, errors)
    check_mqtt_files(site, errors)
    db = site.new_db()
    io_path = site.dir / "io_map.yaml"
    if io_path.is_file():
        site.files["io_map"] = io_path
        site.devices = load_io_map(io_path, db, errors)
    programs: list[Any] = []
    interlocks = None
    if with_programs:
        # Charts are checked even when tags.yaml or io_map.yaml has errors, so one run shows them all; only
        # "unknown tag" is left out then, as the tag may be one that tags.yaml declares but failed to load.
        found = Errors()
        programs, interlocks = load_programs(site, db, found)
        errors.extend(e for e in found if not errors or "unknown tag" not in e.message)
    if errors:
        raise ConfigErrors(errors)
    return site, db, programs, interlocks


def load_running_tags(directory: Path | str) -> tuple[Site, TagDB]:
    """The site and every tag a controller running it has: the loaded site's, plus those the scan declares
    (``scan.*``, ``prog.<program>.*``) and the alarm system's (``alarms.*``, ``cmd.alarm_*``), in the order the
    controller declares them."""
    from runtime.alarms.service import alarm_tags

    site, db, programs, interlocks = load_site(directory)
    for tag in runtime_tags([*programs, *([interlocks] if interlocks else [])]):
        db.ensure(tag)
    for tag in alarm_tags(list(db.defs.values())):
        db.ensure(tag)
    return site, db


__all__ = ["REPO_ROOT", "Site", "TagsFile", "load_running_tags", "load_site", "load_tag_table"]
