"""list() filters through the public API: history by risk level (newest first) and a URL's
history (oldest first), with keyset pagination, on memory, SQLite, PostgreSQL, MariaDB, and on
a plugin written for plugin API 1.0 (no filters: the composite filters for it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import drop_prefixed_tables, unique_prefix

import veritas_store as vs

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SHOP = "https://shop.example/"


class Legacy10Store:
    """An audit store as a 1.0 plugin wrote it: ``list(status, limit, cursor)`` and nothing
    more, no ``capabilities``. A keyword it does not take would raise TypeError."""

    def __init__(self) -> None:
        self.audits: dict[str, vs.Audit] = {}
        self.calls: list[dict[str, Any]] = []

    def create(self, audit: vs.Audit) -> None:
        if audit.id in self.audits:
            raise vs.AuditExists(audit.id)
        self.audits[audit.id] = audit

    def get(self, audit_id: str) -> vs.Audit | None:
        return self.audits.get(vs.validate_audit_id(audit_id))

    def update(self, audit: vs.Audit) -> None:
        if audit.id not in self.audits:
            raise vs.AuditNotFound(audit.id)
        self.audits[audit.id] = audit

    def delete(self, audit_id: str) -> bool:
        return self.audits.pop(audit_id, None) is not None

    def list(self, status: Any = None, limit: int = 100, cursor: str | None = None) -> vs.AuditPage:
        self.calls.append({"status": status, "limit": limit, "cursor": cursor})
        return vs.paginate(self.audits.values(), status=status, limit=limit, cursor=cursor)

    def close(self) -> None:
        pass


class Legacy10Plugin:
    @vs.hookimpl
    def register_audit_backends(self, register: Any) -> None:
        register("legacy10", Legacy10Store, description="a plugin API 1.0 store")


@pytest.fixture(params=["memory", "sqlite", "postgresql", "mariadb", "legacy10"])
def audits(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    prefix = unique_prefix()
    url = None
    if request.param in ("memory", "legacy10"):
        backend: dict[str, Any] = {"type": request.param}
    elif request.param == "sqlite":
        backend = {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"}
    else:
        url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
        backend = {"type": "sql", "url": url, "table_prefix": prefix}
    cfg = {
        "audits": {"backends": {"only": backend}},
        "blobs": {"backends": {"m": {"type": "memory"}}},
        "journal": str(tmp_path / "journal.db"),
    }
    with vs.open_stores(cfg, plugins=[Legacy10Plugin()]) as stores:
        yield stores.audits
    if url is not None:
        drop_prefixed_tables(url, prefix)


def _history(audits: Any) -> list[vs.Audit]:
    """20 audits: two URLs, risk levels cycling, statuses mixed, some at the same instant."""
    made = []
    for i in range(20):
        audit = vs.Audit(
            id=f"a{i:02d}",
            url=SHOP if i % 2 == 0 else "https://other.example/" + "x" * 400,
            status=vs.AuditStatus.COMPLETED if i % 5 else vs.AuditStatus.ERROR,
            risk_level=("low", "high", "critical")[i % 3],
            created_at=T0 + timedelta(minutes=i // 2 * 2),  # pairs share a created_at
            trust_score=float(i),
        )
        audits.create(audit)
        made.append(audit)
    return made


def _all_pages(audits: Any, limit: int, **filters: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = audits.list(limit=limit, cursor=cursor, **filters)
        assert len(page.items) <= limit
        ids += [a.id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def _newest(audits: list[vs.Audit]) -> list[str]:
    return [a.id for a in sorted(audits, key=lambda a: (a.created_at, a.id), reverse=True)]


def test_history_filtered_by_risk_level_newest_first(audits: Any) -> None:
    made = _history(audits)
    expected = _newest([a for a in made if a.risk_level == "high"])
    assert _all_pages(audits, 2, risk_level="high") == expected
    both = _newest([a for a in made if a.risk_level == "high" and a.status == "completed"])
    assert both and _all_pages(audits, 3, risk_level="high", status="completed") == both


def test_a_urls_history_oldest_first(audits: Any) -> None:
    made = _history(audits)
    expected = [a.id for a in sorted(made, key=lambda a: (a.created_at, a.id)) if a.url == SHOP]
    assert _all_pages(audits, 3, url=SHOP, order="oldest") == expected
    # an insert between pages shifts nothing: keyset pagination
    first = audits.list(url=SHOP, order="oldest", limit=4)
    audits.create(vs.Audit(id="a-late", url=SHOP, created_at=T0 - timedelta(days=1)))
    rest = _all_pages_from(audits, first.next_cursor, url=SHOP, order="oldest")
    assert [a.id for a in first.items] + rest == expected


def _all_pages_from(audits: Any, cursor: str | None, **filters: Any) -> list[str]:
    ids: list[str] = []
    while cursor is not None:
        page = audits.list(limit=3, cursor=cursor, **filters)
        ids += [a.id for a in page.items]
        cursor = page.next_cursor
    return ids


def test_created_window_and_long_urls(audits: Any) -> None:
    made = _history(audits)
    after, before = T0 + timedelta(minutes=4), T0 + timedelta(minutes=12)
    expected = _newest([a for a in made if after <= a.created_at < before])
    assert _all_pages(audits, 4, created_after=after, created_before=before) == expected
    long_url = made[1].url
    assert _all_pages(audits, 100, url=long_url) == _newest([a for a in made if a.url == long_url])
    assert audits.list(url="https://nowhere.example/").items == ()


@pytest.mark.parametrize(
    ("filters", "error", "message"),
    [
        ({"order": "sideways"}, ValueError, "order"),
        ({"risk_level": 3}, TypeError, "risk_level"),
        ({"created_after": datetime(2026, 1, 1)}, ValueError, "created_after"),
        ({"created_before": "yesterday"}, TypeError, "created_before"),
    ],
)
def test_bad_filters_are_typed_errors(audits: Any, filters: Any, error: Any, message: str) -> None:
    with pytest.raises(error, match=message):
        audits.list(**filters)


def test_a_1_0_plugin_is_never_passed_the_new_keywords(tmp_path: Path) -> None:
    cfg = {"audits": {"backends": {"old": {"type": "legacy10"}}},
           "blobs": {"backends": {"m": {"type": "memory"}}},
           "journal": str(tmp_path / "journal.db")}  # fmt: skip
    with vs.open_stores(cfg, plugins=[Legacy10Plugin()]) as stores:
        _history(stores.audits)
        store = stores.audits.member("old").store
        stores.audits.list(risk_level="high", order="oldest", limit=2)
        assert store.calls and all(set(c) == {"status", "limit", "cursor"} for c in store.calls)
