"""The ``veritas-store`` console script, run for real in a subprocess in a temporary folder.

Output goes to a pipe, so rich renders at its default 80 columns and without colour: what an
operator sees when piping a command into a file or another tool.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("veritas-store")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "veritas_store.cli"]
COMMANDS = ["check", "copy", "demo", "list", "plugins", "show", "verify"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "VERITAS_STORE_CONFIG", "USE_DB_PERSISTENCE", "VERITAS_STORE_PLUGINS", "COLUMNS",
        "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
    ):  # fmt: skip
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run(cwd, *args, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def ok_json(cwd: Path, *args: str, env: dict[str, str] | None = None):
    return json.loads(ok(cwd, *args, "--json", env=env))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- help -------------------------------------------------------------------------------------


def test_group_help(tmp_path):
    out = ok(tmp_path, "--help")
    assert "Usage:" in out and "--config" in out
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), command
    assert list(tmp_path.iterdir()) == []  # help touches nothing


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(tmp_path, command):
    out = ok(tmp_path, command, "--help")
    assert f"Usage: veritas-store {command}" in out or f"{command} [OPTIONS]" in out
    assert "--config" in out
    if command != "demo":
        assert "--json" in out
    assert list(tmp_path.iterdir()) == []


# --- demo, with the embedded default ----------------------------------------------------------


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A folder where ``demo`` ran three times with the embedded default."""
    folder = tmp_path_factory.mktemp("demo")
    text = ok(folder, "demo")
    reports = [ok_json(folder, "demo"), ok_json(folder, "demo")]
    match = re.search(r"Demo audit (\S+)", text)
    assert match, text
    return {"folder": folder, "text": text, "text_id": match.group(1), "reports": reports}


def test_demo_leaves_sqlite_and_png_files(demo_dir):
    folder, text = demo_dir["folder"], demo_dir["text"]
    assert "Read answered by: sql" in text
    data = folder / "veritas-data"
    assert (data / "audits.db").is_file()
    for audit_id in [demo_dir["text_id"]] + [r["audit_id"] for r in demo_dir["reports"]]:
        pngs = sorted((data / "blobs" / audit_id).glob("*.png"))
        assert [p.name for p in pngs] == ["0000.png", "0001.png", "0002.png"]
        for png in pngs:
            assert png.read_bytes().startswith(PNG_MAGIC)


def test_demo_json(demo_dir):
    report = demo_dir["reports"][0]
    assert report["read_from"] == "sql"
    assert report["config"] == "<embedded default>"
    assert report["audit"]["status"] == "completed"
    assert [b["backend"] for b in report["audit_backends"]] == ["sql", "memory"]
    assert all(b["has_audit"] and b["equal_to_read"] for b in report["audit_backends"])
    (blobs,) = report["blob_backends"]
    keys = [s["blob_key"] for s in report["audit"]["screenshots"]]
    assert blobs["backend"] == "local" and blobs["keys"] == keys
    for key in keys:
        assert (demo_dir["folder"] / "veritas-data" / "blobs" / key).is_file()


def test_demo_rollback_to_memory(tmp_path):
    report = ok_json(tmp_path, "demo", env=base_env(USE_DB_PERSISTENCE="false"))
    assert report["read_from"] == "memory"
    assert [b["backend"] for b in report["audit_backends"]] == ["memory"]
    assert not (tmp_path / "veritas-data" / "audits.db").exists()
    # screenshots still go to local disk
    assert (tmp_path / "veritas-data" / "blobs" / report["audit_id"] / "0000.png").is_file()


def test_config_option_before_and_after_the_command(tmp_path):
    config = write(
        tmp_path / "deploy" / "veritas.toml",
        """
        [audits.backends.db]
        type = "sql"
        url = "sqlite:///data/audits.db"

        [blobs.backends.disk]
        type = "fsspec"
        url = "shots"
        """,
    )
    before = ok_json(tmp_path, "--config", str(config), "demo")
    after = ok_json(tmp_path, "demo", "--config", "deploy/veritas.toml")
    for report in (before, after):
        assert report["read_from"] == "db"
        assert [b["backend"] for b in report["audit_backends"]] == ["db"]
    assert (tmp_path / "deploy" / "data" / "audits.db").is_file()  # relative to the file
    assert (tmp_path / "deploy" / "shots" / after["audit_id"] / "0002.png").is_file()
    assert not (tmp_path / "veritas-data").exists()
    # both audits are in the same database, whichever way the option was given
    shown = ok_json(tmp_path, "show", before["audit_id"], "--config", str(config))
    assert shown["source"] == "db"
    listed = ok_json(tmp_path, "--config", str(config), "list")
    assert {a["id"] for a in listed["items"]} == {before["audit_id"], after["audit_id"]}


