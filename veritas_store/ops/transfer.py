"""Copy and verify between two backends: the operator's tools for backfills and audits.

``copy`` makes a target backend hold what a source backend holds: audits page by page in the
shared newest-first keyset order, blobs in key order. It is idempotent (an equal audit, or a
blob with the same sha256, is left alone) and resumable: the position reached is saved in a
small checkpoint file after every page, so a run that was interrupted (Ctrl-C, ``kill -9``, a
backend that went away) continues where it stopped instead of starting over. It never deletes
what only the target has, and never overwrites a target audit that is newer (by
``updated_at``) than the source's unless told to: copying in the wrong direction loses nothing.

``verify`` walks both backends in that same order at once (a merge, so memory stays small) and
reports every audit missing on either side or differing in some fields, and every blob missing
on either side or with a different sha256.

Backends are named by their config names, looked up in ``[audits]`` and ``[blobs]``: a pair
acts on every section that declares both names. A named backend is opened even when it is
disabled, because backfilling a backend before enabling it is what ``copy`` is for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ..plugin_api.registry import PluginRegistry
from ..records.errors import AuditExists, AuditNotFound, BlobNotFound, ConfigError, InvalidImage
from ..records.model import Audit, sort_key
from ..screenshots import sniff_image
from ..wiring.config import SECTIONS, BackendConfig, Config, load_config
from ..wiring.stores import ConfigSource, factory_for, open_backend, open_stores, registry_with

T = TypeVar("T")

# progress(task, done, total): total is None when it is not known in advance (audits).
Progress = Callable[[str, int, int | None], None]

PAGE_SIZE = 200  # audits per page, and per checkpoint
BLOB_CHECKPOINT_EVERY = 100  # blobs between two checkpoints
WORKERS = 4  # threads writing one page at once
MAX_DETAILS = 20  # differences (or kept-newer ids) listed per section by default


# --- reports ------------------------------------------------------------------------------


@attrs.frozen
class Pair:
    """The same two config names in one section."""

    kind: str  # "audits" or "blobs"
    source: str
    target: str


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


# --- naming backends ----------------------------------------------------------------------


def pairs_for(cfg: Config, source: str, target: str) -> list[Pair]:
    """The sections that declare both names; a ``ConfigError`` when there is none."""
    if source == target:
        raise ConfigError(f"--from and --to both name {source!r}", source=cfg.source)
    for name in (source, target):
        if not any(name in cfg.section(kind).backends for kind in SECTIONS):
            declared = "; ".join(
                f"[{kind}]: {', '.join(cfg.section(kind).backends)}" for kind in SECTIONS
            )
            raise ConfigError(
                f"no backend named {name!r} in [audits] or [blobs] (declared {declared})",
                source=cfg.source,
            )
    pairs = [
        Pair(kind, source, target)
        for kind in SECTIONS
        if source in cfg.section(kind).backends and target in cfg.section(kind).backends
    ]
    if not pairs:
        where = {
            name: next(k for k in SECTIONS if name in cfg.section(k).backends)
            for name in (source, target)
        }
        raise ConfigError(
            f"{source!r} (in [{where[source]}]) and {target!r} (in [{where[target]}]) are in "
            "no common section: there is nothing to compare",
            source=cfg.source,
        )
    return pairs


@contextlib.contextmanager
def _opened(cfg: Config, registry: PluginRegistry, pair: Pair) -> Iterator[tuple[Any, Any]]:
    """The pair's two backends, opened from config (disabled ones too), closed afterwards."""
    factories = [factory_for(cfg, pair.kind, n, registry) for n in (pair.source, pair.target)]
    opened: list[Any] = []
    try:
        for name, factory in zip((pair.source, pair.target), factories, strict=True):
            opened.append(open_backend(cfg, pair.kind, name, factory))
        yield opened[0], opened[1]
    finally:
        for store in opened:
            with contextlib.suppress(Exception):
                store.close()


# --- checkpoints ----------------------------------------------------------------------------


def default_state_path(cfg: Config, source: str, target: str) -> Path:
    """``veritas-data/copy-<source>-to-<target>.json`` in the config file's folder."""
    safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", n) for n in (source, target)]
    return cfg.base_dir / "veritas-data" / f"copy-{safe[0]}-to-{safe[1]}.json"


def _fingerprint(cfg: Config, pairs: Iterable[Pair]) -> str:
    """Identifies what a checkpoint is about (types and options, hashed: no secrets kept)."""
    described = [
        [p.kind, name, b.type, b.options]
        for p in pairs
        for name in (p.source, p.target)
        for b in [cfg.section(p.kind).backends[name]]
    ]
    raw = json.dumps(described, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()


class Checkpoint:
    """Where an interrupted copy stopped, per section, in a small JSON file.

    Written atomically (temporary file, fsync, rename) after every page; a checkpoint made for
    other backends (the names now point elsewhere) is ignored. ``path=None`` keeps nothing.
    """

    def __init__(self, path: Path | None, fingerprint: str = "", *, restart: bool = False):
        self.path = path
        self._made_folder = False  # so clear() removes a folder only this copy created
        self._state: dict[str, Any] = {"fingerprint": fingerprint, "sections": {}}
        if path is None or restart or not path.exists():
            return
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # unreadable: start over (the copy is idempotent)
        if isinstance(saved, dict) and saved.get("fingerprint") == fingerprint:
            sections = saved.get("sections")
            if isinstance(sections, dict):
                self._state["sections"] = sections

    def _section(self, kind: str) -> dict[str, Any]:
        return self._state["sections"].get(kind) or {}

    def position(self, kind: str) -> str | None:
        """The audit cursor or the last blob key done, or None to start at the beginning."""
        value = self._section(kind).get("position")
        return value if isinstance(value, str) else None

    def done_before(self, kind: str) -> int:
        value = self._section(kind).get("done", 0)
        return value if isinstance(value, int) else 0

    def finished(self, kind: str) -> bool:
        return self._section(kind).get("finished") is True

    def save(self, kind: str, position: str | None, done: int, finished: bool = False) -> None:
        self._state["sections"][kind] = {"position": position, "done": done, "finished": finished}
        if self.path is None:
            return
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._made_folder = True
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._state, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def clear(self) -> None:
        """The copy is complete: the next one starts from the beginning."""
        self._state["sections"] = {}
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            if self._made_folder:
                with contextlib.suppress(OSError):
                    self.path.parent.rmdir()  # only if empty


# --- copy -----------------------------------------------------------------------------------


def _no_progress(task: str, done: int, total: int | None) -> None:
    pass


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
    progress = progress or _no_progress
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
    progress = progress or _no_progress
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
    if have is not None and _sha256(have) == _sha256(data):
        return "unchanged"
    if not dry_run:
        target.put(key, data, content_type_of(key, data))
    return "created" if have is None else "updated"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
        None if dry_run else path, _fingerprint(cfg, pairs), restart=restart or dry_run
    )
    reports = []
    for pair in pairs:
        report = CopyReport(pair.kind, source, target, dry_run=dry_run)
        reports.append(report)
        with _opened(cfg, registry, pair) as (src, dst):
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


# --- verify ---------------------------------------------------------------------------------


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
    progress = progress or _no_progress
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
    progress = progress or _no_progress
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
        return _sha256(store.get(key))
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
            with _opened(cfg, registry, pair) as (src, dst):
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
