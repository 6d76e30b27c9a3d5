"""Concurrent writers, threads in separate processes, through one SQLite file or PostgreSQL.

Every process opens the same config (on a fresh database, so they also race to create the
tables), waits for a common start signal and runs several threads that create, update and
screenshot their own audits and race on a few shared ones (see ``concurrent_writer.py``).
Afterwards, read by a fresh process's stores:

- no thread met any exception (no "database is locked", no deadlock, no duplicate key);
- every audit is listed exactly once, and each own audit equals its last acknowledged write;
- each shared audit equals one whole acknowledged write (no fields mixed from two writes),
  and one that no other acknowledged write began after (the last one, as far as the writers
  could tell);
- every screenshot reads back with the sha256 its save returned.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import drop_prefixed_tables, unique_prefix
from test_sync import all_audits

import veritas_store as vs

WRITER = Path(__file__).with_name("concurrent_writer.py")
PROCESSES = 3
THREADS = 3
OWN = 15  # audits per thread (each written 3 times, plus a shared update)
SHARED = 4

sys.path.insert(0, str(WRITER.parent))
from concurrent_writer import shared_id, tagged  # noqa: E402


def run_writers(tmp_path: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    plan = {
        "config": config,
        "ready_dir": str(tmp_path / "ready"),
        "go_file": str(tmp_path / "go"),
        "threads": THREADS,
        "own": OWN,
        "shared": SHARED,
    }
    (tmp_path / "ready").mkdir()
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    names = [f"p{i}" for i in range(PROCESSES)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(WRITER), str(plan_path), name, str(tmp_path / f"{name}.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list((tmp_path / "ready").iterdir())) < PROCESSES:
            for p in processes:
                assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "writers did not open their stores"
            time.sleep(0.01)
        (tmp_path / "go").touch()
        for p in processes:
            _, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return [json.loads((tmp_path / f"{name}.json").read_text()) for name in names]


def check(config: dict[str, Any], results: list[dict[str, Any]]) -> None:
    errors = [e for r in results for e in r["errors"]]
    assert not [e for e in errors if "database is locked" in e]
    assert errors == []

    with vs.open_stores(config) as stores:
        listed = []
        cursor = None
        while True:  # small pages: keyset pagination over many equal created_at values
            page = stores.audits.list(limit=7, cursor=cursor)
            listed += [a.id for a in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(listed) == len(set(listed)), "an audit was listed twice"
        stored = all_audits(stores.audits)

        own = {k: vs.Audit.from_dict(v) for r in results for k, v in r["own"].items()}
        assert len(own) == PROCESSES * THREADS * OWN
        assert set(listed) == set(own) | {shared_id(i) for i in range(SHARED)}
        for audit_id, last in own.items():
            assert stored[audit_id] == last, audit_id

        writes = [w for r in results for w in r["writes"]]
        assert len(writes) == PROCESSES * THREADS * OWN
        for i in range(SHARED):
            final = stored[shared_id(i)]
            mine = [w for w in writes if w["id"] == shared_id(i)]
            assert mine
            (winner,) = [w for w in mine if tagged(w["id"], w["tag"], w["version"]) == final]
            later = [w["tag"] for w in mine if w["start"] > winner["end"]]
            assert later == [], f"{winner['tag']} won over later writes {later}"

        shots = {k: v for r in results for k, v in r["shots"].items()}
        assert len(shots) == PROCESSES * THREADS * ((OWN + 4) // 5)
        for audit_id, sha in shots.items():
            data = stores.screenshots.load(audit_id, 0)
            assert vs.BlobInfo.of("k", data).sha256 == sha
            assert stored[audit_id].screenshots[0].sha256 == sha


def test_concurrent_writers_on_one_sqlite_file(tmp_path: Path) -> None:
    config = {
        "audits": {"backends": {"db": {"type": "sql", "url": f"sqlite:///{tmp_path / 'a.db'}"}}},
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "blobs")}}},
    }
    check(config, run_writers(tmp_path, config))


def test_concurrent_writers_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    prefix = unique_prefix()
    config = {
        "audits": {"backends": {"db": {"type": "sql", "url": pg_url, "table_prefix": prefix}}},
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "blobs")}}},
    }
    try:
        check(config, run_writers(tmp_path, config))
    finally:
        drop_prefixed_tables(pg_url, prefix)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_threads_of_one_process_share_one_composite(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Many threads on one ``Stores`` (one engine, one pool): the in-process case."""
    prefix = unique_prefix()
    if kind == "sqlite":
        backend = {"type": "sql", "url": f"sqlite:///{tmp_path / 'a.db'}"}
    else:
        backend = {"type": "sql", "url": request.getfixturevalue("pg_url"), "table_prefix": prefix}
    config = {
        "audits": {"backends": {"db": backend}},
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "b")}}},
    }
    errors: list[BaseException] = []
    last: dict[str, vs.Audit] = {}
    try:
        with vs.open_stores(config) as stores:
            stores.audits.create(tagged("hot", "start", 0))

            def work(t: int) -> None:
                try:
                    for j in range(25):
                        record = tagged(f"t{t}-{j}", f"t{t}-{j}", j)
                        stores.audits.create(record)
                        stores.audits.update(tagged("hot", f"t{t}-hot-{j}", j))
                        record = tagged(record.id, f"t{t}-{j}-again", j + 1)
                        stores.audits.update(record)
                        last[record.id] = record
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            stored = all_audits(stores.audits)
            assert len(stored) == 8 * 25 + 1
            assert {k: stored[k] for k in last} == last
            # one whole acknowledged write, not a mix of two
            written = [tagged("hot", f"t{t}-hot-{j}", j) for t in range(8) for j in range(25)]
            assert stored["hot"] in written
    finally:
        if kind == "postgresql":
            drop_prefixed_tables(request.getfixturevalue("pg_url"), prefix)
