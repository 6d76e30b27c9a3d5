"""Verify two backends against each other: the operator's tool for checking a backfill.

``verify`` walks both backends at once in the order ``copy`` uses (audits newest first in the
shared keyset order, blobs by key), a merge, so memory stays small. It reports every audit
missing on either side or differing in some fields, and every blob missing on either side or
with a different sha256.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from ..records.errors import BlobNotFound
from ..records.model import Audit
from ..records.paging import sort_key
from ..wiring.config import BackendConfig, load_config
from ..wiring.stores import ConfigSource, open_stores, registry_with
from .pairs import MAX_DETAILS, PAGE_SIZE, Progress, no_progress, opened, pairs_for, sha256_of


@attrs.frozen
class Difference:
    """One item that differs between source and target."""

    key: str  # the audit id or blob key
    problem: str  # "missing_in_target", "missing_in_source" or "different"
    fields: tuple[str, ...] = ()  # audits: the fields that differ
    source_sha256: str | None = None  # blobs
    target_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "problem": self.problem}
        if self.fields:
            data["fields"] = list(self.fields)
        if self.source_sha256 or self.target_sha256:
            data.update(source_sha256=self.source_sha256, target_sha256=self.target_sha256)
        return data


PROBLEMS = ("missing_in_target", "missing_in_source", "different")


@attrs.define
class VerifyReport:
    """One section's comparison. ``differences`` lists the first ``max_details`` only."""

    kind: str
    source: str
    target: str
    compared: int = 0  # distinct keys seen on either side
    counts: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(PROBLEMS, 0))
    differences: list[Difference] = attrs.field(factory=list)
    max_details: int = MAX_DETAILS
    skipped: str | None = None  # why this pair was not compared
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def clean(self) -> bool:
        return self.total == 0

    def add(self, difference: Difference) -> None:
        self.counts[difference.problem] += 1
        if len(self.differences) < self.max_details:
            self.differences.append(difference)

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.kind,
            "source": self.source,
            "target": self.target,
            "skipped": self.skipped,
            "compared": self.compared,
            "clean": self.clean,
            "total_differences": self.total,
            **self.counts,
            "differences": [d.to_dict() for d in self.differences],
            "seconds": self.seconds,
        }


def _all_audits(store: Any, page_size: int) -> Iterator[Audit]:
    cursor = None
    while True:
        page = store.list(limit=page_size, cursor=cursor)
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def audit_differences(a: Audit, b: Audit) -> tuple[str, ...]:
    """The names of the fields in which two audits differ."""
    return tuple(f.name for f in attrs.fields(Audit) if getattr(a, f.name) != getattr(b, f.name))


