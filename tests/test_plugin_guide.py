"""docs/plugins.md works as written: its example package, copied out of the page, installs,
registers, is selected from the page's config, and passes the conformance kit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, pip_install_target, plugins_on_path, pythonpath

import veritas_store as vs
from veritas_store.testing import BlobStoreContract

GUIDE = REPO / "docs" / "plugins.md"


def code_blocks() -> dict[str, str]:
    """The guide's code blocks whose first line is a ``# <file name>`` comment, by file name."""
    blocks = re.findall(r"```\w*\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)
    found = {}
    for body in blocks:
        first = body.splitlines()[0]
        name = first[2:].split()[0].rstrip(":") if first.startswith("# ") else ""
        if name.endswith((".py", ".toml")):
            found[name] = body
    return found


@pytest.fixture(scope="module")
def guide_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The guide's package, written file by file from the page."""
    blocks = code_blocks()
    root = tmp_path_factory.mktemp("guide") / "veritas-store-shelf"
    for name in ("pyproject.toml", "src/veritas_store_shelf/__init__.py", "tests/test_shelf.py"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(blocks[name], encoding="utf-8")
    (root.parent / "veritas-store.toml").write_text(blocks["veritas-store.toml"], "utf-8")
    return root


@pytest.fixture(scope="module")
def guide_site(guide_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_target(tmp_path_factory.mktemp("guide-site"), guide_package)


def test_the_guide_has_the_files_it_promises() -> None:
    assert {
        "pyproject.toml",
        "src/veritas_store_shelf/__init__.py",
        "tests/test_shelf.py",
        "veritas-store.toml",
    } <= set(code_blocks())


def test_the_guides_plugin_is_selected_from_the_guides_config(
    guide_package: Path, guide_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VERITAS_STORE_PLUGINS", raising=False)
    monkeypatch.chdir(guide_package.parent)  # the [audits] default lands here, not in the repo
    with (
        plugins_on_path(guide_site),
        vs.open_stores(guide_package.parent / "veritas-store.toml") as stores,
    ):
        assert [m.type for m in stores.blobs.members] == ["shelf", "fsspec"]
        stores.blobs.put("a1/0000.png", b"\x89PNG")
        assert stores.blobs.get_with_source("a1/0000.png") == (b"\x89PNG", "archive")
        # no URLs from the shelf, so the composite asks the disk, never the shelf
        assert stores.blobs.url("a1/0000.png").startswith("file://")
    assert (guide_package.parent / "data" / "blobs.db").is_file()


def test_the_guides_plugin_passes_the_kit(guide_package: Path, guide_site: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITAS_STORE")}
    env.update(PYTHONPATH=pythonpath(guide_site), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rs"],
        cwd=guide_package,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    outcomes = dict(re.findall(r"::TestShelf::(test_\w+)\S* (PASSED|SKIPPED)", output))
    assert set(outcomes) == {n for n in dir(BlobStoreContract) if n.startswith("test_")}
    assert outcomes["test_readers_never_see_a_partial_blob"] == "PASSED"
    # what is skipped is what the guide's store declares it lacks, nothing else
    skipped = set(re.findall(r"SKIPPED \[\d+\] \S+: (.*)", output))
    assert skipped == {
        "ShelfBlobStore declares the 'list' capability",
        "ShelfBlobStore does not declare the 'urls' capability",
        "ShelfBlobStore does not declare the 'native_async' capability",
    }
