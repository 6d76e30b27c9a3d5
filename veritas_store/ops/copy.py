"""Copy between two backends: the operator's tool for backfills.

``copy`` makes a target backend hold what a source backend holds: audits page by page in the
shared newest-first keyset order, blobs in key order. It is idempotent (an equal audit, or a
blob with the same sha256, is left alone) and resumable: the position reached is saved in a
small checkpoint file after every page, so a run that was interrupted (Ctrl-C, ``kill -9``, a
backend that went away) continues where it stopped instead of starting over. It never deletes
what only the target has, and never overwrites a target audit that is newer (by
``updated_at``) than the source's unless told to: copying in the wrong direction loses nothing.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ..records.errors import AuditExists, AuditNotFound, BlobNotFound, InvalidImage
from ..records.model import Audit
from ..records.paging import sort_key
from ..screenshots import sniff_image
from ..wiring.config import load_config
from ..wiring.stores import ConfigSource, registry_with
from .checkpoint import Checkpoint, default_state_path, fingerprint
from .pairs import MAX_DETAILS, PAGE_SIZE, Progress, no_progress, opened, pairs_for, sha256_of

T = TypeVar("T")

BLOB_CHECKPOINT_EVERY = 100  # blobs between two checkpoints
WORKERS = 4  # threads writing one page at once


@attrs.define
class CopyReport:
    """What one section's copy did (or, with ``dry_run``, would do)."""

    kind: str
    source: str
    target: str
    dry_run: bool = False
    scanned: int = 0  # items of the source looked at by this run
    created: int = 0  # absent in the target: written
    updated: int = 0  # different in the target: overwritten
    unchanged: int = 0  # already equal in the target: left alone
    kept_newer: int = 0  # audits newer in the target (by updated_at): left alone
    vanished: int = 0  # deleted from the source while the copy ran: not copied
    resumed_after: int = 0  # items an interrupted earlier run had done (not scanned again)
    complete: bool = False
    seconds: float = 0.0
    kept_newer_ids: list[str] = attrs.field(factory=list)  # the first MAX_DETAILS

    @property
    def written(self) -> int:
        return self.created + self.updated

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.kind, **attrs.asdict(self, filter=lambda a, _: a.name != "kind")}


_MISSING = object()  # "look the audit up by id": a listing could not tell


def _resume(report: CopyReport, checkpoint: Checkpoint) -> tuple[bool, Any]:
    """Whether this section's copy already finished, and the position to continue after.

    Sets ``report.resumed_after`` (and ``complete`` when finished) from the checkpoint.
    """
    if checkpoint.finished(report.kind):
        report.resumed_after = checkpoint.done_before(report.kind)
        report.complete = True
        return True, None
    position = checkpoint.position(report.kind)
    report.resumed_after = checkpoint.done_before(report.kind) if position else 0
    return False, position


