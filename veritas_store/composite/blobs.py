"""The blob composite: a ``BlobStore`` over several blob backends.

Every blob backend is written at once (``fanout.py``: a put has no precondition), unless a
migration stage pins the order; reads follow read order (``reads.py``), and ``get_verified``
skips a copy whose sha256 does not match.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterator
from typing import Any

from ..plugin_api.inline import may_wait
from ..plugin_api.protocols import BlobStore, Capability
from ..records.errors import BackendUnavailable, BlobNotFound, ChecksumMismatch, WouldBlock
from ..records.keys import validate_blob_key, validate_blob_prefix
from ..records.model import BlobInfo
from .base import Member, difference
from .fanout import FanOut
from .reads import Reads


class CompositeBlobStore(FanOut[Any], Reads[Any]):
    """A ``BlobStore`` over several blob backends."""

    kind = "blobs"
    parallel_writes = True

    def put(self, key: str, data: bytes, content_type: str | None = None) -> BlobInfo:
        validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"blob data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        info: BlobInfo
        info, _ = self._fan_out(
            "put", key, lambda s: s.put(key, data, content_type), content_type=content_type
        )
        return info

    def delete(self, key: str) -> bool:
        validate_blob_key(key)
        return self._delete(key)

    def get(self, key: str) -> bytes:
        return self.get_with_source(key)[0]

    def get_with_source(self, key: str) -> tuple[bytes, str]:
        validate_blob_key(key)
        data, source = self._get(key)
        if source is None:
            raise BlobNotFound(f"blob {key!r} not found")
        return data, source

    def get_verified(self, key: str, sha256: str) -> bytes:
        """The first copy in read order whose sha256 is ``sha256``.

        A copy that does not match counts as a failed read: it is reported (``backend_error``
        with a ``ChecksumMismatch``) and the next backend is tried. With ``read_repair`` the
        intact copy replaces missing and corrupt ones higher in read order.
        """
        validate_blob_key(key)
        corrupt: dict[str, Exception] = {}

        def intact(member: Member[Any], data: bytes) -> bool:
            if hashlib.sha256(data).hexdigest() == sha256:
                return True
            exc = ChecksumMismatch(f"blob {key!r} in {member.name!r} does not match its sha256")
            corrupt[member.name] = exc
            self._report(member, "get", key, exc)
            return False

        data: bytes
        data, source, missed, errors = self._lookup(key, lambda s: self._fetch(s, key), intact)
        if source is None:
            problems = {**errors, **corrupt}
            if not problems:
                raise BlobNotFound(f"blob {key!r} not found")
            raise BackendUnavailable(
                f"no {self.kind} backend returned an intact copy of {key!r}", problems
            )
        self._compare_copies(key, data, source, {**errors, **corrupt})
        if self.read_repair and missed:
            self._read_repair(key, data, source, missed)
        return data

    def exists(self, key: str) -> bool:
        validate_blob_key(key)
        found: bool = self._first_answer("exists", key, lambda s: s.exists(key))
        return found

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_blob_prefix(prefix)
        # Materialised so a backend that fails mid-listing is skipped, not half-used.
        return iter(
            self._first_answer("list", prefix, lambda s: list(s.list(prefix)), self._listers())
        )

    def url(self, key: str, expires: int = 3600) -> str:
        """A URL from the first backend in read order that declares ``urls`` and has the blob.

        ``NotImplementedError`` if no backend declares ``urls``, or if the blob is only in
        backends that do not.
        """
        validate_blob_key(key)
        if not may_wait():
            raise WouldBlock("url() is not attempted without waiting")  # asks several backends
        if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
            # the caller's error, not a backend failure to skip
            raise ValueError(f"expires must be a positive number of seconds, got {expires!r}")
        makers = self._needed(Capability.URLS, "blob backends can make URLs")
        errors: dict[str, Exception] = {}
        for member in makers:
            try:
                if member.client.exists(key):
                    url: str = member.client.url(key, expires=expires)
                    return url
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "url", key, exc)
        holders = []
        for member in self._read:
            if member in makers:
                continue
            try:
                if member.client.exists(key):
                    holders.append(member.name)
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "url", key, exc)
        if len(errors) == len(self._read):
            raise BackendUnavailable(f"url({key}) failed on every blob backend", errors)
        if holders:
            raise NotImplementedError(
                f"blob {key!r} is only in backends that cannot make URLs: {', '.join(holders)}"
            )
        raise BlobNotFound(f"blob {key!r} not found")

    # -- the item hooks of base.Composite (reads, read-repair, repair) ---------------------

    def _fetch(self, store: BlobStore, key: str) -> bytes | None:
        try:
            return store.get(key)
        except BlobNotFound:
            return None

    def _store(self, store: Any, key: str, value: bytes, content_type: str | None) -> None:
        store.put(key, value, content_type or guess_content_type(key))

    def _copy(self, store: Any, key: str, value: bytes) -> None:
        store.put(key, value, guess_content_type(key))

    def _difference(self, primary: bytes | None, other: bytes | None) -> str | None:
        return blob_difference(primary, other)


def blob_difference(a: bytes | None, b: bytes | None) -> str | None:
    """None if equal, else a short description (which side lacks it, or both digests)."""
    return difference(a, b, _digests_differ)


def _digests_differ(a: bytes, b: bytes) -> str:
    return (
        f"sha256 differs: {hashlib.sha256(a).hexdigest()[:12]}… ({len(a)} bytes) vs "
        f"{hashlib.sha256(b).hexdigest()[:12]}… ({len(b)} bytes)"
    )


def guess_content_type(key: str) -> str | None:
    """A blob's content type from its key's extension (``.png`` -> ``image/png``)."""
    return mimetypes.guess_type(key, strict=False)[0]
