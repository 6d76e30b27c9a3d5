"""The data model: frozen attrs classes, validated where they are built.

Stores never change a record, so everything a backend must preserve is decided here: datetimes
are timezone-aware and normalised to UTC, numbers are finite floats, dict fields hold only JSON
values, text holds no NUL (PostgreSQL cannot store it). Change a record with ``attrs.evolve``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .errors import InvalidCursor
from .keys import validate_audit_id, validate_blob_key

MAX_INT = 2**31 - 1  # INTEGER on every SQL dialect we support


def utcnow() -> datetime:
    return datetime.now(UTC)


class AuditStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"


# --- converters and validators (each names the field it rejects) -------------------------


def _where(instance_or_cls: object, field: attrs.Attribute[Any]) -> str:
    cls = instance_or_cls if isinstance(instance_or_cls, type) else type(instance_or_cls)
    return f"{cls.__name__}.{field.name}"


# Converters and validators run for every field of every record built, reads included: each
# starts with a fast path for the common valid value, and only the slow path builds messages.


def _to_utc(value: Any, self: Any, field: attrs.Attribute[Any]) -> datetime | None:
    if value is None:
        return None
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # already what astimezone(UTC) would return
    if not isinstance(value, datetime):
        raise TypeError(f"{_where(self, field)} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{_where(self, field)} must be timezone-aware (got naive {value.isoformat()}); "
            "use datetime.now(timezone.utc) or attach a tzinfo"
        )
    return value.astimezone(UTC)


def _to_utc_required(value: Any, self: Any, field: attrs.Attribute[Any]) -> datetime:
    if value is None:
        raise TypeError(f"{_where(self, field)} must be a datetime, not None")
    return _to_utc(value, self, field)  # type: ignore[return-value]


def _to_float(value: Any, self: Any, field: attrs.Attribute[Any]) -> float | None:
    if value is None:
        return None
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{_where(self, field)} must be a number, got {type(value).__name__} {value!r}"
        )
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{_where(self, field)} must be a finite number, got {value!r}")
    return result


def _to_float_required(value: Any, self: Any, field: attrs.Attribute[Any]) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    if value is None:
        raise TypeError(f"{_where(self, field)} must be a number, not None")
    return _to_float(value, self, field)  # type: ignore[return-value]


def _to_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str | bytes | Mapping):
        raise TypeError(f"expected a sequence, got {type(value).__name__}")
    return tuple(value)


def _to_status(value: Any) -> AuditStatus:
    if type(value) is AuditStatus:
        return value
    try:
        return AuditStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in AuditStatus)
        raise ValueError(f"status must be one of {allowed}, got {value!r}") from None


def _unstorable(value: str) -> str | None:
    """Why a string cannot be stored, or None (checked on every text field: kept cheap)."""
    # Every SQL database refuses NUL, and UTF-8 cannot encode a lone surrogate.
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():  # ASCII text holds no surrogate: skip the encoding
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (it holds a lone surrogate)"
    return None


def _storable(value: str, where: str) -> None:
    problem = _unstorable(value)
    if problem is not None:
        raise ValueError(f"{where} {problem}")


def _text(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is str and value.isascii() and "\x00" not in value:
        return  # the common case, decided without a call
    if not isinstance(value, str):
        raise TypeError(f"{_where(instance, field)} must be a str, got {type(value).__name__}")
    if _unstorable(value) is not None:  # the message (and where) only when it is needed
        _storable(value, _where(instance, field))


def _optional_text(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if value is None or (type(value) is str and value.isascii() and "\x00" not in value):
        return
    _text(instance, field, value)


def _count(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is int and 0 <= value <= MAX_INT:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_where(instance, field)} must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_INT:
        raise ValueError(f"{_where(instance, field)} must be between 0 and {MAX_INT}")


def _optional_count(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if value is None or (type(value) is int and 0 <= value <= MAX_INT):
        return
    _count(instance, field, value)


_NOT_PLAIN = object()


def _frozen_plain_json(value: Any) -> Any:
    """A frozen deep copy of ``value`` if it holds only plain, storable JSON values, else
    ``_NOT_PLAIN`` (then the full check decides and names the problem): one pass, no messages.
    """
    kind = type(value)
    if kind is str:
        plain = (value.isascii() and "\x00" not in value) or _unstorable(value) is None
        return value if plain else _NOT_PLAIN
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NOT_PLAIN
    if kind is dict or kind is FrozenDict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str or _unstorable(key) is not None:
                return _NOT_PLAIN
            frozen = _frozen_plain_json(item)
            if frozen is _NOT_PLAIN:
                return _NOT_PLAIN
            copy[key] = frozen
        return FrozenDict(copy)
    if kind is list or kind is FrozenList:
        items = []
        for item in value:
            frozen = _frozen_plain_json(item)
            if frozen is _NOT_PLAIN:
                return _NOT_PLAIN
            items.append(frozen)
        return FrozenList(items)
    return _NOT_PLAIN


def _check_json(value: Any, path: str) -> None:
    """Raise naming the first value under ``path`` that is not storable JSON."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str):
            _storable(value, path)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} must be a finite number, got {value!r}")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} keys must be str, got {key!r}")
            _storable(key, f"{path} key {key!r}")
            _check_json(item, f"{path}[{key!r}]")
        return
    raise TypeError(
        f"{path} must hold only JSON values (dict, list, str, int, float, bool, None), "
        f"got {type(value).__name__}"
    )


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses changes: records are immutable, even their JSON fields."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("audit records are immutable; change them with attrs.evolve")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))


