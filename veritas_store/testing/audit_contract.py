"""The audit store contract, put together: what every ``AuditStore`` must do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import attrs
import pytest

import veritas_store as vs

from ..plugin_api.inline import no_wait
from .audit_events import AuditEventTests
from .audit_listing import AuditListingTests
from .audit_records import AuditRecordTests
from .support import in_threads, needs, reopener, sample_audit


# pytest runs a base class's tests before a subclass's and walks the bases from the last one:
# records, listing, events, then the tests below (threads, close, inline, native async)
class AuditStoreContract(AuditEventTests, AuditListingTests, AuditRecordTests):
    """Behaviour every ``AuditStore`` must have. Provide an ``audit_store`` fixture."""

    pytestmark = pytest.mark.veritas_contract

    # -- threads

    def test_concurrent_threads(self, audit_store: Any) -> None:
        def work(worker: int) -> None:
            for i in range(10):
                audit = vs.Audit(id=f"w{worker}-{i}", url=f"https://{worker}.example/{i}")
                audit_store.create(audit)
                done = attrs.evolve(audit, status=vs.AuditStatus.COMPLETED, trust_score=i)
                audit_store.update(done)
                assert audit_store.get(audit.id) == done

        in_threads(work, 8)
        ids = {f"w{w}-{i}" for w in range(8) for i in range(10)}
        if vs.Capability.LIST in vs.capabilities_of(audit_store):
            assert {a.id for a in audit_store.list(limit=1000).items} == ids
        assert all(audit_store.get(audit_id) is not None for audit_id in ids)

    def test_concurrent_creates_of_one_id_have_one_winner(self, audit_store: Any) -> None:
        contenders = [vs.Audit(id="race", url=f"https://{w}.example") for w in range(8)]
        winners: list[int] = []

        def work(worker: int) -> None:
            try:
                audit_store.create(contenders[worker])
            except vs.AuditExists:
                return
            winners.append(worker)

        in_threads(work, 8)
        assert len(winners) == 1
        assert audit_store.get("race") == contenders[winners[0]]

    # -- close

    def test_close_twice_is_harmless(self, audit_store: Any) -> None:
        audit_store.create(sample_audit())
        audit_store.close()
        audit_store.close()

    def test_data_survives_close_and_reopen(
        self, audit_store: Any, request: pytest.FixtureRequest
    ) -> None:
        reopen = reopener(request, "reopen_audit_store")
        audit = sample_audit()
        audit_store.create(audit)
        audit_store.create(sample_audit("deleted"))
        audit_store.delete("deleted")
        audit_store.close()
        again = reopen()
        try:
            assert again.get(audit.id) == audit
            assert again.get("deleted") is None
            again.update(attrs.evolve(audit, narrative="after reopen"))
            assert again.get(audit.id).narrative == "after reopen"
        finally:
            again.close()

    # -- calls on the event loop (Capability.INLINE)

    def test_inline_calls_finish_or_refuse_having_changed_nothing(self, audit_store: Any) -> None:
        """Made as the async API attempts them on its event loop, each call either does its
        work without waiting or raises ``WouldBlock`` with the store as it was; its answers
        (``AuditExists``, ``AuditNotFound``) stay what they are."""
        needs(audit_store, vs.Capability.INLINE)
        audit = sample_audit("inline-1")
        changed = attrs.evolve(audit, narrative="changed inline")
        steps: list[tuple[Callable[[], Any], type[Exception] | None, vs.Audit | None]] = [
            (lambda: audit_store.create(audit), None, audit),
            (lambda: audit_store.create(changed), vs.AuditExists, audit),
            (lambda: audit_store.get(audit.id), None, audit),
            (lambda: audit_store.update(changed), None, changed),
            (lambda: audit_store.delete(audit.id), None, None),
            (lambda: audit_store.update(changed), vs.AuditNotFound, None),
        ]
        for call, answer, after in steps:
            before = audit_store.get(audit.id)
            try:
                with no_wait(), pytest.raises(answer) if answer else nullcontext():
                    call()
            except vs.WouldBlock:
                assert audit_store.get(audit.id) == before, "WouldBlock after a change"
                with pytest.raises(answer) if answer else nullcontext():
                    call()  # where it may wait, as on a worker
            assert audit_store.get(audit.id) == after

    # -- native async

    def test_native_async(self, audit_store: Any) -> None:
        needs(audit_store, vs.Capability.NATIVE_ASYNC)
        aio = audit_store.aio
        audit = sample_audit("async-1")

        async def run() -> None:
            await aio.create(audit)
            assert await aio.get(audit.id) == audit
            changed = attrs.evolve(audit, narrative="async")
            await aio.update(changed)
            assert audit_store.get(audit.id) == changed  # one store, two faces
            if vs.Capability.LIST in vs.capabilities_of(audit_store):
                assert (await aio.list()).items == (changed,)
            assert await aio.delete(audit.id) is True
            assert await aio.get(audit.id) is None

        asyncio.run(run())
