"""The repair journal and ``repair``: no write lost, nothing resurrected, over real backends.

Backends are SQLite files and local-disk folders; failures come from ``faulty`` backends
(tests/faulty.py) wrapping those. The journal is a real SQLite file in tmp_path.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from faulty import FaultyPlugin, FaultyStore
from observers import Recorder

import veritas_store as vs
from veritas_store.cli import main
from veritas_store.demo import make_png
from veritas_store.ops import repair
from veritas_store.testing import sample_audit


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERITAS_STORE_CONFIG", raising=False)


def make_config(
    tmp_path: Path,
    *,
    mirror_required: bool = False,
    copy_required: bool = False,
    **top: Any,
) -> dict[str, Any]:
    """Audits: SQLite ``db`` + a faulty SQLite ``mirror``; blobs: disk + a faulty disk ``copy``."""
    return {
        "audits": {
            "backends": {
                "db": {"type": "sql", "url": f"sqlite:///{tmp_path}/db.sqlite"},
                "mirror": {
                    "type": "faulty",
                    "inner": "sql",
                    "url": f"sqlite:///{tmp_path}/mirror.sqlite",
                    "required": mirror_required,
                },
            }
        },
        "blobs": {
            "backends": {
                "disk": {"type": "fsspec", "url": str(tmp_path / "disk")},
                "copy": {
                    "type": "faulty",
                    "inner": "fsspec",
                    "url": str(tmp_path / "copy"),
                    "required": copy_required,
                },
            }
        },
        "journal": str(tmp_path / "journal.db"),
        **top,
    }


def open_with(cfg: dict[str, Any], *plugins: object) -> vs.Stores:
    return vs.open_stores(cfg, plugins=[FaultyPlugin(), *plugins])


def mirror(stores: vs.Stores) -> FaultyStore:
    return stores.audits.backends["mirror"]


def copy(stores: vs.Stores) -> FaultyStore:
    return stores.blobs.backends["copy"]


def all_audits(store: Any) -> dict[str, vs.Audit]:
    found: dict[str, vs.Audit] = {}
    cursor = None
    while True:
        page = store.list(limit=500, cursor=cursor)
        found.update((a.id, a) for a in page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def all_blobs(store: Any) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list()}


def differences(stores: vs.Stores) -> list[str]:
    """What differs between each backend and the authoritative one (audits and blobs)."""
    problems = []
    for composite, read in ((stores.audits, all_audits), (stores.blobs, all_blobs)):
        backends = composite.backends
        expected = read(backends[composite.authoritative])
        for name, store in backends.items():
            got = read(getattr(store, "inner", store))
            if got != expected:
                problems.append(f"{composite.kind}/{name}: {sorted(set(got) ^ set(expected))}")
    return problems


def png(n: int) -> bytes:
    """A small real PNG, different for each ``n``."""
    return make_png(4, 4, (n % 256, 7, 9))


def journal_size(stores: vs.Stores) -> int:
    assert stores.journal is not None
    return stores.journal.stats().entries


# -- optional failures are journaled and repaired -------------------------------------------


@pytest.mark.parametrize("operation", ["create", "update", "delete"])
def test_an_optional_audit_write_that_fails_is_journaled_then_repaired(
    tmp_path: Path, operation: str
) -> None:
    recorder = Recorder()
    with open_with(make_config(tmp_path), recorder) as stores:
        audit = sample_audit("a1")
        if operation != "create":
            stores.audits.create(audit)
        mirror(stores).fail(operation, error=ConnectionError("mirror is down"))
        if operation == "create":
            stores.audits.create(audit)
        elif operation == "update":
            stores.audits.update(attrs.evolve(audit, narrative="changed"))
        else:
            assert stores.audits.delete("a1") is True

        # recorded durably before the call returned, and reported
        (entry,) = stores.journal.entries()
        assert (entry.section, entry.operation, entry.key) == ("audits", operation, "a1")
        assert entry.missing == ("mirror",) and "mirror is down" in (entry.error or "")
        (event,) = recorder.calls["journal_entry"]
        assert event["backends"] == ("mirror",) and event["operation"] == operation
        assert differences(stores) != []

        mirror(stores).heal()
        report = repair(stores)
        assert (report.items, report.repaired, report.failed) == (1, 1, [])
        assert journal_size(stores) == 0
        assert differences(stores) == []
        expected = None if operation == "delete" else stores.audits.backends["db"].get("a1")
        assert mirror(stores).inner.get("a1") == expected

        again = repair(stores)  # idempotent: nothing left, nothing changed
        assert (again.entries, again.items) == (0, 0)
        assert differences(stores) == []


@pytest.mark.parametrize("operation", ["put", "delete"])
def test_an_optional_blob_write_that_fails_is_journaled_then_repaired(
    tmp_path: Path, operation: str
) -> None:
    image = png(3)
    with open_with(make_config(tmp_path)) as stores:
        if operation == "delete":
            stores.blobs.put("a1/0000.png", image, "image/png")
        copy(stores).fail(operation, error=OSError("disk unplugged"))
        if operation == "put":
            stores.blobs.put("a1/0000.png", image, "image/png")
        else:
            assert stores.blobs.delete("a1/0000.png") is True
        (entry,) = stores.journal.entries()
        assert entry.missing == ("copy",)

        copy(stores).heal()
        assert repair(stores).items == 1
        assert differences(stores) == []
        assert copy(stores).inner.exists("a1/0000.png") is (operation == "put")
        if operation == "put":
            assert copy(stores).inner.get("a1/0000.png") == image


def test_a_delete_a_backend_missed_never_comes_back(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cfg["audits"]["read_repair"] = True
    with open_with(cfg) as stores:
        stores.audits.create(sample_audit("gone"))
        mirror(stores).fail("delete")
        assert stores.audits.delete("gone") is True
        mirror(stores).heal()
        assert mirror(stores).inner.get("gone") is not None  # the stale copy is still there

        # a read does not fall through to the stale copy, and read-repair does not copy it back
        assert stores.audits.get("gone") is None
        assert stores.audits.backends["db"].get("gone") is None

        repair(stores)
        assert mirror(stores).inner.get("gone") is None
        assert stores.audits.get("gone") is None


def test_many_failed_writes_of_one_item_are_repaired_once_with_the_latest_value(
    tmp_path: Path,
) -> None:
    with open_with(make_config(tmp_path)) as stores:
        audit = sample_audit("busy")
        stores.audits.create(audit)
        mirror(stores).fail("update")
        for n in range(20):
            stores.audits.update(attrs.evolve(audit, pages_scanned=n))
        assert journal_size(stores) == 20
        mirror(stores).heal()
        report = repair(stores)
        assert (report.entries, report.repaired, report.items) == (20, 20, 1)
        assert mirror(stores).inner.get("busy").pages_scanned == 19


def test_an_entry_that_still_fails_stays_in_the_journal_and_is_reported(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path)) as stores:
        mirror(stores).fail("create")
        stores.audits.create(sample_audit("a1"))
        stores.audits.create(sample_audit("a2"))
        mirror(stores).heal().fail("create", "update", error=ConnectionError("still down"))
        report = repair(stores)
        assert report.items == 0 and len(report.failed) == 2
        assert {f.key for f in report.failed} == {"a1", "a2"}
        assert all("still down" in f.error for f in report.failed)
        assert [e.attempts for e in stores.journal.entries()] == [1, 1]

        mirror(stores).heal()
        assert repair(stores).items == 2
        assert journal_size(stores) == 0
        assert differences(stores) == []


def test_an_optional_authoritative_backend_that_failed_is_repaired_from_the_follower(
    tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path)
    cfg["audits"]["read_order"] = ["mirror", "db"]  # the faulty one is authoritative
    with open_with(cfg) as stores:
        assert stores.audits.authoritative == "mirror"
        mirror(stores).fail("create")
        stores.audits.create(sample_audit("a1"))  # acknowledged: db has it
        mirror(stores).heal()
        repair(stores)
        # copied to the authoritative backend, not deleted from the one that had it
        assert mirror(stores).inner.get("a1") == sample_audit("a1")
        assert stores.audits.backends["db"].get("a1") == sample_audit("a1")


def test_a_write_whose_answer_was_lost_is_not_double_applied(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path)) as stores:
        mirror(stores).fail("create", after=True)  # committed, then the connection dropped
        stores.audits.create(sample_audit("a1"))
        mirror(stores).heal()
        assert repair(stores).items == 1
        assert differences(stores) == []


# -- required failures ------------------------------------------------------------------------


def test_a_required_authoritative_failure_writes_nothing_and_leaves_no_entry(
    tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path)
    cfg["audits"]["read_order"] = ["mirror", "db"]
    cfg["audits"]["backends"]["mirror"]["required"] = True
    with open_with(cfg) as stores:
        mirror(stores).fail("create", error=ConnectionError("down"))
        with pytest.raises(vs.WriteError) as caught:
            stores.audits.create(sample_audit("a1"))
        assert isinstance(caught.value.outcomes["mirror"], ConnectionError)
        assert isinstance(caught.value.outcomes["db"], vs.NotAttempted)
        assert stores.audits.backends["db"].get("a1") is None
        assert mirror(stores).inner.get("a1") is None
        # the journal may keep the intent (the leader might have committed before it failed);
        # repairing it changes nothing
        repair(stores)
        assert stores.audits.backends["db"].get("a1") is None
        assert mirror(stores).inner.get("a1") is None
        assert journal_size(stores) == 0


def test_a_required_follower_failure_raises_and_repair_completes_it(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path, mirror_required=True)) as stores:
        mirror(stores).fail("create", error=TimeoutError("slow"))
        with pytest.raises(vs.WriteError) as caught:
            stores.audits.create(sample_audit("a1"))
        # what the caller is told is exactly what happened
        assert caught.value.outcomes["db"] is None
        assert isinstance(caught.value.outcomes["mirror"], TimeoutError)
        assert stores.audits.backends["db"].get("a1") == sample_audit("a1")
        assert mirror(stores).inner.get("a1") is None
        assert [e.missing for e in stores.journal.entries()] == [("mirror",)]
        mirror(stores).heal()
        repair(stores)
        assert differences(stores) == []


def test_a_logical_refusal_leaves_no_journal_entry(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path)) as stores:
        stores.audits.create(sample_audit("a1"))
        with pytest.raises(vs.AuditExists):
            stores.audits.create(sample_audit("a1"))
        with pytest.raises(vs.AuditNotFound):
            stores.audits.update(sample_audit("nope"))
        assert journal_size(stores) == 0


def test_a_required_blob_failure_raises_and_repair_completes_it(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path, copy_required=True)) as stores:
        copy(stores).fail("put")
        with pytest.raises(vs.WriteError):
            stores.blobs.put("k/0000.png", png(1), "image/png")
        copy(stores).heal()
        repair(stores)
        assert differences(stores) == []


# -- the journal file ---------------------------------------------------------------------------


def test_successful_writes_leave_the_journal_empty(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path)) as stores:
        for n in range(5):
            stores.audits.create(sample_audit(f"a{n}"))
            stores.blobs.put(f"a{n}/0000.png", png(n))
        stores.audits.delete("a0")
        assert journal_size(stores) == 0
    assert (tmp_path / "journal.db").exists()


def test_a_journal_entry_is_on_disk_for_another_process(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path)) as stores:
        mirror(stores).fail("create")
        stores.audits.create(sample_audit("a1"))
        # read with a separate connection, as another process would
        db = sqlite3.connect(tmp_path / "journal.db")
        rows = db.execute("SELECT section, operation, key, state, missing FROM entries").fetchall()
        db.close()
        assert rows == [("audits", "create", "a1", "failed", '["mirror"]')]


def test_journal_false_turns_it_off(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path, journal=False)) as stores:
        assert stores.journal is None
        mirror(stores).fail("create")
        stores.audits.create(sample_audit("a1"))  # still absorbed, only logged
        assert repair(stores).journal is None
    assert not (tmp_path / "journal.db").exists()


def test_a_composite_of_one_backend_writes_no_journal(tmp_path: Path) -> None:
    cfg = {
        "audits": {"backends": {"db": {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"}}},
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "b")}}},
    }
    with vs.open_stores(cfg) as stores:
        assert stores.journal is None
        stores.audits.create(sample_audit("a1"))
    assert not (tmp_path / "veritas-data").exists()


def test_the_default_journal_is_under_veritas_data_next_to_the_config(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "v.toml").write_text(  # a durable follower: memory ones are not journaled
        '[audits.backends.a]\ntype = "memory"\n'
        f'[audits.backends.b]\ntype = "sql"\nurl = "sqlite:///{tmp_path}/b.db"\n'
    )
    with vs.open_stores(folder / "v.toml") as stores:
        assert stores.journal is not None
        assert stores.journal.path == folder / "veritas-data" / "journal.db"
        stores.audits.create(sample_audit("a1"))
    assert (folder / "veritas-data" / "journal.db").exists()


@pytest.mark.parametrize(
    ("value", "problem"),
    [(3, "expected a file path, or false"), ("", "expected a file path, or false")],
)
def test_a_bad_journal_value_is_a_config_error(tmp_path: Path, value: Any, problem: str) -> None:
    with pytest.raises(vs.ConfigError) as caught:
        vs.open_stores(make_config(tmp_path, journal=value), plugins=[FaultyPlugin()])
    assert "journal" in str(caught.value) and problem in str(caught.value)


# -- read-repair ---------------------------------------------------------------------------------


def test_read_repair_copies_an_item_found_lower_in_read_order(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cfg["audits"]["read_order"] = ["mirror", "db"]
    cfg["audits"]["read_repair"] = True
    cfg["blobs"]["read_order"] = ["copy", "disk"]
    cfg["blobs"]["read_repair"] = True
    with open_with(cfg) as stores:
        stores.audits.backends["db"].create(sample_audit("old"))  # only in the lower one
        stores.blobs.backends["disk"].put("old/0000.png", png(1), "image/png")
        assert mirror(stores).inner.get("old") is None

        assert stores.audits.get_with_source("old") == (sample_audit("old"), "db")
        assert mirror(stores).inner.get("old") == sample_audit("old")
        assert stores.audits.get_with_source("old")[1] == "mirror"

        assert stores.blobs.get_with_source("old/0000.png") == (png(1), "disk")
        assert copy(stores).inner.get("old/0000.png") == png(1)


def test_read_repair_is_off_unless_asked(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cfg["audits"]["read_order"] = ["mirror", "db"]
    with open_with(cfg) as stores:
        stores.audits.backends["db"].create(sample_audit("old"))
        assert stores.audits.get("old") == sample_audit("old")
        assert mirror(stores).inner.get("old") is None


def test_a_failing_read_repair_is_reported_and_the_read_still_answers(tmp_path: Path) -> None:
    recorder = Recorder()
    cfg = make_config(tmp_path)
    cfg["audits"]["read_order"] = ["mirror", "db"]
    cfg["audits"]["read_repair"] = True
    with open_with(cfg, recorder) as stores:
        stores.audits.backends["db"].create(sample_audit("old"))
        mirror(stores).fail("create")
        assert stores.audits.get("old") == sample_audit("old")
        (event,) = recorder.calls["backend_error"]
        assert (event["backend"], event["operation"]) == ("mirror", "read_repair")


# -- the CLI -------------------------------------------------------------------------------------


def write_toml(tmp_path: Path, mirror_url: str) -> Path:
    path = tmp_path / "v.toml"
    path.write_text(
        f"""
