"""``copy`` and ``verify`` between real backends: SQLite files, PostgreSQL, local disk, S3.

The library functions (``veritas_store.ops``) are exercised directly; the command line, the
exit codes and the interrupted 10,000-audit copy run ``veritas-store`` in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import drop_prefixed_tables, unique_prefix
from test_cli import COMMAND, base_env, run, write

import veritas_store as vs
from veritas_store import ops as sync
from veritas_store.ops.pairs import Pair, pairs_for
from veritas_store.wiring.config import load_config
from veritas_store_plugins.fsspec_blobs import FsspecBlobStore
from veritas_store_plugins.memory import MemoryAuditStore
from veritas_store_plugins.sql import SqlAuditStore

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))
BASE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dict config's relative paths, journal and copy checkpoint go to the current folder."""
    monkeypatch.chdir(tmp_path)


def make_audit(i: int, **changes: Any) -> vs.Audit:
    """A realistic audit; several share a created_at, so ids break the ties."""
    created = BASE + timedelta(seconds=i // 3)
    shot = vs.Screenshot(
        0, "home", f"audit-{i:05d}/0000.png", len(PNG), "image/png", hashlib.sha256(PNG).hexdigest()
    )
    audit = vs.Audit(
        id=f"audit-{i:05d}",
        url=f"https://shop{i}.example/",
        status=vs.AuditStatus.COMPLETED if i % 4 else vs.AuditStatus.ERROR,
        created_at=created,
        started_at=created,
        completed_at=created + timedelta(seconds=30),
        trust_score=(i % 100) / 100,
        narrative=f"narrative {i} ✓",
        signal_scores={"urgency": i % 7, "nested": {"list": [1, 2.5, None]}},
        findings=(vs.Finding("pressure", "countdown", "high", 0.9, f"timer {i}", 0),)
        if i % 2
        else (),
        screenshots=(shot,) if i % 3 == 0 else (),
    )
    return attrs.evolve(audit, **changes) if changes else audit


def fill(store: Any, n: int) -> list[vs.Audit]:
    audits = [make_audit(i) for i in range(n)]
    for audit in audits:
        store.create(audit)
    return audits


def all_audits(store: Any) -> dict[str, vs.Audit]:
    found: dict[str, vs.Audit] = {}
    cursor = None
    while True:
        page = store.list(limit=1000, cursor=cursor)
        found.update((a.id, a) for a in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def config(tmp_path: Path, audits: dict[str, Any], blobs: dict[str, Any]) -> dict[str, Any]:
    journal = str(tmp_path / "journal.db")  # not in the current folder
    return {"journal": journal, "audits": {"backends": audits}, "blobs": {"backends": blobs}}


def sqlite(path: Path, **extra: Any) -> dict[str, Any]:
    return {"type": "sql", "url": f"sqlite:///{path}", **extra}


def local(path: Path, **extra: Any) -> dict[str, Any]:
    return {"type": "fsspec", "url": str(path), **extra}


# --- naming backends ----------------------------------------------------------------------


def test_names_are_looked_up_in_both_sections(tmp_path: Path) -> None:
    cfg = load_config(
        config(
            tmp_path,
            {
                "a": sqlite(tmp_path / "a.db"),
                "b": sqlite(tmp_path / "b.db"),
                "only": {"type": "memory"},
            },
            {"a": local(tmp_path / "ba"), "b": local(tmp_path / "bb")},
        )
    )
    assert pairs_for(cfg, "a", "b") == [
        Pair("audits", "a", "b"),
        Pair("blobs", "a", "b"),
    ]
    assert pairs_for(cfg, "only", "a") == [Pair("audits", "only", "a")]
    with pytest.raises(vs.ConfigError, match="no backend named 'nope'.*declared"):
        pairs_for(cfg, "a", "nope")
    with pytest.raises(vs.ConfigError, match="both name 'a'"):
        pairs_for(cfg, "a", "a")


def test_names_in_no_common_section_are_an_error(tmp_path: Path) -> None:
    cfg = load_config(
        config(tmp_path, {"db": sqlite(tmp_path / "a.db")}, {"disk": local(tmp_path / "b")})
    )
    with pytest.raises(vs.ConfigError, match=r"'db' \(in \[audits\]\).*'disk' \(in \[blobs\]\)"):
        pairs_for(cfg, "db", "disk")


# --- verify -----------------------------------------------------------------------------------


@pytest.fixture
def two_sqlite(tmp_path: Path) -> Any:
    source = SqlAuditStore(f"sqlite:///{tmp_path / 'source.db'}")
    target = SqlAuditStore(f"sqlite:///{tmp_path / 'target.db'}")
    yield source, target
    source.close()
    target.close()


def verify_audits(source: Any, target: Any, **kwargs: Any) -> sync.VerifyReport:
    return sync.verify_audits(source, target, sync.VerifyReport("audits", "s", "t"), **kwargs)


def copy_audits(source: Any, target: Any, **kwargs: Any) -> sync.CopyReport:
    return sync.copy_audits(source, target, sync.CopyReport("audits", "s", "t"), **kwargs)


def test_verify_finds_every_injected_audit_divergence(two_sqlite: Any) -> None:
    source, target = two_sqlite
    audits = fill(source, 60)
    assert copy_audits(source, target, page_size=7).created == 60
    assert verify_audits(source, target, page_size=7).clean

    target.delete("audit-00010")  # missing in the target
    source.delete("audit-00020")  # missing in the source
    changed = attrs.evolve(audits[30], narrative="edited", trust_score=0.01)
    target.update(changed)  # two fields differ
    target.update(attrs.evolve(audits[31], findings=()))  # a child table differs
    moved = attrs.evolve(audits[40], created_at=BASE - timedelta(days=3))
    target.delete(moved.id)
    target.create(moved)  # created_at differs: sits elsewhere in the listing order

    report = verify_audits(source, target, page_size=7)
    assert not report.clean
    assert report.counts == {"missing_in_target": 1, "missing_in_source": 1, "different": 3}
    assert report.total == 5
    assert report.compared == 60
    found = {d.key: d for d in report.differences}
    assert found["audit-00010"].problem == "missing_in_target"
    assert found["audit-00020"].problem == "missing_in_source"
    assert found["audit-00030"].fields == ("trust_score", "narrative")
    assert found["audit-00031"].fields == ("findings",)
    assert found["audit-00040"].fields == ("created_at",)


def test_verify_lists_a_bounded_number_of_differences_but_counts_all(two_sqlite: Any) -> None:
    source, target = two_sqlite
    fill(source, 30)
    report = sync.verify_audits(
        source, target, sync.VerifyReport("audits", "s", "t", max_details=4)
    )
    assert report.total == report.counts["missing_in_target"] == 30
    assert len(report.differences) == 4
    assert report.to_dict()["total_differences"] == 30


def test_verify_blobs_by_existence_and_sha256(tmp_path: Path) -> None:
    source = FsspecBlobStore(str(tmp_path / "a"))
    target = FsspecBlobStore(str(tmp_path / "b"))
    for i in range(5):
        source.put(f"k/{i}.png", PNG + bytes([i]))
        target.put(f"k/{i}.png", PNG + bytes([i]))
    report = sync.verify_blobs(source, target, sync.VerifyReport("blobs", "a", "b"))
    assert report.clean and report.compared == 5
    target.delete("k/1.png")
    source.delete("k/2.png")
    (tmp_path / "b" / "k" / "3.png").write_bytes(PNG + b"bit rot")  # behind the store's back
    report = sync.verify_blobs(source, target, sync.VerifyReport("blobs", "a", "b"))
    found = {d.key: d for d in report.differences}
    assert set(found) == {"k/1.png", "k/2.png", "k/3.png"}
    assert found["k/1.png"].problem == "missing_in_target"
    assert found["k/2.png"].problem == "missing_in_source"
    assert found["k/3.png"].problem == "different"
    assert found["k/3.png"].source_sha256 == hashlib.sha256(PNG + bytes([3])).hexdigest()
    assert found["k/3.png"].target_sha256 == hashlib.sha256(PNG + b"bit rot").hexdigest()


# --- copy ---------------------------------------------------------------------------------------


def test_copy_is_idempotent_and_repairs_only_what_differs(two_sqlite: Any) -> None:
    source, target = two_sqlite
    audits = fill(source, 50)
    first = copy_audits(source, target, page_size=9)
    assert (first.scanned, first.created, first.updated, first.unchanged) == (50, 50, 0, 0)
    assert all_audits(target) == all_audits(source)

    again = copy_audits(source, target, page_size=9)
    assert (again.scanned, again.written, again.unchanged) == (50, 0, 50)

    target.delete(audits[3].id)
    target.update(attrs.evolve(audits[4], narrative="stale"))
    moved = attrs.evolve(audits[5], created_at=BASE + timedelta(days=9))  # outside its window
    target.delete(moved.id)
    target.create(moved)
    extra = make_audit(999)
    target.create(extra)
    third = copy_audits(source, target, page_size=9)
    assert (third.created, third.updated, third.unchanged) == (1, 2, 47)
    result = all_audits(target)
    assert result.pop(extra.id) == extra  # copy never deletes what only the target has
    assert result == all_audits(source)


def test_copy_leaves_newer_target_audits_alone_unless_told(two_sqlite: Any) -> None:
    source, target = two_sqlite
    audits = fill(source, 10)
    copy_audits(source, target)
    newer = attrs.evolve(
        audits[2], narrative="written later", updated_at=audits[2].updated_at + timedelta(hours=1)
    )
    target.update(newer)
    report = copy_audits(source, target)
    assert (report.kept_newer, report.kept_newer_ids, report.written) == (1, [newer.id], 0)
    assert target.get(newer.id) == newer
    forced = copy_audits(source, target, overwrite_newer=True)
    assert (forced.updated, forced.kept_newer) == (1, 0)
    assert target.get(newer.id) == audits[2]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        {"a": sqlite(tmp_path / "a.db"), "b": sqlite(tmp_path / "b.db", enabled=False)},
        {"a": local(tmp_path / "ba"), "b": local(tmp_path / "bb", enabled=False)},
    )
    with vs.open_stores(cfg) as stores:
        fill(stores.audits, 12)
        stores.blobs.put("x/1.png", PNG)
    state = tmp_path / "state.json"
    reports = sync.copy_backends(cfg, "a", "b", dry_run=True, state_path=state)
    assert [(r.kind, r.created, r.dry_run) for r in reports] == [
        ("audits", 12, True),
        ("blobs", 1, True),
    ]
    assert not state.exists()
    assert not (tmp_path / "bb").exists()
    target = SqlAuditStore(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        assert all_audits(target) == {}
    finally:
        target.close()


class SourceChangesDuringCopy(MemoryAuditStore):
    """A target that, like a live application, changes the source just before the copy's
    write of one audit lands (the target is not enabled yet, so the app does not write it)."""

    def __init__(self, source: Any, victim: str, change: Any) -> None:
        super().__init__()
        self.source, self.victim, self.change = source, victim, change

    def create(self, audit: vs.Audit) -> None:
        if audit.id == self.victim and self.change is not None:
            change, self.change = self.change, None
            change(self.source)
        super().create(audit)


def test_a_source_write_during_the_copy_is_not_undone() -> None:
    source = MemoryAuditStore()
    audits = fill(source, 20)
    later = attrs.evolve(audits[7], narrative="edited during the copy", pages_scanned=3)
    target = SourceChangesDuringCopy(source, audits[7].id, lambda s: s.update(later))
    report = copy_audits(source, target, page_size=6)
    assert target.get(later.id) == later
    assert all_audits(target) == all_audits(source)
    assert (report.created, report.unchanged) == (20, 0)


def test_a_source_delete_during_the_copy_is_not_resurrected() -> None:
    source = MemoryAuditStore()
    audits = fill(source, 20)
    target = SourceChangesDuringCopy(source, audits[7].id, lambda s: s.delete(audits[7].id))
    report = copy_audits(source, target, page_size=6)
    assert target.get(audits[7].id) is None
    assert all_audits(target) == all_audits(source)
    assert (report.created, report.vanished) == (19, 1)


class FailsAfter(MemoryAuditStore):
    """A target that dies (like a database going away) after ``n`` creates."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def create(self, audit: vs.Audit) -> None:
        if self.left == 0:
            raise ConnectionError("target went away")
        self.left -= 1
        super().create(audit)


def test_a_copy_that_failed_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    source = MemoryAuditStore()
    fill(source, 100)
    target = FailsAfter(45)
    path = tmp_path / "state.json"
    with pytest.raises(ConnectionError):
        copy_audits(source, target, page_size=10, checkpoint=sync.Checkpoint(path, "fp"))
    saved = json.loads(path.read_text())["sections"]["audits"]
    assert saved["done"] == 40 and saved["finished"] is False  # the last complete page
    target.left = 10**6
    report = copy_audits(source, target, page_size=10, checkpoint=sync.Checkpoint(path, "fp"))
    assert report.resumed_after == 40
    assert report.scanned == 60  # the first 40 were not looked at again
    assert (report.created, report.unchanged) == (55, 5)  # 5 of the broken page had landed
    assert all_audits(target) == all_audits(source)
    # a checkpoint made for other backends (other fingerprint) is ignored
    fresh = copy_audits(source, target, page_size=10, checkpoint=sync.Checkpoint(path, "other"))
    assert (fresh.resumed_after, fresh.scanned, fresh.unchanged) == (0, 100, 100)


def test_copy_backends_removes_its_checkpoint_and_the_folder_it_made(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        {"a": sqlite(tmp_path / "a.db"), "b": sqlite(tmp_path / "b.db", enabled=False)},
        {"a": local(tmp_path / "ba")},
    )
    with vs.open_stores(cfg) as stores:
        fill(stores.audits, 5)
    (report,) = sync.copy_backends(cfg, "a", "b")
    assert report.kind == "audits" and report.created == 5 and report.complete
    assert not (tmp_path / "veritas-data").exists()
    (clean,) = sync.verify_backends(cfg, "a", "b")
    assert clean.clean and clean.compared == 5


def test_copy_blobs_skips_equal_ones_and_overwrites_different_ones(tmp_path: Path) -> None:
    source = FsspecBlobStore(str(tmp_path / "a"))
    target = FsspecBlobStore(str(tmp_path / "b"))
    for i in range(250):
        source.put(f"a{i:03d}/0000.png", PNG + str(i).encode())
    report = sync.copy_blobs(source, target, sync.CopyReport("blobs", "a", "b"))
    assert (report.scanned, report.created) == (250, 250)
    target.put("a007/0000.png", b"stale")
    target.delete("a008/0000.png")
    again = sync.copy_blobs(source, target, sync.CopyReport("blobs", "a", "b"))
    assert (again.created, again.updated, again.unchanged) == (1, 1, 248)
    assert sync.verify_blobs(source, target, sync.VerifyReport("blobs", "a", "b")).clean


def test_copy_to_disabled_postgresql_backend_and_verify(tmp_path: Path, pg_url: str) -> None:
    prefix = unique_prefix()
    cfg = config(
        tmp_path,
        {
            "sqlite": sqlite(tmp_path / "a.db"),
            "pg": {"type": "sql", "url": pg_url, "table_prefix": prefix, "enabled": False},
        },
        {"local": local(tmp_path / "blobs")},
    )
    try:
        with vs.open_stores(cfg) as stores:
            audits = fill(stores.audits, 300)
            assert list(stores.audits.backends) == ["sqlite"]  # pg is not in use yet
        (copied,) = sync.copy_backends(cfg, "sqlite", "pg")
        assert (copied.created, copied.scanned) == (300, 300)
        (report,) = sync.verify_backends(cfg, "sqlite", "pg")
        assert report.clean and report.compared == 300
        pg = SqlAuditStore(pg_url, table_prefix=prefix)
        try:
            pg.update(attrs.evolve(audits[100], status="running", narrative=None))
            pg.delete(audits[200].id)
        finally:
            pg.close()
        (report,) = sync.verify_backends(cfg, "sqlite", "pg")
        assert report.counts == {"missing_in_target": 1, "missing_in_source": 0, "different": 1}
        assert {(d.key, d.fields) for d in report.differences} == {
            (audits[100].id, ("status", "narrative")),
            (audits[200].id, ()),
        }
        (again,) = sync.copy_backends(cfg, "sqlite", "pg")
        assert (again.created, again.updated, again.unchanged) == (1, 1, 298)
        assert sync.verify_backends(cfg, "sqlite", "pg")[0].clean
    finally:
        drop_prefixed_tables(pg_url, prefix)


def test_copy_local_screenshots_to_s3_keeps_content_types(tmp_path: Path, s3_server: Any) -> None:
    bucket = s3_server.make_bucket()
    s3 = {
        "type": "fsspec",
        "url": f"s3://{bucket}/shots",
        "storage_options": s3_server.storage_options(),
        "enabled": False,
    }
    cfg = config(
        tmp_path, {"db": sqlite(tmp_path / "a.db")}, {"local": local(tmp_path / "b"), "s3": s3}
    )
    jpeg = b"\xff\xd8\xff\xe0" + bytes(40)
    with vs.open_stores(cfg) as stores:
        stores.audits.create(vs.Audit(id="a1", url="https://x.example"))
        stores.screenshots.save("a1", 0, "home", PNG)
        stores.screenshots.save("a1", 1, "cart", jpeg)
        stores.blobs.put("notes/readme.txt", b"plain text")
    (report,) = sync.copy_backends(cfg, "local", "s3")
    assert (report.kind, report.created) == ("blobs", 3)
    fs = s3_server.filesystem()
    types = {
        k: fs.info(f"{bucket}/shots/{k}")["ContentType"]
        for k in ("a1/0000.png", "a1/0001.jpg", "notes/readme.txt")
    }
    assert types == {
        "a1/0000.png": "image/png",
        "a1/0001.jpg": "image/jpeg",
        "notes/readme.txt": "text/plain",
    }
    assert sync.verify_backends(cfg, "local", "s3")[0].clean


# --- the command line -------------------------------------------------------------------------


def write_config(tmp_path: Path, **sections: str) -> Path:
    return write(
        tmp_path / "veritas-store.toml",
        """
        [audits]
        read_order = ["db"]

        [audits.backends.db]
        type = "sql"
        url = "sqlite:///data/a.db"

        [audits.backends.replica]
        type = "sql"
        url = "sqlite:///data/b.db"
        enabled = false

        [audits.backends.memory]
        type = "memory"

        [blobs.backends.db]
        type = "fsspec"
        url = "data/blobs-a"

        [blobs.backends.replica]
        type = "fsspec"
        url = "data/blobs-b"
        enabled = "${REPLICA_ON:-false}"
        required = false
        """,
    )


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run(tmp_path, "--config", "veritas-store.toml", *args, env=env)


def seed(tmp_path: Path, n: int) -> list[vs.Audit]:
    with vs.open_stores(tmp_path / "veritas-store.toml") as stores:
        audits = fill(stores.audits.backends["db"], n)
        for audit in audits[:3]:
            stores.screenshots.save(audit.id, 1, "cart", PNG)
    return audits


def test_cli_verify_reports_differences_and_exits_1(tmp_path: Path) -> None:
    write_config(tmp_path)
    seed(tmp_path, 25)
    result = cli(tmp_path, "verify", "--from", "db", "--to", "replica", "--max-diffs", "3")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "audits: db ↔ replica: 25 items compared, 25 differences: 25 missing in replica" in out
    assert "blobs: db ↔ replica: 3 items compared, 3 differences: 3 missing in replica" in out
    assert "audit-00024" in out and "… and 22 more" in out

    result = cli(tmp_path, "verify", "--from", "db", "--to", "replica", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["clean"] is False
    audits, blobs = data["sections"]
    assert (audits["section"], audits["total_differences"], len(audits["differences"])) == (
        "audits",
        25,
        20,
    )
    assert blobs["differences"][0] == {
        "key": "audit-00000/0001.png",
        "problem": "missing_in_target",
        "source_sha256": hashlib.sha256(PNG).hexdigest(),
        "target_sha256": None,
    }


def test_cli_copy_then_verify_is_clean(tmp_path: Path) -> None:
    write_config(tmp_path)
    seed(tmp_path, 25)
    result = cli(tmp_path, "copy", "--from", "db", "--to", "replica")
    assert result.returncode == 0, result.stderr
    assert "Copied db → replica" in result.stdout
    assert "│ created                │ 25     │ 3     │" in result.stdout
    assert not (tmp_path / "veritas-data" / "copy-db-to-replica.json").exists()  # complete

    data = json.loads(cli(tmp_path, "copy", "--from", "db", "--to", "replica", "--json").stdout)
    assert [(s["section"], s["scanned"], s["unchanged"]) for s in data["sections"]] == [
        ("audits", 25, 25),
        ("blobs", 3, 3),
    ]
    result = cli(tmp_path, "verify", "--from", "db", "--to", "replica")
    assert result.returncode == 0, result.stdout
    assert "audits: db ↔ replica: 25 items compared, no differences" in result.stdout


def test_cli_verify_without_names_compares_enabled_backends_with_the_authoritative(
    tmp_path: Path,
) -> None:
    write_config(tmp_path)
    seed(tmp_path, 5)
    env = base_env(REPLICA_ON="true")
    result = cli(tmp_path, "verify", "--json", env=env)
    assert result.returncode == 1  # the replica blob backend is enabled but empty
    data = json.loads(result.stdout)
    assert [
        (s["section"], s["source"], s["target"], s["skipped"] is None) for s in data["sections"]
    ] == [
        ("audits", "db", "memory", False),
        ("blobs", "db", "replica", True),
    ]
    assert "memory" in data["sections"][0]["skipped"]
    assert data["sections"][1]["missing_in_target"] == 3
    assert cli(tmp_path, "copy", "--from", "db", "--to", "replica", env=env).returncode == 0
    result = cli(tmp_path, "verify", env=env)
    assert result.returncode == 0, result.stdout
    assert "blobs: db ↔ replica: 3 items compared, no differences" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["copy", "--from", "db", "--to", "nope"], "no backend named 'nope'"),
        (["verify", "--from", "nope", "--to", "db"], "no backend named 'nope'"),
        (["copy", "--from", "db", "--to", "db"], "both name 'db'"),
        (["copy", "--from", "db", "--to", "memory"], "'memory' is an in-memory backend"),
        (["verify", "--from", "db"], "both --from and --to, or neither"),
        (["copy", "--from", "db"], "Missing option '--to'"),
    ],
)
def test_cli_naming_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    write_config(tmp_path)
    result = cli(tmp_path, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["veritas-store.toml"]  # nothing opened


def test_cli_copy_to_an_unreachable_backend_exits_1_and_hides_the_password(tmp_path: Path) -> None:
    write_config(tmp_path)
    seed(tmp_path, 3)
    config = (tmp_path / "veritas-store.toml").read_text()
    (tmp_path / "veritas-store.toml").write_text(
        config.replace(
            'url = "sqlite:///data/b.db"',
            'url = "postgresql+psycopg://app:hunter2@127.0.0.1:9/none?connect_timeout=2"',
        )
    )
    result = cli(tmp_path, "copy", "--from", "db", "--to", "replica")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "copy stopped: BackendUnavailable" in result.stderr
    assert "run the same command to resume" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_cli_copy_dry_run(tmp_path: Path) -> None:
    write_config(tmp_path)
    seed(tmp_path, 4)
    result = cli(tmp_path, "copy", "--from", "db", "--to", "replica", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is True
    assert [s["created"] for s in data["sections"]] == [4, 3]
    assert not (tmp_path / "data" / "blobs-b").exists()
    assert cli(tmp_path, "verify", "--from", "db", "--to", "replica").returncode == 1


# --- the interrupted copy of 10,000 audits -----------------------------------------------------

TOTAL = 10_000


def _wait_for_progress(state: Path, at_least: int, process: subprocess.Popen, limit: float) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            done = json.loads(state.read_text())["sections"]["audits"]["done"]
        except (FileNotFoundError, ValueError, KeyError):
            done = 0
        if done >= at_least:
            return done
        time.sleep(0.02)
    raise AssertionError(f"copy did not reach {at_least} audits in {limit}s")


def test_copy_of_10000_audits_survives_ctrl_c_and_kill_9_then_verifies_clean(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "veritas-store.toml",
        """
        [audits.backends.old]
        type = "sql"
        url = "sqlite:///old.db"

        [audits.backends.new]
        type = "sql"
        url = "sqlite:///new.db"
        enabled = false

        [blobs.backends.local]
        type = "fsspec"
        url = "blobs"
        """,
    )
    source = SqlAuditStore(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        fill(source, TOTAL)  # a few seconds: one transaction per audit
    finally:
        source.close()
    state = tmp_path / "copy.json"
    copy_args = [
        *COMMAND,
        "--config",
        "veritas-store.toml",
        "copy",
        "--from",
        "old",
        "--to",
        "new",
        "--state",
        str(state),
        "--json",
    ]

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            copy_args,
            cwd=tmp_path,
            env=base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # 1. Ctrl-C (SIGINT): a clean stop that says how to resume.
    first = start()
    _wait_for_progress(state, 1_000, first, 120)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "interrupted; progress is saved in" in err and "run the same command" in err

    # 2. kill -9 in the middle of the resumed run: no chance to clean up anything.
    second = start()
    _wait_for_progress(state, 5_000, second, 120)
    second.send_signal(signal.SIGKILL)
    second.communicate(timeout=60)
    assert second.returncode == -signal.SIGKILL
    checkpoint = json.loads(state.read_text())["sections"]["audits"]
    target = SqlAuditStore(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        landed = len(all_audits(target))
    finally:
        target.close()
    assert checkpoint["done"] <= landed < TOTAL

    # 3. The last run picks up at the checkpoint and does not redo the work before it.
    third = subprocess.run(copy_args, cwd=tmp_path, env=base_env(), capture_output=True, text=True)
    assert third.returncode == 0, third.stderr
    (report,) = json.loads(third.stdout)["sections"]
    assert report["resumed_after"] == checkpoint["done"]
    assert report["scanned"] == TOTAL - checkpoint["done"]
    assert report["created"] == TOTAL - landed  # each missing audit written once
    # only audits of the page being written when the copy was killed were there already
    assert report["unchanged"] == landed - checkpoint["done"] <= sync.PAGE_SIZE
    assert report["updated"] == 0 and report["complete"] is True
    assert not state.exists()

    verify = run(
        tmp_path,
        "--config",
        "veritas-store.toml",
        "verify",
        "--from",
        "old",
        "--to",
        "new",
        "--json",
    )
    assert verify.returncode == 0, verify.stdout
    (section,) = json.loads(verify.stdout)["sections"]
    assert (section["compared"], section["total_differences"]) == (TOTAL, 0)
