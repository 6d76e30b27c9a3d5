"""The audit store contract: round trips, not-found, create twice, update, delete, ids."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import veritas_store as vs

from .strategies import audits
from .support import (
    BAD_KEYS,
    assert_raises,
    check_declaration,
    forged_audit,
    hypothesis_settings,
    sample_audit,
    unique_id,
)


class AuditRecordTests:
    """Part of ``AuditStoreContract``: every store, whatever its capabilities."""

    def test_capabilities_are_a_frozenset_of_str(self, audit_store: Any) -> None:
        check_declaration(audit_store)

    # -- round trips

    def test_round_trip_is_equal(self, audit_store: Any) -> None:
        audit = sample_audit()
        audit_store.create(audit)
        got = audit_store.get(audit.id)
        assert got == audit
        assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)

    def test_minimal_audit_round_trips(self, audit_store: Any) -> None:
        audit = vs.Audit(id="m", url="https://example.com")
        audit_store.create(audit)
        assert audit_store.get("m") == audit

    @hypothesis_settings
    @given(data=st.data())
    def test_generated_audits_round_trip(self, audit_store: Any, data: Any) -> None:
        audit = data.draw(audits(audit_id=unique_id()))
        audit_store.create(audit)
        assert audit_store.get(audit.id) == audit
        changed = data.draw(audits(audit_id=audit.id))
        audit_store.update(changed)
        assert audit_store.get(audit.id) == changed

    # -- not found, create twice, overwrite, delete

    def test_get_missing_is_none(self, audit_store: Any) -> None:
        assert audit_store.get("no-such-audit") is None

    def test_create_twice_raises_and_keeps_first(self, audit_store: Any) -> None:
        first = sample_audit(narrative="first")
        audit_store.create(first)
        with pytest.raises(vs.AuditExists):
            audit_store.create(sample_audit(narrative="second"))
        assert audit_store.get(first.id) == first

    def test_update_replaces_whole_record(self, audit_store: Any) -> None:
        audit = sample_audit()
        audit_store.create(audit)
        changed = attrs.evolve(
            audit,
            status=vs.AuditStatus.ERROR,
            findings=(),
            screenshots=audit.screenshots[:1],
            narrative=None,
            error_message="boom",
            signal_scores={},
        )
        audit_store.update(changed)
        assert audit_store.get(audit.id) == changed

    def test_update_missing_raises(self, audit_store: Any) -> None:
        with pytest.raises(vs.AuditNotFound):
            audit_store.update(sample_audit("never-created"))
        assert audit_store.get("never-created") is None

    def test_delete(self, audit_store: Any) -> None:
        audit_store.create(sample_audit("gone"))
        audit_store.create(sample_audit("kept"))
        assert audit_store.delete("gone") is True
        assert audit_store.get("gone") is None
        assert audit_store.delete("gone") is False
        assert audit_store.get("kept") == sample_audit("kept")
        audit_store.create(sample_audit("gone"))  # the id can be used again
        assert audit_store.get("gone") == sample_audit("gone")

    def test_delete_missing_is_false(self, audit_store: Any) -> None:
        assert audit_store.delete("never-there") is False

    # -- keys

    def test_ids_are_distinct_and_case_sensitive(self, audit_store: Any) -> None:
        ids = ["Case", "case", "a.b", "a-b", "a_b", "A.b", "9", "x" * 128]
        written = [
            vs.Audit(id=audit_id, url=f"https://{i}.example") for i, audit_id in enumerate(ids)
        ]
        for audit in written:
            audit_store.create(audit)
        for audit in written:
            assert audit_store.get(audit.id) == audit
        assert audit_store.delete("case") is True
        assert audit_store.get("Case") is not None

    def test_bad_ids_raise_invalid_key_and_write_nothing(self, audit_store: Any) -> None:
        # one test over every bad id: a fresh store per id would make this the slowest test
        for bad in [*BAD_KEYS, None, 42, b"bytes"]:
            assert_raises(vs.InvalidKey, audit_store.get, bad)
            assert_raises(vs.InvalidKey, audit_store.delete, bad)
            if isinstance(bad, str):
                # the store checks ids itself, even of an audit that slipped past the model
                assert_raises(vs.InvalidKey, audit_store.create, forged_audit(bad))
                assert_raises(vs.InvalidKey, audit_store.update, forged_audit(bad))
        if vs.Capability.LIST in vs.capabilities_of(audit_store):
            assert audit_store.list().items == ()

    def test_the_whole_service_result_round_trips(self, audit_store: Any) -> None:
        audit = sample_audit(
            "full-1",
            recommendations=["Avoid", {"why": "timer", "weight": 0.5}],
            domain_info={"age_days": 12, "registrar": "X", "inconsistencies": [], "ip": None},
            overrides={"risk_level": {"from": "low", "to": "high"}},
            errors=[],
            extra={"future_key": {"nested": [1, None, "ü"]}, "flag": True},
            findings=(vs.Finding("c", "p", "high", 1.0, "d", None, None, "f-1", "In plain words"),),
        )
        audit_store.create(audit)
        assert audit_store.get("full-1") == audit
        assert audit_store.get("full-1").screenshots_count == len(audit.screenshots)
