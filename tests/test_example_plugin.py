"""The worked third-party plugin, examples/veritas-store-jsonfolder, installed for real.

It is pip-installed into a temporary folder (``conftest.example_site``) and found through its
entry point like any installed plugin, selected from a TOML config file, run in a composite
next to the built-in ``memory`` backend, and put through the conformance kit, both here (in
that composite) and by running the example's own test suite the way its author would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_PLUGIN, plugins_on_path, pythonpath

import veritas_store as vs
from veritas_store.demo import make_png
from veritas_store.testing import AuditStoreContract, sample_audit

CONFIG = """
[audits]
read_order = ["files", "memory"]

[audits.backends.files]
type = "jsonfolder"
path = "data/audits"                     # relative: resolved against this file's folder
fsync = "${JSONFOLDER_FSYNC:-true}"      # text from the environment, converted to a bool

[audits.backends.memory]
type = "memory"
required = false
enabled = "${WITH_MEMORY:-true}"

[blobs.backends.disk]
type = "fsspec"
url = "data/blobs"
"""


@pytest.fixture(scope="module")
def jsonfolder(example_site: Path):
    with plugins_on_path(example_site):
        yield example_site


@pytest.fixture
def config_file(jsonfolder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("JSONFOLDER_FSYNC", "WITH_MEMORY", "VERITAS_STORE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("VERITAS_STORE_STRICT_PLUGINS", raising=False)
    path = tmp_path / "conf" / "veritas-store.toml"
    path.parent.mkdir()
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _reopened_audits(config_file: Path) -> vs.AuditStore:
    stores = vs.open_stores(config_file)
    stores.blobs.close()
    return stores.audits  # the kit closes it


class TestJsonFolderNextToMemory(AuditStoreContract):
    """The conformance kit on the composite the config file describes."""

    @pytest.fixture
    def audit_store(self, config_file: Path):
        with vs.open_stores(config_file) as stores:
            assert [m.type for m in stores.audits.members] == ["jsonfolder", "memory"]
            yield stores.audits

    @pytest.fixture
    def reopen_audit_store(self, config_file: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("WITH_MEMORY", "false")  # a restart: the memory backend is empty
        return lambda: _reopened_audits(config_file)


def test_the_registry_finds_it_with_its_distribution(jsonfolder: Path) -> None:
    from veritas_store.plugin_api.registry import get_registry

    registry = get_registry()
    info = registry.plugins["jsonfolder"]
    assert (info.distribution, info.version, info.status) == (
        "veritas-store-jsonfolder",
        "1.0.0",
        "loaded",
    )
    assert info.types == (("audits", "jsonfolder"),)
    found = registry.lookup("audits", "jsonfolder")
    assert found is not None and found.factory.__module__ == "veritas_store_jsonfolder"
    assert found.factory.__module__ in sys.modules
    assert sys.modules[found.factory.__module__].__file__.startswith(str(jsonfolder))


def test_writes_reach_the_files_and_memory_and_reads_prefer_the_files(config_file: Path) -> None:
    folder = config_file.parent / "data" / "audits"
    with vs.open_stores(config_file) as stores:
        audit = sample_audit("a1")
        stores.audits.create(audit)
        assert json.loads((folder / "a1.json").read_text(encoding="utf-8"))["id"] == "a1"
        assert stores.audits.backends["memory"].get("a1") == audit
        assert stores.audits.get_with_source("a1") == (audit, "files")
        (folder / "a1.json").unlink()  # the files lost it: memory answers
        assert stores.audits.get_with_source("a1") == (audit, "memory")


def test_screenshots_and_recorder_work_through_it(config_file: Path) -> None:
    png = make_png(3, 2, (200, 30, 30))
    with vs.open_stores(config_file) as stores:
        recorder = vs.AuditRecorder(stores)
        recorder.started("run-1", "https://shop.example", tier="deep", verdict_mode="expert")
        shot = stores.screenshots.save("run-1", 0, "home", png)
        recorder.completed("run-1", {"trust_score": 0.25, "risk_level": "high"})
    with vs.open_stores(config_file) as stores:  # a new process would see the same files
        stored = stores.audits.backends["files"].get("run-1")
        assert stored.status is vs.AuditStatus.COMPLETED and stored.trust_score == 0.25
        assert stored.screenshots == (shot,)
        assert stores.screenshots.load("run-1", 0) == png


def test_bad_option_values_are_config_errors_naming_the_key(config_file: Path, monkeypatch):
    monkeypatch.setenv("JSONFOLDER_FSYNC", "sometimes")
    with pytest.raises(vs.ConfigError, match=r"audits\.backends\.files\.fsync"):
        vs.open_stores(config_file)
    config_file.write_text(CONFIG.replace('path = "data/audits"', 'folder = "x"'), "utf-8")
    with pytest.raises(vs.ConfigError, match=r"unknown option\(s\) 'folder'.*accepts: path, fsync"):
        vs.open_stores(config_file)


def _env(*sites: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITAS_STORE")}
    env.update(PYTHONPATH=pythonpath(*sites), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "veritas_store.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_lists_and_checks_it(config_file: Path, jsonfolder: Path) -> None:
    env = _env(jsonfolder)
    listed = _cli(config_file.parent, env, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    (plugin,) = [p for p in report["plugins"] if p["plugin"] == "jsonfolder"]
    assert plugin == {
        "plugin": "jsonfolder",
        "distribution": "veritas-store-jsonfolder",
        "version": "1.0.0",
        "status": "loaded",
        "types": [{"kind": "audits", "type": "jsonfolder"}],
        "error": None,
    }
    checked = _cli(config_file.parent, env, "check", "--config", str(config_file), "--json")
    assert checked.returncode == 0, checked.stderr
    rows = {r["backend"]: r for r in json.loads(checked.stdout)["backends"]}
    assert (rows["files"]["type"], rows["files"]["status"]) == ("jsonfolder", "ok")


def test_the_examples_own_suite_passes_with_the_kit(jsonfolder: Path, tmp_path: Path) -> None:
    """What the plugin's author runs: pytest in the plugin's folder, the kit loaded by itself."""
    project = tmp_path / "veritas-store-jsonfolder"
    shutil.copytree(EXAMPLE_PLUGIN, project, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=project,
        env=_env(jsonfolder),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "conformance kit: veritas_store.testing" in output  # the pytest11 plugin's header
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    # every kit test ran on the plugin (passed, or skipped for a capability it lacks)
    outcomes = dict(re.findall(r"::TestJsonFolderContract::(test_\w+)\S* (PASSED|SKIPPED)", output))
    kit = {name for name in dir(AuditStoreContract) if name.startswith("test_")}
    assert set(outcomes) == kit
    assert outcomes["test_generated_audits_round_trip"] == "PASSED"
    assert outcomes["test_data_survives_close_and_reopen"] == "PASSED"
