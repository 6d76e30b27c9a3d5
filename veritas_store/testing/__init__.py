"""The conformance kit: one behaviour suite that every backend must pass.

Subclass a contract in your test module and provide a fixture that yields a fresh, empty
store::

    import pytest
    from veritas_store.testing import AuditStoreContract

    class TestMyStore(AuditStoreContract):
        @pytest.fixture
        def audit_store(self, tmp_path):
            store = MyStore(path=str(tmp_path))
            yield store
            store.close()

        # optional: a new store over the same data, to test that data survives close()
        @pytest.fixture
        def reopen_audit_store(self, tmp_path):
            return lambda: MyStore(path=str(tmp_path))

``BlobStoreContract`` works the same way with ``blob_store`` (and ``reopen_blob_store``).
The kit reads the store's declared capabilities (``veritas_store.capabilities_of``) and skips,
with a reason naming the capability, what the store says it cannot do; it checks that such a
method raises ``NotImplementedError`` instead.

Requires pytest and hypothesis (``pip install veritas-store[testing]``). pytest loads the kit's
pytest plugin (``veritas_store.pytest_plugin``, entry point ``pytest11``) by itself, so kit
failures show pytest's full assertion details. The strategies ``audits()``, ``audit_ids()``,
``blob_keys()``, ``findings()`` and ``screenshots()`` and the helper ``sample_audit()`` are
public too, for your own property tests, and ``no_wait()``: a ``with`` block in which calls run as
the async API attempts them on its event loop (``veritas_store.may_wait()`` is False), for
testing a store that declares ``Capability.INLINE`` (docs/plugins.md).

Import everything from ``veritas_store.testing`` itself: its modules (``strategies``,
``support``, ``audit_records``, ``audit_listing``, ``audit_events``, ``audit_contract``,
``blob_contract``) are its layout, not its API.
"""

from __future__ import annotations

from ..plugin_api.inline import no_wait
from .audit_contract import AuditStoreContract
from .blob_contract import BlobStoreContract
from .strategies import audit_ids, audits, blob_keys, findings, screenshots
from .support import BAD_KEYS, PNG, sample_audit

__all__ = [
    "BAD_KEYS",
    "PNG",
    "AuditStoreContract",
    "BlobStoreContract",
    "audit_ids",
    "audits",
    "blob_keys",
    "findings",
    "no_wait",
    "sample_audit",
    "screenshots",
]
