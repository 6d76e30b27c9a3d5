"""Calls made without waiting: how the async API runs a call on the event loop thread.

A thread hand-off costs ~100 µs on a small VM, as much as a whole SQLite read. So for a store
that declares ``Capability.INLINE`` the async API first *attempts* the call on the event loop
inside :func:`no_wait`: the call computes, and wherever it would wait (a lock another thread or
process holds, a disk flush, the network) it raises :class:`WouldBlock` instead, before it has
changed anything. The async API then runs the call again on a worker thread, where it may wait.

A backend asks :func:`may_wait` before each wait, or takes its locks with :func:`held`. Once a
call has changed something it must finish: the composite wraps what follows its first backend's
write in :func:`waiting_allowed`, so a follower waits (briefly, in-process) instead of raising.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

from ..records.errors import WouldBlock

_MAY_WAIT: ContextVar[bool] = ContextVar("veritas_may_wait", default=True)


def may_wait() -> bool:
    """False while the async API attempts a call on its event loop: then raise ``WouldBlock``
    (before changing anything) instead of waiting for anything."""
    return _MAY_WAIT.get()


def no_wait() -> contextlib.AbstractContextManager[None]:
    """Run the body as an attempt that must not wait (``may_wait()`` is False inside)."""
    return _waiting(False)


def waiting_allowed() -> contextlib.AbstractContextManager[None]:
    """Run the body with waiting allowed again: what follows a change has to finish."""
    return _waiting(True)


@contextlib.contextmanager
def _waiting(allowed: bool) -> Iterator[None]:
    token = _MAY_WAIT.set(allowed)
    try:
        yield
    finally:
        _MAY_WAIT.reset(token)


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


@contextlib.contextmanager
def held(lock: _Lock, what: Any = "a lock") -> Iterator[None]:
    """Hold ``lock`` for the body: wait for it, or, when waiting is not allowed, take it only
    if it is free and raise ``WouldBlock`` (naming ``what``) if it is not."""
    if _MAY_WAIT.get():
        lock.acquire()
    elif not lock.acquire(blocking=False):
        raise WouldBlock(f"{what} is held by another thread")
    try:
        yield
    finally:
        lock.release()
