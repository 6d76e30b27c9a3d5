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
import hashlib
import inspect
import os
import secrets as _secrets
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec import AbstractFileSystem
from fsspec.asyn import AsyncFileSystem
from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

import veritas_store as vs

# Option names (lowercased) containing one of these are secrets: never shown in a repr.
_SECRET_MARKERS = (
    "key",
    "secret",
    "token",
    "passw",
    "credential",
    "auth",
    "private",
    "signature",
    "session",
    "cookie",
)
_REDACTED = "***"


@dataclass(frozen=True)
class _Dialect:
    """What one kind of filesystem needs beyond the generic fsspec calls."""

    content_type_kwarg: str | None = None  # how pipe_file() stores a content type
    read_kwargs: Mapping[str, Any] = field(default_factory=dict)  # for cat_file()


_GENERIC = _Dialect()
# s3fs: one GET per read (its default, parallel ranged GETs after a HEAD, could mix two
# versions of a large blob that is overwritten meanwhile).
_S3 = _Dialect(content_type_kwarg="ContentType", read_kwargs={"max_concurrency": 1})
_DIALECTS = {"s3": _S3, "s3a": _S3}


def _checked_options(url: Any, storage_options: Any) -> tuple[str, dict[str, Any]]:
    """The url as text and the storage options without empty values, or a TypeError or
    ValueError saying what is wrong."""
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str):
        raise TypeError(f"fsspec blob backend: url must be a str, got {type(url).__name__}")
    if not url.strip():
        raise ValueError("fsspec blob backend: url must not be empty")
    if storage_options is None:
        storage_options = {}
    if not isinstance(storage_options, Mapping):
        raise TypeError(
            "fsspec blob backend: storage_options must be a table/dict, "
            f"got {type(storage_options).__name__}"
        )
    return url, _drop_empty(storage_options, "storage_options")


def _drop_empty(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A copy of ``options`` without entries whose value is ``""`` (at any depth)."""
    cleaned: dict[str, Any] = {}
    for name, value in options.items():
        if not isinstance(name, str):
            raise TypeError(f"{where} keys must be str, got {type(name).__name__} {name!r}")
        if isinstance(value, str) and value == "":
            continue  # "${VAR:-}" in a config means "unset"
        if isinstance(value, Mapping):
            value = _drop_empty(value, f"{where}.{name}")
        cleaned[name] = value
    return cleaned


def _with_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults for shared object stores, where the options leave them unsaid.

    The listing cache is off: other processes write to the same bucket, and a cached listing
    (filled by one thread's ``list()`` while another writes) would make ``exists()`` or
    ``get()`` miss a fresh blob. S3 with a region presigns with SigV4 (below).
    """
    if "::" in url:
        return options
    protocol, _ = split_protocol(url)
    if protocol in _DIALECTS and _DIALECTS[protocol] is _S3:
        options = _sigv4_when_regional(options)
    if "use_listings_cache" in options:
        return options
    try:
        cls = fsspec.get_filesystem_class(protocol or "file")
    except (ValueError, ImportError):
        return options  # url_to_fs() reports it
    if issubclass(cls, AsyncFileSystem):  # s3fs, gcsfs, adlfs, http: they take the option
        return {**options, "use_listings_cache": False}
    return options


def _sigv4_when_regional(options: dict[str, Any]) -> dict[str, Any]:
    """Presign with SigV4 when ``client_kwargs.region_name`` is set.

    botocore presigns S3 URLs with the legacy SigV2 unless told otherwise; SigV4 is what every
    region accepts (newer ones accept nothing else), and it needs the region. An explicit
    ``config_kwargs.signature_version`` wins.
    """
    client = options.get("client_kwargs")
    config = options.get("config_kwargs", {})
    if not isinstance(client, Mapping) or not client.get("region_name"):
        return options
    if not isinstance(config, Mapping) or "signature_version" in config:
        return options
    return {**options, "config_kwargs": {**config, "signature_version": "s3v4"}}


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def _redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: (
            _REDACTED
            if _is_secret(name)
            else _redact_options(value)
            if isinstance(value, Mapping)
            else value
        )
        for name, value in options.items()
    }