# --- check ------------------------------------------------------------------------------------


def test_check_good_config(tmp_path):
    out = ok(tmp_path, "check")
    assert "<embedded default>" in out
    report = ok_json(tmp_path, "check")
    assert report["ok"] is True
    assert report["warnings"] == []
    assert {(r["section"], r["backend"], r["status"]) for r in report["backends"]} == {
        ("audits", "sql", "ok"),
        ("audits", "memory", "ok"),
        ("blobs", "local", "ok"),
    }


def test_check_misspelled_type_exits_2(tmp_path):
    config = write(
        tmp_path / "typo.toml",
        """
        [audits.backends.main]
        type = "sqll"
        url = "sqlite:///a.db"

        [blobs.backends.local]
        type = "fsspec"
        url = "memory://typo"
        """,
    )
    for args in (["check", "--config", str(config)], ["--config", str(config), "check"]):
        result = run(tmp_path, *args)
        assert result.returncode == 2, result
        assert "audits.backends.main.type" in result.stderr
        assert "'sqll'" in result.stderr
        assert "registered types: memory, sql" in result.stderr
        assert str(config) in result.stderr
    assert not (tmp_path / "a.db").exists()


def test_check_bad_option_value_is_a_config_error(tmp_path):
    """Exit codes (cli/base.py): 2 for a config error, as ``demo`` does for the same file."""
    config = write(
        tmp_path / "prefix.toml",
        """
        [audits.backends.db]
        type = "sql"
        url = "sqlite:///a.db"
        table_prefix = "9x"
        """,
    )
    demo = run(tmp_path, "demo", "--config", str(config))
    assert demo.returncode == 2 and "table_prefix" in demo.stderr
    check = run(tmp_path, "check", "--config", str(config))
    assert check.returncode == 2, check
    assert "audits.backends.db" in check.stderr and "table_prefix" in check.stderr


def test_check_config_error_keeps_the_section_name(tmp_path):
    config = write(
        tmp_path / "order.toml",
        """
        [audits]
        read_order = ["sqll"]

        [audits.backends.memory]
        type = "memory"
        """,
    )
    result = run(tmp_path, "check", "--config", str(config))
    assert result.returncode == 2
    assert "audits.read_order[0]" in result.stderr
    assert "'sqll' is not a backend of [audits]" in result.stderr  # not eaten as markup


