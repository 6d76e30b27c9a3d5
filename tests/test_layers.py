"""The core's modules form layers: no import cycle among them, whatever the import's place.

Every import is read from the source (``ast``): top-level, inside functions, and under
``TYPE_CHECKING`` alike, absolute (``veritas_store...``) or relative. That the built-in
plugins use only the public ``veritas_store`` API is checked in ``test_public_api.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# installed package name -> source folder (see [tool.setuptools] in pyproject.toml)
PACKAGES = {"veritas_store": REPO / "veritas_store", "veritas_store_plugins": REPO / "plugins"}


def modules(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the packages."""
    found: dict[str, Path] = {}
    for package, root in packages.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules that module ``name`` (at ``path``) imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` names the submodule; ``from pkg import obj``, pkg itself
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def import_graph(packages: dict[str, Path]) -> dict[str, set[str]]:
    found = modules(packages)
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_the_graph_sees_the_modules_and_their_imports() -> None:
    graph = import_graph(PACKAGES)
    assert {"veritas_store", "veritas_store.wiring.config", "veritas_store_plugins.sql"} <= set(
        graph
    )
    assert "veritas_store.composite.routing" in graph["veritas_store.wiring.config"]
    assert "veritas_store" in graph["veritas_store_plugins.memory"]


def test_there_is_no_import_cycle() -> None:
    assert cycles(import_graph(PACKAGES)) == []


@pytest.mark.parametrize(
    ("a_source", "b_source"),
    [
        ("from .b import x\n", "from .a import y\n"),  # top level, relative
        ("import pkg.b\n", "def f():\n    from pkg import a\n"),  # in a function
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import x\n",
            "from . import a\n",
        ),
    ],
    ids=["relative", "function-level", "type-checking"],
)
def test_the_checker_catches_a_cycle(tmp_path: Path, a_source: str, b_source: str) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("", encoding="utf-8")
    (root / "a.py").write_text(a_source, encoding="utf-8")
    (root / "b.py").write_text(b_source, encoding="utf-8")
    (root / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (root / "sub" / "c.py").write_text(
        "from .. import a, name\nfrom ..b import x\n", encoding="utf-8"
    )
    graph = import_graph({"pkg": root})
    assert graph["pkg.sub.c"] == {"pkg", "pkg.a", "pkg.b"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


# The core's layers, lowest first. A module may import its own layer and the ones below it,
# never one above: the records know nothing of plugins, the plugin API nothing of the
# composite, and so on up to the front ends. Each entry is a package or module prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("records", ("veritas_store.records",)),
    ("plugin API", ("veritas_store.plugin_api",)),
    ("machinery", ("veritas_store.composite", "veritas_store.screenshots", "veritas_store.locks")),
    ("wiring", ("veritas_store.wiring", "veritas_store.recorder")),
    ("public API", ("veritas_store",)),  # the facade: veritas_store/__init__.py
    ("tools", ("veritas_store.ops", "veritas_store.aio", "veritas_store.demo")),
    ("built-in plugins", ("veritas_store_plugins",)),
    ("front ends", ("veritas_store.cli", "veritas_store.testing")),
]
# Loaded by pytest in every project that installs the kit: it must import nothing of ours.
ISOLATED = {"veritas_store.pytest_plugin"}
MAX_LINES = 400


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> int:
    """The index of the most specific layer prefix that names ``module``."""
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def upward_imports(
    graph: dict[str, set[str]], layers: list[tuple[str, tuple[str, ...]]] = LAYERS
) -> list[str]:
    """Every import of a module from a higher layer, as 'a (layer) imports b (layer)'."""
    found = []
    for module, targets in sorted(graph.items()):
        if module in ISOLATED:
            continue
        for target in sorted(targets):
            low, high = layer_of(module, layers), layer_of(target, layers)
            if high > low:
                found.append(f"{module} ({layers[low][0]}) imports {target} ({layers[high][0]})")
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in import_graph(PACKAGES) if layer_of(m) < 0 and m not in ISOLATED]
    assert unplaced == [], "add these to LAYERS in tests/test_layers.py and the README's Layout"


def test_lower_layers_never_import_higher_ones() -> None:
    assert upward_imports(import_graph(PACKAGES)) == []


def test_the_pytest_plugin_imports_nothing_of_ours() -> None:
    graph = import_graph(PACKAGES)
    assert all(graph[m] == set() for m in ISOLATED)


def test_the_layer_check_catches_an_upward_import() -> None:
    layers = [("low", ("pkg.low",)), ("high", ("pkg.high",))]
    graph = {"pkg.low.a": {"pkg.high.b"}, "pkg.high.b": {"pkg.low.c"}, "pkg.low.c": set()}
    assert upward_imports(graph, layers) == ["pkg.low.a (low) imports pkg.high.b (high)"]


@pytest.mark.parametrize(
    "path",
    sorted(p for root in PACKAGES.values() for p in root.rglob("*.py")),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_no_module_is_over_the_size_limit(path: Path) -> None:
    # split by responsibility when a module outgrows this (the README's Layout says where)
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)}: {lines} lines"
