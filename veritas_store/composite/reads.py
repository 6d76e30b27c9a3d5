"""The read path of a composite: backends are asked in read order.

Reads skip a backend that raises, which is not the same as one that answers "not here"; when
every backend raised the read raises ``BackendUnavailable``. A copy found lower in read order
than where it belongs is copied up (*read-repair*, when the section asks for it), unless the
journal says a write of it is under way; in a migration's ``shadow`` and ``live`` stages a
sample of reads is compared with the other side (``shadow_mismatch``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

from ..records.errors import BackendUnavailable, WouldBlock
from .base import Composite, Member, S

log = logging.getLogger("veritas_store.composite")

T = TypeVar("T")


class Reads(Composite[S]):
    """Reads in priority order, with read-repair and the shadow comparison."""

    def _lookup(
        self, key: str, fetch: Callable[[Any], Any], accept: Callable[[Member[S], Any], bool]
    ) -> tuple[Any, Member[S] | None, list[Member[S]], dict[str, Exception]]:
        """The first answer in read order that ``accept`` takes.

        ``fetch`` returns the item or None for "not here". Returns the item (or None), the
        member that answered, the members before it that did not have it (or whose copy was
        not accepted), and the errors of those that raised.
        """
        self._inline_or_refuse()
        missed: list[Member[S]] = []
        errors: dict[str, Exception] = {}
        for position, member in enumerate(self._read):
            try:
                value = fetch(member.client)
            except WouldBlock:
                raise  # an attempt on the event loop: it runs again on a worker
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, "get", key, exc)
                continue
            if value is None or not accept(member, value):
                missed.append(member)
                continue
            if position > 0 and self._deleted_in(member, key):
                missed.append(member)  # a delete this backend missed: not a live copy
                continue
            return value, member, missed, errors
        return None, None, missed, errors

    def _deleted_in(self, member: Member[S], key: str) -> bool:
        """The journal says this backend missed (or may still miss) a delete of ``key``."""
        if self.journal is None:
            return False
        try:
            entry = self.journal.latest(self.kind, key)
        except Exception:
            log.exception("the repair journal could not be read for %r", key)
            return False
        return entry is not None and entry.operation == "delete" and member.name in entry.behind

    def _read_repair(
        self, key: str, value: Any, source: Member[S], missed: list[Member[S]]
    ) -> None:
        """Copy an item found lower in read order to the backends above that lacked it."""
        targets = [m for m in missed if m in self._write]
        if not targets:
            return
        if self.journal is not None:
            try:
                entry = self.journal.latest(self.kind, key)
            except Exception:
                log.exception("the repair journal could not be read for %r", key)
                return
            if entry is not None and (entry.in_flight() or entry.operation == "delete"):
                return  # a write of this item is under way or unsettled: leave it to it
        for member in targets:
            try:
                self._copy(member.client, key, value)
            except Exception as exc:
                self._report(member, "read_repair", key, exc)
            else:
                log.info(
                    "read-repair copied %s %r from %r to %r",
                    self.kind,
                    key,
                    source.name,
                    member.name,
                )

    def _compare_copies(
        self, key: str, value: Any, source: Member[S] | None, errors: dict[str, Exception]
    ) -> None:
        """Shadow read: compare the authoritative answer with the compared side's (sampled)."""
        shadow = self._compare
        if shadow is None or random.random() >= self.routing.compare_ratio:
            return
        first = self._read[0]
        if first.name in errors:
            return  # the authoritative side did not answer: nothing to compare
        primary = value if source is first else None
        if source is shadow:
            other = value
        else:
            try:
                other = self._fetch(shadow.client, key)
            except Exception as exc:
                self._report(shadow, "compare", key, exc)
                return
        detail = self._difference(primary, other)
        if detail is None:
            return
        log.warning(
            "%s %r differs between %r and %r: %s", self.kind, key, first.name, shadow.name, detail
        )
        self._hook(
            "shadow_mismatch",
            kind=self.kind,
            key=key,
            authoritative=first.name,
            compared=shadow.name,
            detail=detail,
        )

    def _first_answer(
        self,
        operation: str,
        key: str | None,
        call: Callable[[Any], T],
        members: list[Member[S]] | None = None,
    ) -> T:
        """The answer of the first backend (in read order, of ``members``) that does not raise."""
        self._inline_or_refuse()
        errors: dict[str, Exception] = {}
        for member in self._read if members is None else members:
            try:
                return call(member.client)
            except WouldBlock:
                raise
            except Exception as exc:
                errors[member.name] = exc
                self._report(member, operation, key, exc)
        raise BackendUnavailable(
            f"{operation}({key or ''}) failed on every {self.kind} backend: "
            + "; ".join(f"{n}: {type(e).__name__}: {e}" for n, e in errors.items()),
            errors,
        )

    def _get(self, key: str) -> tuple[Any, str | None]:
        value, source, missed, errors = self._lookup(
            key, lambda s: self._fetch(s, key), lambda m, v: True
        )
        if source is None and len(errors) == len(self._read):
            raise BackendUnavailable(f"get({key}) failed on every {self.kind} backend", errors)
        self._compare_copies(key, value, source, errors)
        if source is not None and self.read_repair and missed:
            self._read_repair(key, value, source, missed)
        return value, source.name if source else None