@pytest.mark.parametrize("password", ["secretpw", "Zx9/Qw+e="])
def test_check_unreachable_backend_exits_1_and_hides_the_password(tmp_path, password):
    config = write(
        tmp_path / "closed.toml",
        f"""
        [audits.backends.pg]
        type = "sql"
        url = "postgresql+psycopg://u:{password}@127.0.0.1:9/x"

        [blobs.backends.local]
        type = "fsspec"
        url = "memory://closed"
        """,
    )
    text = run(tmp_path, "check", "--config", str(config))
    assert text.returncode == 1, text
    assert "error" in text.stdout
    as_json = run(tmp_path, "check", "--config", str(config), "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    rows = {r["backend"]: r for r in report["backends"]}
    assert rows["pg"]["status"] == "error" and "127.0.0.1" in rows["pg"]["detail"]
    assert rows["local"]["status"] == "ok"
    for result in (text, as_json):
        assert password not in result.stdout + result.stderr


def test_check_warns_when_memory_is_read_before_a_persistent_backend(tmp_path):
    config = write(
        tmp_path / "memfirst.toml",
        """
        [audits]
        read_order = ["memory", "sql"]

        [audits.backends.sql]
        type = "sql"
        url = "sqlite:///a.db"

        [audits.backends.memory]
        type = "memory"

        [blobs.backends.local]
        type = "fsspec"
        url = "memory://memfirst"
        """,
    )
    text = run(tmp_path, "check", "--config", str(config))
    assert text.returncode == 0  # a warning, not a failure
    assert "warning" in text.stderr
    assert "'memory' is read before 'sql'" in text.stderr
    assert "[audits]" in text.stderr  # which section
    report = ok_json(tmp_path, "check", "--config", str(config))
    assert report["ok"] is True
    (warning,) = report["warnings"]
    assert "memory" in warning and "sql" in warning


# --- plugins ----------------------------------------------------------------------------------


def test_plugins(tmp_path):
    out = ok(tmp_path, "plugins")
    for name in ("memory", "sql", "fsspec", "veritas-store"):
        assert name in out
    report = ok_json(tmp_path, "plugins")
    types = {(t["kind"], t["type"]): t for t in report["types"]}
    assert {("audits", "memory"), ("audits", "sql"), ("blobs", "fsspec"), ("blobs", "memory")} <= (
        set(types)
    )
    for key in (("audits", "memory"), ("audits", "sql"), ("blobs", "fsspec")):
        assert types[key]["distribution"] == "veritas-store"
        assert types[key]["description"]
    assert report["errors"] == []


# --- show and list (a new process reads what demo left in SQLite) ----------------------------


def test_show_reads_the_demo_audit_back_from_sqlite(demo_dir):
    report = demo_dir["reports"][1]
    shown = ok_json(demo_dir["folder"], "show", report["audit_id"])
    assert shown["source"] == "sql"
    assert shown["audit"] == report["audit"]

    text = ok(demo_dir["folder"], "show", report["audit_id"])
    assert f"Audit {report['audit_id']} (read from sql)" in text
    assert "Findings" in text and "Screenshots" in text
    for shot in report["audit"]["screenshots"]:
        assert shot["blob_key"] in text


def test_show_missing_audit_exits_1(demo_dir):
    result = run(demo_dir["folder"], "show", "no-such-audit")
    assert result.returncode == 1
    assert "no-such-audit" in result.stderr and "not found" in result.stderr
    result = run(demo_dir["folder"], "show", "no-such-audit", "--json")
    assert result.returncode == 1
    assert result.stdout == ""


def test_list(demo_dir):
    ids = {demo_dir["text_id"]} | {r["audit_id"] for r in demo_dir["reports"]}
    out = ok(demo_dir["folder"], "list")
    for audit_id in ids:
        assert audit_id in out  # in full: an operator copies it into `show`


def test_list_pages_with_cursor(demo_dir):
    folder = demo_dir["folder"]
    everything = ok_json(folder, "list")
    assert everything["next_cursor"] is None
    expected = [a["id"] for a in everything["items"]]
    assert len(expected) == 3
    created = [a["created_at"] for a in everything["items"]]
    assert created == sorted(created, reverse=True)  # newest first

    seen, cursor = [], None
    for _ in range(len(expected) + 1):
        args = ["list", "--status", "completed", "--limit", "1"]
        page = ok_json(folder, *args, *(["--cursor", cursor] if cursor else []))
        assert len(page["items"]) == 1
        assert page["items"][0]["status"] == "completed"
        seen.append(page["items"][0]["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected

    assert ok_json(folder, "list", "--status", "running")["items"] == []


def test_list_rejects_a_bad_cursor(demo_dir):
    result = run(demo_dir["folder"], "list", "--cursor", "not-a-cursor")
    assert result.returncode == 1
    assert "cursor" in result.stderr


def test_list_filters_and_order(demo_dir):
    folder = demo_dir["folder"]
    newest = [a["id"] for a in ok_json(folder, "list")["items"]]
    assert [a["id"] for a in ok_json(folder, "list", "--order", "oldest")["items"]] == newest[::-1]
    everything = ok_json(folder, "list")["items"]
    some = everything[0]
    by_url = ok_json(folder, "list", "--url", some["url"])["items"]
    assert by_url and all(a["url"] == some["url"] for a in by_url)
    risk = next(a["risk_level"] for a in everything if a["risk_level"])
    by_risk = ok_json(folder, "list", "--risk-level", risk)["items"]
    assert {a["id"] for a in by_risk} == {a["id"] for a in everything if a["risk_level"] == risk}
    latest = max(a["created_at"] for a in everything)
    assert ok_json(folder, "list", "--created-after", latest)["items"][0]["created_at"] == latest
    assert (
        ok_json(folder, "list", "--created-before", min(a["created_at"] for a in everything))[
            "items"
        ]
        == []
    )
    bad = run(folder, "list", "--created-after", "last tuesday")
    assert bad.returncode == 2 and "--created-after" in bad.stderr


def test_show_events_prints_the_event_log(demo_dir):
    report = demo_dir["reports"][1]
    shown = ok_json(demo_dir["folder"], "show", report["audit_id"], "--events")
    seqs = [e["seq"] for e in shown["events"]]
    assert seqs and seqs == list(range(1, len(seqs) + 1))
    shots = [e for e in shown["events"] if e["type"] == "screenshot"]
    assert shots and all(e["data"]["data"] is None and e["data"]["blob_key"] for e in shots)
    text = ok(demo_dir["folder"], "show", report["audit_id"], "--events")
    assert "Events" in text and "screenshot" in text
    assert "events" not in ok_json(demo_dir["folder"], "show", report["audit_id"])
