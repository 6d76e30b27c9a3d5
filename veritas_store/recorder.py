"""AuditRecorder: an audit service's lifecycle (started, events, completed, failed) as writes.

Every change is built and validated as a whole new record before anything is written, so
malformed input (a non-numeric score, undecodable screenshot data) raises and leaves the stored
audit as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .errors import AuditNotFound, InvalidRecord
from .keys import validate_audit_id
from .model import Audit, AuditStatus, Finding, Screenshot, utcnow
from .screenshots import ScreenshotStorage

# Result-dict keys copied onto the audit as they are.
RESULT_FIELDS = (
    "trust_score",
    "risk_level",
    "narrative",
    "signal_scores",
    "site_type",
    "site_type_confidence",
    "security_results",
    "pages_scanned",
    "elapsed_seconds",
)
DEFAULT_TIER = "standard"
DEFAULT_VERDICT_MODE = "expert"
_FINDING_FIELDS = tuple(a.name for a in attrs.fields(Finding))
_DEFAULTS = {"signal_scores": {}, "security_results": {}, "pages_scanned": 0}


def findings_from(summary: Any) -> tuple[Finding, ...]:
    """``Finding``s from a ``dark_pattern_summary`` (a dict with ``findings``, or a list)."""
    if summary is None:
        return ()
    raw = summary.get("findings", []) if isinstance(summary, Mapping) else summary
    if not isinstance(raw, list | tuple):
        raise InvalidRecord("dark_pattern_summary.findings must be a list of finding dicts")
    findings = []
    for i, item in enumerate(raw):
        if isinstance(item, Finding):
            findings.append(item)
            continue
        if not isinstance(item, Mapping):
            raise InvalidRecord(f"dark_pattern_summary.findings[{i}] must be a dict")
        try:
            findings.append(Finding(**{k: item[k] for k in _FINDING_FIELDS if k in item}))
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"dark_pattern_summary.findings[{i}]: {exc}") from None
    return tuple(findings)


def _evolve(audit: Audit, what: str, **changes: Any) -> Audit:
    try:
        return attrs.evolve(audit, **changes)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"{what} for audit {audit.id!r}: {exc}") from None


class AuditRecorder:
    """Turns the service's callbacks into store operations on ``stores.audits``."""

    def __init__(self, stores: Any) -> None:
        self._audits = stores.audits
        self._screenshots: ScreenshotStorage = stores.screenshots
        self._locks = stores.locks

    def started(
        self,
        audit_id: str,
        url: str,
        tier: str = DEFAULT_TIER,
        verdict_mode: str = DEFAULT_VERDICT_MODE,
    ) -> Audit:
        """The audit exists with status running and ``started_at`` set."""
        validate_audit_id(audit_id)
        now = utcnow()
        with self._locks(audit_id):
            existing = self._audits.get(audit_id)
            if existing is None:
                try:
                    audit = Audit(
                        id=audit_id,
                        url=url,
                        tier=tier,
                        verdict_mode=verdict_mode,
                        status=AuditStatus.RUNNING,
                        created_at=now,
                        started_at=now,
                        updated_at=now,
                    )
                except (TypeError, ValueError) as exc:
                    raise InvalidRecord(f"started({audit_id!r}): {exc}") from None
                self._audits.create(audit)
                return audit
            audit = _evolve(
                existing,
                "started",
                url=url,
                tier=tier,
                verdict_mode=verdict_mode,
                status=AuditStatus.RUNNING,
                started_at=now,
                updated_at=now,
            )
            self._audits.update(audit)
            return audit

    def completed(self, audit_id: str, result: Mapping[str, Any]) -> Audit:
        """Status completed with every result field and the findings, in one update.

        Screenshots already recorded are kept.
        """
        validate_audit_id(audit_id)
        if not isinstance(result, Mapping):
            raise InvalidRecord(f"result must be a dict, got {type(result).__name__}")
        findings = findings_from(result.get("dark_pattern_summary"))
        fields = {
            k: (result[k] if result[k] is not None else _DEFAULTS.get(k))
            for k in RESULT_FIELDS
            if k in result
        }
        now = utcnow()
        with self._locks(audit_id):
            audit = self._audits.get(audit_id)
            if audit is None:
                raise AuditNotFound(f"audit {audit_id!r} was never started")
            updated = _evolve(
                audit,
                "completed",
                **fields,
                findings=findings,
                status=AuditStatus.COMPLETED,
                completed_at=now,
                updated_at=now,
                error_message=None,
            )
            self._audits.update(updated)
            return updated

    def failed(self, audit_id: str, error: str) -> Audit:
        """Status error with the message; creates the audit (url ``about:blank``) if needed."""
        validate_audit_id(audit_id)
        # The error text must never be lost: coerce it to text that every backend can store.
        error = (error if isinstance(error, str) else str(error)).replace("\x00", "")
        now = utcnow()
        with self._locks(audit_id):
            audit = self._audits.get(audit_id)
            if audit is None:
                audit = Audit(
                    id=audit_id,
                    url="about:blank",
                    status=AuditStatus.ERROR,
                    error_message=error,
                    created_at=now,
                    completed_at=now,
                    updated_at=now,
                )
                self._audits.create(audit)
                return audit
            updated = _evolve(
                audit,
                "failed",
                status=AuditStatus.ERROR,
                error_message=error,
                completed_at=now,
                updated_at=now,
            )
            self._audits.update(updated)
            return updated

    def event(self, audit_id: str, event: Mapping[str, Any]) -> Screenshot | None:
        """Record a streamed event: a ``screenshot`` event is saved; other types are ignored."""
        validate_audit_id(audit_id)
        if not isinstance(event, Mapping):
            raise InvalidRecord(f"event must be a dict, got {type(event).__name__}")
        if event.get("type") != "screenshot":
            return None
        missing = [k for k in ("data", "index") if k not in event]
        if missing:
            raise InvalidRecord(f"screenshot event lacks {', '.join(missing)}")
        label = event.get("label")
        label = f"screenshot {event['index']}" if label is None else label
        if not isinstance(label, str) or "\x00" in label:
            raise InvalidRecord(f"screenshot event label must be text without NUL, got {label!r}")
        return self._screenshots.save(audit_id, event["index"], label, event["data"])