def copy_audits(
    source: Any,
    target: Any,
    report: CopyReport,
    *,
    checkpoint: Checkpoint | None = None,
    overwrite_newer: bool = False,
    page_size: int = PAGE_SIZE,
    workers: int = WORKERS,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every audit of ``source`` (all statuses) into ``target``; see the module doc.

    Each source page is compared with the target's audits in the same keyset window (listed a
    page at a time too), so an audit already equal costs no extra request; the page's writes
    run on ``workers`` threads, and the checkpoint moves on once they are all done.
    """
    checkpoint = checkpoint or Checkpoint(None)
    progress = progress or no_progress
    task = f"audits {report.source} → {report.target}"
    started = time.perf_counter()
    finished, cursor = _resume(report, checkpoint)
    if finished:
        return report
    progress(task, report.resumed_after, None)
    with _Pool(workers) as pool:
        while True:
            page = source.list(limit=page_size, cursor=cursor)
            outcomes = _copy_page(
                page.items, cursor, source, target, pool, report.dry_run, overwrite_newer, page_size
            )
            for audit, outcome in zip(page.items, outcomes, strict=True):
                setattr(report, outcome, getattr(report, outcome) + 1)
                if outcome == "kept_newer" and len(report.kept_newer_ids) < MAX_DETAILS:
                    report.kept_newer_ids.append(audit.id)
            report.scanned += len(page.items)
            cursor = page.next_cursor
            done = report.resumed_after + report.scanned
            if not report.dry_run:
                checkpoint.save(report.kind, cursor, done, finished=cursor is None)
            progress(task, done, done if cursor is None else None)
            if cursor is None:
                break
    report.complete = True
    report.seconds = time.perf_counter() - started
    return report


def _copy_page(
    items: tuple[Audit, ...],
    cursor: str | None,
    source: Any,
    target: Any,
    pool: _Pool,
    dry_run: bool,
    overwrite_newer: bool,
    page_size: int,
) -> list[str]:
    """Copy one source page; return each audit's CopyReport count name."""
    # Not in the target's window: absent, or there with another created_at, which create()
    # reports (then it is looked up). A dry run cannot try, so it looks it up at once.
    window = _window(target, cursor, items, page_size, absent=_MISSING if dry_run else None)
    outcomes = pool.map(
        lambda a: _write_audit(a, target, dry_run, overwrite_newer, window[a.id]), items
    )
    if dry_run:
        return outcomes
    # A live application may have written the source between our read and our write, and
    # ours would then undo its change in the target: list the page's window again, and copy
    # anything that changed meanwhile once more.
    written = {a.id for a, o in zip(items, outcomes, strict=True) if o in ("created", "updated")}
    if not written:
        return outcomes
    now = _window(source, cursor, items, page_size, absent=_MISSING)
    return [
        _settle(a, now[a.id], source, target, o) if a.id in written and now[a.id] != a else o
        for a, o in zip(items, outcomes, strict=True)
    ]


def _window(
    store: Any, cursor: str | None, items: tuple[Audit, ...], page_size: int, absent: Any
) -> dict[str, Any]:
    """For each of ``items``, the store's audit with that id if it lies in their keyset range
    (after ``cursor``, down to the last item), else ``absent``."""
    if not items:
        return {}
    found: dict[str, Audit] = {}
    end = sort_key(items[-1])
    while True:
        page = store.list(limit=page_size, cursor=cursor)
        for audit in page.items:
            if sort_key(audit) < end:
                break
            found[audit.id] = audit
        else:
            cursor = page.next_cursor
            if cursor is not None:
                continue
        break
    return {a.id: found.get(a.id, absent) for a in items}


def _write_audit(
    audit: Audit, target: Any, dry_run: bool, overwrite_newer: bool, existing: Any = _MISSING
) -> str:
    """Make the target's copy equal to ``audit``; return which CopyReport count it adds to."""
    for attempt in range(3):
        if existing is _MISSING:
            existing = target.get(audit.id)
        if existing == audit:
            return "unchanged"
        if (
            existing is not None
            and not overwrite_newer
            and existing.updated_at is not None
            and audit.updated_at is not None
            and existing.updated_at > audit.updated_at
        ):
            return "kept_newer"
        outcome = "created" if existing is None else "updated"
        if dry_run:
            return outcome
        try:
            if existing is None:
                target.create(audit)
            else:
                target.update(audit)
            return outcome
        except (AuditExists, AuditNotFound):
            if attempt == 2:
                raise
            existing = _MISSING  # someone else writes the target too: look again
    raise AssertionError("unreachable")


def _settle(written: Audit, current: Any, source: Any, target: Any, outcome: str) -> str:
    """The source's audit changed after we copied ``written``: copy it again until stable."""
    for _ in range(5):
        if current is _MISSING:
            current = source.get(written.id)
        if current == written:
            return outcome
        if current is None:  # deleted meanwhile: do not resurrect it in the target
            target.delete(written.id)
            return "vanished"
        _write_audit(current, target, dry_run=False, overwrite_newer=True)
        written, current = current, _MISSING
    return outcome


