"""Validation of audit ids and blob keys, done before any backend sees them.

fsspec happily resolves ``..`` against a root folder, so the framework, not the backend, is
where path traversal is stopped. Backends call these too, so a backend used on its own is as
safe as one inside a composite.
"""

from __future__ import annotations

import re

from .errors import InvalidKey

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_BLOB_KEY_LENGTH = 1024


def validate_audit_id(audit_id: object) -> str:
    """Return ``audit_id`` if it matches ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``, else raise."""
    if not isinstance(audit_id, str):
        raise InvalidKey(f"audit id must be a str, got {type(audit_id).__name__}")
    if not _SEGMENT.fullmatch(audit_id):
        raise InvalidKey(
            f"invalid audit id {audit_id!r}: expected 1-128 characters of letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return audit_id


def validate_blob_key(key: object) -> str:
    """Return ``key`` if it is ``/``-separated valid segments of at most 1024 chars, else raise."""
    if not isinstance(key, str):
        raise InvalidKey(f"blob key must be a str, got {type(key).__name__}")
    if len(key) > MAX_BLOB_KEY_LENGTH:
        raise InvalidKey(f"blob key is {len(key)} characters long; the limit is 1024")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKey(
                f"invalid blob key {key!r}: segment {segment!r} must be 1-128 characters of "
                "letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
    return key


def validate_blob_prefix(prefix: object) -> str:
    """A listing prefix is a plain string; it may end mid-segment or with ``/``."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"blob prefix must be a str, got {type(prefix).__name__}")
    if prefix == "":
        return prefix
    head, slash, tail = prefix.rpartition("/")
    if slash:
        validate_blob_key(head)  # an empty head ("/abs") is invalid too
    if tail and not _SEGMENT.fullmatch(tail):
        raise InvalidKey(f"invalid blob prefix {prefix!r}")
    return prefix
