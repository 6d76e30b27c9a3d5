"""The composite stores, built through ``open_stores`` from dict configs over real backends.

Memory, SQLite files and local-disk fsspec are the real backends; failures come from
``faulty`` backends (tests/faulty.py), which wrap a real backend and raise on chosen calls.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
from faulty import FaultyPlugin, FaultyStore

import veritas_store as vs
from veritas_store.demo import make_png
from veritas_store.testing import sample_audit

# -- config helpers ----------------------------------------------------------------------------


def memory(**extra: Any) -> dict[str, Any]:
    return {"type": "memory", **extra}


def sqlite(path: Path, **extra: Any) -> dict[str, Any]:
    return {"type": "sql", "url": f"sqlite:///{path}", **extra}


def local(path: Path, **extra: Any) -> dict[str, Any]:
    return {"type": "fsspec", "url": str(path), **extra}


def faulty(inner: str = "memory", **extra: Any) -> dict[str, Any]:
    return {"type": "faulty", "inner": inner, **extra}


def config(
    audits: dict[str, Any],
    blobs: dict[str, Any] | None = None,
    *,
    audit_order: list[str] | None = None,
    blob_order: list[str] | None = None,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "audits": {"backends": audits},
        "blobs": {"backends": blobs or {"blobmem": memory()}},
    }
    if audit_order is not None:
        cfg["audits"]["read_order"] = audit_order
    if blob_order is not None:
        cfg["blobs"]["read_order"] = blob_order
    return cfg


class Observer:
    """A plugin that records every ``backend_error`` the composite reports."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @vs.hookimpl
    def backend_error(
        self, kind: str, backend: str, operation: str, key: str | None, error: Exception
    ) -> None:
        with self._lock:
            self.events.append(
                {
                    "kind": kind,
                    "backend": backend,
                    "operation": operation,
                    "key": key,
                    "error": error,
                }
            )

    def about(self, backend: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["backend"] == backend]


class RaisingObserver:
    """An observer that breaks: the composite must not care."""

    def __init__(self) -> None:
        self.calls = 0

    @vs.hookimpl
    def backend_error(self, backend: str) -> None:
        self.calls += 1
        raise RuntimeError(f"observer broke on {backend}")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the embedded default and any relative path land in tmp_path, never in the repo
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERITAS_STORE_CONFIG", raising=False)
    monkeypatch.delenv("USE_DB_PERSISTENCE", raising=False)


@pytest.fixture
def observer() -> Observer:
    return Observer()


def open_with(cfg: dict[str, Any], *plugins: object) -> vs.Stores:
    return vs.open_stores(cfg, plugins=[FaultyPlugin(), *plugins])


def every_audit_backend(stores: vs.Stores, audit_id: str) -> dict[str, vs.Audit | None]:
    return {name: store.get(audit_id) for name, store in stores.audits.backends.items()}


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- writes fan out; reads follow read_order -----------------------------------------------------


def test_writes_reach_every_enabled_backend(tmp_path: Path) -> None:
    cfg = config(
        {
            "mem": memory(),
            "db": sqlite(tmp_path / "a.db"),
            "off": memory(enabled=False),
            "mem2": memory(required=False),
        },
        {"disk": local(tmp_path / "blobs"), "bmem": memory()},
    )
    with open_with(cfg) as stores:
        assert list(stores.audits.backends) == ["mem", "db", "mem2"]  # disabled: not opened
        audit = sample_audit("w1")
        stores.audits.create(audit)
        assert every_audit_backend(stores, "w1") == {"mem": audit, "db": audit, "mem2": audit}

        changed = attrs.evolve(
            audit, status=vs.AuditStatus.ERROR, error_message="boom", findings=()
        )
        stores.audits.update(changed)
        assert every_audit_backend(stores, "w1") == {"mem": changed, "db": changed, "mem2": changed}

        info = stores.blobs.put("w1/0000.png", b"\x89PNG-bytes", "image/png")
        assert info.size == 10
        for store in stores.blobs.backends.values():
            assert store.get("w1/0000.png") == b"\x89PNG-bytes"
        assert (tmp_path / "blobs" / "w1" / "0000.png").read_bytes() == b"\x89PNG-bytes"


def test_default_read_order_is_declaration_order(tmp_path: Path) -> None:
    cfg = config({"first": memory(), "second": sqlite(tmp_path / "a.db"), "third": memory()})
    with open_with(cfg) as stores:
        assert list(stores.audits.backends) == ["first", "second", "third"]
        assert stores.audits.authoritative == "first"
        audit = sample_audit("r1")
        stores.audits.create(audit)
        assert stores.audits.get_with_source("r1") == (audit, "first")
        # a backend that does not have it answers "not here": the next one is asked
        stores.audits.backends["first"].delete("r1")
        assert stores.audits.get_with_source("r1") == (audit, "second")
        stores.audits.backends["second"].delete("r1")
        assert stores.audits.get_with_source("r1") == (audit, "third")
        stores.audits.backends["third"].delete("r1")
        assert stores.audits.get_with_source("r1") == (None, None)
        assert stores.audits.get("r1") is None


