"""veritas-store: pluggable storage for website-audit records and their screenshots.

Everything a user or a plugin author needs is exported here; nothing else is public API
(besides ``veritas_store.aio`` and ``veritas_store.testing``).
"""

from .plugin_api.hookspecs import PLUGIN_API_VERSION, hookimpl
from .plugin_api.inline import held, may_wait
from .plugin_api.protocols import (
    DEFAULT_CAPABILITIES,
    AuditStore,
    BlobStore,
    Capability,
    SchemaManaged,
    capabilities_of,
)
from .records.errors import (
    AuditExists,
    AuditNotFound,
    BackendUnavailable,
    BlobNotFound,
    ChecksumMismatch,
    ConfigError,
    InvalidCursor,
    InvalidImage,
    InvalidKey,
    InvalidRecord,
    NotAttempted,
    PluginError,
    SchemaError,
    VeritasStoreError,
    WouldBlock,
    WriteError,
)
from .records.keys import validate_audit_id, validate_blob_key, validate_blob_prefix
from .records.model import Audit, AuditEvent, BlobInfo, Finding, Screenshot
from .records.paging import (
    AuditPage,
    ListFilter,
    decode_cursor,
    encode_cursor,
    number_events,
    paginate,
    validate_after,
    validate_limit,
    validate_status,
)
from .records.values import AuditStatus, utcnow

__all__ = [
    "DEFAULT_CAPABILITIES",
    "PLUGIN_API_VERSION",
    "Audit",
    "AuditEvent",
    "AuditExists",
    "AuditNotFound",
    "AuditPage",
    "AuditRecorder",
    "AuditStatus",
    "AuditStore",
    "BackendUnavailable",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "Capability",
    "ChecksumMismatch",
    "ConfigError",
    "Finding",
    "ListFilter",
    "InvalidCursor",
    "InvalidImage",
    "InvalidKey",
    "InvalidRecord",
    "NotAttempted",
    "PluginError",
    "SchemaError",
    "SchemaManaged",
    "Screenshot",
    "ScreenshotStorage",
    "Stores",
    "VeritasStoreError",
    "WouldBlock",
    "WriteError",
    "capabilities_of",
    "decode_cursor",
    "encode_cursor",
    "held",
    "hookimpl",
    "may_wait",
    "open_stores",
    "paginate",
    "utcnow",
    "validate_audit_id",
    "validate_blob_key",
    "validate_blob_prefix",
    "validate_limit",
    "validate_status",
    "validate_after",
    "number_events",
    "result_of",
]

__version__ = "0.1.0"

# Imported last: these build on the names above.
from .recorder import AuditRecorder, result_of  # noqa: E402
from .screenshots import ScreenshotStorage  # noqa: E402
from .wiring.stores import Stores, open_stores  # noqa: E402
