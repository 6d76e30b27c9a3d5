"""The audit store contract: ``list()``, its pages and cursors, and its filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import veritas_store as vs

from .support import lacks, needs, sample_audit


class AuditListingTests:
    """Part of ``AuditStoreContract``: the ``list`` and ``filters`` capabilities."""

    # -- listing and pagination

    def test_list_empty(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        page = audit_store.list()
        assert page.items == () and page.next_cursor is None

    def test_list_returns_the_stored_records(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        audit = sample_audit()
        audit_store.create(audit)
        assert audit_store.list() == vs.AuditPage((audit,), None)

    def test_list_newest_first_across_pages(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        written = []
        for i in range(23):
            # pairs share a created_at, so the id breaks the tie
            audit = vs.Audit(id=f"a{i:02d}", url="u", created_at=base + timedelta(seconds=i // 2))
            audit_store.create(audit)
            written.append(audit)
        expected = sorted(written, key=lambda a: (a.created_at, a.id), reverse=True)
        seen: list[vs.Audit] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = audit_store.list(limit=10, cursor=cursor)
            assert isinstance(page.items, tuple)
            seen.extend(page.items)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3
        assert seen == expected

    def test_full_last_page_has_no_cursor(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(6):
            audit_store.create(vs.Audit(id=f"f{i}", url="u", created_at=base + timedelta(days=i)))
        first = audit_store.list(limit=3)
        second = audit_store.list(limit=3, cursor=first.next_cursor)
        assert [a.id for a in second.items] == ["f2", "f1", "f0"]
        assert second.next_cursor is None  # no empty page after a full last one

    def test_page_by_page_with_limit_one_and_ties(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        same = datetime(2026, 3, 1, 8, 0, 0, 1, tzinfo=UTC)
        ids = ["B", "a", "b", "a.1", "A"]
        for audit_id in ids:
            audit_store.create(vs.Audit(id=audit_id, url="u", created_at=same))
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(len(ids) + 1):
            page = audit_store.list(limit=1, cursor=cursor)
            seen.extend(a.id for a in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == sorted(ids, reverse=True)  # ids compare by code point

    def test_insert_between_pages_shifts_nothing(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(6):
            audit_store.create(vs.Audit(id=f"p{i}", url="u", created_at=base + timedelta(hours=i)))
        first = audit_store.list(limit=3)
        assert [a.id for a in first.items] == ["p5", "p4", "p3"]
        audit_store.create(vs.Audit(id="newer", url="u", created_at=base + timedelta(days=1)))
        audit_store.delete("p4")  # removing an item already seen shifts nothing either
        second = audit_store.list(limit=3, cursor=first.next_cursor)
        assert [a.id for a in second.items] == ["p2", "p1", "p0"]

    def test_cursor_is_a_position_not_a_token(self, audit_store: Any) -> None:
        # cursors are shared by every backend: one from vs.encode_cursor works here
        needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(4):
            audit_store.create(vs.Audit(id=f"c{i}", url="u", created_at=base + timedelta(hours=i)))
        probe = vs.Audit(id="c9", url="u", created_at=base + timedelta(hours=2))  # not stored
        page = audit_store.list(cursor=vs.encode_cursor(probe))
        assert [a.id for a in page.items] == ["c2", "c1", "c0"]

    def test_list_filters_by_status(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        statuses = list(vs.AuditStatus) * 3
        for i, status in enumerate(statuses):
            audit_store.create(
                vs.Audit(id=f"s{i}", url="u", status=status, created_at=base + timedelta(minutes=i))
            )
        done = audit_store.list(status=vs.AuditStatus.COMPLETED, limit=2)
        assert [a.status for a in done.items] == [vs.AuditStatus.COMPLETED] * 2
        rest = audit_store.list(status="completed", limit=2, cursor=done.next_cursor)
        assert len(rest.items) == 1 and rest.next_cursor is None

    def test_list_skips_deleted_audits(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        for audit_id in ("l1", "l2", "l3"):
            audit_store.create(vs.Audit(id=audit_id, url="u"))
        audit_store.delete("l2")
        assert {a.id for a in audit_store.list().items} == {"l1", "l3"}

    def test_bad_list_arguments_raise(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.LIST)
        for limit in (0, -1, 10_001, True, 2.5, "10"):
            with pytest.raises(ValueError):
                audit_store.list(limit=limit)
        with pytest.raises(ValueError):
            audit_store.list(status="finished")
        with pytest.raises(vs.InvalidCursor):
            audit_store.list(cursor="not-a-cursor")

    def test_list_without_the_capability_raises_not_implemented(self, audit_store: Any) -> None:
        lacks(audit_store, vs.Capability.LIST)
        with pytest.raises(NotImplementedError):
            audit_store.list()

    # -- list filters (plugin API 1.1)

    def test_list_filters_combine_and_page(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.FILTERS)
        base = datetime(2026, 2, 1, tzinfo=UTC)
        for i in range(12):
            audit_store.create(
                vs.Audit(
                    id=f"f{i:02d}", url=f"https://site{i % 2}.example/",
                    risk_level=("low", "high", "critical")[i % 3],
                    status=vs.AuditStatus.COMPLETED if i % 4 else vs.AuditStatus.ERROR,
                    created_at=base + timedelta(minutes=i // 2),
                )
            )  # fmt: skip

        def pages(**filters: Any) -> list[str]:
            ids, cursor = [], None
            while True:
                page = audit_store.list(limit=2, cursor=cursor, **filters)
                ids += [a.id for a in page.items]
                if (cursor := page.next_cursor) is None:
                    return ids

        assert pages(risk_level="high") == ["f10", "f07", "f04", "f01"]
        assert pages(risk_level="high", status="completed") == ["f10", "f07", "f01"]
        assert pages(url="https://site0.example/", order="oldest") == [
            f"f{i:02d}" for i in range(0, 12, 2)
        ]
        window = {
            "created_after": base + timedelta(minutes=2),
            "created_before": base + timedelta(minutes=4),
        }
        assert pages(**window) == ["f07", "f06", "f05", "f04"]
        assert pages(order="oldest", **window) == ["f04", "f05", "f06", "f07"]
        with pytest.raises(ValueError):
            audit_store.list(order="random")