def test_read_order_decides_which_copy_is_read(tmp_path: Path) -> None:
    cfg = config({"mem": memory(), "db": sqlite(tmp_path / "a.db")}, audit_order=["db", "mem"])
    with open_with(cfg) as stores:
        assert list(stores.audits.backends) == ["db", "mem"]
        old = sample_audit("r2", narrative="in memory only")
        new = sample_audit("r2", narrative="in the database")
        stores.audits.backends["mem"].create(old)
        assert stores.audits.get_with_source("r2") == (old, "mem")
        stores.audits.backends["db"].create(new)
        assert stores.audits.get_with_source("r2") == (new, "db")


def test_read_order_naming_some_backends_puts_the_rest_after_in_declaration_order(
    tmp_path: Path,
) -> None:
    cfg = config(
        {"a": memory(), "b": memory(), "c": sqlite(tmp_path / "c.db"), "d": memory()},
        {"x": memory(), "y": local(tmp_path / "blobs"), "z": memory()},
        audit_order=["c"],
        blob_order=["z", "x"],
    )
    with open_with(cfg) as stores:
        assert list(stores.audits.backends) == ["c", "a", "b", "d"]
        assert stores.audits.authoritative == "c"
        assert list(stores.blobs.backends) == ["z", "x", "y"]
        audit = sample_audit("r3")
        stores.audits.create(audit)
        assert stores.audits.get_with_source("r3") == (audit, "c")
        stores.audits.backends["c"].delete("r3")
        assert stores.audits.get_with_source("r3") == (audit, "a")

        stores.blobs.put("k/1", b"data")
        assert stores.blobs.get_with_source("k/1") == (b"data", "z")
        stores.blobs.backends["z"].delete("k/1")
        stores.blobs.backends["x"].delete("k/1")
        assert stores.blobs.get_with_source("k/1") == (b"data", "y")


def test_read_order_naming_a_disabled_backend_skips_it(tmp_path: Path) -> None:
    cfg = config(
        {"db": sqlite(tmp_path / "a.db", enabled=False), "mem": memory()}, audit_order=["db", "mem"]
    )
    with open_with(cfg) as stores:
        assert list(stores.audits.backends) == ["mem"]
        stores.audits.create(sample_audit("r4"))
        assert stores.audits.get_with_source("r4")[1] == "mem"
    assert not (tmp_path / "a.db").exists()


# -- optional backends failing ---------------------------------------------------------------------


