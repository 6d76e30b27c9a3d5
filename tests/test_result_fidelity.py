"""Done-when of issue 10: a real runner's event stream recorded into memory + a database, the
process killed, and a fresh process rebuilds the status response with every key and value the
in-memory result had — on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import drop_prefixed_tables, unique_prefix

HERE = Path(__file__).parent


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    prefix = unique_prefix()
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audits.db", prefix
        return
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    yield url, prefix
    drop_prefixed_tables(url, prefix)


def _run(mode: str, config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HERE / "fidelity_writer.py"), mode, str(config), str(out)],
        capture_output=True, text=True, timeout=300, cwd=config.parent,
    )  # fmt: skip


def test_a_killed_service_rebuilds_the_whole_status_from_the_database(
    database: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = database
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "audits": {"read_order": ["db", "mem"], "backends": {
            "db": {"type": "sql", "url": url, "table_prefix": prefix},
            "mem": {"type": "memory"}}},
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "blobs")}}},
        "journal": str(tmp_path / "journal.db"),
    }), encoding="utf-8")  # fmt: skip
    written = _run("write", config, tmp_path / "memory.json")
    assert written.returncode == -signal.SIGKILL, written.stderr
    in_memory = json.loads((tmp_path / "memory.json").read_text(encoding="utf-8"))

    read = _run("read", config, tmp_path / "rebuilt.json")
    assert read.returncode == 0, read.stderr
    rebuilt = json.loads((tmp_path / "rebuilt.json").read_text(encoding="utf-8"))
    assert rebuilt["source"] == "db"  # memory died with the process
    for key, value in in_memory.items():
        assert key in rebuilt["result"], key
        assert rebuilt["result"][key] == value, key
    # the screenshots are the blobs, not base64 in the record: 3 saved, the missing one skipped
    assert sorted(rebuilt["shots"]) == ["0", "1", "2"]
    assert all(200_000 <= size <= 700_000 for size in rebuilt["shots"].values())
