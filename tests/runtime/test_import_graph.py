"""The arrows of the import graph point down: runtime/config/ is a library (YAML with lines, validators, the
tags.yaml schema and merge rules) and imports nothing above it; site assembly (runtime/site.py) is imported
only by what sits on top of it (the service, the commands)."""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
# What a config module may import from runtime: itself and the plain data types it validates into.
CONFIG_MAY_IMPORT = ("runtime.config", "runtime.tags", "runtime.durations")
# Who may import the site assembly: the top of the tree.
SITE_USERS = {"app.py", "cli.py", "cli_args.py", "server/cli.py", "sfc/cli.py", "sfc/why_cli.py", "alarms/cli.py",
              "params.py", "export.py"}


def imports(path: Path) -> set[str]:
    """Every module a file imports, wherever the import statement is (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_config_imports_nothing_above_it() -> None:
    files = sorted((RUNTIME / "config").glob("*.py"))
    assert len(files) >= 6
    upward = {f"{path.name}: {name}" for path in files for name in imports(path)
              if name.startswith("runtime") and name != "runtime"
              and not name.startswith(CONFIG_MAY_IMPORT)}
    assert upward == set()


def test_only_the_top_assembles_a_site() -> None:
    users = {path.relative_to(RUNTIME).as_posix() for path in RUNTIME.rglob("*.py")
             if path.name != "site.py" and {"runtime.site", "runtime.site.load_site"} & imports(path)}
    assert users <= SITE_USERS, users - SITE_USERS
