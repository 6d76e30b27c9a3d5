"""Per-backend resilience: a deadline for every call and retries for transient errors.

The composite wraps a backend in :class:`Guarded` when its config table sets ``timeout`` or
``retries``. Plugins need nothing for it: the wrapper sits between the composite and the store.

*Transient* means the backend may answer if asked again: a lost connection, a timeout, a
server restarting. :func:`is_transient` decides, in this order:

1. errors that are answers (``AuditExists``, ``AuditNotFound``, ``BlobNotFound``,
   ``InvalidKey``, any other ``VeritasStoreError``), ``ValueError``/``TypeError``/``KeyError``
   and ``NotImplementedError``: never transient;
2. the store's own ``is_transient(exc)`` method, if it has one and it returns True or False
   (a plugin's way to classify its errors; None means "no opinion");
3. an exception with a ``transient`` attribute (True/False) says so itself;
4. ``TimeoutError``, ``ConnectionError``, and ``OSError`` other than "no such file",
   "exists", "is a folder" and "permission denied";
5. by class name anywhere in the exception's class hierarchy, so the core imports no driver:
   SQLAlchemy's and DB-API's ``OperationalError``/``InterfaceError``/``DisconnectionError``
   (a dropped connection, a server restarting, SQLite's "database is locked"), and the
   connection errors of botocore and aiohttp (S3);
6. the same questions for the exception's ``__cause__`` (drivers wrap each other).

A backend that went away (PostgreSQL restarted) is used again as soon as it is back: nothing is
marked dead, every call asks the backend, and the SQL backend's ``pool_pre_ping`` replaces the
pooled connections the restart broke.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from ..records.errors import AuditExists, VeritasStoreError

_NEVER_TRANSIENT = (
    VeritasStoreError,
    ValueError,
    TypeError,
    KeyError,
    NotImplementedError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
_TRANSIENT_NAMES = frozenset(
    {
        "OperationalError",  # DB-API / SQLAlchemy: connection lost, server restarting, locked
        "InterfaceError",  # DB-API: the connection is closed
        "DisconnectionError",  # SQLAlchemy
        "EndpointConnectionError",  # botocore
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectionError",  # aiohttp
        "ServerDisconnectedError",
    }
)
MAX_BACKOFF = 5.0  # seconds: a retry never waits longer than this
OPERATIONS = frozenset({"create", "get", "update", "delete", "list", "put", "exists", "url"})


def is_transient(exc: BaseException, store: Any = None) -> bool:
    """True if asking the backend again may succeed (see the module's docstring)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        answer = _classify(current, store)
        if answer is not None:
            return answer
        current = current.__cause__
        seen += 1
    return False


def _classify(exc: BaseException, store: Any) -> bool | None:
    if isinstance(exc, _NEVER_TRANSIENT) and not _dbapi_like(exc):
        return False
    own = getattr(store, "is_transient", None)
    if callable(own):
        verdict = own(exc)
        if verdict is not None:
            return bool(verdict)
    flag = getattr(exc, "transient", None)
    if isinstance(flag, bool):
        return flag
    if getattr(exc, "connection_invalidated", False):  # SQLAlchemy's DBAPIError
        return True
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return True
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__):
        return True
    return None


def _dbapi_like(exc: BaseException) -> bool:
    # Some drivers' OperationalError also derives from a builtin (e.g. ValueError); the name
    # check wins for those.
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


@attrs.frozen
class Resilience:
    """A backend's ``timeout`` (seconds or None), ``retries`` and ``backoff`` (first delay)."""

    timeout: float | None = None
    retries: int = 0
    backoff: float = 0.1

    @property
    def active(self) -> bool:
        return self.timeout is not None or self.retries > 0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: about backoff, 2*backoff, 4*backoff, ..."""
        base = min(self.backoff * 2.0 ** (attempt - 1), MAX_BACKOFF)
        return base * random.uniform(0.5, 1.0)


class Guarded:
    """A store whose protocol calls run with a deadline and retry transient errors.

    Any other attribute is the wrapped store's, so it can stand in for the store.
    """

    def __init__(self, store: Any, policy: Resilience, name: str = "") -> None:
        self.store = store
        self.policy = policy
        self.name = name

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name not in OPERATIONS or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, attr, args, kwargs)

        return call

    def _call(
        self, operation: str, method: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        attempt = 0
        failed_transiently = False
        while True:
            attempt += 1
            try:
                return self._once(operation, method, args, kwargs)
            except AuditExists:
                # A create that timed out or lost its connection may have committed: the retry
                # then finds the audit. If it is the very record we wrote, the create succeeded.
                if operation == "create" and failed_transiently:
                    audit = args[0] if args else kwargs.get("audit")
                    if self.store.get(audit.id) == audit:
                        return None
                raise
            except Exception as exc:
                if attempt > self.policy.retries or not is_transient(exc, self.store):
                    raise
                failed_transiently = True
            time.sleep(self.policy.delay(attempt))

    def _once(
        self, operation: str, method: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        def run() -> Any:
            result = method(*args, **kwargs)
            if operation == "list" and not hasattr(result, "items"):
                result = list(result)  # a blob listing is an iterator: read it in the deadline
            return result

        if self.policy.timeout is None:
            return run()
        return _with_deadline(run, self.policy.timeout, f"{self.name or 'backend'} {operation}()")

    def __repr__(self) -> str:
        return f"Guarded({self.store!r}, {self.policy})"


def _with_deadline(call: Callable[[], Any], timeout: float, what: str) -> Any:
    """Run ``call`` in a daemon thread; raise ``TimeoutError`` if it has not returned in time.

    A thread cannot be stopped: a hung call is abandoned and ends when the backend answers.
    Daemon threads, so a hung backend never keeps the process from exiting.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=f"veritas-deadline {what}", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"{what} did not answer within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
