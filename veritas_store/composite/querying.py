"""list() across plugin API versions: a store that declares ``Capability.FILTERS`` filters
natively; for a (1, 0) store, whose ``list()`` takes only ``status``, the composite reads its
status-filtered listing whole and filters and pages it with ``paginate`` — correct, but it reads
every matching audit (docs/plugins.md, capability table)."""

from __future__ import annotations

from typing import Any

from ..plugin_api.protocols import Capability
from ..records.paging import MAX_PAGE_SIZE, AuditPage, ListFilter, paginate


def list_with(
    store: Any, capabilities: frozenset[str], query: ListFilter, limit: int, cursor: str | None
) -> AuditPage:
    """``store.list(...)`` with ``query``, never passing a keyword the store does not take."""
    if Capability.FILTERS in capabilities:
        return store.list(limit=limit, cursor=cursor, **query.as_kwargs())  # type: ignore[no-any-return]
    if not query.beyond_status:
        return store.list(status=query.status, limit=limit, cursor=cursor)  # type: ignore[no-any-return]
    everything = []
    page_cursor = None
    while True:
        page = store.list(status=query.status, limit=MAX_PAGE_SIZE, cursor=page_cursor)
        everything.extend(page.items)
        page_cursor = page.next_cursor
        if page_cursor is None:
            break
    return paginate(everything, limit=limit, cursor=cursor, **query.as_kwargs())
