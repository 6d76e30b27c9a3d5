"""The write path of a composite: every write goes through every backend in write order.

Audit writes go to a *leader* first: the first backend in write order that answers. The leader
decides the logical outcome — ``AuditExists``, ``AuditNotFound`` — before any other backend is
touched, so a rejected write changes nothing. The other backends then follow in parallel; a
follower that disagrees only because it is behind (a create that finds a stale copy, an update
of an audit it never saw) is brought in line. Blob writes have no precondition, so every blob
backend is written at once, unless a migration stage pins the order.

A failure on a ``required`` backend fails the operation with ``WriteError`` (every backend's
outcome attached); a failure on an optional one is logged and reported to the
``backend_error`` hook. With a journal (``journal.py``), each write's intent is recorded before
it fans out and kept when a backend misses it, for ``repair`` to complete.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, TypeVar

from ..plugin_api.inline import may_wait, waiting_allowed
from ..records.errors import AuditExists, AuditNotFound, NotAttempted, WouldBlock, WriteError
from .base import Composite, S

log = logging.getLogger("veritas_store.composite")

T = TypeVar("T")

# Errors that are answers, not failures: the leader raising one ends the write unchanged.
# WouldBlock too: an attempt on the event loop whose leader would have waited, to run again.
_LOGICAL = (AuditExists, AuditNotFound, WouldBlock)


class FanOut(Composite[S]):
    """Writes through every backend, journaled when a durable backend may miss one."""

    def _fan_out(
        self,
        operation: str,
        key: str,
        lead: Callable[[Any], T],
        follow: Callable[[Any], Any] | None = None,
        *,
        content_type: str | None = None,
    ) -> tuple[T, list[Any]]:
        """Write through every backend; return the leader's result and the followers' results.

        The write's intent is journaled first; it is cleared when every backend has the write
        (or a logical refusal left every backend untouched), and kept otherwise. Attempted on
        the event loop (``Capability.INLINE``), only the leader may raise ``WouldBlock``: the
        followers come after a change, so they are allowed to wait.
        """
        inline = self._inline_or_refuse()
        entry_id = None
        if self.journal is not None:
            try:
                entry_id = self.journal.intent(
                    self.kind, operation, key, [m.name for m in self._write], content_type
                )
            except Exception as exc:
                raise WriteError(
                    f"{operation}({key}) not attempted: the repair journal "
                    f"{str(self.journal.path)!r} could not record it: {exc}",
                    {m.name: NotAttempted("journal failed") for m in self._write},
                ) from exc
        outcomes: dict[str, BaseException | None] = {}
        try:
            result = self._write_through(operation, key, lead, follow or lead, outcomes, inline)
        except _LOGICAL:
            self._settle(entry_id, operation, key, None)
            raise
        except BaseException:
            self._settle(entry_id, operation, key, outcomes)
            raise
        self._settle(entry_id, operation, key, outcomes)
        return result

    def _delete(self, key: str) -> bool:
        """Delete ``key`` everywhere; whether any backend had it."""
        first, rest = self._fan_out("delete", key, lambda s: s.delete(key))
        return bool(first) or any(rest)

    def _settle(
        self,
        entry_id: int | None,
        operation: str,
        key: str,
        outcomes: dict[str, BaseException | None] | None,
    ) -> None:
        """Clear or keep the journal entry of a finished write (``None``: nothing written)."""
        if entry_id is None or self.journal is None:
            return
        missing = [
            m.name
            for m in self._write
            if outcomes is not None and outcomes.get(m.name, NotAttempted()) is not None
        ]
        try:
            if not missing:
                self.journal.clear(entry_id)
                return
            error = "; ".join(
                f"{name}: {type(outcomes[name]).__name__}: {outcomes[name]}"
                if outcomes and name in outcomes
                else f"{name}: interrupted"
                for name in missing
            )
            self.journal.keep(entry_id, missing, error)
        except Exception:
            # The intent stays on disk, so repair still finds this write.
            log.exception("the repair journal could not settle %s(%s)", operation, key)
            return
        log.warning("%s %s(%s) journaled for repair: %s", self.kind, operation, key, error)
        self._hook(
            "journal_entry",
            kind=self.kind,
            operation=operation,
            key=key,
            backends=tuple(missing),
            error=error,
        )

    def _write_through(
        self,
        operation: str,
        key: str,
        lead: Callable[[Any], T],
        follow: Callable[[Any], Any],
        outcomes: dict[str, BaseException | None],
        inline: bool = False,
    ) -> tuple[T, list[Any]]:
        remaining = list(self._write)
        leader_result: Any = None
        while remaining and not self._parallel:
            member = remaining.pop(0)
            try:
                leader_result = lead(member.client)
            except _LOGICAL:
                raise  # nothing was written anywhere
            except Exception as exc:
                outcomes[member.name] = exc
                if member.required:
                    for m in remaining:
                        outcomes[m.name] = NotAttempted(f"{member.name!r} failed first")
                    raise WriteError(
                        f"{operation}({key}) failed on required backend {member.name!r}", outcomes
                    ) from exc
                self._report(member, operation, key, exc)
                continue
            outcomes[member.name] = None
            break
        else:
            if not self._parallel:
                raise WriteError(f"{operation}({key}) failed on every backend", outcomes)
        if not remaining:  # one backend: the leader's write was the whole of it
            return leader_result, []

        calls: list[Callable[[], Any]] = [functools.partial(follow, m.client) for m in remaining]
        # On the event loop, the leader has changed something: the rest of the call (the
        # followers, their outcomes and reports) must finish, so it may wait. Parallel writes
        # have no leader (inline only with one backend).
        with waiting_allowed() if inline and not self._parallel else nullcontext():
            results = self._run(calls, inline=inline)
            return self._followed(operation, key, remaining, results, leader_result, outcomes)

    def _followed(
        self,
        operation: str,
        key: str,
        remaining: list[Any],
        results: list[Any],
        leader_result: Any,
        outcomes: dict[str, BaseException | None],
    ) -> tuple[Any, list[Any]]:
        """The outcome of a write once ``remaining`` backends were written (``results``)."""
        if self._parallel:
            if not may_wait() and isinstance(results[0], WouldBlock):
                raise results[0]  # the one backend's write is the whole call: nothing changed
            answers = [r for r in results if not isinstance(r, Exception)]
            if not answers:
                outcomes.update(zip((m.name for m in remaining), results, strict=True))
                raise WriteError(f"{operation}({key}) failed on every backend", outcomes)
            leader_result = answers[0]
        failed_required: Exception | None = None
        for member, result in zip(remaining, results, strict=True):
            if isinstance(result, Exception):
                outcomes[member.name] = result
                if member.required:
                    failed_required = failed_required or result
                else:
                    self._report(member, operation, key, result)
            else:
                outcomes[member.name] = None
        if failed_required is not None:
            names = [n for n, e in outcomes.items() if e is not None]
            raise WriteError(
                f"{operation}({key}) failed on backend(s) {', '.join(map(repr, names))}", outcomes
            ) from failed_required
        return leader_result, [r for r in results if not isinstance(r, Exception)]
