"""Plugin management: fault isolation, misspelled hooks, the allow-list and strict mode.

The broken plugins are real distributions (tests/plugin_dists), pip-installed into a temporary
folder next to the example plugin; the registry finds them through their entry points exactly
as it would in a deployment. Registry rules that need no installed package are tested with
plugin objects.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import plugins_on_path, pythonpath

import veritas_store as vs
from veritas_store.plugin_api.registry import PluginRegistry, get_registry
from veritas_store_plugins.memory import MemoryAuditStore

BROKEN = "veritas-store-broken-import"
MISSPELLED = "veritas-store-misspelled"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("VERITAS_STORE_PLUGINS", "VERITAS_STORE_STRICT_PLUGINS", "VERITAS_STORE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def sites(example_site: Path, broken_site: Path, clean_env: pytest.MonkeyPatch):
    """The example plugin and the two broken ones, installed and visible to this process."""
    with plugins_on_path(example_site, broken_site):
        yield (example_site, broken_site)


def config(tmp_path: Path, audit_type: str = "jsonfolder") -> dict[str, Any]:
    options = {"path": str(tmp_path / "json")} if audit_type == "jsonfolder" else {}
    return {
        "audits": {
            "backends": {
                "main": {"type": audit_type, **options},
                "db": {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"},
            }
        },
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "blobs")}}},
    }


def cli(cwd: Path, *args: str, sites: tuple[Path, ...], **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VERITAS_STORE")}
    environment.update(PYTHONPATH=pythonpath(*sites), NO_COLOR="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "veritas_store.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- broken distributions, installed for real -------------------------------------------------


def test_broken_plugins_are_reported_and_the_others_keep_working(
    sites: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="veritas_store.plugins"):
        registry = get_registry()
    broken, misspelled = registry.plugins["broken"], registry.plugins["misspelled"]
    assert (broken.status, broken.distribution, broken.version) == ("failed", BROKEN, "0.0.1")
    assert "failed to import vs_broken_import" in broken.error
    assert "ModuleNotFoundError" in broken.error and "a_dependency_that_is_not_installed" in (
        broken.error
    )
    assert (misspelled.status, misspelled.distribution) == ("failed", MISSPELLED)
    assert "unknown hook 'register_audit_backend'" in misspelled.error
    assert "did you mean 'register_audit_backends'?" in misspelled.error
    assert registry.lookup("audits", "misspelled") is None and misspelled.types == ()
    for name in ("memory", "sql", "fsspec", "jsonfolder"):
        assert registry.plugins[name].status == "loaded"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"(distribution {BROKEN!r})" in logged and f"(distribution {MISSPELLED!r})" in logged

    with vs.open_stores(config(tmp_path)) as stores:  # the other backends work
        stores.audits.create(vs.Audit(id="still-ok", url="https://ok.example"))
        assert stores.audits.backends["db"].get("still-ok").url == "https://ok.example"
        assert (tmp_path / "json" / "still-ok.json").is_file()


def test_a_config_naming_a_broken_plugins_type_says_what_did_not_load(
    sites: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(vs.ConfigError) as caught:
        vs.open_stores(config(tmp_path, audit_type="misspelled"))
    message = str(caught.value)
    assert "at 'audits.backends.main.type'" in message
    assert "unknown audits backend type 'misspelled'" in message
    assert "registered types: jsonfolder, memory, sql" in message
    assert f"'broken' ({BROKEN})" in message and f"'misspelled' ({MISSPELLED})" in message


def test_cli_plugins_lists_distributions_types_and_load_errors(
    example_site: Path, broken_site: Path, tmp_path: Path
) -> None:
    sites = (example_site, broken_site)
    result = cli(tmp_path, "plugins", sites=sites, COLUMNS="120")
    assert result.returncode == 0, result.stderr
    for text in (BROKEN, MISSPELLED, "veritas-store-jsonfolder", "audits:jsonfolder", "failed"):
        assert text in result.stdout, text
    assert f"not loaded: plugin 'broken' (distribution {BROKEN!r}) failed to import" in (
        result.stderr
    )
    assert f"not loaded: plugin 'misspelled' (distribution {MISSPELLED!r}) implements" in (
        result.stderr
    )
    assert result.stderr.count("not loaded:") == 2  # reported once, not again through the log

    report = json.loads(cli(tmp_path, "plugins", "--json", sites=sites).stdout)
    plugins = {p["plugin"]: p for p in report["plugins"]}
    assert plugins["broken"]["status"] == plugins["misspelled"]["status"] == "failed"
    assert plugins["misspelled"]["version"] == "0.0.2"
    assert plugins["memory"]["types"] == [
        {"kind": "audits", "type": "memory"},
        {"kind": "blobs", "type": "memory"},
    ]
    assert plugins["sql"]["distribution"] == "veritas-store"
    assert {e["distribution"] for e in report["errors"]} == {BROKEN, MISSPELLED}
    assert report["plugin_api_version"] == ".".join(map(str, vs.PLUGIN_API_VERSION))


def test_cli_check_works_next_to_broken_plugins(
    example_site: Path, broken_site: Path, tmp_path: Path
) -> None:
    path = tmp_path / "veritas-store.toml"
    path.write_text(
        '[audits.backends.files]\ntype = "jsonfolder"\npath = "audits"\n'
        '[blobs.backends.disk]\ntype = "fsspec"\nurl = "blobs"\n',
        encoding="utf-8",
    )
    result = cli(tmp_path, "check", "--config", str(path), sites=(example_site, broken_site))
    assert result.returncode == 0, result.stderr
    assert "jsonfolder" in result.stdout and "ok" in result.stdout
    assert BROKEN in result.stderr  # warned about, through the log


# -- the allow-list ----------------------------------------------------------------------------


def test_allow_list_by_entry_point_or_distribution_name(
    sites: tuple[Path, Path], tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("VERITAS_STORE_PLUGINS", " memory , Veritas_Store_JsonFolder ")
    registry = PluginRegistry()
    registry.load_entry_points()
    status = {name: info.status for name, info in registry.plugins.items()}
    assert status == {
        "memory": "loaded",
        "jsonfolder": "loaded",
        "sql": "skipped",
        "fsspec": "skipped",
        "broken": "skipped",  # never imported, so never an error
        "misspelled": "skipped",
    }
    assert registry.unmatched == ()
    assert registry.names("audits") == ["jsonfolder", "memory"]
    assert "vs_broken_import" not in sys.modules


def test_allow_list_leaves_out_what_it_does_not_name(
    sites: tuple[Path, Path], tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("VERITAS_STORE_PLUGINS", "memory,veritas-store-jsonfolder")
    from veritas_store.plugin_api.registry import reset_registry

    reset_registry()
    with pytest.raises(vs.ConfigError, match="unknown audits backend type 'sql'"):
        vs.open_stores(config(tmp_path))
    cfg = config(tmp_path)
    del cfg["audits"]["backends"]["db"]
    cfg["blobs"]["backends"]["disk"] = {"type": "memory"}
    with vs.open_stores(cfg) as stores:
        stores.audits.create(vs.Audit(id="allowed", url="https://ok.example"))


def test_allow_list_reports_names_nothing_has(
    sites: tuple[Path, Path], clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("VERITAS_STORE_PLUGINS", "memory,jsonfolda")
    registry = PluginRegistry()
    with caplog.at_level(logging.WARNING, logger="veritas_store.plugins"):
        registry.load_entry_points()
    assert registry.unmatched == ("jsonfolda",)
    assert "'jsonfolda'" in caplog.text
    strict = PluginRegistry(strict=True)
    with pytest.raises(vs.PluginError, match="'jsonfolda'"):
        strict.load_entry_points()


def test_cli_shows_the_allow_list(example_site: Path, broken_site: Path, tmp_path: Path) -> None:
    result = cli(
        tmp_path,
        "plugins",
        "--json",
        sites=(example_site, broken_site),
        VERITAS_STORE_PLUGINS="jsonfolder,memory",
    )
    report = json.loads(result.stdout)
    assert report["allow_list"] == ["jsonfolder", "memory"]
    assert report["errors"] == []
    assert {p["plugin"] for p in report["plugins"] if p["status"] == "loaded"} == {
        "jsonfolder",
        "memory",
    }


# -- strict mode -------------------------------------------------------------------------------


def test_strict_mode_makes_a_broken_plugin_an_error(
    sites: tuple[Path, Path], tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("VERITAS_STORE_STRICT_PLUGINS", "1")
    with pytest.raises(vs.PluginError) as caught:
        get_registry()
    message = str(caught.value)
    assert f"(distribution {BROKEN!r})" in message or f"(distribution {MISSPELLED!r})" in message
    assert "VERITAS_STORE_STRICT_PLUGINS" in message
    with pytest.raises(vs.PluginError):
        vs.open_stores(config(tmp_path))
    # strict, with the broken plugins left out by the allow-list: fine
    clean_env.setenv("VERITAS_STORE_PLUGINS", "veritas-store,veritas-store-jsonfolder")
    registry = PluginRegistry()
    registry.load_entry_points()
    assert registry.strict and not [p for p in registry.plugins.values() if p.error]


def test_cli_in_strict_mode_exits_2_naming_the_distribution(
    example_site: Path, broken_site: Path, tmp_path: Path
) -> None:
    sites = (example_site, broken_site)
    result = cli(tmp_path, "plugins", sites=sites, VERITAS_STORE_STRICT_PLUGINS="true")
    assert result.returncode == 2
    assert "error: plugin" in result.stderr and "(distribution 'veritas-store-" in result.stderr
    ok = cli(tmp_path, "plugins", sites=(example_site,), VERITAS_STORE_STRICT_PLUGINS="true")
    assert ok.returncode == 0, ok.stderr


# -- registry rules, with plugin objects ---------------------------------------------------------


class Registers:
    """A plugin object registering the given audit types (a real plugin, not a mock)."""

    def __init__(self, *names: str, fail_after: int | None = None) -> None:
        self.names = names
        self.fail_after = fail_after

    @vs.hookimpl
    def register_audit_backends(self, register: Any) -> None:
        for i, name in enumerate(self.names):
            if i == self.fail_after:
                raise RuntimeError("registration broke half-way")
            register(name, MemoryAuditStore, description=f"{name} for tests")


def test_a_type_registered_twice_names_both_plugins_and_others_work() -> None:
    registry = PluginRegistry()
    registry.add_plugin(Registers("dup", "one"), "first", distribution="dist-a")
    registry.add_plugin(Registers("dup", "two"), "second", distribution="dist-b")
    with pytest.raises(vs.PluginError, match=r"'dup' is registered by 'first' \(dist-a\) and"):
        registry.lookup("audits", "dup")
    assert registry.lookup("audits", "one").plugin == "first"
    assert registry.lookup("audits", "two").plugin == "second"
    from veritas_store.cli.health import _plugin_report  # what `veritas-store plugins` shows

    assert _plugin_report(registry)["conflicts"] == [
        "audits type 'dup' is registered by 'first' (dist-a) and 'second' (dist-b)"
    ]


def test_a_plugin_that_fails_half_way_registers_nothing() -> None:
    registry = PluginRegistry()
    registry.add_plugin(Registers("early", "late", fail_after=1), "halfway", distribution="d")
    info = registry.plugins["halfway"]
    assert info.status == "failed" and "registration broke half-way" in info.error
    assert registry.lookup("audits", "early") is None
    with pytest.raises(vs.PluginError, match="failed while registering"):
        PluginRegistry(strict=True).add_plugin(Registers("x", fail_after=0), "strict-one")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("register('', MemoryAuditStore)", "registered a type with no name"),
        ("register('x', 'not callable')", "factory for 'x' is not callable"),
    ],
)
def test_bad_registrations_are_reported(body: str, expected: str) -> None:
    module = types.ModuleType("bad_registration")
    namespace: dict[str, Any] = {"MemoryAuditStore": MemoryAuditStore}
    exec(f"def register_audit_backends(register):\n    {body}\n", namespace)  # noqa: S102
    module.register_audit_backends = vs.hookimpl(namespace["register_audit_backends"])
    registry = PluginRegistry()
    registry.add_plugin(module, "bad")
    assert expected in registry.plugins["bad"].error


def test_a_plugin_without_hook_implementations_is_reported() -> None:
    module = types.ModuleType("forgot_the_marker")
    module.register_audit_backends = lambda register: register("x", MemoryAuditStore)
    registry = PluginRegistry()
    registry.add_plugin(module, "forgot")
    assert "implements no veritas_store hook" in registry.plugins["forgot"].error
    assert "decorated with @veritas_store.hookimpl" in registry.plugins["forgot"].error


def test_a_hook_with_wrong_argument_names_is_reported() -> None:
    module = types.ModuleType("wrong_args")

    @vs.hookimpl
    def register_audit_backends(registrar: Any) -> None:  # the argument is "register"
        registrar("x", MemoryAuditStore)

    module.register_audit_backends = register_audit_backends
    registry = PluginRegistry()
    registry.add_plugin(module, "wrong-args")
    assert "registrar" in registry.plugins["wrong-args"].error
    assert registry.lookup("audits", "x") is None