journal = "state/journal.db"

[audits.backends.db]
type = "sql"
url = "sqlite:///db.sqlite"

[audits.backends.mirror]
type = "sql"
url = "{mirror_url}"
required = false

[blobs.backends.disk]
type = "fsspec"
url = "disk"
"""
    )
    return path


def test_check_reports_the_journal_size_and_age_and_repair_empties_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "sqlite:///mirror.sqlite")
    with vs.open_stores(path, plugins=[FaultyPlugin()]) as stores:
        stores.audits.create(sample_audit("a1"))
        stores.audits.backends["mirror"].delete("a1")  # simulate a lost write...
        stores.journal.keep(  # ...that the composite journaled
            stores.journal.intent("audits", "create", "a1", ["db", "mirror"]),
            ["mirror"],
            "ConnectionError: mirror down",
        )
    time.sleep(1.1)  # an age of at least one second
    runner = CliRunner()
    result = runner.invoke(main, ["check", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["journal"]["path"] == str(tmp_path / "state" / "journal.db")
    assert report["journal"]["entries"] == 1
    assert report["journal"]["oldest_age_seconds"] >= 1
    assert any("veritas-store repair" in w for w in report["warnings"])

    text = runner.invoke(main, ["check", "--config", str(path)])
    assert "1 entries, oldest 1s old" in " ".join(text.output.split())

    result = runner.invoke(main, ["repair", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["items_repaired"] == 1
    with vs.open_stores(path) as stores:
        assert stores.audits.backends["mirror"].get("a1") == sample_audit("a1")
    report = json.loads(runner.invoke(main, ["check", "--config", str(path), "--json"]).output)
    assert report["journal"]["entries"] == 0 and report["warnings"] == []


def test_repair_exits_1_and_lists_what_it_could_not_repair(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "sqlite:///mirror.sqlite")
    with vs.open_stores(path) as stores:
        stores.audits.create(sample_audit("a1"))
        stores.journal.keep(
            stores.journal.intent("audits", "create", "a1", ["db", "gone"]),
            ["gone"],
            "ConnectionError",
        )
    runner = CliRunner()
    result = runner.invoke(main, ["repair", "--config", str(path)])
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "1 item(s) still failing" in flat and "Not repaired" in flat
    result = runner.invoke(main, ["repair", "--config", str(path), "--json"])
    data = json.loads(result.output)
    assert data["ok"] is False and data["remaining"] == 1
    assert data["failed"][0]["backends"] == ["gone"]
    assert "no audits backend named 'gone' is open" in data["failed"][0]["error"]


def test_repair_with_the_journal_off_says_so(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text('journal = false\n[audits.backends.a]\ntype = "memory"\n')
    result = CliRunner().invoke(main, ["repair", "--config", str(path)])
    assert result.exit_code == 0 and "journal is off" in result.output
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert "Repair journal: off" in result.output


# -- only writes a durable backend may miss are journaled -----------------------------------


def test_volatile_followers_are_not_journaled(tmp_path: Path) -> None:
    """SQLite authoritative, memory follower (the embedded default's shape): no journal rows."""
    cfg = {
        "audits": {
            "read_order": ["db", "memory"],
            "backends": {
                "db": {"type": "sql", "url": f"sqlite:///{tmp_path}/db.sqlite"},
                "memory": {"type": "memory"},
            },
        },
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "disk")}}},
        "journal": str(tmp_path / "journal.db"),
    }
    with vs.open_stores(cfg) as stores:
        assert vs.Capability.DURABLE in vs.capabilities_of(stores.audits.backends["db"])
        assert vs.Capability.DURABLE not in vs.capabilities_of(stores.audits.backends["memory"])
        assert stores.journal is None and stores.audits.journal is None
        stores.audits.create(sample_audit("a1"))
        stores.audits.update(attrs.evolve(sample_audit("a1"), narrative="changed"))
        stores.audits.delete("a1")
        assert stores.audits.backends["memory"].get("a1") is None
    assert not (tmp_path / "journal.db").exists()  # not even opened