def test_optional_backend_failing_a_write_is_logged_and_reported(
    tmp_path: Path, observer: Observer, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(
        {
            "db": sqlite(tmp_path / "a.db"),
            "flaky": faulty("memory", required=False, fail_on=["create", "update"]),
        },
        {
            "disk": local(tmp_path / "blobs"),
            "flakyblobs": faulty("memory", required=False, fail_on=["put"], error="OSError"),
        },
    )
    with open_with(cfg, observer) as stores, caplog.at_level(logging.WARNING):
        audit = sample_audit("opt1")
        stores.audits.create(audit)  # does not raise
        assert stores.audits.backends["db"].get("opt1") == audit
        assert stores.audits.backends["flaky"].inner.get("opt1") is None
        assert stores.audits.get("opt1") == audit

        [event] = observer.about("flaky")
        assert event["kind"] == "audits"
        assert event["operation"] == "create"
        assert event["key"] == "opt1"
        assert isinstance(event["error"], ConnectionError)
        assert "flaky" in caplog.text and "ConnectionError" in caplog.text

        stores.blobs.put("opt1/0000.png", b"abc")  # does not raise
        assert stores.blobs.backends["disk"].get("opt1/0000.png") == b"abc"
        assert not stores.blobs.backends["flakyblobs"].inner.exists("opt1/0000.png")
        [blob_event] = observer.about("flakyblobs")
        assert (blob_event["kind"], blob_event["operation"], blob_event["key"]) == (
            "blobs",
            "put",
            "opt1/0000.png",
        )
        assert isinstance(blob_event["error"], OSError)
        assert "flakyblobs" in caplog.text


def test_optional_backend_that_recovers_catches_up_on_the_next_update(tmp_path: Path) -> None:
    cfg = config(
        {
            "db": sqlite(tmp_path / "a.db"),
            "flaky": faulty("memory", required=False, fail_on=["create"], times=1),
        }
    )
    with open_with(cfg) as stores:
        audit = sample_audit("opt2")
        stores.audits.create(audit)
        flaky: FaultyStore = stores.audits.backends["flaky"]
        assert flaky.failures["create"] == 1
        assert flaky.inner.get("opt2") is None
        changed = attrs.evolve(audit, narrative="second version")
        stores.audits.update(changed)  # the follower lacks it: created there
        assert every_audit_backend(stores, "opt2") == {"db": changed, "flaky": changed}


def test_optional_authoritative_backend_failing_does_not_fail_the_write(
    observer: Observer,
) -> None:
    cfg = config({"lead": faulty("memory", required=False, fail_on=["create"]), "mem": memory()})
    with open_with(cfg, observer) as stores:
        audit = sample_audit("opt3")
        stores.audits.create(audit)
        assert stores.audits.backends["mem"].get("opt3") == audit
        assert stores.audits.backends["lead"].inner.get("opt3") is None
        assert [e["operation"] for e in observer.about("lead")] == ["create"]


def test_an_observer_that_raises_does_not_break_the_write(
    tmp_path: Path, observer: Observer, caplog: pytest.LogCaptureFixture
) -> None:
    raising = RaisingObserver()
    cfg = config(
        {
            "db": sqlite(tmp_path / "a.db"),
            "flaky": faulty("memory", required=False, fail_on=["create"]),
        }
    )
    with open_with(cfg, raising, observer) as stores, caplog.at_level(logging.WARNING):
        audit = sample_audit("obs1")
        stores.audits.create(audit)
        assert raising.calls == 1
        assert len(observer.about("flaky")) == 1  # the other observer still heard of it
        assert stores.audits.get_with_source("obs1") == (audit, "db")
        assert "observer broke" in caplog.text


# -- required backends failing ---------------------------------------------------------------------


def test_required_follower_failing_raises_write_error_with_every_outcome(tmp_path: Path) -> None:
    cfg = config(
        {
            "lead": sqlite(tmp_path / "a.db"),
            "broken": faulty("memory", fail_on=["create"]),
            "opt": memory(required=False),
        }
    )
    with open_with(cfg) as stores:
        with pytest.raises(vs.WriteError) as info:
            stores.audits.create(sample_audit("req1"))
        outcomes = info.value.outcomes
        assert set(outcomes) == {"lead", "broken", "opt"}
        assert outcomes["lead"] is None
        assert outcomes["opt"] is None
        assert isinstance(outcomes["broken"], ConnectionError)
        assert "broken" in str(info.value)


def test_required_authoritative_failing_writes_nowhere_else(tmp_path: Path) -> None:
    cfg = config(
        {
            "follower": faulty("memory"),  # healthy, but counts the calls it gets
            "db": sqlite(tmp_path / "a.db"),
            "lead": faulty("memory", fail_on=["create", "update", "delete"], error="OSError"),
            "opt": memory(required=False),
        },
        audit_order=["lead"],
    )
    with open_with(cfg) as stores:
        assert stores.audits.authoritative == "lead"
        with pytest.raises(vs.WriteError) as info:
            stores.audits.create(sample_audit("req2"))
        outcomes = info.value.outcomes
        assert set(outcomes) == {"lead", "follower", "db", "opt"}
        assert isinstance(outcomes["lead"], OSError)
        for name in ("follower", "db", "opt"):
            assert isinstance(outcomes[name], vs.NotAttempted), name
        follower: FaultyStore = stores.audits.backends["follower"]
        assert follower.calls["create"] == 0
        assert every_audit_backend(stores, "req2") == dict.fromkeys(outcomes)

        # the same for update and delete of an audit every backend has
        stores.audits.backends["lead"].heal()
        audit = sample_audit("req3")
        stores.audits.create(audit)
        stores.audits.backends["lead"].fail("update", "delete")
        follower.reset_counts()
        with pytest.raises(vs.WriteError):
            stores.audits.update(attrs.evolve(audit, narrative="never stored"))
        with pytest.raises(vs.WriteError):
            stores.audits.delete("req3")
        assert follower.calls["update"] == follower.calls["delete"] == 0
        assert list(every_audit_backend(stores, "req3").values()) == [audit] * 4


def test_required_blob_backend_failing_raises_write_error(tmp_path: Path) -> None:
    cfg = config(
        {"mem": memory()},
        {"disk": local(tmp_path / "blobs"), "bad": faulty("memory", fail_on=["put"])},
    )
    with open_with(cfg) as stores:
        with pytest.raises(vs.WriteError) as info:
            stores.blobs.put("b/1", b"x")
        assert info.value.outcomes["disk"] is None
        assert isinstance(info.value.outcomes["bad"], ConnectionError)


# -- create / update semantics ---------------------------------------------------------------------


def test_create_of_an_existing_id_raises_and_changes_nothing(tmp_path: Path) -> None:
    cfg = config(
        {"db": sqlite(tmp_path / "a.db"), "mem": faulty("memory"), "opt": memory(required=False)}
    )
    with open_with(cfg) as stores:
        first = sample_audit("dup")
        stores.audits.create(first)
        stores.audits.backends["mem"].reset_counts()
        with pytest.raises(vs.AuditExists):
            stores.audits.create(sample_audit("dup", url="https://other.example"))
        assert list(every_audit_backend(stores, "dup").values()) == [first] * 3
        assert stores.audits.backends["mem"].calls["create"] == 0
        assert stores.audits.backends["mem"].calls["update"] == 0


def test_create_overwrites_a_stale_copy_on_a_follower(tmp_path: Path) -> None:
    cfg = config({"db": sqlite(tmp_path / "a.db"), "mem": memory()})
    with open_with(cfg) as stores:
        stale = sample_audit("stale", narrative="left over from an old run")
        stores.audits.backends["mem"].create(stale)
        fresh = sample_audit("stale", narrative="the real one")
        stores.audits.create(fresh)
        assert every_audit_backend(stores, "stale") == {"db": fresh, "mem": fresh}


def test_update_creates_the_audit_on_a_follower_that_lost_it(tmp_path: Path) -> None:
    # memory after a restart: a new process over the same SQLite file
    cfg = config({"db": sqlite(tmp_path / "a.db"), "mem": memory()})
    audit = sample_audit("restart")
    with open_with(cfg) as stores:
        stores.audits.create(audit)
    with open_with(cfg) as stores:
        assert every_audit_backend(stores, "restart") == {"db": audit, "mem": None}
        changed = attrs.evolve(audit, status=vs.AuditStatus.RUNNING, narrative="after restart")
        stores.audits.update(changed)
        assert every_audit_backend(stores, "restart") == {"db": changed, "mem": changed}


def test_update_of_an_audit_the_authoritative_backend_lacks_is_audit_not_found(
    tmp_path: Path,
) -> None:
    cfg = config({"db": sqlite(tmp_path / "a.db"), "mem": faulty("memory")})
    with open_with(cfg) as stores:
        with pytest.raises(vs.AuditNotFound):
            stores.audits.update(sample_audit("ghost"))
        assert stores.audits.backends["mem"].calls["update"] == 0
        assert every_audit_backend(stores, "ghost") == {"db": None, "mem": None}


# -- reads -----------------------------------------------------------------------------------------


def test_a_backend_that_raises_on_read_is_skipped_and_reported(
    tmp_path: Path, observer: Observer
) -> None:
    cfg = config({"flaky": faulty("memory"), "db": sqlite(tmp_path / "a.db")})
    with open_with(cfg, observer) as stores:
        audit = sample_audit("rd1")
        stores.audits.create(audit)
        flaky: FaultyStore = stores.audits.backends["flaky"]

        # "not found" on the first backend: silently asks the next one
        flaky.inner.delete("rd1")
        assert stores.audits.get_with_source("rd1") == (audit, "db")
        assert observer.events == []

        # raising: skipped too, but reported
        flaky.inner.create(audit)
        flaky.fail("get")
        assert stores.audits.get_with_source("rd1") == (audit, "db")
        [event] = observer.events
        assert (event["backend"], event["operation"], event["key"]) == ("flaky", "get", "rd1")
        assert isinstance(event["error"], ConnectionError)

        # one raised, the other answered "not here": not found, not unavailable
        assert stores.audits.get("nowhere") is None
        assert len(observer.events) == 2


def test_every_backend_raising_on_read_is_backend_unavailable() -> None:
    cfg = config(
        {
            "a": faulty("memory", fail_on=["get", "list"]),
            "b": faulty("memory", fail_on=["get", "list"], error="TimeoutError"),
        },
        {
            "x": faulty("memory", fail_on=["get", "exists", "list", "url"]),
            "y": faulty("memory", fail_on=["get", "exists", "list", "url"]),
        },
    )
    with open_with(cfg) as stores:
        with pytest.raises(vs.BackendUnavailable) as info:
            stores.audits.get("rd2")
        assert set(info.value.errors) == {"a", "b"}
        assert isinstance(info.value.errors["b"], TimeoutError)
        with pytest.raises(vs.BackendUnavailable):
            stores.audits.get_with_source("rd2")
        with pytest.raises(vs.BackendUnavailable):
            stores.audits.list()
        with pytest.raises(vs.BackendUnavailable) as binfo:
            stores.blobs.get("rd2/0000.png")
        assert set(binfo.value.errors) == {"x", "y"}
        with pytest.raises(vs.BackendUnavailable):
            stores.blobs.exists("rd2/0000.png")
        with pytest.raises(vs.BackendUnavailable):
            list(stores.blobs.list())


def test_list_and_exists_ask_the_first_backend_that_answers(
    tmp_path: Path, observer: Observer
) -> None:
    cfg = config(
        {"first": faulty("memory"), "second": faulty("sql", url=f"sqlite:///{tmp_path}/a.db")},
        {"bfirst": faulty("memory"), "bsecond": faulty("fsspec", url=str(tmp_path / "blobs"))},
    )
    with open_with(cfg, observer) as stores:
        only_second = sample_audit("ls1")
        stores.audits.backends["second"].create(only_second)
        stores.blobs.backends["bsecond"].put("ls1/0000.png", b"x")

        # the first backend answers (empty): that is the answer
        assert stores.audits.list().items == ()
        assert stores.blobs.exists("ls1/0000.png") is False
        assert list(stores.blobs.list("ls1/")) == []
        assert stores.audits.backends["second"].calls["list"] == 0
        assert stores.blobs.backends["bsecond"].calls["exists"] == 0

        # the first raises: the next one answers
        stores.audits.backends["first"].fail("list")
        stores.blobs.backends["bfirst"].fail("exists", "list")
        assert stores.audits.list().items == (only_second,)
        assert stores.blobs.exists("ls1/0000.png") is True
        assert list(stores.blobs.list("ls1/")) == ["ls1/0000.png"]
        assert {(e["backend"], e["operation"]) for e in observer.events} == {
            ("first", "list"),
            ("bfirst", "exists"),
            ("bfirst", "list"),
        }


def test_delete_deletes_everywhere_and_is_true_if_any_backend_had_it(tmp_path: Path) -> None:
    cfg = config(
        {"db": sqlite(tmp_path / "a.db"), "mem": memory(), "mem2": memory(required=False)},
        {"disk": local(tmp_path / "blobs"), "bmem": memory()},
    )
    with open_with(cfg) as stores:
        stores.audits.create(sample_audit("del1"))
        assert stores.audits.delete("del1") is True
        assert list(every_audit_backend(stores, "del1").values()) == [None] * 3
        assert stores.audits.delete("del1") is False

        # only a follower has it: still deleted, still True
        stores.audits.backends["mem2"].create(sample_audit("del2"))
        assert stores.audits.delete("del2") is True
        assert list(every_audit_backend(stores, "del2").values()) == [None] * 3

        stores.blobs.put("del/1", b"x")
        assert stores.blobs.delete("del/1") is True
        assert not any(s.exists("del/1") for s in stores.blobs.backends.values())
        assert files_under(tmp_path / "blobs") == []
        assert stores.blobs.delete("del/1") is False

        stores.blobs.backends["bmem"].put("del/2", b"y")
        assert stores.blobs.delete("del/2") is True
        assert not stores.blobs.backends["bmem"].exists("del/2")


def test_blob_get_falls_through_to_a_lower_priority_backend(tmp_path: Path) -> None:
    cfg = config({"mem": memory()}, {"bmem": faulty("memory"), "disk": local(tmp_path / "blobs")})
    with open_with(cfg) as stores:
        stores.blobs.backends["disk"].put("fall/0000.png", b"on disk")
        assert stores.blobs.get_with_source("fall/0000.png") == (b"on disk", "disk")
        assert stores.blobs.get("fall/0000.png") == b"on disk"
        stores.blobs.backends["bmem"].put("fall/0000.png", b"in memory")
        assert stores.blobs.get_with_source("fall/0000.png") == (b"in memory", "bmem")
        stores.blobs.backends["bmem"].fail("get")
        assert stores.blobs.get_with_source("fall/0000.png") == (b"on disk", "disk")
        with pytest.raises(vs.BlobNotFound):
            stores.blobs.get("fall/missing.png")


def test_url_comes_from_the_first_backend_that_has_the_blob_and_can_make_urls(
    tmp_path: Path,
) -> None:
    cfg = config({"mem": memory()}, {"bmem": memory(), "disk": local(tmp_path / "blobs")})
    with open_with(cfg) as stores:
        stores.blobs.put("u/both.png", b"1")
        expected = (tmp_path / "blobs" / "u" / "both.png").as_uri()
        assert stores.blobs.url("u/both.png") == expected  # memory cannot: disk answers

        stores.blobs.backends["disk"].put("u/disk.png", b"2")
        assert stores.blobs.url("u/disk.png") == (tmp_path / "blobs" / "u" / "disk.png").as_uri()

        stores.blobs.backends["bmem"].put("u/mem.png", b"3")
        with pytest.raises(NotImplementedError):
            stores.blobs.url("u/mem.png")
        with pytest.raises(vs.BlobNotFound):
            stores.blobs.url("u/nowhere.png")


def test_url_skips_a_backend_that_raises_and_reports_it(tmp_path: Path, observer: Observer) -> None:
    cfg = config(
        {"mem": memory()},
        {"one": faulty("fsspec", url=str(tmp_path / "one")), "two": local(tmp_path / "two")},
    )
    with open_with(cfg, observer) as stores:
        stores.blobs.put("u/x.png", b"1")
        stores.blobs.backends["one"].fail("url")
        assert stores.blobs.url("u/x.png") == (tmp_path / "two" / "u" / "x.png").as_uri()
        assert [(e["backend"], e["operation"]) for e in observer.events] == [("one", "url")]


def test_url_when_every_backend_raises_is_backend_unavailable(tmp_path: Path) -> None:
    # "if every backend raised, the read raises BackendUnavailable" -- not "not found"
    cfg = config(
        {"mem": memory()},
        {
            "one": faulty("fsspec", url=str(tmp_path / "one"), fail_on=["exists", "url"]),
            "two": faulty("memory", fail_on=["exists", "url"]),
        },
    )
    with open_with(cfg) as stores:
        stores.blobs.put("u/x.png", b"1")
        with pytest.raises(vs.BackendUnavailable):
            stores.blobs.url("u/x.png")


def test_url_prefers_the_first_backend_in_read_order(tmp_path: Path) -> None:
    cfg = config(
        {"mem": memory()},
        {"one": local(tmp_path / "one"), "two": local(tmp_path / "two")},
        blob_order=["two", "one"],
    )
    with open_with(cfg) as stores:
        stores.blobs.put("u/x.png", b"1")
        assert stores.blobs.url("u/x.png") == (tmp_path / "two" / "u" / "x.png").as_uri()
        stores.blobs.backends["two"].delete("u/x.png")
        assert stores.blobs.url("u/x.png") == (tmp_path / "one" / "u" / "x.png").as_uri()


# -- the embedded default config -------------------------------------------------------------------


def test_default_config_writes_sqlite_and_memory_and_reads_sqlite_first(tmp_path: Path) -> None:
    with vs.open_stores() as stores:
        assert list(stores.audits.backends) == ["sql", "memory"]
        audits = [sample_audit(f"def{i}") for i in range(3)]
        for audit in audits:
            stores.audits.create(audit)
        for audit in audits:
            assert every_audit_backend(stores, audit.id) == {"sql": audit, "memory": audit}
            assert stores.audits.get_with_source(audit.id) == (audit, "sql")
        stores.blobs.put("def0/0000.png", b"png")
    assert (tmp_path / "veritas-data" / "audits.db").is_file()
    assert (tmp_path / "veritas-data" / "blobs" / "def0" / "0000.png").read_bytes() == b"png"


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "on", ""])
def test_default_config_keeps_sqlite_for_true_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("USE_DB_PERSISTENCE", value)
    with vs.open_stores() as stores:
        assert list(stores.audits.backends) == ["sql", "memory"]
    assert (tmp_path / "veritas-data" / "audits.db").is_file()


