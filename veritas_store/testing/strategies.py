"""Hypothesis strategies for valid audits, ids and blob keys, public for plugin authors'
own property tests (re-exported by ``veritas_store.testing``)."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

import veritas_store as vs

_ID_FIRST = string.ascii_letters + string.digits
_ID_REST = _ID_FIRST + "._-"


def audit_ids(max_size: int = 40) -> st.SearchStrategy[str]:
    """Valid audit ids (and blob key segments)."""
    return st.builds(
        lambda a, b: a + b,
        st.sampled_from(_ID_FIRST),
        st.text(alphabet=_ID_REST, max_size=max_size - 1),
    )


def blob_keys() -> st.SearchStrategy[str]:
    return st.lists(audit_ids(20), min_size=1, max_size=4).map("/".join)


_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=60,
)
_finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
_json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _finite | _text
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 2), max_value=datetime(2099, 12, 30), timezones=_zones
)
_count = st.integers(0, 10_000)


def findings() -> st.SearchStrategy[vs.Finding]:
    return st.builds(
        vs.Finding,
        category=_text,
        pattern_type=_text,
        severity=st.sampled_from(["low", "medium", "high", "critical"]),
        confidence=_finite,
        description=_text,
        screenshot_index=st.none() | _count,
        evidence=st.none() | _text,
        id=st.none() | _text,
        plain_english=st.none() | _text,
    )


def screenshots(audit_id: str) -> st.SearchStrategy[tuple[vs.Screenshot, ...]]:
    def build(indexes: list[int], label: str, size: int, digest: str) -> tuple[vs.Screenshot, ...]:
        return tuple(
            vs.Screenshot(i, label, f"{audit_id}/{i:04d}.png", size, "image/png", digest)
            for i in indexes
        )

    return st.builds(
        build,
        st.lists(st.integers(0, 9999), unique=True, max_size=3),
        _text,
        _count,
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    )


@st.composite
def audits(draw: Any, audit_id: str | None = None) -> vs.Audit:
    """Fully populated, valid audits."""
    audit_id = audit_id or draw(audit_ids())
    created = draw(_datetimes)
    return vs.Audit(
        id=audit_id,
        url=draw(_text),
        tier=draw(_text),
        verdict_mode=draw(_text),
        status=draw(st.sampled_from(list(vs.AuditStatus))),
        created_at=created,
        started_at=draw(st.none() | _datetimes),
        completed_at=draw(st.none() | _datetimes),
        updated_at=draw(_datetimes),
        trust_score=draw(st.none() | _finite),
        risk_level=draw(st.none() | _text),
        narrative=draw(st.none() | st.text(max_size=2000).filter(lambda t: "\x00" not in t)),
        signal_scores=draw(st.dictionaries(_text, _finite, max_size=5)),
        site_type=draw(st.none() | _text),
        site_type_confidence=draw(st.none() | _finite),
        security_results=draw(st.dictionaries(_text, _json, max_size=4)),
        pages_scanned=draw(_count),
        elapsed_seconds=draw(st.none() | _finite),
        error_message=draw(st.none() | _text),
        recommendations=draw(st.none() | _json),
        domain_info=draw(st.none() | _json),
        overrides=draw(st.none() | _json),
        errors=draw(st.none() | _json),
        extra=draw(st.dictionaries(_text, _json, max_size=4)),
        findings=draw(st.lists(findings(), max_size=4)),
        screenshots=draw(screenshots(audit_id)),
    )
