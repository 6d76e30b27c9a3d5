"""Pages: keyset pagination of ``list()`` (shared, so a cursor from one backend works on every
other), its validated filters, and the numbering and paging of ``events()``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from .errors import InvalidCursor
from .keys import validate_audit_id
from .model import Audit, AuditEvent
from .values import AuditStatus, to_status, to_tuple, to_utc

MAX_EVENTS_PAGE = 10_000


def number_events(
    existing_last: int, events: Iterable[AuditEvent]
) -> tuple[list[AuditEvent], list[AuditEvent]]:
    """For ``append_events``: (new events numbered after ``existing_last``, events that carry
    a ``seq`` already). A numbered event is stored as given; one already stored is skipped, so a
    follower's replay or a repair appends each event once."""
    fresh, numbered = [], []
    seq = existing_last
    for event in events:
        if not isinstance(event, AuditEvent):
            raise TypeError(f"append_events takes AuditEvent objects, got {type(event).__name__}")
        if event.seq is None:
            seq += 1
            fresh.append(attrs.evolve(event, seq=seq))
        else:
            numbered.append(event)
    if fresh and numbered:
        raise ValueError("append_events: either every event has a seq, or none has")
    return fresh, numbered


def validate_after(after: object, limit: object) -> None:
    if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
        raise ValueError(f"events(after=...) must be an int >= 0 or None, got {after!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS_PAGE:
        raise ValueError(
            f"events(limit=...) must be an int from 1 to {MAX_EVENTS_PAGE}, got {limit!r}"
        )


@attrs.frozen
class AuditPage:
    """One page of ``AuditStore.list()``: ``next_cursor`` is None on the last page."""

    items: tuple[Audit, ...] = attrs.field(converter=to_tuple)
    next_cursor: str | None = None


# --- keyset pagination, shared so a cursor from one backend works on every other ------------

MAX_PAGE_SIZE = 10_000


def validate_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be an int from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
    return limit


def validate_status(status: object) -> AuditStatus | None:
    return None if status is None else to_status(status)


def encode_cursor(audit: Audit) -> str:
    """The cursor that continues a newest-first listing after ``audit``."""
    raw = f"{audit.created_at.isoformat()}|{audit.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(created_at, id)`` of the last item of the previous page."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, audit_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
        validate_audit_id(audit_id)
        if created_at.tzinfo is None:
            raise ValueError("naive")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(f"not a cursor returned by list(): {cursor!r}") from None
    return created_at.astimezone(UTC), audit_id


def sort_key(audit: Audit) -> tuple[datetime, str]:
    return (audit.created_at, audit.id)


ORDERS = ("newest", "oldest")


def _filter_text(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"list({field.name}=...) must be a str or None, got {type(value).__name__}")


def _filter_time(value: Any, self: Any, field: attrs.Attribute[Any]) -> datetime | None:
    try:
        return to_utc(value, self, field)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"list({field.name}=...): {exc}") from None


def _order(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if value not in ORDERS:
        raise ValueError(f"list(order=...) must be 'newest' or 'oldest', got {value!r}")


_time_filter = attrs.Converter(_filter_time, takes_self=True, takes_field=True)


@attrs.frozen
class ListFilter:
    """The filters of ``AuditStore.list()``, validated. They combine (AND);
    ``created_after <= created_at < created_before``."""

    status: AuditStatus | None = attrs.field(default=None, converter=validate_status)
    risk_level: str | None = attrs.field(default=None, validator=_filter_text)
    url: str | None = attrs.field(default=None, validator=_filter_text)
    # mypy's attrs plugin does not know attrs.Converter (the converter takes self and field)
    created_after: datetime | None = attrs.field(default=None, converter=_time_filter)  # type: ignore[misc]
    created_before: datetime | None = attrs.field(default=None, converter=_time_filter)  # type: ignore[misc]
    order: str = attrs.field(default="newest", validator=_order)

    @property
    def beyond_status(self) -> bool:
        """Whether it asks more than a (1, 0) store's ``list(status=...)`` can answer."""
        return (
            self.risk_level is not None
            or self.url is not None
            or self.created_after is not None
            or self.created_before is not None
            or self.order != "newest"
        )

    def matches(self, audit: Audit) -> bool:
        return (
            (self.status is None or audit.status == self.status)
            and (self.risk_level is None or audit.risk_level == self.risk_level)
            and (self.url is None or audit.url == self.url)
            and (self.created_after is None or audit.created_at >= self.created_after)
            and (self.created_before is None or audit.created_at < self.created_before)
        )

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``list()`` that differ from their defaults."""
        defaults = ListFilter()
        return {
            a.name: getattr(self, a.name)
            for a in attrs.fields(ListFilter)
            if getattr(self, a.name) != getattr(defaults, a.name)
        }


def paginate(
    audits: Iterable[Audit],
    status: AuditStatus | str | None = None,
    limit: int = 100,
    cursor: str | None = None,
    *,
    risk_level: str | None = None,
    url: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    order: str = "newest",
) -> AuditPage:
    """Keyset pagination over any iterable of audits, with every filter of ``list()`` (for
    in-memory backends, and the composite's fallback for stores that cannot filter)."""
    query = ListFilter(status, risk_level, url, created_after, created_before, order)
    validate_limit(limit)
    after = decode_cursor(cursor) if cursor is not None else None
    newest = query.order == "newest"
    candidates = [
        a
        for a in audits
        if query.matches(a)
        and (after is None or (sort_key(a) < after if newest else sort_key(a) > after))
    ]
    candidates.sort(key=sort_key, reverse=newest)
    items = candidates[:limit]
    more = len(candidates) > limit
    return AuditPage(tuple(items), encode_cursor(items[-1]) if more else None)
