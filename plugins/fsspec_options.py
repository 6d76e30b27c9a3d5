"""The ``fsspec`` backend's options: checking ``url`` and ``storage_options``, the defaults a
filesystem needs (S3 signature version), what each filesystem's calls take, and masking secrets
in everything shown."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec import AbstractFileSystem
from fsspec.asyn import AsyncFileSystem
from fsspec.core import split_protocol

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


GENERIC = _Dialect()
# s3fs: one GET per read (its default, parallel ranged GETs after a HEAD, could mix two
# versions of a large blob that is overwritten meanwhile).
_S3 = _Dialect(content_type_kwarg="ContentType", read_kwargs={"max_concurrency": 1})
DIALECTS = {"s3": _S3, "s3a": _S3}


def checked_options(url: Any, storage_options: Any) -> tuple[str, dict[str, Any]]:
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


def with_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults for shared object stores, where the options leave them unsaid.

    The listing cache is off: other processes write to the same bucket, and a cached listing
    (filled by one thread's ``list()`` while another writes) would make ``exists()`` or
    ``get()`` miss a fresh blob. S3 with a region presigns with SigV4 (below).
    """
    if "::" in url:
        return options
    protocol, _ = split_protocol(url)
    if protocol in DIALECTS and DIALECTS[protocol] is _S3:
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


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: (
            _REDACTED
            if _is_secret(name)
            else redact_options(value)
            if isinstance(value, Mapping)
            else value
        )
        for name, value in options.items()
    }


def redact_url(url: str) -> str:
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


def accepted(fs: AbstractFileSystem, kwargs: Mapping[str, Any]) -> dict[str, Any]:
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
