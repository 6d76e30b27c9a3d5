"""AuditRecorder: an audit service's lifecycle (started, events, completed, failed) as writes.

Every change is built and validated as a whole new record before anything is written, so
malformed input (a non-numeric score, undecodable screenshot data) raises and leaves the stored
audit as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .plugin_api.inline import held
from .plugin_api.protocols import Capability, capabilities_of
from .records.errors import AuditNotFound, InvalidRecord
from .records.keys import validate_audit_id
from .records.model import Audit, AuditEvent, Finding, Screenshot
from .records.values import MAX_INT, AuditStatus, utcnow
from .screenshots import ScreenshotStorage

# Result-dict keys copied onto the audit field of the same name, as they are.
RESULT_FIELDS = (
    "url",
    "verdict_mode",
    "trust_score",
    "risk_level",
    "narrative",
    "signal_scores",
    "site_type",
    "site_type_confidence",
    "security_results",
    "pages_scanned",
    "elapsed_seconds",
    "recommendations",
    "domain_info",
    "overrides",
    "errors",
)
RENAMED = {"audit_tier": "tier"}  # result key -> audit field
# Keys the record derives: stored in ``extra`` only when the result disagrees with the record.
DERIVED = ("status", "screenshots_count")
SUMMARY = "dark_pattern_summary"  # its ``findings`` become Audit.findings, the rest ``extra``
DEFAULT_TIER = "standard"
DEFAULT_VERDICT_MODE = "expert"
_FINDING_FIELDS = tuple(a.name for a in attrs.fields(Finding))
_DEFAULTS = {"signal_scores": {}, "security_results": {}, "pages_scanned": 0}
_OPTIONAL_FINDING_KEYS = ("screenshot_index", "evidence", "id", "plain_english")


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


def fields_of_result(result: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The audit fields a result dict sets, and ``extra``: every key it has no field for.

    The mapping table is in docs/migration.md; ``result_of`` is the inverse.
    """
    fields: dict[str, Any] = {
        k: (result[k] if result[k] is not None else _DEFAULTS.get(k))
        for k in RESULT_FIELDS
        if k in result
    }
    for key, name in RENAMED.items():
        if key in result:
            fields[name] = result[key]
    extra = {
        k: v
        for k, v in result.items()
        if k not in RESULT_FIELDS and k not in RENAMED and k not in DERIVED
        and k not in (SUMMARY, "findings")
    }  # fmt: skip
    findings = findings_from(result["findings"]) if "findings" in result else None
    summary = result.get(SUMMARY)
    if isinstance(summary, Mapping):
        from_summary = findings_from(summary)
        rest = {k: v for k, v in summary.items() if k != "findings"}
        if findings is None:
            findings = from_summary
        elif "findings" in summary and from_summary != findings:
            rest["findings"] = summary["findings"]  # differs from the top level: keep it too
        extra[SUMMARY] = rest
    elif summary is not None:
        summary_findings = findings_from(summary)  # the list form: just the findings
        if findings is None:
            findings = summary_findings
        elif summary_findings != findings:
            extra[SUMMARY] = summary
    elif SUMMARY in result:
        extra[SUMMARY] = None
    if findings is not None:
        fields["findings"] = findings
    return fields, extra


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding as the service's dicts have it (optional keys only when set)."""
    data = attrs.asdict(finding)
    for key in _OPTIONAL_FINDING_KEYS:
        if data[key] is None:
            del data[key]
    return data


def result_of(audit: Audit) -> dict[str, Any]:
    """The service's result dict rebuilt from a stored audit: the inverse of ``completed``."""
    result: dict[str, Any] = {name: getattr(audit, name) for name in RESULT_FIELDS}
    for key, name in RENAMED.items():
        result[key] = getattr(audit, name)
    result["status"] = audit.status.value
    result["screenshots_count"] = audit.screenshots_count
    findings = [finding_dict(f) for f in audit.findings]
    result["findings"] = findings
    extra = dict(audit.extra)
    summary = extra.pop(SUMMARY, {})
    if isinstance(summary, Mapping):
        summary = {**summary}
        summary.setdefault("findings", findings)
    result[SUMMARY] = summary
    result.update(extra)  # last: a derived key the result disagreed on wins
    return result


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

    def _hold(self, audit_id: str) -> Any:
        """The audit's lock. ``started``, ``completed`` and ``failed`` write once, last, so the
        async API may attempt them on its event loop: then a lock in use is ``WouldBlock``."""
        return held(self._locks(audit_id), f"the lock of audit {audit_id!r}")

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
        with self._hold(audit_id):
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
        fields, extra = fields_of_result(result)
        now = utcnow()
        with self._hold(audit_id):
            audit = self._audits.get(audit_id)
            if audit is None:
                raise AuditNotFound(f"audit {audit_id!r} was never started")
            derived = {
                "status": AuditStatus.COMPLETED.value,
                "screenshots_count": len(audit.screenshots),
            }
            for key in DERIVED:  # kept only when the result says otherwise
                if key in result and result[key] != derived[key]:
                    extra[key] = result[key]
            updated = _evolve(
                audit,
                "completed",
                **fields,
                extra=extra,
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
        with self._hold(audit_id):
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
        """Record a streamed event: a ``screenshot`` event's image is saved (and returned);
        every event is appended to the audit's event log when the store keeps one
        (``Capability.EVENTS``), a screenshot's base64 replaced by its ``blob_key``.

        A screenshot event whose ``data`` is None (the runner's file was missing) saves nothing
        and is logged with ``blob_key`` None. Bad input raises before anything is written.
        """
        validate_audit_id(audit_id)
        if not isinstance(event, Mapping):
            raise InvalidRecord(f"event must be a dict, got {type(event).__name__}")
        kind = event.get("type")
        body = {k: v for k, v in event.items() if k != "type"}
        screenshot = kind == "screenshot"
        if screenshot:
            missing = [k for k in ("data", "index") if k not in event]
            if missing:
                raise InvalidRecord(f"screenshot event lacks {', '.join(missing)}")
            index = event["index"]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INT:
                raise InvalidRecord(f"screenshot event index must be an int >= 0, got {index!r}")
            label: Any = event.get("label")
            label = f"screenshot {index}" if label is None else label
            if not isinstance(label, str) or "\x00" in label:
                raise InvalidRecord(
                    f"screenshot event label must be text without NUL, got {label!r}"
                )
            body = {**body, "data": None, "blob_key": None}  # never the base64 twice
        logged = None
        if Capability.EVENTS in capabilities_of(self._audits):
            try:  # built (and checked) before anything is written
                logged = AuditEvent(type=kind if isinstance(kind, str) else "", data=body)
            except (TypeError, ValueError) as exc:
                raise InvalidRecord(f"event for audit {audit_id!r}: {exc}") from None
        shot = None
        if screenshot and event["data"] is not None:
            shot = self._screenshots.save(audit_id, event["index"], label, event["data"])
            if logged is not None:
                logged = attrs.evolve(logged, data={**body, "blob_key": shot.blob_key})
        if logged is not None:
            self._audits.append_events(audit_id, [logged])
        return shot
