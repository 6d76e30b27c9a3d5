"""Per-audit locks for read-modify-write sequences within one process."""

from __future__ import annotations

import threading
import zlib


class KeyedLocks:
    """A fixed set of locks striped by key: the same key always gets the same lock.

    ``ScreenshotStorage.save`` and ``AuditRecorder`` read an audit, change it and write it
    back; holding the audit's lock keeps two such sequences in one process from losing each
    other's change.
    """

    def __init__(self, stripes: int = 64) -> None:
        self._locks = [threading.RLock() for _ in range(stripes)]

    def __call__(self, key: str) -> threading.RLock:
        return self._locks[zlib.crc32(key.encode()) % len(self._locks)]