@pytest.mark.parametrize("value", ["false", "FALSE", "False", "0", "no", "off", "OFF"])
def test_default_config_with_persistence_off_uses_memory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("USE_DB_PERSISTENCE", value)
    with vs.open_stores() as stores:
        assert list(stores.audits.backends) == ["memory"]
        audit = sample_audit("rollback")
        stores.audits.create(audit)
        assert stores.audits.get_with_source("rollback") == (audit, "memory")
    assert not (tmp_path / "veritas-data" / "audits.db").exists()
    assert not list(tmp_path.rglob("*.db"))


# -- key validation --------------------------------------------------------------------------------

BAD_KEYS = [
    "../../etc/passwd",
    "..",
    ".",
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a//b",
    "a\\b",
    "..\\..\\x",
    "nul\x00byte",
    "",
    ".hidden",
    "trailing/",
    "x" * 129,
]


@pytest.fixture
def guarded(tmp_path: Path) -> vs.Stores:
    root = tmp_path / "deep" / "root"
    cfg = config(
        {"db": faulty("sql", url=f"sqlite:///{root / 'a.db'}"), "mem": faulty("memory")},
        {"disk": faulty("fsspec", url=str(root / "blobs")), "bmem": faulty("memory")},
    )
    stores = open_with(cfg)
    yield stores
    stores.close()


