"""Per-backend resilience: ``timeout``, ``retries`` for transient errors only, and a PostgreSQL
server that restarts under a running application.

The restart tests use a private PostgreSQL cluster (conftest ``private_pg``) that the tests stop
and start; the shared server is never touched.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from faulty import FaultyPlugin, FaultyStore
from observers import Recorder

import veritas_store as vs
from veritas_store.composite.resilience import is_transient
from veritas_store.ops import repair
from veritas_store.testing import sample_audit
from veritas_store.wiring.config import load_config


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERITAS_STORE_CONFIG", raising=False)


def two_audit_backends(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {
        "audits": {"backends": {"first": first, "second": second}},
        "blobs": {"backends": {"b": {"type": "memory"}}},
    }


def open_with(cfg: dict[str, Any], *plugins: object) -> vs.Stores:
    return vs.open_stores(cfg, plugins=[FaultyPlugin(), *plugins])


def faulty(**extra: Any) -> dict[str, Any]:
    return {"type": "faulty", "inner": "memory", "backoff": 0, **extra}


# -- what is transient ---------------------------------------------------------------------------


def _sa_error(cls: type[sa.exc.DBAPIError], orig: Exception) -> sa.exc.DBAPIError:
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset by peer"),
        ConnectionRefusedError("refused"),
        TimeoutError("slow"),
        OSError("network is unreachable"),
        sqlite3.OperationalError("database is locked"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        _sa_error(sa.exc.OperationalError, psycopg.OperationalError("terminating connection")),
        _sa_error(sa.exc.InterfaceError, psycopg.InterfaceError("connection already closed")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_level_errors_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        vs.AuditExists("a1"),
        vs.AuditNotFound("a1"),
        vs.BlobNotFound("k"),
        vs.InvalidKey("bad"),
        ValueError("bad value"),
        TypeError("bad type"),
        FileNotFoundError("gone"),
        PermissionError("denied"),
        RuntimeError("a bug"),
        _sa_error(sa.exc.IntegrityError, psycopg.IntegrityError("duplicate key")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_answers_and_bugs_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_an_exception_or_a_store_can_say_for_itself() -> None:
    error = RuntimeError("rate limited")
    error.transient = True  # type: ignore[attr-defined]
    assert is_transient(error)

    class Store:
        def is_transient(self, exc: BaseException) -> bool | None:
            return True if "throttled" in str(exc) else None

    assert is_transient(RuntimeError("throttled"), Store())
    assert not is_transient(RuntimeError("broken"), Store())
    assert not is_transient(vs.AuditExists("a1"), Store())  # answers stay answers


def test_a_wrapped_cause_counts() -> None:
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise RuntimeError("request failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


# -- retries ----------------------------------------------------------------------------------


def test_a_transient_failure_is_retried_until_it_succeeds() -> None:
    recorder = Recorder()
    cfg = two_audit_backends(faulty(retries=2), {"type": "memory"})
    with open_with(cfg, recorder) as stores:
        first: FaultyStore = stores.audits.backends["first"]
        first.fail("create", error=ConnectionResetError("reset"), times=2)
        stores.audits.create(sample_audit("a1"))
        assert first.calls["create"] == 3
        assert first.inner.get("a1") == sample_audit("a1")
        assert recorder.calls["backend_error"] == []  # retried away: nothing to report


def test_retries_give_up_after_the_configured_number() -> None:
    cfg = two_audit_backends(faulty(retries=2), {"type": "memory"})
    with open_with(cfg) as stores:
        first: FaultyStore = stores.audits.backends["first"]
        first.fail("create", error=ConnectionResetError("reset"))
        with pytest.raises(vs.WriteError):
            stores.audits.create(sample_audit("a1"))
        assert first.calls["create"] == 3  # one call and two retries


@pytest.mark.parametrize(
    ("error", "problem"),
    [(RuntimeError("a bug"), vs.WriteError), (ValueError("bad"), vs.WriteError)],
)
def test_errors_that_are_not_transient_are_not_retried(
    error: Exception, problem: type[Exception]
) -> None:
    cfg = two_audit_backends(faulty(retries=5), {"type": "memory"})
    with open_with(cfg) as stores:
        first: FaultyStore = stores.audits.backends["first"]
        first.fail("create", error=error)
        with pytest.raises(problem):
            stores.audits.create(sample_audit("a1"))
        assert first.calls["create"] == 1


def test_a_logical_answer_is_never_retried() -> None:
    cfg = two_audit_backends(faulty(retries=5), {"type": "memory"})
    with open_with(cfg) as stores:
        stores.audits.create(sample_audit("a1"))
        first: FaultyStore = stores.audits.backends["first"]
        first.reset_counts()
        with pytest.raises(vs.AuditExists):
            stores.audits.create(sample_audit("a1"))
        assert first.calls["create"] == 1


def test_a_create_that_committed_before_its_answer_was_lost_succeeds_on_retry() -> None:
    cfg = two_audit_backends(faulty(retries=1), {"type": "memory"})
    with open_with(cfg) as stores:
        first: FaultyStore = stores.audits.backends["first"]
        first.fail("create", error=ConnectionResetError("lost answer"), times=1, after=True)
        stores.audits.create(sample_audit("a1"))  # not AuditExists: it is our own write
        assert first.calls["create"] == 2
        with pytest.raises(vs.AuditExists):  # someone else's record is still refused
            stores.audits.create(sample_audit("a1"))


# -- timeouts ---------------------------------------------------------------------------------


def test_a_hung_optional_backend_times_out_and_the_write_is_journaled(tmp_path: Path) -> None:
    recorder = Recorder()
    # a durable follower (SQLite): writes only memory backends may miss are not journaled
    follower = faulty(timeout=0.2, required=False, inner="sql", url=f"sqlite:///{tmp_path}/s.db")
    cfg = two_audit_backends({"type": "memory"}, follower)
    cfg["journal"] = str(tmp_path / "journal.db")
    with open_with(cfg, recorder) as stores:
        second: FaultyStore = stores.audits.backends["second"]
        second.hang("create")
        try:
            stores.audits.create(sample_audit("a1"))  # returns: the hung call is abandoned
            (event,) = recorder.calls["backend_error"]
            assert isinstance(event["error"], TimeoutError)
            assert "second create() did not answer within 0.2 s" in str(event["error"])
            (entry,) = stores.journal.entries()
            assert entry.missing == ("second",)
        finally:
            second.heal()  # let the abandoned call finish
        repair(stores)
        assert second.inner.get("a1") == sample_audit("a1")


def test_a_hung_authoritative_backend_times_out_and_the_read_falls_through() -> None:
    cfg = two_audit_backends(faulty(timeout=0.2), {"type": "memory"})
    with open_with(cfg) as stores:
        stores.audits.create(sample_audit("a1"))
        first: FaultyStore = stores.audits.backends["first"]
        first.hang("get")
        try:
            assert stores.audits.get_with_source("a1") == (sample_audit("a1"), "second")
        finally:
            first.heal()


def test_a_blob_listing_is_read_within_the_deadline() -> None:
    cfg = {
        "audits": {"backends": {"a": {"type": "memory"}}},
        "blobs": {"backends": {"b": {"type": "memory", "timeout": 5, "retries": 1}}},
    }
    with vs.open_stores(cfg) as stores:
        stores.blobs.put("x/1", b"1")
        stores.blobs.put("x/2", b"2")
        assert list(stores.blobs.list("x/")) == ["x/1", "x/2"]
        assert stores.blobs.backends["b"].get("x/1") == b"1"  # the real store is exposed


# -- config ------------------------------------------------------------------------------------


def test_resilience_keys_are_framework_keys_and_accept_text() -> None:
    cfg = two_audit_backends(
        {"type": "memory", "timeout": "${T:-1.5}", "retries": "3", "backoff": 0.5},
        {"type": "memory"},
    )
    with vs.open_stores(cfg) as stores:  # memory takes no options: none reached its factory
        backend = stores.config.audits.backends["first"]
        assert (backend.timeout, backend.retries, backend.backoff) == (1.5, 3, 0.5)
        assert backend.options == {}
        (member,) = [m for m in stores.audits.members if m.name == "first"]
        assert member.resilience.active


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("timeout", 0, "greater than 0"),
        ("timeout", -1, "greater than 0"),
        ("timeout", "soon", "expected a number"),
        ("retries", -1, "from 0 to 100"),
        ("retries", 1.5, "expected an integer"),
        ("retries", "many", "expected an integer"),
        ("retries", True, "expected an integer"),
        ("backoff", 100, "from 0 to 60"),
    ],
)
def test_a_bad_resilience_value_is_a_config_error_naming_the_key(
    key: str, value: Any, problem: str
) -> None:
    cfg = two_audit_backends({"type": "memory", key: value}, {"type": "memory"})
    with pytest.raises(vs.ConfigError) as caught:
        load_config(cfg)
    assert f"audits.backends.first.{key}'" in str(caught.value)
    assert problem in str(caught.value)


# -- PostgreSQL restarted under a running application ---------------------------------------------


def pg_config(url: str, prefix: str, **pg: Any) -> dict[str, Any]:
    return {
        "audits": {
            "backends": {
                "pg": {"type": "sql", "url": url, "table_prefix": prefix, **pg},
                "mem": {"type": "memory", "required": False},
            }
        },
        "blobs": {"backends": {"b": {"type": "memory"}}},
        "journal": False,
    }


def test_writes_resume_after_postgresql_restarts_without_reopening(private_pg: Any) -> None:
    with vs.open_stores(pg_config(private_pg.url, "r1_")) as stores:
        stores.audits.create(sample_audit("before"))
        private_pg.restart()  # every pooled connection is now dead
        stores.audits.create(sample_audit("after"))  # the same Stores: no reopen
        assert stores.audits.backends["pg"].get("before") == sample_audit("before")

        private_pg.stop()
        try:
            with pytest.raises(vs.WriteError):  # the required backend is down: no silent loss
                stores.audits.create(sample_audit("while-down"))
        finally:
            private_pg.start()
        stores.audits.create(sample_audit("back"))
        assert stores.audits.backends["pg"].get("back") == sample_audit("back")
        assert stores.audits.backends["pg"].get("while-down") is None


def test_a_writer_running_through_a_restart_loses_nothing(private_pg: Any) -> None:
    cfg = pg_config(private_pg.url, "r2_", retries=30, backoff=0.05, timeout=10)
    count = 120
    errors: list[BaseException] = []
    progress = threading.Semaphore(0)
    with vs.open_stores(cfg) as stores:

        def writer() -> None:
            try:
                for n in range(count):
                    stores.audits.create(sample_audit(f"w{n:04d}"))
                    progress.release()
            except BaseException as exc:
                errors.append(exc)
                progress.release()

        thread = threading.Thread(target=writer)
        thread.start()
        for _ in range(20):  # let it get going, then pull the server from under it
            progress.acquire(timeout=30)
        private_pg.restart()
        thread.join(timeout=120)
        assert not thread.is_alive() and errors == []
        pg = stores.audits.backends["pg"]
        ids = {a.id for a in pg.list(limit=1000).items}
        assert ids == {f"w{n:04d}" for n in range(count)}


def test_an_optional_postgresql_that_was_down_is_repaired_after_it_is_back(
    private_pg: Any, tmp_path: Path
) -> None:
    cfg = {
        "audits": {
            "backends": {
                "local": {"type": "sql", "url": f"sqlite:///{tmp_path}/local.db"},
                "pg": {
                    "type": "sql",
                    "url": private_pg.url,
                    "table_prefix": "r3_",
                    "required": False,
                },
            }
        },  # fmt: skip
        "blobs": {"backends": {"b": {"type": "memory"}}},
        "journal": str(tmp_path / "journal.db"),
    }
    with vs.open_stores(cfg) as stores:
        stores.audits.create(sample_audit("a0"))
        private_pg.stop()
        try:
            for n in range(1, 4):
                stores.audits.create(sample_audit(f"a{n}"))  # absorbed and journaled
            assert stores.journal.stats().entries == 3
        finally:
            private_pg.start()
        report = repair(stores)
        assert (report.items, report.failed) == (3, [])
        pg = stores.audits.backends["pg"]
        assert {a.id for a in pg.list().items} == {"a0", "a1", "a2", "a3"}