class _Pool:
    """A few threads to run one page's writes at once (backends are thread-safe)."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="veritas-copy")

    def map(self, call: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        return list(self._executor.map(call, items))

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # On Ctrl-C, do not start what is still queued; finish what is running.
        self._executor.shutdown(wait=True, cancel_futures=True)


def content_type_of(key: str, data: bytes) -> str | None:
    """A blob's content type, which ``BlobStore.get`` does not return: from its bytes or key."""
    try:
        return sniff_image(data)[1]
    except InvalidImage:
        return mimetypes.guess_type(key)[0]


def copy_blobs(
    source: Any,
    target: Any,
    report: CopyReport,
    *,
    checkpoint: Checkpoint | None = None,
    workers: int = WORKERS,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every blob of ``source`` into ``target``, skipping those with an equal sha256."""
    checkpoint = checkpoint or Checkpoint(None)
    progress = progress or no_progress
    task = f"blobs {report.source} → {report.target}"
    started = time.perf_counter()
    finished, after = _resume(report, checkpoint)
    if finished:
        return report
    keys = [k for k in source.list() if after is None or k > after]
    total = report.resumed_after + len(keys)
    progress(task, report.resumed_after, total)
    with _Pool(workers) as pool:
        for start in range(0, len(keys), BLOB_CHECKPOINT_EVERY):
            chunk = keys[start : start + BLOB_CHECKPOINT_EVERY]
            for outcome in pool.map(lambda k: _copy_blob(k, source, target, report.dry_run), chunk):
                setattr(report, outcome, getattr(report, outcome) + 1)
            report.scanned += len(chunk)
            done = report.resumed_after + report.scanned
            if not report.dry_run:
                checkpoint.save(report.kind, chunk[-1], done, finished=done == total)
            progress(task, done, total)
    if not keys and not report.dry_run:
        checkpoint.save(report.kind, after, total, finished=True)
    report.complete = True
    report.seconds = time.perf_counter() - started
    return report


def _copy_blob(key: str, source: Any, target: Any, dry_run: bool) -> str:
    try:
        data = source.get(key)
    except BlobNotFound:
        return "vanished"
    try:
        have: bytes | None = target.get(key)
    except BlobNotFound:
        have = None
    if have is not None and sha256_of(have) == sha256_of(data):
        return "unchanged"
    if not dry_run:
        target.put(key, data, content_type_of(key, data))
    return "created" if have is None else "updated"


def copy_backends(
    config: ConfigSource,
    source: str,
    target: str,
    *,
    dry_run: bool = False,
    restart: bool = False,
    overwrite_newer: bool = False,
    state_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    plugins: Iterable[object] = (),
) -> list[CopyReport]:
    """Copy backend ``source`` into ``target`` in every section that declares both.

    Progress is saved in ``state_path`` (default :func:`default_state_path`) and picked up by
    the next call with the same names unless ``restart``; it is removed once the copy is
    complete. ``dry_run`` writes nothing, checkpoint included, and reports what would change.
    """
    cfg = load_config(config)
    pairs = pairs_for(cfg, source, target)
    registry = registry_with(plugins)
    path = Path(state_path) if state_path is not None else default_state_path(cfg, source, target)
    checkpoint = Checkpoint(
        None if dry_run else path, fingerprint(cfg, pairs), restart=restart or dry_run
    )
    reports = []
    for pair in pairs:
        report = CopyReport(pair.kind, source, target, dry_run=dry_run)
        reports.append(report)
        with opened(cfg, registry, pair) as (src, dst):
            if pair.kind == "audits":
                copy_audits(
                    src,
                    dst,
                    report,
                    checkpoint=checkpoint,
                    overwrite_newer=overwrite_newer,
                    progress=progress,
                )
            else:
                copy_blobs(src, dst, report, checkpoint=checkpoint, progress=progress)
    if not dry_run:
        checkpoint.clear()
    return reports
