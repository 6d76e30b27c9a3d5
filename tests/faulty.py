"""A fault-injecting test backend: a REAL backend that raises on chosen operations.

``FaultyStore`` wraps a real audit or blob store (memory, SQLite, local fsspec, ...) and passes
every call through, except that the operations it is told to fail raise a chosen exception
first (before the real backend sees the call), optionally only for the next N such calls.
Every call is counted, failed or not, so a test can tell whether a backend was asked at all.

``FaultyPlugin`` registers it as backend type ``faulty`` for audits and blobs, so tests build
it from a config dict like any other backend::

    stores = veritas_store.open_stores(
        {
            "audits": {"backends": {
                "flaky": {"type": "faulty", "inner": "sql", "url": "sqlite:///x.db",
                          "fail_on": ["create"], "error": "ConnectionError", "times": 1},
            }},
            ...
        },
        plugins=[FaultyPlugin()],
    )
    flaky = stores.audits.backends["flaky"]      # the FaultyStore
    flaky.fail("update", error=OSError("disk"))  # toggle faults at run time
    flaky.fail("create", after=True)             # the real call happens, then it raises
    flaky.hang("put")                            # calls block until heal() (or seconds=)
    flaky.heal()

Options of the ``faulty`` type: ``inner`` (a registered backend type of the same kind, default
``memory``), ``fail_on`` (operation names), ``error`` (a builtin exception's name, an exception
class or an instance; default ``ConnectionError``), ``times`` (fail only the next N calls of the
failing operations; default: until healed), ``capabilities`` (declare these instead of the
inner backend's declaration: a list becomes a frozenset, anything else is kept as given, to
test a broken declaration). Every other option goes to the inner backend.
"""

from __future__ import annotations

import builtins
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import veritas_store as vs
from veritas_store.plugin_api.registry import get_registry

AUDIT_OPERATIONS = frozenset({"create", "get", "update", "delete", "list", "close"})
BLOB_OPERATIONS = frozenset({"put", "get", "exists", "delete", "list", "url", "close"})
OPERATIONS = AUDIT_OPERATIONS | BLOB_OPERATIONS

ErrorSpec = str | type[BaseException] | BaseException


