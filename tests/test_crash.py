"""A writer process killed with SIGKILL mid-stream: nothing acknowledged is lost, no blob is
partial, and ``veritas-store repair`` converges the backends.

The writer (tests/crash_writer.py) is a real process writing audits to SQLite files and blobs
to local folders through a composite with a journal; it is killed twice: once while a write is
provably half fanned out (the mirror backend is made to hang), once at a random moment of a
stream of large blob writes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from crash_writer import audit, blob_key, payload
from faulty import FaultyPlugin

import veritas_store as vs
from veritas_store.cli import main

WRITER = Path(__file__).with_name("crash_writer.py")


def write_config(tmp_path: Path, name: str = "crash.toml", mirror: str = "faulty") -> Path:
    """The writer's config; ``mirror="sql"`` is the same stores without the fault wrapper."""
    path = tmp_path / name
    mirror_type = 'type = "faulty"\ninner = "sql"' if mirror == "faulty" else 'type = "sql"'
    path.write_text(
        f"""
journal = "journal.db"

[audits.backends.db]
type = "sql"
url = "sqlite:///db.sqlite"

[audits.backends.mirror]
{mirror_type}
url = "sqlite:///mirror.sqlite"
required = false

[blobs.backends.disk]
type = "fsspec"
url = "disk"

[blobs.backends.copy]
type = "fsspec"
url = "copy"
required = false
"""
    )
    return path


class Writer:
    """The writer process; ``acked`` holds every n it acknowledged."""

    def __init__(self, config: Path, start: int, hang_at: int | None = None) -> None:
        args = [sys.executable, str(WRITER), str(config), str(start)]
        if hang_at is not None:
            args.append(str(hang_at))
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config.parent
        )
        self.acked: list[int] = []

    def wait_for_ack(self, n: int, deadline: float = 60.0) -> None:
        end = time.monotonic() + deadline
        assert self.process.stdout is not None
        while time.monotonic() < end:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the writer exited early: {self.process.stderr.read()}")
            self.acked.append(int(line.split()[1]))
            if self.acked[-1] >= n:
                return
        raise AssertionError(f"the writer did not acknowledge {n} in time")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL
        assert self.process.stdout is not None
        # acknowledgements already printed before the kill count too
        self.acked += [int(line.split()[1]) for line in self.process.stdout if line.strip()]


def journal_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(tmp_path / "journal.db")
    try:
        return db.execute("SELECT operation, key, state FROM entries ORDER BY id").fetchall()
    finally:
        db.close()


def blob_number(key: str) -> int:
    return int(key.split("/")[0][1:])


def test_a_writer_killed_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    # 1. killed while audit w0015 is written to the authoritative backend but not the mirror
    first = Writer(config, start=0, hang_at=15)
    first.wait_for_ack(14)
    for _ in range(200):  # the hang is reached once the intent for w0015 is on disk
        if ("create", "w0015", "intent") in journal_rows(tmp_path):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the writer never recorded the intent of w0015")
    first.kill()

    # 2. killed at a random moment of a stream of 64 KiB - 2 MiB blob writes
    second = Writer(config, start=100)
    second.wait_for_ack(108)
    time.sleep(random.uniform(0.0, 0.2))
    second.kill()
    acked = first.acked + second.acked
    assert set(range(15)) <= set(acked)

    with vs.open_stores(config, plugins=[FaultyPlugin()]) as stores:
        # every acknowledged write is readable, from the composite and the authoritative backend
        for n in acked:
            assert stores.audits.get(f"w{n:04d}") == audit(n)
            assert stores.audits.backends["db"].get(f"w{n:04d}") == audit(n)
            assert stores.blobs.get(blob_key(n)) == payload(n)
        # no blob is partial, in any backend: whatever is listed is whole
        for name, store in stores.blobs.backends.items():
            for key in store.list():
                assert store.get(key) == payload(blob_number(key)), (name, key)
        entries = stores.journal.stats().entries
    assert ("create", "w0015", "intent") in journal_rows(tmp_path)  # what repair completes
    assert entries >= 1

    plain = write_config(tmp_path, "plain.toml", mirror="sql")  # the CLI has no faulty plugin
    result = subprocess.run(
        [sys.executable, "-m", "veritas_store.cli", "repair", "--config", str(plain), "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["entries"] == entries and report["remaining"] == 0
    assert journal_rows(tmp_path) == []
    verified = CliRunner().invoke(
        main, ["verify", "--config", str(plain), "--json"]
    )  # operator's check
    assert verified.exit_code == 0 and json.loads(verified.output)["clean"], verified.output

    with vs.open_stores(config, plugins=[FaultyPlugin()]) as stores:
        db, mirror = stores.audits.backends["db"], stores.audits.backends["mirror"].inner
        assert mirror.get("w0015") == db.get("w0015") == audit(15)
        assert db.list(limit=1000) == mirror.list(limit=1000)
        disk, copy = stores.blobs.backends["disk"], stores.blobs.backends["copy"]
        keys = list(disk.list())
        assert keys == list(copy.list())
        for key in keys:
            assert disk.get(key) == copy.get(key) == payload(blob_number(key))