def verify_audits(
    source: Any,
    target: Any,
    report: VerifyReport,
    *,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compare every audit of two backends, field by field (a merge of their listings)."""
    progress = progress or no_progress
    task = f"verify audits {report.source} ↔ {report.target}"
    started = time.perf_counter()
    only_source: list[str] = []
    only_target: list[str] = []
    a_items, b_items = _all_audits(source, page_size), _all_audits(target, page_size)
    a, b = next(a_items, None), next(b_items, None)
    seen = 0
    while a is not None or b is not None:
        if b is None or (a is not None and sort_key(a) > sort_key(b)):
            assert a is not None
            only_source.append(a.id)
            a = next(a_items, None)
        elif a is None or sort_key(b) > sort_key(a):
            only_target.append(b.id)
            b = next(b_items, None)
        else:  # same created_at and id
            report.compared += 1
            fields = audit_differences(a, b)
            if fields:
                report.add(Difference(a.id, "different", fields))
            a, b = next(a_items, None), next(b_items, None)
        seen += 1
        if seen % page_size == 0:
            progress(task, seen, None)
    # An audit whose created_at differs sits at two places in the two listings.
    moved = set(only_source) & set(only_target)
    for audit_id in sorted(moved):
        x, y = source.get(audit_id), target.get(audit_id)
        report.compared += 1
        if x is not None and y is not None:
            report.add(Difference(audit_id, "different", audit_differences(x, y)))
    for audit_id in only_source:
        if audit_id not in moved:
            report.compared += 1
            report.add(Difference(audit_id, "missing_in_target"))
    for audit_id in only_target:
        if audit_id not in moved:
            report.compared += 1
            report.add(Difference(audit_id, "missing_in_source"))
    progress(task, seen, seen)
    report.seconds = time.perf_counter() - started
    return report


def verify_blobs(
    source: Any, target: Any, report: VerifyReport, *, progress: Progress | None = None
) -> VerifyReport:
    """Compare every blob of two backends by existence and sha256."""
    progress = progress or no_progress
    task = f"verify blobs {report.source} ↔ {report.target}"
    started = time.perf_counter()
    a_keys, b_keys = set(source.list()), set(target.list())
    keys = sorted(a_keys | b_keys)
    progress(task, 0, len(keys))
    for i, key in enumerate(keys, 1):
        report.compared += 1
        a = _blob_sha256(source, key) if key in a_keys else None
        b = _blob_sha256(target, key) if key in b_keys else None
        if a is None and b is None:
            pass  # deleted from both while we looked
        elif b is None:
            report.add(Difference(key, "missing_in_target", source_sha256=a))
        elif a is None:
            report.add(Difference(key, "missing_in_source", target_sha256=b))
        elif a != b:
            report.add(Difference(key, "different", source_sha256=a, target_sha256=b))
        progress(task, i, len(keys))
    report.seconds = time.perf_counter() - started
    return report


def _blob_sha256(store: Any, key: str) -> str | None:
    try:
        return sha256_of(store.get(key))
    except BlobNotFound:
        return None


def verify_backends(
    config: ConfigSource,
    source: str | None = None,
    target: str | None = None,
    *,
    max_details: int = MAX_DETAILS,
    skip: Callable[[BackendConfig], bool] | None = None,
    progress: Progress | None = None,
    plugins: Iterable[object] = (),
) -> list[VerifyReport]:
    """Compare two named backends in every section that declares both, or (no names) every
    enabled backend with its section's authoritative one.

    Without names, a pair with a backend for which ``skip`` is true gets a report with
    ``skipped`` set instead of a comparison (the CLI skips in-memory backends: another
    process's memory is not there to compare).
    """
    if (source is None) != (target is None):
        raise ValueError("name both backends (source and target) or neither")
    cfg = load_config(config)
    if source is not None and target is not None:
        pairs = pairs_for(cfg, source, target)
        registry = registry_with(plugins)
        reports = []
        for pair in pairs:
            report = VerifyReport(pair.kind, source, target, max_details=max_details)
            with opened(cfg, registry, pair) as (src, dst):
                _verify(pair.kind, src, dst, report, progress)
            reports.append(report)
        return reports
    reports = []
    with open_stores(cfg, plugins=plugins) as stores:
        for kind, composite in (("audits", stores.audits), ("blobs", stores.blobs)):
            lead = composite.authoritative
            backends = composite.backends
            for name, store in backends.items():
                if name == lead:
                    continue
                report = VerifyReport(kind, lead, name, max_details=max_details)
                section = cfg.section(kind)
                in_memory = [n for n in (lead, name) if skip and skip(section.backends[n])]
                if in_memory:
                    report.skipped = (
                        f"{' and '.join(map(repr, in_memory))} in one process's memory: "
                        "cannot be compared from another process"
                    )
                else:
                    _verify(kind, backends[lead], store, report, progress)
                reports.append(report)
    return reports


def _verify(
    kind: str, source: Any, target: Any, report: VerifyReport, progress: Progress | None
) -> None:
    if kind == "audits":
        verify_audits(source, target, report, progress=progress)
    else:
        verify_blobs(source, target, report, progress=progress)