def test_a_durable_follower_is_journaled_while_it_misses_a_write(tmp_path: Path) -> None:
    """SQLite + SQLite: the intent is on disk while the write is in flight, cleared after."""
    seen: list[list[tuple[str, str, str]]] = []
    with open_with(make_config(tmp_path)) as stores:
        assert stores.audits.journal is not None
        inner_create = mirror(stores).create

        def peek_then_create(audit: vs.Audit) -> None:
            db = sqlite3.connect(tmp_path / "journal.db")
            seen.append(db.execute("SELECT section, operation, key FROM entries").fetchall())
            db.close()
            inner_create(audit)

        mirror(stores).create = peek_then_create  # type: ignore[method-assign]
        stores.audits.create(sample_audit("a1"))
        assert seen == [[("audits", "create", "a1")]]
        assert journal_size(stores) == 0


def test_a_memory_authoritative_backend_with_a_durable_follower_is_journaled(
    tmp_path: Path,
) -> None:
    cfg = {
        "audits": {
            "read_order": ["memory", "db"],
            "backends": {
                "memory": {"type": "memory"},
                "db": {
                    "type": "faulty",
                    "inner": "sql",
                    "url": f"sqlite:///{tmp_path}/db.sqlite",
                    "required": False,
                },
            },
        },
        "blobs": {
            "backends": {
                "disk": {"type": "fsspec", "url": str(tmp_path / "disk")},
                "ram": {"type": "fsspec", "url": "memory://veritas-w11-test"},
            }
        },
        "journal": str(tmp_path / "journal.db"),
    }
    with open_with(cfg) as stores:
        assert stores.audits.journal is not None
        # blobs are written in parallel: the durable disk may miss a put
        assert stores.blobs.journal is not None
        stores.audits.backends["db"].fail("create")
        stores.audits.create(sample_audit("a1"))
        assert journal_size(stores) == 1
        stores.audits.backends["db"].heal()
        assert repair(stores).items == 1
        assert stores.audits.backends["db"].get("a1") == sample_audit("a1")


def test_in_memory_sqlite_and_memory_fsspec_are_not_durable(tmp_path: Path) -> None:
    cfg = {
        "audits": {"backends": {"db": {"type": "sql", "url": "sqlite://"}}},
        "blobs": {"backends": {"ram": {"type": "fsspec", "url": "memory://veritas-w11-cap"}}},
    }
    with vs.open_stores(cfg) as stores:
        assert vs.Capability.DURABLE not in vs.capabilities_of(stores.audits.backends["db"])
        assert vs.Capability.DURABLE not in vs.capabilities_of(stores.blobs.backends["ram"])
