"""The conformance kit itself: it fails the stores it should fail, and its native-async tests
run on a store that declares ``native_async``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import veritas_store as vs
from veritas_store.testing import AuditStoreContract, BlobStoreContract
from veritas_store_plugins.memory import MemoryAuditStore, MemoryBlobStore

# -- native async ------------------------------------------------------------------------------


class _AsyncFace:
    """``store.aio``: the store's methods as coroutines (this store never blocks)."""

    def __init__(self, store: Any, names: tuple[str, ...]) -> None:
        for name in names:
            method = getattr(store, name)

            async def call(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
                return _method(*args, **kwargs)

            setattr(self, name, call)
        if hasattr(store, "put"):

            async def listing(prefix: str = "") -> AsyncIterator[str]:
                for key in store.list(prefix):
                    yield key

            self.list = listing


class AsyncMemoryAudits(MemoryAuditStore):
    capabilities = frozenset({vs.Capability.LIST, vs.Capability.NATIVE_ASYNC})

    def __init__(self) -> None:
        super().__init__()
        self.aio = _AsyncFace(self, ("create", "get", "update", "delete", "list", "close"))


class AsyncMemoryBlobs(MemoryBlobStore):
    capabilities = frozenset({vs.Capability.LIST, vs.Capability.NATIVE_ASYNC})

    def __init__(self) -> None:
        super().__init__()
        self.aio = _AsyncFace(self, ("put", "get", "exists", "delete", "url", "close"))


class TestNativeAsyncAudits(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        return AsyncMemoryAudits()


class TestNativeAsyncBlobs(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        return AsyncMemoryBlobs()


def test_a_composite_does_not_pass_native_async_on() -> None:
    # the composite has no ``aio`` of its own, so it must not claim the capability
    from veritas_store.composite.audits import CompositeAuditStore
    from veritas_store.composite.base import Member

    composite = CompositeAuditStore([Member("a", AsyncMemoryAudits())])
    assert vs.capabilities_of(composite) == {vs.Capability.LIST, vs.Capability.FILTERS}


# -- the kit fails broken stores ---------------------------------------------------------------

BUGGY_STORES = """
import pytest

import veritas_store as vs
from veritas_store.testing import AuditStoreContract, BlobStoreContract
from veritas_store_plugins.memory import MemoryAuditStore, MemoryBlobStore


class CaseBlind(MemoryAuditStore):  # ids compared without case
    def create(self, audit):
        for known in list(self._audits):
            if known.lower() == audit.id.lower():
                raise vs.AuditExists(audit.id)
        super().create(audit)


class TiesLost(MemoryAuditStore):  # the cursor forgets the id: ties are skipped
    def list(self, status=None, limit=100, cursor=None):
        if cursor is not None:
            at, _ = vs.decode_cursor(cursor)
            rest = [a for a in self._audits.values() if a.created_at < at]
            return vs.paginate(rest, status=status, limit=limit)
        return super().list(status, limit, cursor)


class TrustsTheModel(MemoryAuditStore):  # does not check ids itself
    def create(self, audit):
        with self._lock:
            if audit.id in self._audits:
                raise vs.AuditExists(audit.id)
            self._audits[audit.id] = audit


class RefusesLate(MemoryAuditStore):  # inline, but says WouldBlock after it has written
    def update(self, audit):
        super().update(audit)
        if not vs.may_wait():
            raise vs.WouldBlock("too late: the audit is replaced already")


class ClaimsUrls(MemoryBlobStore):  # declares what it cannot do
    capabilities = frozenset({vs.Capability.LIST, vs.Capability.URLS})


class ClosesOnce(MemoryBlobStore):
    closed = False

    def close(self):
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


class WrongDeclaration(MemoryBlobStore):
    capabilities = ["list"]


class TestCaseBlind(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        return CaseBlind()


class TestTiesLost(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        return TiesLost()


class TestTrustsTheModel(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        return TrustsTheModel()


class TestRefusesLate(AuditStoreContract):
    @pytest.fixture
    def audit_store(self):
        return RefusesLate()


class TestClaimsUrls(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        return ClaimsUrls()


class TestClosesOnce(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        return ClosesOnce()


class TestWrongDeclaration(BlobStoreContract):
    @pytest.fixture
    def blob_store(self):
        return WrongDeclaration()
"""


def test_the_kit_fails_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "test_buggy.py").write_text(textwrap.dedent(BUGGY_STORES), encoding="utf-8")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "test_buggy.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = set(re.findall(r"^FAILED test_buggy\.py::(\w+::\w+)", result.stdout, re.MULTILINE))
    assert failed == {
        "TestCaseBlind::test_ids_are_distinct_and_case_sensitive",
        "TestCaseBlind::test_page_by_page_with_limit_one_and_ties",  # "A" and "a" collide
        "TestTiesLost::test_page_by_page_with_limit_one_and_ties",
        "TestTiesLost::test_list_newest_first_across_pages",
        "TestTiesLost::test_cursor_is_a_position_not_a_token",
        # it inherits the FILTERS declaration but its list() takes only the 1.0 arguments
        "TestTiesLost::test_list_filters_combine_and_page",
        "TestTrustsTheModel::test_bad_ids_raise_invalid_key_and_write_nothing",
        "TestRefusesLate::test_inline_calls_finish_or_refuse_having_changed_nothing",
        "TestClaimsUrls::test_url_reads_the_blob",
        "TestClaimsUrls::test_url_bad_expires_is_a_value_error",
        "TestClaimsUrls::test_bad_keys_raise_invalid_key_and_write_nothing",
        "TestClosesOnce::test_close_twice_is_harmless",
        # a list is not a frozenset: the declaration test fails, and so does every test
        # that reads the declaration
        *(
            f"TestWrongDeclaration::{name}"
            for name in (
                "test_capabilities_are_a_frozenset_of_str",
                "test_overwrite",
                "test_bad_keys_raise_invalid_key_and_write_nothing",
                "test_list_is_a_sorted_plain_prefix",
                "test_bad_list_prefix_raises_invalid_key",
                "test_list_without_the_capability_raises_not_implemented",
                "test_url_reads_the_blob",
                "test_url_bad_expires_is_a_value_error",
                "test_url_without_the_capability_raises_not_implemented",
                "test_concurrent_threads",
                "test_native_async",
            )
        ),
    }, result.stdout[-5000:]
    assert "did not raise InvalidKey" in result.stdout  # the kit says which input got through