def _nothing_reached_a_backend(stores: vs.Stores, tmp_path: Path) -> None:
    for store in [*stores.audits.backends.values(), *stores.blobs.backends.values()]:
        asked = {op: n for op, n in store.calls.items() if op != "close"}
        assert asked == {}, store
    assert stores.audits.backends["db"].inner.list().items == ()
    assert stores.audits.backends["mem"].inner.list().items == ()
    assert list(stores.blobs.backends["disk"].inner.list()) == []
    assert list(stores.blobs.backends["bmem"].inner.list()) == []
    # the only files anywhere under tmp_path are the SQLite database's (-wal, -shm too)
    found = [p.relative_to(tmp_path).as_posix() for p in files_under(tmp_path)]
    assert "deep/root/a.db" in found
    assert [f for f in found if not f.startswith("deep/root/a.db")] == []


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_invalid_audit_id_through_the_composite_raises_and_writes_nothing(
    guarded: vs.Stores, tmp_path: Path, bad: str
) -> None:
    audit = sample_audit("placeholder")
    object.__setattr__(audit, "id", bad)  # a record that escaped validation
    for call in (
        lambda: guarded.audits.create(audit),
        lambda: guarded.audits.update(audit),
        lambda: guarded.audits.get(bad),
        lambda: guarded.audits.get_with_source(bad),
        lambda: guarded.audits.delete(bad),
    ):
        with pytest.raises(vs.InvalidKey):
            call()
    with pytest.raises(vs.InvalidKey):
        vs.Audit(id=bad, url="https://x.example")
    _nothing_reached_a_backend(guarded, tmp_path)