class FrozenList(list):  # type: ignore[type-arg]
    """A list that refuses changes (inside the JSON fields of a record)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("audit records are immutable; change them with attrs.evolve")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> Any:
        return (FrozenList, (list(self),))


def freeze_json(value: Any) -> Any:
    """A deep copy of a JSON value whose dicts and lists cannot be changed.

    Copying keeps a record from sharing objects with the caller; freezing keeps a reader (the
    memory backend hands out the stored object) from changing what is stored.
    """
    if isinstance(value, dict):
        return FrozenDict((k, freeze_json(v)) for k, v in value.items())
    if isinstance(value, list):
        return FrozenList(freeze_json(v) for v in value)
    return value


def _to_json_dict(value: Any, self: Any, field: attrs.Attribute[Any]) -> dict[str, Any]:
    """A frozen copy of a JSON dict field, checked in the same pass."""
    if not isinstance(value, dict):
        raise TypeError(f"{_where(self, field)} must be a dict, got {type(value).__name__}")
    frozen = _frozen_plain_json(value)
    if frozen is _NOT_PLAIN:  # a problem, or only values the fast pass does not know (enums)
        _check_json(value, _where(self, field))
        frozen = freeze_json(value)
    return frozen  # type: ignore[no-any-return]


def _to_json_value(value: Any, self: Any, field: attrs.Attribute[Any]) -> Any:
    """A frozen copy of any JSON value (or None), checked in the same pass."""
    frozen = _frozen_plain_json(value)
    if frozen is _NOT_PLAIN:
        _check_json(value, _where(self, field))
        frozen = freeze_json(value)
    return frozen


def _items_of(kind: type) -> Any:
    def check(instance: Any, field: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
        for item in value:
            if not isinstance(item, kind):
                raise TypeError(
                    f"{_where(instance, field)} must hold {kind.__name__} objects, "
                    f"got {type(item).__name__}"
                )

    return check


def _float_field(*, default: Any = None) -> Any:
    converter = attrs.Converter(_to_float, takes_self=True, takes_field=True)
    return attrs.field(default=default, converter=converter)


# A field without a default is spelled out in its class (attrs.field there), so that type
# checkers see it has none.
_REQUIRED_FLOAT = attrs.Converter(_to_float_required, takes_self=True, takes_field=True)


def _json_dict_field() -> Any:
    converter = attrs.Converter(_to_json_dict, takes_self=True, takes_field=True)
    return attrs.field(factory=dict, converter=converter)


def _json_value_field() -> Any:
    converter = attrs.Converter(_to_json_value, takes_self=True, takes_field=True)
    return attrs.field(default=None, converter=converter)


def _datetime_field(*, required: bool = False) -> Any:
    conv = _to_utc_required if required else _to_utc
    converter = attrs.Converter(conv, takes_self=True, takes_field=True)
    if required:
        return attrs.field(factory=utcnow, converter=converter)
    return attrs.field(default=None, converter=converter)


# --- the records --------------------------------------------------------------------------


@attrs.frozen
class Finding:
    """One dark-pattern finding of an audit."""

    category: str = attrs.field(validator=_text)
    pattern_type: str = attrs.field(validator=_text)
    severity: str = attrs.field(validator=_text)
    # mypy's attrs plugin does not know attrs.Converter (the converter takes self and field)
    confidence: float = attrs.field(converter=_REQUIRED_FLOAT)  # type: ignore[misc]
    description: str = attrs.field(validator=_text)
    screenshot_index: int | None = attrs.field(default=None, validator=_optional_count)
    evidence: str | None = attrs.field(default=None, validator=_optional_text)
    id: str | None = attrs.field(default=None, validator=_optional_text)
    plain_english: str | None = attrs.field(default=None, validator=_optional_text)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sha256(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{_where(instance, field)} must be 64 lowercase hex digits")


def _blob_key(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    validate_blob_key(value)


@attrs.frozen
class Screenshot:
    """A reference from an audit to a screenshot blob."""

    index: int = attrs.field(validator=_count)
    label: str = attrs.field(validator=_text)
    blob_key: str = attrs.field(validator=_blob_key)
    size_bytes: int = attrs.field(validator=_count)
    content_type: str = attrs.field(validator=_text)
    sha256: str = attrs.field(validator=_sha256)


def _audit_id(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    validate_audit_id(value)


@attrs.frozen
class Audit:
    """One website audit. Only ``id`` and ``url`` are required."""

    id: str = attrs.field(validator=_audit_id)
    url: str = attrs.field(validator=_text)
    tier: str = attrs.field(default="standard", validator=_text)
    verdict_mode: str = attrs.field(default="expert", validator=_text)
    status: AuditStatus = attrs.field(default=AuditStatus.QUEUED, converter=_to_status)
    created_at: datetime = _datetime_field(required=True)
    started_at: datetime | None = _datetime_field()
    completed_at: datetime | None = _datetime_field()
    updated_at: datetime | None = _datetime_field()
    trust_score: float | None = _float_field()
    risk_level: str | None = attrs.field(default=None, validator=_optional_text)
    narrative: str | None = attrs.field(default=None, validator=_optional_text)
    signal_scores: dict[str, Any] = _json_dict_field()
    site_type: str | None = attrs.field(default=None, validator=_optional_text)
    site_type_confidence: float | None = _float_field()
    security_results: dict[str, Any] = _json_dict_field()
    pages_scanned: int = attrs.field(default=0, validator=_count)
    elapsed_seconds: float | None = _float_field()
    error_message: str | None = attrs.field(default=None, validator=_optional_text)
    # JSON values of the service's result, kept as given (None when the result had none)
    recommendations: Any = _json_value_field()
    domain_info: Any = _json_value_field()
    overrides: Any = _json_value_field()
    errors: Any = _json_value_field()
    # every other key of the result dict (see AuditRecorder.completed and docs/migration.md)
    extra: dict[str, Any] = _json_dict_field()
    findings: tuple[Finding, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_items_of(Finding)
    )
    screenshots: tuple[Screenshot, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_items_of(Screenshot)
    )

    def __attrs_post_init__(self) -> None:
        if self.updated_at is None:
            object.__setattr__(self, "updated_at", self.created_at)

    @property
    def screenshots_count(self) -> int:
        """Derived from ``screenshots``, never stored twice."""
        return len(self.screenshots)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 text)."""
        return audit_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Audit:
        """The inverse of :meth:`to_dict`."""
        return audit_from_dict(data)


