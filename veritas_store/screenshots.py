"""ScreenshotStorage: screenshots as blobs, with references on the audit.

A screenshot is written at a deterministic key, ``{audit_id}/{index:04d}.{ext}``, so a retried
save overwrites instead of duplicating. The blob is written before the audit is updated: a
failure leaves at worst an unreferenced blob that the next save of that index overwrites,
never a reference to a blob that is not there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from typing import Any

import attrs

from .locks import KeyedLocks
from .plugin_api.protocols import AuditStore, BlobStore
from .records.errors import (
    AuditNotFound,
    BackendUnavailable,
    BlobNotFound,
    ChecksumMismatch,
    InvalidImage,
    InvalidKey,
    InvalidRecord,
)
from .records.keys import validate_audit_id
from .records.model import Screenshot
from .records.values import utcnow

log = logging.getLogger("veritas_store.screenshots")

MAX_INDEX = 9999
_DIGEST_TO_COME = "0" * 64  # a well-formed stand-in until the blob store reports the digest
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)


def sniff_image(data: bytes) -> tuple[str, str]:
    """``(extension, content_type)`` of PNG, JPEG, WebP or GIF data, by magic bytes."""
    # PNG: the signature, then the IHDR chunk (always 13 bytes long), then its data
    if data.startswith(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") and len(data) > 16:
        return "png", "image/png"
    if data.startswith(b"\xff\xd8\xff") and len(data) > 3:
        return "jpg", "image/jpeg"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and data[12:15] == b"VP8":
        return "webp", "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) > 6:
        return "gif", "image/gif"
    raise InvalidImage(
        f"screenshot data is not a PNG, JPEG, WebP or GIF image (starts with {data[:12]!r})"
    )


def decode_image(data: Any) -> bytes:
    """Raw image bytes from bytes (raw) or str (base64, a ``data:image/...;base64,`` prefix ok)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        text = "".join(_DATA_URL.sub("", data.strip(), count=1).split())
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidImage(f"screenshot text is not valid base64: {exc}") from None
    raise InvalidImage(f"screenshot data must be bytes or base64 str, got {type(data).__name__}")


def screenshot_key(audit_id: str, index: int, ext: str) -> str:
    return f"{audit_id}/{index:04d}.{ext}"


def _check_index(index: Any) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise InvalidKey(f"screenshot index must be an int from 0 to {MAX_INDEX}, got {index!r}")
    return index


class ScreenshotStorage:
    """Save and load an audit's screenshots through an audit store and a blob store."""

    def __init__(
        self, audits: AuditStore, blobs: BlobStore, locks: KeyedLocks | None = None
    ) -> None:
        self._audits = audits
        self._blobs = blobs
        self._locks = locks or KeyedLocks()

    def save(self, audit_id: str, index: int, label: str, data: bytes | str) -> Screenshot:
        """Store a screenshot and add (or replace) its reference on the audit."""
        validate_audit_id(audit_id)
        _check_index(index)
        if not isinstance(label, str) or "\x00" in label:
            raise InvalidRecord(f"screenshot label must be a str without NUL, got {label!r}")
        image = decode_image(data)
        ext, content_type = sniff_image(image)
        key = screenshot_key(audit_id, index, ext)
        # The reference is built (and so validated) before anything is written. Its digest is
        # the one the blob store computes anyway (BlobInfo.sha256, which the conformance kit
        # checks), so a 200 KB image is hashed once per save, not twice.
        try:
            shot = Screenshot(index, label, key, len(image), content_type, _DIGEST_TO_COME)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"screenshot {index} of audit {audit_id!r}: {exc}") from None
        with self._locks(audit_id):
            audit = self._audits.get(audit_id)
            if audit is None:
                raise AuditNotFound(f"audit {audit_id!r} not found; no screenshot was written")
            digest = self._blobs.put(key, image, content_type).sha256
            # the fields were checked above; the digest is the blob store's (checked by the kit)
            shot = Screenshot(index, label, key, len(image), content_type, digest)
            replaced = [s for s in audit.screenshots if s.index == index]
            kept = [s for s in audit.screenshots if s.index != index]
            screenshots = tuple(sorted([*kept, shot], key=lambda s: s.index))
            self._audits.update(attrs.evolve(audit, screenshots=screenshots, updated_at=utcnow()))
        for old in replaced:
            if old.blob_key != key:  # re-saved in another format: drop the old file
                try:
                    self._blobs.delete(old.blob_key)
                except Exception:
                    log.warning("could not delete replaced screenshot blob %r", old.blob_key)
        return shot

    def load(self, audit_id: str, index: int) -> bytes:
        """The screenshot's bytes, checked against the sha256 on its reference."""
        validate_audit_id(audit_id)
        _check_index(index)
        audit = self._audits.get(audit_id)
        if audit is None:
            raise AuditNotFound(f"audit {audit_id!r} not found")
        shot = next((s for s in audit.screenshots if s.index == index), None)
        if shot is None:
            raise BlobNotFound(f"audit {audit_id!r} has no screenshot {index}")
        return self._read_verified(shot)

    def _read_verified(self, shot: Screenshot) -> bytes:
        # A blob whose sha256 differs from its reference counts as a failed read: the next
        # backend in read order is tried (the composite does this; a plain store is checked).
        get_verified = getattr(self._blobs, "get_verified", None)
        if get_verified is not None:
            verified: bytes = get_verified(shot.blob_key, shot.sha256)
            return verified
        data = self._blobs.get(shot.blob_key)
        if hashlib.sha256(data).hexdigest() != shot.sha256:
            raise BackendUnavailable(
                f"no backend returned an intact copy of {shot.blob_key!r}",
                {"blobs": ChecksumMismatch(f"{shot.blob_key!r} does not match its sha256")},
            )
        return data
