"""``repair``, ``copy`` and ``verify``: complete, move and compare data between backends."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .. import ops
from ..ops import pending
from ..ops import repair as run_repair
from ..records.errors import ConfigError, PluginError
from ..wiring.config import Config, load_config, redact
from ..wiring.stores import open_stores
from .base import console, emit_json, err_console, fail, per_process, table, with_config


@click.command()
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def repair(config_path: str | None, as_json: bool) -> None:
    """Complete the writes the repair journal kept, from the backend that has them.

    Idempotent; what was repaired leaves the journal, what still fails stays (exit code 1).
    """
    with open_stores(config_path) as stores:
        total = pending(stores)
        if as_json or total == 0:
            report = run_repair(stores)
        else:
            with Progress(
                TextColumn("repairing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            ) as bar:
                task = bar.add_task("repair", total=total)
                report = run_repair(
                    stores, progress=lambda done, _total: bar.update(task, completed=done)
                )
    if as_json:
        emit_json(report.to_dict())
    elif report.journal is None:
        console.print(Text("The repair journal is off (journal = false): nothing to repair."))
    else:
        console.print(
            Text(
                f"Journal {report.journal}: {report.entries} entries; repaired "
                f"{report.items} item(s) ({report.repaired} entries); "
                f"{report.in_flight} in flight in a running process; "
                f"{len(report.failed)} item(s) still failing."
            )
        )
        if report.failed:
            rows = [
                [f.section, f.key, ", ".join(f.backends), f.entries, f.error] for f in report.failed
            ]
            columns = ["section", "key", "missing in", "entries", "error"]
            console.print(table("Not repaired", columns, rows, keep=("key",)))
    if report.failed:
        sys.exit(1)


def _progress_bar() -> Any:
    """A rich progress display on stderr when it is a terminal, else None (no output)."""
    if not err_console.is_terminal:
        return contextlib.nullcontext(None)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _progress_callback(bar: Progress | None) -> Callable[[str, int, int | None], None] | None:
    if bar is None:
        return None
    tasks: dict[str, Any] = {}

    def update(task: str, done: int, total: int | None) -> None:
        if task not in tasks:
            tasks[task] = bar.add_task(task, total=total)
        bar.update(tasks[task], completed=done, total=total)

    return update


def _refuse_per_process(cfg: Config, names: list[str]) -> None:
    for kind in ("audits", "blobs"):
        for name in names:
            backend = cfg.section(kind).backends.get(name)
            if backend is not None and per_process(backend):
                raise ConfigError(
                    f"{name!r} is an in-memory backend: it lives in one process's memory, so "
                    "this command would only see its own empty copy",
                    source=cfg.source,
                    key=f"{kind}.backends.{name}",
                )


@click.command()
@with_config
@click.option("--from", "source", required=True, help="Backend to copy from (a config name).")
@click.option("--to", "target", required=True, help="Backend to copy into (a config name).")
@click.option("--dry-run", is_flag=True, help="Write nothing; report what would be copied.")
@click.option("--restart", is_flag=True, help="Ignore a saved checkpoint; start from the top.")
@click.option(
    "--overwrite-newer",
    is_flag=True,
    help="Also overwrite target audits whose updated_at is newer than the source's.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint file (default: veritas-data/copy-FROM-to-TO.json beside the config).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def copy(
    config_path: str | None,
    source: str,
    target: str,
    dry_run: bool,
    restart: bool,
    overwrite_newer: bool,
    state_path: str | None,
    as_json: bool,
) -> None:
    """Copy every audit and blob of backend FROM into backend TO (idempotent, resumable).

    Backends are named as in the config and may be disabled there. Acts on [audits] and
    [blobs] wherever both names are declared. An interrupted copy continues where it stopped
    when run again.
    """
    cfg = load_config(config_path)
    _refuse_per_process(cfg, [source, target])
    state = state_path or str(ops.default_state_path(cfg, source, target))
    resume = (
        "nothing was written (dry run)"
        if dry_run
        else f"progress is saved in {state}: run the same command to resume"
    )
    try:
        with _progress_bar() as bar:
            reports = ops.copy_backends(
                cfg,
                source,
                target,
                dry_run=dry_run,
                restart=restart,
                overwrite_newer=overwrite_newer,
                state_path=state,
                progress=_progress_callback(bar),
            )
    except KeyboardInterrupt:
        fail(f"interrupted; {resume}", 130)
        return
    except (ConfigError, PluginError):
        raise
    except Exception as exc:
        fail(f"copy stopped: {type(exc).__name__}: {redact(str(exc))}; {resume}", 1)
        return
    if as_json:
        emit_json(
            {
                "config": cfg.source,
                "source": source,
                "target": target,
                "dry_run": dry_run,
                "sections": [r.to_dict() for r in reports],
            }
        )
        return
    # One column per section, one row per count: fits 80 columns.
    metrics = [
        ("scanned", "scanned"),
        ("created", "created"),
        ("updated", "updated"),
        ("unchanged", "unchanged"),
        ("kept_newer", "kept (newer in target)"),
        ("vanished", "vanished from source"),
        ("resumed_after", "done by an earlier run"),
    ]
    rows = [[label, *(getattr(r, attr) for r in reports)] for attr, label in metrics]
    rows.append(["seconds", *(f"{r.seconds:.1f}" for r in reports)])
    columns = ["", *(r.kind for r in reports)]
    verb = "Dry run: would copy" if dry_run else "Copied"
    title = f"{verb} {source} → {target}"
    console.print(Text(title))
    console.print(table(None, columns, rows))
    for r in reports:
        if r.kept_newer:
            err_console.print(
                f"[yellow]note:[/] {_count(r.kept_newer, 'audit')} newer in {escape(target)} "
                "left alone (--overwrite-newer to replace them): "
                f"{escape(', '.join(r.kept_newer_ids))}",
                highlight=False,
                soft_wrap=True,
            )


@click.command()
@with_config
@click.option("--from", "source", default=None, help="One backend to compare (a config name).")
@click.option("--to", "target", default=None, help="The other backend to compare.")
@click.option(
    "--max-diffs",
    type=click.IntRange(0, 1_000_000),
    default=ops.MAX_DETAILS,
    show_default=True,
    help="Differences listed per section (the totals count them all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    config_path: str | None,
    source: str | None,
    target: str | None,
    max_diffs: int,
    as_json: bool,
) -> None:
    """Compare audits field by field and blobs by sha256; exit 1 on any difference.

    With --from and --to, compares those two backends (by config name, enabled or not) in
    every section that declares both. Without them, compares every enabled backend with its
    section's authoritative one (memory backends are skipped: another process's memory cannot
    be read).
    """
    if (source is None) != (target is None):
        fail("give both --from and --to, or neither", 2)
    cfg = load_config(config_path)
    if source is not None and target is not None:
        _refuse_per_process(cfg, [source, target])
    with _progress_bar() as bar:
        reports = ops.verify_backends(
            cfg,
            source,
            target,
            max_details=max_diffs,
            skip=per_process,
            progress=_progress_callback(bar),
        )
    clean = all(r.clean for r in reports)
    if as_json:
        emit_json(
            {"config": cfg.source, "clean": clean, "sections": [r.to_dict() for r in reports]}
        )
    else:
        _print_verify(reports)
    if not clean:
        sys.exit(1)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_verify(reports: list[ops.VerifyReport]) -> None:
    if not reports:
        console.print("Nothing to compare: each section has a single enabled backend.")
    for r in reports:
        head = f"{r.kind}: {r.source} ↔ {r.target}: {_count(r.compared, 'item')} compared"
        if r.skipped:
            console.print(Text(f"{r.kind}: {r.source} ↔ {r.target}: skipped ({r.skipped})"))
            continue
        if r.clean:
            console.print(Text(head + ", no differences"))
            continue
        labels = {
            "missing_in_target": f"missing in {r.target}",
            "missing_in_source": f"missing in {r.source}",
            "different": "different",
        }
        parts = [f"{n} {labels[p]}" for p, n in r.counts.items() if n]
        console.print(Text(head + f", {_count(r.total, 'difference')}: {', '.join(parts)}"))
        rows = [
            [
                d.key,
                labels[d.problem],
                ", ".join(d.fields)
                or (
                    f"sha256 {d.source_sha256[:12]}… ≠ {d.target_sha256[:12]}…"
                    if d.source_sha256 and d.target_sha256
                    else ""
                ),
            ]
            for d in r.differences
        ]
        if rows:
            console.print(
                table(f"{r.kind} differences", ["key", "problem", "detail"], rows, keep=("key",))
            )
        if r.total > len(r.differences):
            console.print(
                Text(f"… and {r.total - len(r.differences)} more (--max-diffs N or --json)")
            )
