"""Find and build the programs a site lists: declared charts (NAME.sfc.yaml) and function blocks (NAME.py).

After building, every tag a program reads or writes must exist, and no output may have two owners unless
its tag declares an arbitration; the problems are reported with file:line like any config error.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from runtime.config.errors import ConfigError, did_you_mean
from runtime.config.schema import Errors, Where
from runtime.program import FunctionBlock, Program
from runtime.tags import TagDB


def find_program(site: Any, name: str) -> Path | None:
    for folder in site.program_dirs():
        for suffix in (".sfc.yaml", ".py"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    return None


def load_block(path: Path, name: str, site: Any) -> FunctionBlock:
    """Import programs/NAME.py and instantiate its one FunctionBlock subclass."""
    module_name = f"battplc_programs.{path.parent.name}.{name}"
    package_dir = path.parent
    if (package_dir / "__init__.py").is_file() and package_dir.name == "programs" and \
            package_dir.parent == Path(__file__).resolve().parents[1]:
        module_name = f"programs.{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    blocks = [obj for obj in vars(module).values()
              if inspect.isclass(obj) and issubclass(obj, FunctionBlock) and obj is not FunctionBlock
              and obj.__module__ == module.__name__]
    if len(blocks) != 1:
        raise ValueError(f"{path}: expected exactly one FunctionBlock subclass, found {len(blocks)}")
    block = blocks[0](name, site)
    block.file = str(path)
    block.line = inspect.getsourcelines(blocks[0])[1]
    return block


def build_program(site: Any, name: str, db: TagDB, errors: Errors, where: Where) -> Program | None:
    path = find_program(site, name)
    if path is None:
        dirs = ", ".join(str(d) for d in site.program_dirs())
        known = sorted({p.name.split(".")[0] for d in site.program_dirs() for p in d.iterdir()
                        if p.name.endswith((".sfc.yaml", ".py")) and not p.name.startswith("_")})
        errors.add(where, f"no program {name!r} (looked for {name}.sfc.yaml and {name}.py in {dirs})"
                          f"{did_you_mean(name, known)}")
        return None
    if path.name.endswith(".sfc.yaml"):
        from runtime.sfc import load_chart
        return load_chart(path, db, errors, site=site)
    try:
        return load_block(path, name, site)
    except Exception as exc:  # an import error in a user's block is a config error, not a crash
        errors.append(ConfigError(str(path), getattr(exc, "lineno", 0) or 0, "", f"cannot load program: {exc}"))
        return None


def check_references(program: Program, db: TagDB, errors: Errors) -> None:
    for kind, names in (("reads", program.reads), ("writes", program.writes)):
        for tag in sorted(names):
            if tag not in db:
                errors.append(ConfigError(program.file, program.line, f"{program.name}.{kind}",
                                          f"unknown tag {tag!r}{did_you_mean(tag, db.defs)}"))


def check_single_owner(programs: list[Program], errors: Errors, arbitrated: set[str]) -> None:
    owner: dict[str, Program] = {}
    for program in programs:
        for tag in sorted(program.writes):
            if tag in owner and tag not in arbitrated:
                first = owner[tag]
                errors.append(ConfigError(program.file, program.line, f"{program.name}.writes",
                                          f"output {tag!r} is already driven by {first.name!r} "
                                          f"({first.file}:{first.line}); declare an arbitration for it"))
            owner.setdefault(tag, program)


def load_programs(site: Any, db: TagDB, errors: Errors) -> tuple[list[Program], Program | None]:
    settings = site.settings
    names = settings.programs
    programs: list[Program] = []
    for i, name in enumerate(names):
        program = build_program(site, name, db, errors, site.where("programs", i))
        if program is not None:
            programs.append(program)
    interlocks = None
    if settings.interlocks:
        interlocks = build_program(site, settings.interlocks, db, errors, site.where("interlocks"))
    everything = programs + ([interlocks] if interlocks else [])
    for program in everything:
        for tag in program.declare():
            try:
                db.ensure(tag)
            except ValueError as exc:
                errors.append(ConfigError(program.file, program.line, program.name, str(exc)))
    for program in everything:
        check_references(program, db, errors)
    arbitrated = getattr(site, "arbitrated", set())
    check_single_owner(programs, errors, arbitrated)
    return programs, interlocks
