"""The stable plugin API: what ``veritas_store`` exports, documented, and all that plugins use.

Built-in plugins (and the example third-party plugin) may import only the public modules, and
use only the names those export: the ``ast`` of every plugin module is checked, so a private
import is caught before it ships.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import veritas_store as vs

REPO = Path(__file__).resolve().parent.parent
PLUGIN_SOURCES = sorted((REPO / "plugins").rglob("*.py")) + sorted(
    (REPO / "examples").glob("*/src/*/*.py")
)
# What runtime plugin code may import; veritas_store.testing (the kit) is for tests only.
ALLOWED_MODULES = {"veritas_store", "veritas_store.aio"}


def public_names(module: str) -> set[str]:
    imported = __import__(module, fromlist=["__all__"])
    return set(imported.__all__)


def violations(path: Path) -> list[str]:
    """Every use of veritas_store in ``path`` that is not the public API."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems: list[str] = []
    aliases: dict[str, str] = {}  # local name -> public module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "veritas_store":
                    continue
                if alias.name not in ALLOWED_MODULES:
                    problems.append(f"line {node.lineno}: import {alias.name}")
                elif alias.asname or "." not in alias.name:
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "veritas_store":
                continue
            if node.module not in ALLOWED_MODULES:
                problems.append(f"line {node.lineno}: from {node.module} import ...")
                continue
            for alias in node.names:
                if alias.name not in public_names(node.module):
                    problems.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr not in public_names(aliases[node.value.id])
        ):
            problems.append(f"line {node.lineno}: {node.value.id}.{node.attr} is not exported")
    return problems


def test_plugin_sources_are_found() -> None:
    names = {p.name for p in PLUGIN_SOURCES}
    assert {"memory.py", "sql.py", "fsspec_blobs.py", "__init__.py"} <= names
    assert any("veritas_store_jsonfolder" in str(p) for p in PLUGIN_SOURCES)


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_plugins_use_only_the_public_api(path: Path) -> None:
    assert violations(path) == []


def test_the_checker_catches_private_use(tmp_path: Path) -> None:
    bad = tmp_path / "bad_plugin.py"
    bad.write_text(
        "import veritas_store as vs\n"
        "import veritas_store.composite\n"
        "from veritas_store.keys import validate_audit_id\n"
        "from veritas_store import open_stores, Member\n"
        "from veritas_store.testing import sample_audit\n"
        "vs.Audit\n"
        "vs.plugins\n",
        encoding="utf-8",
    )
    assert violations(bad) == [
        "line 2: import veritas_store.composite",
        "line 3: from veritas_store.keys import ...",
        "line 4: from veritas_store import Member",
        "line 5: from veritas_store.testing import ...",
        "line 7: vs.plugins is not exported",
    ]


def test_every_export_exists() -> None:
    for name in vs.__all__:
        assert hasattr(vs, name), name
    assert len(vs.__all__) == len(set(vs.__all__))


def test_docs_list_exactly_the_public_api() -> None:
    """docs/plugins.md's "Public API" tables name every export of veritas_store, and no more."""
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## The public API", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z_]+)`", section, flags=re.MULTILINE))
    assert documented == set(vs.__all__)


def test_capability_values_are_stable() -> None:
    # plugins declare these strings; changing one breaks every plugin that does
    assert {c.name: c.value for c in vs.Capability} == {
        "LIST": "list",
        "URLS": "urls",
        "FILTERS": "filters",
        "EVENTS": "events",
        "NATIVE_ASYNC": "native_async",
        "DURABLE": "durable",
        "INLINE": "inline",
    }
    assert {"list"} == vs.DEFAULT_CAPABILITIES