def _optional_seq(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    _count(instance, field, value)
    if value < 1:
        raise ValueError(f"{_where(instance, field)} must be at least 1")


@attrs.frozen
class AuditEvent:
    """One event of an audit's stream (``AuditStore.events``). ``seq`` (from 1, in order) is
    assigned by the authoritative backend on append; pass None for a new event."""

    type: str = attrs.field(validator=_text)
    data: dict[str, Any] = _json_dict_field()
    seq: int | None = attrs.field(default=None, validator=_optional_seq)
    created_at: datetime = _datetime_field(required=True)


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

    items: tuple[Audit, ...] = attrs.field(converter=_to_tuple)
    next_cursor: str | None = None


@attrs.frozen
class BlobInfo:
    """What ``BlobStore.put()`` stored."""

    key: str
    size: int
    sha256: str
    content_type: str | None = None

    @classmethod
    def of(cls, key: str, data: bytes, content_type: str | None = None) -> BlobInfo:
        import hashlib

        return cls(key, len(data), hashlib.sha256(data).hexdigest(), content_type)


# --- JSON form ----------------------------------------------------------------------------

_DATETIME_FIELDS = ("created_at", "started_at", "completed_at", "updated_at")


def audit_to_dict(audit: Audit) -> dict[str, Any]:
    data = attrs.asdict(audit)
    data["status"] = audit.status.value
    for name in _DATETIME_FIELDS:
        value = getattr(audit, name)
        data[name] = value.isoformat() if value is not None else None
    return data


def audit_from_dict(data: Mapping[str, Any]) -> Audit:
    values = dict(data)
    for name in _DATETIME_FIELDS:
        if isinstance(values.get(name), str):
            values[name] = datetime.fromisoformat(values[name])
    values["findings"] = tuple(
        f if isinstance(f, Finding) else Finding(**f) for f in values.get("findings", ())
    )
    values["screenshots"] = tuple(
        s if isinstance(s, Screenshot) else Screenshot(**s) for s in values.get("screenshots", ())
    )
    return Audit(**values)


# --- keyset pagination, shared so a cursor from one backend works on every other ------------

MAX_PAGE_SIZE = 10_000


def validate_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be an int from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
    return limit


def validate_status(status: object) -> AuditStatus | None:
    return None if status is None else _to_status(status)


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
        return _to_utc(value, self, field)
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
