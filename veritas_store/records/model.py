"""The records: frozen attrs classes, validated where they are built (checks in ``values``).

Change a record with ``attrs.evolve``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .keys import validate_audit_id, validate_blob_key
from .values import (
    REQUIRED_FLOAT,
    AuditStatus,
    check_count,
    check_optional_count,
    check_optional_text,
    check_text,
    datetime_field,
    field_of,
    float_field,
    items_of,
    json_dict_field,
    json_value_field,
    to_status,
    to_tuple,
)

# --- the records --------------------------------------------------------------------------


@attrs.frozen
class Finding:
    """One dark-pattern finding of an audit."""

    category: str = attrs.field(validator=check_text)
    pattern_type: str = attrs.field(validator=check_text)
    severity: str = attrs.field(validator=check_text)
    # mypy's attrs plugin does not know attrs.Converter (the converter takes self and field)
    confidence: float = attrs.field(converter=REQUIRED_FLOAT)  # type: ignore[misc]
    description: str = attrs.field(validator=check_text)
    screenshot_index: int | None = attrs.field(default=None, validator=check_optional_count)
    evidence: str | None = attrs.field(default=None, validator=check_optional_text)
    id: str | None = attrs.field(default=None, validator=check_optional_text)
    plain_english: str | None = attrs.field(default=None, validator=check_optional_text)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sha256(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{field_of(instance, field)} must be 64 lowercase hex digits")


def _blob_key(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    validate_blob_key(value)


@attrs.frozen
class Screenshot:
    """A reference from an audit to a screenshot blob."""

    index: int = attrs.field(validator=check_count)
    label: str = attrs.field(validator=check_text)
    blob_key: str = attrs.field(validator=_blob_key)
    size_bytes: int = attrs.field(validator=check_count)
    content_type: str = attrs.field(validator=check_text)
    sha256: str = attrs.field(validator=_sha256)


def _audit_id(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    validate_audit_id(value)


@attrs.frozen
class Audit:
    """One website audit. Only ``id`` and ``url`` are required."""

    id: str = attrs.field(validator=_audit_id)
    url: str = attrs.field(validator=check_text)
    tier: str = attrs.field(default="standard", validator=check_text)
    verdict_mode: str = attrs.field(default="expert", validator=check_text)
    status: AuditStatus = attrs.field(default=AuditStatus.QUEUED, converter=to_status)
    created_at: datetime = datetime_field(required=True)
    started_at: datetime | None = datetime_field()
    completed_at: datetime | None = datetime_field()
    updated_at: datetime | None = datetime_field()
    trust_score: float | None = float_field()
    risk_level: str | None = attrs.field(default=None, validator=check_optional_text)
    narrative: str | None = attrs.field(default=None, validator=check_optional_text)
    signal_scores: dict[str, Any] = json_dict_field()
    site_type: str | None = attrs.field(default=None, validator=check_optional_text)
    site_type_confidence: float | None = float_field()
    security_results: dict[str, Any] = json_dict_field()
    pages_scanned: int = attrs.field(default=0, validator=check_count)
    elapsed_seconds: float | None = float_field()
    error_message: str | None = attrs.field(default=None, validator=check_optional_text)
    # JSON values of the service's result, kept as given (None when the result had none)
    recommendations: Any = json_value_field()
    domain_info: Any = json_value_field()
    overrides: Any = json_value_field()
    errors: Any = json_value_field()
    # every other key of the result dict (see AuditRecorder.completed and docs/migration.md)
    extra: dict[str, Any] = json_dict_field()
    findings: tuple[Finding, ...] = attrs.field(
        default=(), converter=to_tuple, validator=items_of(Finding)
    )
    screenshots: tuple[Screenshot, ...] = attrs.field(
        default=(), converter=to_tuple, validator=items_of(Screenshot)
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
    check_count(instance, field, value)
    if value < 1:
        raise ValueError(f"{field_of(instance, field)} must be at least 1")


@attrs.frozen
class AuditEvent:
    """One event of an audit's stream (``AuditStore.events``). ``seq`` (from 1, in order) is
    assigned by the authoritative backend on append; pass None for a new event."""

    type: str = attrs.field(validator=check_text)
    data: dict[str, Any] = json_dict_field()
    seq: int | None = attrs.field(default=None, validator=_optional_seq)
    created_at: datetime = datetime_field(required=True)


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
