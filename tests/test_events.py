"""The event log through the composite: numbered once by the authoritative backend, the same
``seq`` on every backend, carried by repair, deleted with the audit; a late reader replays it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import veritas_store as vs
from veritas_store.demo import make_png


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[vs.Stores]:
    cfg = {
        "audits": {"read_order": ["db", "mem"], "backends": {
            "db": {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"},
            "mem": {"type": "memory", "required": False}}},
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "blobs")}}},
        "journal": str(tmp_path / "journal.db"),
    }  # fmt: skip
    with vs.open_stores(cfg) as s:
        yield s


def test_every_backend_holds_the_same_numbered_events(stores: vs.Stores) -> None:
    recorder = vs.AuditRecorder(stores)
    recorder.started("e1", "https://x.example")
    png = make_png(3, 3, (1, 2, 3))
    events = [
        {"type": "phase_start", "phase": "crawl"},
        {"type": "screenshot", "index": 0, "label": "home", "data": png},
        {"type": "screenshot", "index": 1, "label": "gone", "data": None},
        {"type": "finding", "finding": {"id": "f1", "category": "urgency"}},
    ]
    for event in events:
        recorder.event("e1", event)
    log = stores.audits.events("e1")
    assert [(e.seq, e.type) for e in log] == [
        (1, "phase_start"), (2, "screenshot"), (3, "screenshot"), (4, "finding")
    ]  # fmt: skip
    assert log[1].data == {"index": 0, "label": "home", "data": None, "blob_key": "e1/0000.png"}
    assert log[2].data["blob_key"] is None
    for name in ("db", "mem"):
        assert stores.audits.member(name).store.events("e1") == log
    assert stores.audits.delete("e1")
    for name in ("db", "mem"):
        with pytest.raises(vs.AuditNotFound):
            stores.audits.member(name).store.events("e1")


def test_repair_carries_the_events_a_follower_missed(stores: vs.Stores) -> None:
    stores.audits.create(vs.Audit(id="e2", url="u"))
    stores.audits.append_events("e2", [vs.AuditEvent("a")])
    db = stores.audits.member("db").store
    db.append_events("e2", [vs.AuditEvent("b"), vs.AuditEvent("c")])  # mem never saw these
    assert len(stores.audits.member("mem").store.events("e2")) == 1
    stores.audits.sync_item("e2", "db", ["mem"])
    assert stores.audits.member("mem").store.events("e2") == db.events("e2")
    assert [e.seq for e in db.events("e2")] == [1, 2, 3]


def test_events_read_in_read_order_skip_a_backend_without_the_audit(stores: vs.Stores) -> None:
    mem = stores.audits.member("mem").store
    mem.create(vs.Audit(id="e3", url="u"))  # only in memory (as during a migration)
    mem.append_events("e3", [vs.AuditEvent("only-here")])
    assert [e.type for e in stores.audits.events("e3")] == ["only-here"]
    with pytest.raises(vs.AuditNotFound):
        stores.audits.events("e-none")


def test_the_async_api_has_events_and_filters(tmp_path: Path) -> None:
    import asyncio

    from veritas_store.aio import AsyncAuditRecorder, open_async_stores

    async def main() -> None:
        cfg = {
            "audits": {"backends": {"db": {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"}}},
            "blobs": {"backends": {"m": {"type": "memory"}}},
            "journal": str(tmp_path / "journal.db"),
        }
        stores = await open_async_stores(cfg)
        try:
            recorder = AsyncAuditRecorder(stores)
            await recorder.started("as1", "https://async.example/")
            await recorder.event("as1", {"type": "log_entry", "message": "hi"})
            await stores.audits.append_events("as1", [vs.AuditEvent("x")])
            log = await stores.audits.events("as1", after=1)
            assert [(e.seq, e.type) for e in log] == [(2, "x")]
            page = await stores.audits.list(url="https://async.example/", order="oldest")
            assert [a.id for a in page.items] == ["as1"]
            assert (await stores.audits.list(risk_level="high")).items == ()
        finally:
            await stores.aclose()

    asyncio.run(main())