def _redact_url(url: str) -> str:
    """``url`` without a password in its authority part or a query string (e.g. SAS tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{_REDACTED}@{host}" if ":" in userinfo else f"{_REDACTED}@{host}"
    query = _REDACTED if parts.query else ""
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class FsspecBlobStore:
    """Blobs stored under ``url`` on any fsspec filesystem (local path, file://, s3://...).

    ``storage_options`` go to the filesystem (``fsspec.core.url_to_fs(url, **options)``);
    entries whose value is ``""`` are dropped at any depth, so a config can write
    ``endpoint_url = "${S3_ENDPOINT_URL:-}"`` for "not set".
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        url, options = _checked_options(url, storage_options)
        self._url = url
        self._options = options
        shown = _redact_url(url)
        try:
            fs, root = fsspec.core.url_to_fs(url, **_with_defaults(url, options))
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
        self._dialect = next((_DIALECTS[p] for p in protocols if p in _DIALECTS), _GENERIC)
        # Read options the installed filesystem takes (s3fs before 2025.5 has no
        # max_concurrency: its cat_file already reads with one GET).
        self._read_kwargs = _accepted(fs, self._dialect.read_kwargs)
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
        self._hashing = _Hashing()

    @staticmethod
    def check_options(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        """Raise ValueError or TypeError for bad options, creating, connecting and importing
        nothing (``open_stores`` asks every backend this before it opens any)."""
        url, _ = _checked_options(url, storage_options)
        if "::" in url:
            return  # a chained URL: left to the open
        protocol, path = split_protocol(url)
        if protocol is None or protocol in ("file", "local"):
            return
        if protocol not in fsspec.available_protocols():
            raise ValueError(
                f"fsspec blob backend {_redact_url(url)!r}: Protocol not known: {protocol}"
            )
        if not path.strip("/"):
            raise ValueError(
                f"fsspec blob backend {_redact_url(url)!r}: the url names no bucket or folder "
                "to store under"
            )

    # --- helpers -------------------------------------------------------------------------

    def __repr__(self) -> str:
        options = _redact_options(self._options)
        return f"FsspecBlobStore(url={_redact_url(self._url)!r}, storage_options={options!r})"

    @property
    def storage_options(self) -> dict[str, Any]:
        """The options the filesystem was opened with (empty values dropped), secrets masked."""
        return _redact_options(self._options)

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
        if self._local:
            # A large blob is hashed on a helper thread while this one waits for the disk
            # (both release the GIL): the digest costs no time beside the two fsyncs.
            digest = self._hashing.submit(data) if len(data) >= _HASH_ASIDE else None
            try:
                self._put_local(path, data)
            except BaseException:
                if digest is not None:
                    digest.cancel()
                raise
            sha256 = digest.result() if digest is not None else _sha256(data)
            return vs.BlobInfo(key, len(data), sha256, content_type)
        else:
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
        return vs.BlobInfo.of(key, data, content_type)

    def _put_local(self, path: str, data: bytes) -> None:
        folder, name = os.path.split(path)
        for attempt in range(5):
            # Starts with "." so it is never a valid key: list() skips it.
            temp = os.path.join(folder, f".{name}.{_secrets.token_hex(8)}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileNotFoundError:
                if attempt == 4:
                    raise
                # A new folder, or one a concurrent delete() pruned: made only then, so a
                # save into an existing folder costs no stat or mkdir.
                os.makedirs(folder, exist_ok=True)
                continue
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            _fsync_folder(folder)
            return

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
            self._prune_local(os.path.dirname(path))
            return True
        with self._guard():
            if not self.exists(key):
                return False
            try:
                self._fs.rm_file(path)
            except FileNotFoundError:
                return False
            return True

    def _prune_local(self, folder: str) -> None:
        """Remove the folders that deleting a blob left empty, up to (not including) the root."""
        root = self._root or "/"
        while folder != root and folder.startswith(self._root + "/"):
            try:
                os.rmdir(folder)
            except OSError:
                return  # not empty (or already gone): stop
            folder = os.path.dirname(folder)

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
        self._hashing.close()
        if not self._local:
            with self._guard():
                self._fs.invalidate_cache()


_HASH_ASIDE = 64 * 1024  # below this, handing the hash to another thread costs more than it


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Hashing:
    """A small thread pool, started on first use (and again in a forked child, which does not
    inherit its thread), that computes sha256 digests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def submit(self, data: bytes) -> Future[str]:
        pool = self._pool
        if pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    workers = min(4, os.cpu_count() or 1)
                    self._pool = ThreadPoolExecutor(workers, thread_name_prefix="veritas-sha256")
                    self._pid = os.getpid()
                pool = self._pool
        return pool.submit(_sha256, data)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=True)


def _accepted(fs: AbstractFileSystem, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``kwargs`` that ``fs``'s cat_file (or the coroutine behind it) takes by name."""
    if not kwargs:
        return {}
    target = getattr(fs, "_cat_file", None) or fs.cat_file
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(kwargs)
    return {name: value for name, value in kwargs.items() if name in parameters}


def _fsync_folder(folder: str) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@vs.hookimpl
def register_blob_backends(register):  # type: ignore[no-untyped-def]
    register(
        "fsspec",
        FsspecBlobStore,
        description="blobs as files on local disk, S3 or any fsspec filesystem (url, "
        "storage_options)",
    )
