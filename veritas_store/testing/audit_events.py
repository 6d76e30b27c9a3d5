"""The audit store contract: the event log (plugin API 1.1)."""

from __future__ import annotations

from typing import Any

import pytest

import veritas_store as vs

from .support import needs


class AuditEventTests:
    """Part of ``AuditStoreContract``: the ``events`` capability."""

    def test_events_are_numbered_in_order_and_read_after(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.EVENTS)
        audit_store.create(vs.Audit(id="ev-1", url="u"))
        assert audit_store.events("ev-1") == ()
        first = audit_store.append_events(
            "ev-1", [vs.AuditEvent("phase_start", {"phase": "crawl"}), vs.AuditEvent("log_entry")]
        )
        assert [e.seq for e in first] == [1, 2]
        (third,) = audit_store.append_events("ev-1", [vs.AuditEvent("finding", {"id": "f-1"})])
        assert third.seq == 3
        assert audit_store.events("ev-1") == (*first, third)
        assert audit_store.events("ev-1", after=1, limit=1) == (first[1],)
        assert audit_store.events("ev-1", after=3) == ()

    def test_numbered_events_are_stored_once(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.EVENTS)
        audit_store.create(vs.Audit(id="ev-2", url="u"))
        copy = (vs.AuditEvent("a", {}, seq=1), vs.AuditEvent("b", {"x": [1]}, seq=2))
        audit_store.append_events("ev-2", copy)
        audit_store.append_events("ev-2", copy)  # a replay: nothing twice
        assert audit_store.events("ev-2") == copy
        (next_one,) = audit_store.append_events("ev-2", [vs.AuditEvent("c")])
        assert next_one.seq == 3

    def test_events_of_a_missing_or_deleted_audit(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.EVENTS)
        with pytest.raises(vs.AuditNotFound):
            audit_store.events("ev-none")
        with pytest.raises(vs.AuditNotFound):
            audit_store.append_events("ev-none", [vs.AuditEvent("x")])
        audit_store.create(vs.Audit(id="ev-3", url="u"))
        audit_store.append_events("ev-3", [vs.AuditEvent("x")])
        audit_store.delete("ev-3")
        audit_store.create(vs.Audit(id="ev-3", url="u"))  # the same id again starts empty
        assert audit_store.events("ev-3") == ()

    def test_bad_events_raise_and_write_nothing(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.EVENTS)
        audit_store.create(vs.Audit(id="ev-4", url="u"))
        with pytest.raises(TypeError):
            audit_store.append_events("ev-4", [{"type": "x"}])
        with pytest.raises(ValueError):
            audit_store.events("ev-4", after=-1)
        with pytest.raises(vs.InvalidKey):
            audit_store.events("../x")
        assert audit_store.events("ev-4") == ()