@pytest.mark.parametrize("bad", [*BAD_KEYS, "a/../b", "a/./b", "/abs", "x/" + "y" * 1030])
def test_invalid_blob_key_through_the_composite_raises_and_writes_nothing(
    guarded: vs.Stores, tmp_path: Path, bad: str
) -> None:
    for call in (
        lambda: guarded.blobs.put(bad, b"\x89PNG pwned"),
        lambda: guarded.blobs.get(bad),
        lambda: guarded.blobs.get_with_source(bad),
        lambda: guarded.blobs.exists(bad),
        lambda: guarded.blobs.delete(bad),
        lambda: guarded.blobs.url(bad),
    ):
        with pytest.raises(vs.InvalidKey):
            call()
    _nothing_reached_a_backend(guarded, tmp_path)


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_invalid_audit_id_through_screenshot_storage_raises_and_writes_nothing(
    guarded: vs.Stores, tmp_path: Path, bad: str
) -> None:
    png = make_png(2, 2, (1, 2, 3))
    with pytest.raises(vs.InvalidKey):
        guarded.screenshots.save(bad, 0, "x", png)
    with pytest.raises(vs.InvalidKey):
        guarded.screenshots.load(bad, 0)
    _nothing_reached_a_backend(guarded, tmp_path)


def test_traversal_key_cannot_reach_outside_the_blob_root(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    cfg = config({"mem": memory()}, {"disk": local(root / "blobs")})
    with open_with(cfg) as stores:
        for bad in ("../../escaped", "../escaped", "x/../../escaped"):
            with pytest.raises(vs.InvalidKey):
                stores.blobs.put(bad, b"nope")
    assert files_under(tmp_path) == []


# -- threads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backends", [2, 3], ids=["two backends", "three (pooled fan-out)"])
def test_eight_threads_hammering_a_composite_lose_nothing(tmp_path: Path, backends: int) -> None:
    audits = {"db": sqlite(tmp_path / "a.db"), "mem": memory()}
    blobs = {"disk": local(tmp_path / "blobs"), "bmem": memory()}
    if backends == 3:  # two followers: the fan-out goes through the composite's thread pool
        audits["mem2"] = memory(required=False)
        blobs["bmem2"] = memory(required=False)
    cfg = config(audits, blobs)
    threads, per_thread = 8, 15
    barrier = threading.Barrier(threads)

    def work(t: int) -> list[vs.Audit]:
        barrier.wait()
        final = []
        for i in range(per_thread):
            audit = sample_audit(f"t{t}-{i}", screenshots=())
            stores.audits.create(audit)
            stores.blobs.put(f"t{t}-{i}/0000.png", f"{t}:{i}".encode())
            done = attrs.evolve(
                audit, status=vs.AuditStatus.COMPLETED, narrative=f"thread {t} item {i}"
            )
            stores.audits.update(done)
            assert stores.audits.get(done.id) == done
            final.append(done)
        return final

    with open_with(cfg) as stores:
        with ThreadPoolExecutor(threads) as pool:
            results = [a for batch in pool.map(work, range(threads)) for a in batch]
        assert len(results) == threads * per_thread
        for name, store in stores.audits.backends.items():
            for audit in results:
                assert store.get(audit.id) == audit, (name, audit.id)
            assert len(store.list(limit=1000).items) == threads * per_thread
        expected_keys = sorted(f"{a.id}/0000.png" for a in results)
        for name, store in stores.blobs.backends.items():
            assert list(store.list()) == expected_keys, name
            for audit in results:
                t, i = audit.id[1:].split("-")
                assert store.get(f"{audit.id}/0000.png") == f"{t}:{i}".encode()
    assert len(os.listdir(tmp_path / "blobs")) == threads * per_thread


# -- capabilities: declared, never guessed -------------------------------------------------------


@pytest.mark.parametrize(
    ("blobs", "expected"),
    [
        # INLINE: every backend declares it and one write is the whole put (not two at once)
        ({"m": memory()}, {vs.Capability.LIST, vs.Capability.INLINE}),
        ({"m": memory(), "disk": local(Path("blobs"))}, {vs.Capability.LIST, vs.Capability.URLS}),
        ({"m": memory(), "mm": {"type": "fsspec", "url": "memory://caps"}}, {vs.Capability.LIST}),
        ({"none": faulty("memory", capabilities=[])}, set()),
        ({"extra": faulty("memory", capabilities=["list", "native_async", "x"])}, {"list"}),
    ],
)
def test_composite_capabilities_come_from_its_backends(
    blobs: dict[str, Any], expected: set[str]
) -> None:
    with open_with(config({"mem": memory()}, blobs)) as stores:
        assert stores.blobs.capabilities == expected
        assert vs.capabilities_of(stores.blobs) == expected
        # the memory backend's, and FILTERS: the composite filters for backends that cannot
        assert stores.audits.capabilities == {
            vs.Capability.LIST,
            vs.Capability.FILTERS,
            vs.Capability.EVENTS,
            vs.Capability.INLINE,
        }


def test_url_asks_only_backends_that_declare_urls(tmp_path: Path) -> None:
    # "quiet" could make file:// URLs, but does not declare it: it is never asked
    cfg = config(
        {"mem": memory()},
        {
            "quiet": faulty("fsspec", url=str(tmp_path / "quiet"), capabilities=["list"]),
            "disk": local(tmp_path / "disk"),
        },
    )
    with open_with(cfg) as stores:
        quiet = stores.blobs.backends["quiet"]
        stores.blobs.put("u/both.png", b"1")
        assert stores.blobs.url("u/both.png") == (tmp_path / "disk" / "u" / "both.png").as_uri()
        quiet.put("u/quiet.png", b"2")
        with pytest.raises(NotImplementedError, match="quiet"):
            stores.blobs.url("u/quiet.png")
        assert quiet.calls["url"] == 0


def test_url_with_no_backend_declaring_urls_asks_none(tmp_path: Path) -> None:
    cfg = config({"mem": memory()}, {"a": faulty("memory"), "b": faulty("memory")})
    with open_with(cfg) as stores:
        stores.blobs.put("u/x.png", b"1")
        with pytest.raises(NotImplementedError, match="none of the blob backends"):
            stores.blobs.url("u/x.png")
        for backend in stores.blobs.backends.values():
            assert (backend.calls["url"], backend.calls["exists"]) == (0, 0)
        with pytest.raises(ValueError):  # the caller's mistake is still reported first
            stores.blobs.url("u/x.png", expires=0)


def test_list_asks_only_backends_that_declare_list(tmp_path: Path) -> None:
    cfg = config(
        {"blind": faulty("memory", capabilities=[]), "mem": memory()},
        {"bblind": faulty("memory", capabilities=[]), "bmem": memory()},
    )
    with open_with(cfg) as stores:
        stores.audits.create(sample_audit("listed"))
        stores.blobs.put("k/1", b"1")
        assert [a.id for a in stores.audits.list().items] == ["listed"]
        assert list(stores.blobs.list("k/")) == ["k/1"]
        assert stores.audits.backends["blind"].calls["list"] == 0
        assert stores.blobs.backends["bblind"].calls["list"] == 0
        # the unlisted backend is still read from and written to
        assert stores.audits.get_with_source("listed")[1] == "blind"


def test_list_with_no_backend_declaring_list_is_not_implemented() -> None:
    cfg = config(
        {"blind": faulty("memory", capabilities=[])}, {"b": faulty("memory", capabilities=[])}
    )
    with open_with(cfg) as stores:
        assert stores.audits.capabilities == frozenset()
        with pytest.raises(NotImplementedError, match="none of the audits backends can list"):
            stores.audits.list()
        with pytest.raises(NotImplementedError, match="none of the blobs backends can list"):
            stores.blobs.list()


def test_a_malformed_declaration_is_a_plugin_error_and_nothing_stays_open(tmp_path: Path) -> None:
    plugin = FaultyPlugin()
    cfg = config({"ok": faulty("memory"), "bad": faulty("memory", capabilities="list")})
    with pytest.raises(vs.PluginError, match=r"'faulty'.*capabilities must be a frozenset"):
        vs.open_stores(cfg, plugins=[plugin])
    assert len(plugin.instances) == 2
    assert all(store.calls["close"] == 1 for store in plugin.instances)


def test_check_does_not_list_a_backend_that_cannot() -> None:
    from veritas_store.cli.health import _health
    from veritas_store.wiring.config import load_config
    from veritas_store.wiring.stores import registry_with

    blind = faulty("memory", capabilities=[], fail_on=["list"])  # list() would fail the check
    cfg = load_config(config({"blind": blind, "lister": faulty("memory", fail_on=["list"])}))
    registry = registry_with([FaultyPlugin()])
    assert _health(cfg, registry, "audits", "blind")["status"] == "ok"
    assert _health(cfg, registry, "audits", "lister")["status"] == "error"  # it was asked
