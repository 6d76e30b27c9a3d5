"""The ``fsspec`` blob backend: blobs as files on local disk, S3 or any fsspec filesystem.

Key ``k`` is stored at ``<url>/<k>``: a file under the root folder for a local path or
``file://`` URL, the object ``s3://bucket/prefix/<k>`` for S3, and so on. Writes are atomic
(a reader never sees a partial blob): on local disk through a hidden temporary file in the same
folder that is fsync'ed and renamed over the target, elsewhere through one ``pipe_file`` call
(a single S3 PUT). Keys are validated before any path is built, because fsspec resolves ``..``.

Local disk cannot hold both ``a`` and ``a/b`` (one would have to be a file and a folder at
once); object stores can.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

import veritas_store as vs

from .fsspec_digest import sha256_beside
from .fsspec_local import prune_empty_folders, put_atomically
from .fsspec_options import (
    DIALECTS,
    GENERIC,
    accepted,
    checked_options,
    redact_options,
    redact_url,
    with_defaults,
)


class FsspecBlobStore:
    """Blobs stored under ``url`` on any fsspec filesystem (local path, file://, s3://...).

    ``storage_options`` go to the filesystem (``fsspec.core.url_to_fs(url, **options)``);
    entries whose value is ``""`` are dropped at any depth, so a config can write
    ``endpoint_url = "${S3_ENDPOINT_URL:-}"`` for "not set".
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        url, options = checked_options(url, storage_options)
        self._url = url
        self._options = options
        shown = redact_url(url)
        try:
            fs, root = fsspec.core.url_to_fs(url, **with_defaults(url, options))
        except (ValueError, TypeError) as exc:
            # Messages name options and protocols, never option values.
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(f"fsspec blob backend {shown!r}: {exc}") from exc
        except ImportError as exc:
            raise ValueError(
                f"fsspec blob backend {shown!r}: the filesystem for this URL is not installed "
                f"({exc}); for s3:// install veritas-store[s3]"
            ) from exc
        self._fs = fs
        self._local = isinstance(fs, LocalFileSystem)
        root = root.rstrip("/")
        if not root and not self._local:
            raise ValueError(
                f"fsspec blob backend {shown!r}: the url names no bucket or folder to store under"
            )
        self._root = root  # "" only for the local filesystem's "/"
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        self._dialect = next((DIALECTS[p] for p in protocols if p in DIALECTS), GENERIC)
        # Read options the installed filesystem takes (s3fs before 2025.5 has no
        # max_concurrency: its cat_file already reads with one GET).
        self._read_kwargs = accepted(fs, self._dialect.read_kwargs)
        # Async filesystems (s3fs, gcsfs, ...) are made for concurrent calls and local disk
        # operations are atomic on their own; anything else (memory, sftp, ...) is serialised.
        self._lock: threading.RLock | None = (
            None if self._local or getattr(fs, "async_impl", False) else threading.RLock()
        )
        try:
            self._find_takes_prefix = "prefix" in inspect.signature(fs.find).parameters
        except (TypeError, ValueError):
            self._find_takes_prefix = False
        # URLs: file:// locally, and wherever the filesystem can sign (s3fs presigns);
        # fsspec's base class (memory://, ...) raises NotImplementedError from sign().
        can_sign = self._local or type(fs).sign is not AbstractFileSystem.sign
        capabilities = {vs.Capability.LIST}
        if can_sign:
            capabilities.add(vs.Capability.URLS)
        if "memory" not in protocols:  # fsspec's memory:// ends with the process
            capabilities.add(vs.Capability.DURABLE)
        self.capabilities = frozenset(capabilities)

    @staticmethod
    def check_options(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        """Raise ValueError or TypeError for bad options, creating, connecting and importing
        nothing (``open_stores`` asks every backend this before it opens any)."""
        url, _ = checked_options(url, storage_options)
        if "::" in url:
            return  # a chained URL: left to the open
        protocol, path = split_protocol(url)
        if protocol is None or protocol in ("file", "local"):
            return
        if protocol not in fsspec.available_protocols():
            raise ValueError(
                f"fsspec blob backend {redact_url(url)!r}: Protocol not known: {protocol}"
            )
        if not path.strip("/"):
            raise ValueError(
                f"fsspec blob backend {redact_url(url)!r}: the url names no bucket or folder "
                "to store under"
            )

    # --- helpers -------------------------------------------------------------------------

    def __repr__(self) -> str:
        options = redact_options(self._options)
        return f"FsspecBlobStore(url={redact_url(self._url)!r}, storage_options={options!r})"

    @property
    def storage_options(self) -> dict[str, Any]:
        """The options the filesystem was opened with (empty values dropped), secrets masked."""
        return redact_options(self._options)

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock if self._lock is not None else contextlib.nullcontext()

    # --- BlobStore -----------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str | None = None) -> vs.BlobInfo:
        vs.validate_blob_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(
                f"blob data must be bytes, got {type(data).__name__}"
                + (" (encode text first)" if isinstance(data, str) else "")
            )
        if content_type is not None and not isinstance(content_type, str):
            raise TypeError(
                f"content_type must be a str or None, got {type(content_type).__name__}"
            )
        data = bytes(data)
        path = self._path(key)
        sha256 = sha256_beside(data)  # hashed while the write below waits on the disk or network
        if self._local:
            put_atomically(path, data)
            return vs.BlobInfo(key, len(data), sha256(), content_type)
        kwargs: dict[str, Any] = {}
        if content_type is not None and self._dialect.content_type_kwarg is not None:
            kwargs[self._dialect.content_type_kwarg] = content_type
        with self._guard():
            try:
                self._fs.pipe_file(path, data, **kwargs)
            except FileNotFoundError:
                # A filesystem with real folders (sftp, ...) wants the parents first.
                self._fs.makedirs(path.rpartition("/")[0], exist_ok=True)
                self._fs.pipe_file(path, data, **kwargs)
        return vs.BlobInfo(key, len(data), sha256(), content_type)

    def get(self, key: str) -> bytes:
        vs.validate_blob_key(key)
        path = self._path(key)
        try:
            if self._local:
                with open(path, "rb") as f:
                    return f.read()
            with self._guard():
                return bytes(self._fs.cat_file(path, **self._read_kwargs))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise vs.BlobNotFound(f"blob {key!r} not found") from None

    def exists(self, key: str) -> bool:
        vs.validate_blob_key(key)
        path = self._path(key)
        if self._local:
            return os.path.isfile(path)
        with self._guard():
            self._fs.invalidate_cache(path)  # another process may have written or deleted it
            try:
                kind: str = self._fs.info(path)["type"]
                return kind == "file"
            except (FileNotFoundError, NotADirectoryError):
                return False

    def delete(self, key: str) -> bool:
        vs.validate_blob_key(key)
        path = self._path(key)
        if self._local:
            if not os.path.isfile(path):
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False  # deleted concurrently
            prune_empty_folders(os.path.dirname(path), self._root)
            return True
        with self._guard():
            if not self.exists(key):
                return False
            try:
                self._fs.rm_file(path)
            except FileNotFoundError:
                return False
            return True

    def list(self, prefix: str = "") -> Iterator[str]:
        vs.validate_blob_prefix(prefix)
        head, _, tail = prefix.rpartition("/")
        folder = self._path(head) if head else self._root or "/"
        kwargs: dict[str, Any] = {}
        if tail and self._find_takes_prefix:
            kwargs["prefix"] = tail  # filtered by the server (S3 ListObjectsV2 prefix)
        with self._guard():
            if not self._local:
                self._fs.invalidate_cache(folder)  # another process may have written
            try:
                found = self._fs.find(folder, **kwargs)
            except (FileNotFoundError, NotADirectoryError):
                found = []
        start = self._root + "/"
        keys = []
        for name in found:
            if not name.startswith(start):
                continue
            key = name[len(start) :]
            if not key.startswith(prefix):
                continue
            try:
                vs.validate_blob_key(key)
            except vs.InvalidKey:
                continue  # temporary files and anything else that is not ours
            keys.append(key)
        keys.sort()
        return iter(keys)

    def url(self, key: str, expires: int = 3600) -> str:
        vs.validate_blob_key(key)
        if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
            raise ValueError(f"expires must be a positive number of seconds, got {expires!r}")
        path = self._path(key)
        if self._local:
            return Path(path).as_uri()
        with self._guard():
            try:
                return str(self._fs.sign(path, expiration=expires))
            except NotImplementedError:
                protocol = self._fs.protocol
                name = protocol if isinstance(protocol, str) else protocol[0]
                raise NotImplementedError(
                    f"the fsspec blob backend cannot make URLs for {name}:// blobs"
                ) from None

    def close(self) -> None:
        if not self._local:
            with self._guard():
                self._fs.invalidate_cache()


@vs.hookimpl
def register_blob_backends(register):  # type: ignore[no-untyped-def]
    register(
        "fsspec",
        FsspecBlobStore,
        description="blobs as files on local disk, S3 or any fsspec filesystem (url, "
        "storage_options)",
    )
