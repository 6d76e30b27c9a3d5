"""Migration stages: what each stage reads and writes, in which order, and what it compares.

A pair ``old`` (from) -> ``new`` (to) of real backends (memory and SQLite audits, memory and
local-disk blobs) wrapped in ``faulty`` so a test can see which backend was asked, and make
one fail to show the write order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import attrs
import pytest
from faulty import FaultyPlugin, FaultyStore
from observers import Recorder

import veritas_store as vs
from veritas_store.composite.routing import STAGES
from veritas_store.testing import sample_audit


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERITAS_STORE_CONFIG", raising=False)
    monkeypatch.delenv("AUDIT_STAGE", raising=False)


def make_config(tmp_path: Path, stage: str, **migration: Any) -> dict[str, Any]:
    return {
        "audits": {
            "backends": {
                "old": {"type": "faulty", "inner": "memory"},
                "new": {"type": "faulty", "inner": "sql", "url": f"sqlite:///{tmp_path}/a.db"},
            },
            "migration": {"from": "old", "to": "new", "stage": stage, **migration},
        },
        "blobs": {
            "backends": {
                "old": {"type": "faulty", "inner": "memory"},
                "new": {"type": "faulty", "inner": "fsspec", "url": str(tmp_path / "blobs")},
            },
            "migration": {"from": "old", "to": "new", "stage": stage, **migration},
        },
        "journal": str(tmp_path / "journal.db"),
    }


def open_with(cfg: dict[str, Any], *plugins: object) -> vs.Stores:
    return vs.open_stores(cfg, plugins=[FaultyPlugin(), *plugins])


def asked(store: FaultyStore, *operations: str) -> int:
    return sum(store.calls[op] for op in operations)


# stage -> (backends written, backends read, authoritative)
TABLE = {
    "off": ({"old"}, {"old"}, "old"),
    "dualwrite": ({"old", "new"}, {"old"}, "old"),
    "shadow": ({"old", "new"}, {"old", "new"}, "old"),
    "live": ({"old", "new"}, {"old", "new"}, "new"),
    "rampdown": ({"old", "new"}, {"new"}, "new"),
    "complete": ({"new"}, {"new"}, "new"),
}


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_writes_reads_and_trusts_the_documented_sides(
    tmp_path: Path, stage: str
) -> None:
    written, read, authoritative = TABLE[stage]
    with open_with(make_config(tmp_path, stage)) as stores:
        for composite in (stores.audits, stores.blobs):
            assert composite.authoritative == authoritative
            assert composite.routing.stage == stage
        stores.audits.create(sample_audit("a1"))
        stores.blobs.put("a1/0000.bin", b"x")
        for composite in (stores.audits, stores.blobs):
            for name, store in composite.backends.items():
                writes = asked(store, "create", "put")
                assert (writes == 1) is (name in written), (composite.kind, name)
                store.reset_counts()
        assert stores.audits.get("a1") == sample_audit("a1")
        assert stores.blobs.get("a1/0000.bin") == b"x"
        for composite in (stores.audits, stores.blobs):
            for name, store in composite.backends.items():
                assert (asked(store, "get") > 0) is (name in read), (composite.kind, name)


@pytest.mark.parametrize(
    ("stage", "first", "second"),
    [("dualwrite", "old", "new"), ("shadow", "old", "new"), ("live", "new", "old"),
     ("rampdown", "new", "old")],
)  # fmt: skip
def test_writes_go_to_the_authoritative_side_first(
    tmp_path: Path, stage: str, first: str, second: str
) -> None:
    with open_with(make_config(tmp_path, stage)) as stores:
        for composite, write in (
            (stores.audits, lambda: stores.audits.create(sample_audit("a1"))),
            (stores.blobs, lambda: stores.blobs.put("a1/0000.bin", b"x")),
        ):
            composite.backends[first].fail("create", "put")
            with pytest.raises(vs.WriteError) as caught:
                write()
            # the first side failed, so the second was never tried: the order is real
            assert isinstance(caught.value.outcomes[second], vs.NotAttempted)
            assert asked(composite.backends[second], "create", "put") == 0


def test_the_stage_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(tmp_path, "${AUDIT_STAGE:-dualwrite}")
    with open_with(cfg) as stores:
        assert stores.audits.routing.stage == "dualwrite"
    monkeypatch.setenv("AUDIT_STAGE", "rampdown")
    with open_with(cfg) as stores:
        assert stores.audits.routing.stage == "rampdown"
        assert stores.audits.authoritative == "new"


def test_rolling_back_from_live_to_dualwrite_keeps_every_audit(tmp_path: Path) -> None:
    # both sides in SQLite files, so what was written survives reopening with the other stage
    cfg = make_config(tmp_path, "live")
    cfg["audits"]["backends"]["old"] = {
        "type": "faulty", "inner": "sql", "url": f"sqlite:///{tmp_path}/old.db"
    }  # fmt: skip
    with open_with(cfg) as stores:
        stores.audits.create(sample_audit("written-live"))
    cfg["audits"]["migration"]["stage"] = "dualwrite"
    with open_with(cfg) as stores:
        assert stores.audits.authoritative == "old"
        assert stores.audits.get("written-live") == sample_audit("written-live")


# -- shadow reads -------------------------------------------------------------------------------


def test_shadow_reports_a_mismatch_and_returns_the_authoritative_answer(tmp_path: Path) -> None:
    recorder = Recorder()
    with open_with(make_config(tmp_path, "shadow"), recorder) as stores:
        audit = sample_audit("a1")
        stores.audits.create(audit)
        stores.audits.backends["new"].update(attrs.evolve(audit, status="error", pages_scanned=1))
        stores.blobs.put("a1/0000.bin", b"right")
        stores.blobs.backends["new"].put("a1/0000.bin", b"wrong")

        assert stores.audits.get("a1") == audit
        assert stores.blobs.get("a1/0000.bin") == b"right"
        digest = hashlib.sha256(b"right").hexdigest()
        assert stores.blobs.get_verified("a1/0000.bin", digest) == b"right"  # screenshots' read
        audit_event, blob_event, verified_event = recorder.calls["shadow_mismatch"]
        assert verified_event == blob_event
        assert audit_event == {
            "kind": "audits",
            "key": "a1",
            "authoritative": "old",
            "compared": "new",
            "detail": "fields differ: status, pages_scanned",
        }
        assert blob_event["kind"] == "blobs" and "sha256 differs" in blob_event["detail"]


def test_shadow_reports_an_item_missing_on_the_compared_side(tmp_path: Path) -> None:
    recorder = Recorder()
    with open_with(make_config(tmp_path, "shadow"), recorder) as stores:
        stores.audits.create(sample_audit("a1"))
        stores.audits.backends["new"].delete("a1")
        assert stores.audits.get("a1") == sample_audit("a1")
        (event,) = recorder.calls["shadow_mismatch"]
        assert event["detail"] == "only in the authoritative backend"


def test_equal_sides_report_nothing(tmp_path: Path) -> None:
    recorder = Recorder()
    with open_with(make_config(tmp_path, "live"), recorder) as stores:
        stores.audits.create(sample_audit("a1"))
        stores.blobs.put("a1/0000.bin", b"x")
        for _ in range(3):
            stores.audits.get("a1")
            stores.blobs.get("a1/0000.bin")
        assert recorder.calls["shadow_mismatch"] == []
        assert stores.audits.backends["old"].calls["get"] == 3  # compared every time


def test_live_returns_the_new_side_and_compares_with_the_old(tmp_path: Path) -> None:
    recorder = Recorder()
    with open_with(make_config(tmp_path, "live"), recorder) as stores:
        audit = sample_audit("a1")
        stores.audits.create(audit)
        stores.audits.backends["old"].update(attrs.evolve(audit, narrative="stale"))
        assert stores.audits.get_with_source("a1") == (audit, "new")
        (event,) = recorder.calls["shadow_mismatch"]
        assert (event["authoritative"], event["compared"]) == ("new", "old")


def test_compare_ratio_zero_never_compares(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path, "shadow", compare_ratio=0)) as stores:
        stores.audits.create(sample_audit("a1"))
        for _ in range(5):
            stores.audits.get("a1")
        assert stores.audits.backends["new"].calls["get"] == 0


def test_compare_ratio_samples_reads(tmp_path: Path) -> None:
    with open_with(make_config(tmp_path, "shadow", compare_ratio=0.5)) as stores:
        stores.audits.create(sample_audit("a1"))
        for _ in range(400):
            stores.audits.get("a1")
        compared = stores.audits.backends["new"].calls["get"]
        assert 100 < compared < 300  # a coin per read: 200 expected, far from 0 and 400


def test_a_failing_compared_side_never_fails_the_read(tmp_path: Path) -> None:
    recorder = Recorder()
    with open_with(make_config(tmp_path, "shadow"), recorder) as stores:
        stores.audits.create(sample_audit("a1"))
        stores.audits.backends["new"].fail("get")
        assert stores.audits.get("a1") == sample_audit("a1")
        (event,) = recorder.calls["backend_error"]
        assert (event["backend"], event["operation"]) == ("new", "compare")
        assert recorder.calls["shadow_mismatch"] == []


# -- config errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"stage": "sideways"}, "audits.migration.stage", "unknown stage 'sideways'"),
        ({"from": "nope"}, "audits.migration.from", "'nope' is not a backend of [audits]"),
        ({"to": "old"}, "audits.migration.to", "name the same backend"),
        ({"compare_ratio": 2}, "audits.migration.compare_ratio", "from 0 to 1"),
        ({"compare_ratio": "often"}, "audits.migration.compare_ratio", "expected a number"),
        ({"speed": 1}, "audits.migration", "unknown key(s): speed"),
    ],
)
def test_a_bad_migration_table_is_a_config_error_naming_the_key(
    tmp_path: Path, change: dict[str, Any], key: str, problem: str
) -> None:
    cfg = make_config(tmp_path, "dualwrite")
    cfg["audits"]["migration"].update(change)
    with pytest.raises(vs.ConfigError) as caught:
        open_with(cfg)
    assert f"'{key}" in str(caught.value) and problem in str(caught.value)


def test_a_missing_stage_is_a_config_error(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, "dualwrite")
    del cfg["audits"]["migration"]["stage"]
    with pytest.raises(vs.ConfigError, match=r"audits\.migration\.stage.*required key missing"):
        open_with(cfg)


def test_a_stage_that_uses_a_disabled_backend_is_a_config_error(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, "dualwrite")
    cfg["audits"]["backends"]["new"]["enabled"] = False
    with pytest.raises(vs.ConfigError, match=r"audits\.migration\.to.*'new', but it is disabled"):
        open_with(cfg)
    cfg["audits"]["migration"]["stage"] = "off"  # off never touches 'new': fine
    with open_with(cfg) as stores:
        assert list(stores.audits.backends) == ["old"]