def _error_factory(error: ErrorSpec) -> Callable[[str], BaseException]:
    """A function making the exception to raise for an operation."""
    if isinstance(error, str):
        cls = getattr(builtins, error, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise ValueError(f"error must name a builtin exception class, got {error!r}")
        error = cls
    if isinstance(error, type) and issubclass(error, BaseException):
        cls = error
        return lambda operation: cls(f"injected fault in {operation}()")
    if isinstance(error, BaseException):
        instance = error
        return lambda operation: instance
    raise TypeError(f"error must be an exception class, instance or name, got {error!r}")


class FaultyStore:
    """A real store whose chosen operations raise; counts every call per operation."""

    def __init__(
        self,
        inner: Any,
        fail_on: Iterable[str] = (),
        error: ErrorSpec = ConnectionError,
        times: int | None = None,
    ) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()  # every call, failed or not
        self.failures: Counter[str] = Counter()  # the calls that raised an injected fault
        self._lock = threading.Lock()
        self._fail_on: frozenset[str] = frozenset()
        self._make_error = _error_factory(error)
        self._remaining: int | None = None
        self._after = False
        self._hang_on: frozenset[str] = frozenset()
        self._hang_seconds: float | None = None
        self._released = threading.Event()
        fail_on = list(fail_on)
        if fail_on:
            self.fail(*fail_on, error=error, times=times)

    # -- controls ----------------------------------------------------------------------

    def fail(
        self,
        *operations: str,
        error: ErrorSpec = ConnectionError,
        times: int | None = None,
        after: bool = False,
    ) -> FaultyStore:
        """From now on, ``operations`` raise ``error`` (only the next ``times`` calls if set).

        ``after=True`` lets the real call happen first (a commit whose answer was lost).
        """
        unknown = sorted(set(operations) - OPERATIONS)
        if unknown:
            raise ValueError(f"unknown operation(s) {unknown}; known: {sorted(OPERATIONS)}")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 0
        ):
            raise ValueError(f"times must be a non-negative int or None, got {times!r}")
        with self._lock:
            self._fail_on = frozenset(operations)
            self._make_error = _error_factory(error)
            self._remaining = times
            self._after = after
        return self

    def hang(self, *operations: str, seconds: float | None = None) -> FaultyStore:
        """From now on, ``operations`` block: for ``seconds``, or until ``heal()``."""
        unknown = sorted(set(operations) - OPERATIONS)
        if unknown:
            raise ValueError(f"unknown operation(s) {unknown}; known: {sorted(OPERATIONS)}")
        with self._lock:
            self._hang_on = frozenset(operations)
            self._hang_seconds = seconds
            self._released = threading.Event()
        return self

    def heal(self) -> FaultyStore:
        """Stop injecting faults and release hung calls (the counters are kept)."""
        with self._lock:
            self._fail_on = frozenset()
            self._remaining = None
            self._hang_on = frozenset()
            self._released.set()
        return self

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.failures.clear()

    @property
    def failing(self) -> frozenset[str]:
        with self._lock:
            if self._remaining == 0:
                return frozenset()
            return self._fail_on

    # -- pass-through --------------------------------------------------------------------

    def _wait_if_hung(self, operation: str) -> None:
        with self._lock:
            if operation not in self._hang_on:
                return
            released, seconds = self._released, self._hang_seconds
        released.wait(seconds)

    def _before(self, operation: str, *, count: bool = True) -> None:
        with self._lock:
            if count:
                self.calls[operation] += 1
            if operation not in self._fail_on:
                return
            if self._remaining is not None:
                if self._remaining <= 0:
                    return
                self._remaining -= 1
            self.failures[operation] += 1
            exc = self._make_error(operation)
        raise exc

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not found on FaultyStore itself
        if name == "inner":  # not yet set (e.g. during unpickling): no recursion
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if name not in OPERATIONS or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._wait_if_hung(name)
            if self._after:
                self.calls[name] += 1
                result = attr(*args, **kwargs)
                self._before(name, count=False)
                return result
            self._before(name)
            return attr(*args, **kwargs)

        call.__name__ = name
        return call

    def __repr__(self) -> str:
        return f"FaultyStore({self.inner!r}, failing={sorted(self.failing)})"


class FaultyPlugin:
    """Registers the ``faulty`` audit and blob backend types; keeps every store it made."""

    def __init__(self) -> None:
        self.instances: list[FaultyStore] = []

    def _factory(self, kind: str) -> Callable[..., FaultyStore]:
        def factory(
            inner: str = "memory",
            fail_on: Iterable[str] = (),
            error: str = "ConnectionError",
            times: int | None = None,
            hang_on: Iterable[str] = (),
            capabilities: Any = None,
            **inner_options: Any,
        ) -> FaultyStore:
            if inner == "faulty":
                raise ValueError("a faulty backend cannot wrap another faulty backend")
            backend_type = get_registry().lookup(kind, inner)
            if backend_type is None:
                raise ValueError(f"unknown inner {kind} backend type {inner!r}")
            store = FaultyStore(backend_type.factory(**inner_options), fail_on, error, times)
            if hang_on:
                store.hang(*hang_on)
            if capabilities is not None:
                declared = (
                    frozenset(capabilities) if isinstance(capabilities, list) else capabilities
                )
                store.capabilities = declared  # shadows the inner backend's declaration
            self.instances.append(store)
            return store

        return factory

    @vs.hookimpl
    def register_audit_backends(self, register: Any) -> None:
        register(
            "faulty",
            self._factory("audits"),
            description="a real audit backend that raises injected faults (tests only)",
        )

    @vs.hookimpl
    def register_blob_backends(self, register: Any) -> None:
        register(
            "faulty",
            self._factory("blobs"),
            description="a real blob backend that raises injected faults (tests only)",
        )
