"""The ``veritas-store`` command line for operators.

Every command takes ``--config PATH`` (before or after the command name); without it the file
named by ``$VERITAS_STORE_CONFIG`` or the embedded default is used. Commands that print data
take ``--json``. Exit codes: 0 ok, 1 a failure or a difference, 2 a config or usage error.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .. import ops as sync
from ..composite.journal import read_stats
from ..ops import pending
from ..ops import repair as run_repair
from ..plugin_api.hookspecs import PLUGIN_API_VERSION
from ..plugin_api.protocols import Capability, SchemaManaged, capabilities_of
from ..plugin_api.registry import ALLOW_LIST_ENV, FAILED, LOADED, PluginRegistry, get_registry
from ..records.errors import ConfigError, PluginError, VeritasStoreError
from ..records.model import MAX_EVENTS_PAGE, AuditStatus
from ..wiring.config import BackendConfig, Config, load_config, redact
from ..wiring.stores import check_section, factory_for, open_backend, open_stores

console = Console()
err_console = Console(stderr=True)

PERSISTENT_HINT = "memory"  # type name of the per-process backend


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def with_config(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config`` to a command and turn library errors into clear exits."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="TOML config file (default: $VERITAS_STORE_CONFIG, else the embedded default).",
    )
    @click.pass_context
    @functools.wraps(command)
    def wrapper(ctx: click.Context, /, config_path: str | None, **kwargs: Any) -> Any:
        path = config_path or (ctx.obj or {}).get("config_path")
        try:
            return command(path, **kwargs)
        except (ConfigError, PluginError) as exc:
            _fail(str(exc), 2)
        except VeritasStoreError as exc:
            _fail(f"{type(exc).__name__}: {exc}", 1)

    return wrapper


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file for every command (default: $VERITAS_STORE_CONFIG or the embedded "
    "default: SQLite + memory for audits, local disk for screenshots, under ./veritas-data).",
)
@click.version_option(package_name="veritas-store")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """veritas-store: audit records and screenshots in pluggable backends."""
    ctx.obj = {"config_path": config_path}


@main.command()
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--url",
    default="https://shop.example.com",
    show_default=True,
    help="The URL the demo audit pretends to audit.",
)
def demo(config_path: str | None, as_json: bool, url: str) -> None:
    """Run a realistic audit lifecycle through the configured stores and show where it landed."""
    from ..demo import run_demo

    with open_stores(config_path) as stores:
        report = run_demo(stores, url=url)
        report["config"] = stores.config.source
    if as_json:
        _emit_json(report)
        return
    console.print(Text(f"Demo audit {report['audit_id']}  (config: {report['config']})"))
    console.print("Lifecycle: " + " → ".join(report["steps"]))
    audit_rows = [
        [
            r["backend"],
            _yes(r["has_audit"]),
            r["status"],
            r["findings"],
            r["screenshots"],
            _yes(r["equal_to_read"]),
        ]
        for r in report["audit_backends"]
    ]
    columns = ["backend", "has audit", "status", "findings", "screenshots", "same as read"]
    console.print(_table("Audit backends", columns, audit_rows))
    blob_rows = [[r["backend"], "\n".join(r["keys"]) or "-"] for r in report["blob_backends"]]
    console.print(
        _table(
            "Blob backends", ["backend", "screenshot keys"], blob_rows, keep=("screenshot keys",)
        )
    )
    console.print(Text(f"Read answered by: {report['read_from']}"))
    console.print(
        f"Trust score {report['audit']['trust_score']}, risk {report['audit']['risk_level']}, "
        f"{len(report['audit']['findings'])} findings, "
        f"{len(report['screenshots_loaded'])} screenshots loaded and verified."
    )


def _yes(flag: bool) -> Text:
    return Text("yes", style="green") if flag else Text("no", style="red")


def _table(
    title: str | None, columns: list[str], rows: list[list[Any]], keep: tuple[str, ...] = ()
) -> Table:
    """A table whose cells are plain text (never markup); ``keep`` columns never wrap (ids)."""
    table = Table(title=Text(title) if title else None)
    for col in columns:
        table.add_column(col, no_wrap=col in keep, overflow="fold")  # never "…": no text lost
    for row in rows:
        table.add_row(
            *(v if isinstance(v, Text) else Text("-" if v is None else str(v)) for v in row)
        )
    return table


@main.command()
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List plugins (distribution, version, types, load errors) and the backend types."""
    # This command reports load problems itself: no second copy through the log.
    logging.getLogger("veritas_store.plugins").addHandler(logging.NullHandler())
    report = _plugin_report(get_registry())
    if as_json:
        _emit_json(report)
        return
    strict = " (strict mode)" if report["strict"] else ""
    console.print(Text(f"Plugin API {report['plugin_api_version']}{strict}"))
    plugin_rows = [
        [
            p["plugin"],
            p["distribution"],
            p["version"],
            "\n".join(f"{t['kind']}:{t['type']}" for t in p["types"]) or "-",
            _status_text(p["status"]),
        ]
        for p in report["plugins"]
    ]
    columns = ["plugin", "distribution", "version", "registers", "status"]
    console.print(_table("Plugins", columns, plugin_rows, keep=("plugin", "distribution")))
    columns = ["kind", "type", "plugin", "description"]
    type_rows = [[r[c] for c in columns] for r in report["types"]]
    console.print(_table("Backend types", columns, type_rows))
    for b in report["errors"]:
        err_console.print(
            f"[red]not loaded:[/] {escape(b['error'])}", highlight=False, soft_wrap=True
        )
    for message in report["conflicts"] + report["notes"]:
        err_console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _plugin_report(registry: PluginRegistry) -> dict[str, Any]:
    """What ``plugins --json`` prints: every plugin, every type, and what went wrong."""
    listed = [
        {
            "plugin": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "status": p.status,
            "types": [{"kind": kind, "type": name} for kind, name in p.types],
            "error": p.error,
        }
        for p in sorted(registry.plugins.values(), key=lambda p: (p.status != LOADED, p.name))
    ]
    types = [
        {
            "kind": kind,
            "type": bt.name,
            "plugin": bt.plugin,
            "distribution": bt.distribution,
            "version": bt.version,
            "description": bt.description,
        }
        for kind in ("audits", "blobs")
        for found in registry.types[kind].values()
        for bt in found
    ]
    errors = [
        {k: p[k] for k in ("plugin", "distribution", "version", "error")}
        for p in listed
        if p["status"] == FAILED
    ]
    conflicts = [
        f"{kind} type {name!r} is registered by "
        + " and ".join(f"{bt.plugin!r} ({bt.distribution or 'no distribution'})" for bt in found)
        for kind in ("audits", "blobs")
        for name, found in registry.types[kind].items()
        if len(found) > 1
    ]
    notes = []
    if registry.allow_list is not None:
        notes.append(
            f"{ALLOW_LIST_ENV} allows only: {', '.join(registry.allow_list)}; "
            "the other plugins are skipped"
        )
    if registry.unmatched:
        notes.append(
            f"{ALLOW_LIST_ENV} names {', '.join(map(repr, registry.unmatched))}, "
            "which no installed plugin has"
        )
    return {
        "plugin_api_version": ".".join(map(str, PLUGIN_API_VERSION)),
        "strict": registry.strict,
        "allow_list": list(registry.allow_list) if registry.allow_list is not None else None,
        "plugins": listed,
        "types": types,
        "errors": errors,
        "conflicts": conflicts,
        "notes": notes,
    }


def _status_text(status: str) -> Text:
    return Text(status, style={LOADED: "green", FAILED: "red"}.get(status, "dim"))


@main.command()
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(config_path: str | None, as_json: bool) -> None:
    """Validate the config, open every enabled backend and report its health."""
    cfg = load_config(config_path)
    registry = get_registry()
    for kind in ("audits", "blobs"):
        check_section(cfg, kind, registry)
    rows = [
        _health(cfg, registry, kind, name)
        for kind in ("audits", "blobs")
        for name in cfg.section(kind).backends
    ]
    warnings = _read_order_warnings(cfg)
    journal = _journal_report(cfg)
    if journal["entries"]:
        warnings.append(
            f"the repair journal holds {journal['entries']} write(s) some backend missed, the "
            f"oldest {_age(journal['oldest_age_seconds'])} old: run 'veritas-store repair'"
        )
    failed = [r for r in rows if r["status"] == "error"]
    if as_json:
        _emit_json(
            {
                "config": cfg.source,
                "backends": rows,
                "journal": journal,
                "warnings": warnings,
                "ok": not failed,
            }
        )
    else:
        console.print(Text(f"Config: {cfg.source}"))
        colour = {"ok": "green", "error": "red", "disabled": "dim"}
        table_rows = [
            [
                r["section"],
                r["backend"],
                r["type"],
                _yes(r["required"]),
                Text(r["status"], style=colour[r["status"]]),
                "" if r["ms"] is None else f"{r['ms']:.1f}",
                r["detail"],
            ]
            for r in rows
        ]
        columns = ["section", "backend", "type", "required", "status", "ms", "detail"]
        console.print(_table("Backends", columns, table_rows))
        console.print(Text(_describe_journal(journal)))
        for w in warnings:
            err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if failed:
        sys.exit(1)


def _health(cfg: Config, registry: PluginRegistry, kind: str, name: str) -> dict[str, Any]:
    backend = cfg.section(kind).backends[name]
    row: dict[str, Any] = {
        "section": kind,
        "backend": name,
        "type": backend.type,
        "required": backend.required,
        "options": redact(backend.options),
        "status": "disabled",
        "ms": None,
        "detail": "",
    }
    if not backend.enabled:
        return row
    started = time.perf_counter()
    store = None
    try:
        store = open_backend(cfg, kind, name, factory_for(cfg, kind, name, registry))
        if kind == "blobs":
            store.exists("veritas-health-check")
        elif Capability.LIST in capabilities_of(store):
            store.list(limit=1)
        else:  # a store that cannot list is asked for something else cheap
            store.get("veritas-health-check")
        row.update(status="ok", detail=_describe(backend.options))
        if isinstance(store, SchemaManaged):  # it opened, so its schema is current
            schema = store.schema_current()
            row["schema"] = schema
            row["detail"] += f" (schema {schema['revision']})"
    except ConfigError:
        raise  # a rejected option value is a config error (exit 2), not an unhealthy backend
    except Exception as exc:
        row.update(status="error", detail=redact(f"{type(exc).__name__}: {exc}"))
    finally:
        if store is not None:
            store.close()
    row["ms"] = (time.perf_counter() - started) * 1000
    return row


def _journal_report(cfg: Config) -> dict[str, Any]:
    """The repair journal's path, size and oldest entry's age (read only, never created)."""
    if cfg.journal is None:
        return {"enabled": False, "path": None, "entries": 0, "oldest_age_seconds": None}
    try:
        stats = read_stats(cfg.journal)
    except Exception as exc:  # a journal that cannot be read is a failed check, not a crash
        _fail(f"the repair journal {str(cfg.journal)!r} cannot be read: {exc}", 1)
        raise  # unreachable: _fail exits
    return {
        "enabled": True,
        "path": str(cfg.journal),
        "entries": stats.entries if stats else 0,
        "oldest_age_seconds": stats.oldest_age() if stats else None,
    }


def _describe_journal(journal: dict[str, Any]) -> str:
    if not journal["enabled"]:
        return "Repair journal: off"
    if not journal["entries"]:
        return f"Repair journal: {journal['path']}: empty"
    return (
        f"Repair journal: {journal['path']}: {journal['entries']} entries, oldest "
        f"{_age(journal['oldest_age_seconds'])} old"
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _describe(options: dict[str, Any]) -> str:
    for key in ("url", "path"):
        if key in options:
            return str(redact(options[key]))
    return ""


def _per_process(backend: BackendConfig) -> bool:
    """A backend whose data lives in this process only: the memory type, or an in-memory URL
    (``memory://...``, an in-memory SQLite database) of any type."""
    if backend.type == PERSISTENT_HINT:
        return True
    url = backend.options.get("url")
    return isinstance(url, str) and bool(_IN_MEMORY_URL.match(url))


_IN_MEMORY_URL = re.compile(r"memory://|sqlite(\+\w+)?://(/:memory:)?(\?.*)?$")


def _read_order_warnings(cfg: Config) -> list[str]:
    """A per-process backend read before a shared one serves stale data across processes."""
    warnings = []
    for kind in ("audits", "blobs"):
        section = cfg.section(kind)
        order = [section.backends[n] for n in section.effective_read_order()]
        for i, b in enumerate(order):
            shared_after = [o.name for o in order[i + 1 :] if not _per_process(o)]
            if _per_process(b) and shared_after:
                warnings.append(
                    f"[{kind}] the per-process backend {b.name!r} is read before "
                    f"{', '.join(repr(n) for n in shared_after)}: with several processes, reads "
                    "can be stale; put shared backends first in read_order"
                )
                break
    return warnings


# --- db: schema migrations -------------------------------------------------------------------


@main.group()
def db() -> None:
    """Schema migrations of the backends with a versioned schema (every enabled sql backend)."""


def _schema_targets(
    cfg: Config, registry: PluginRegistry, only: str | None
) -> tuple[list[tuple[str, str, Any]], list[dict[str, str]]]:
    """(kind, name, factory) of the backends to act on, and the enabled ones without a schema.

    A backend type takes part when its factory has ``open_for_migrations`` (see
    ``veritas_store.SchemaManaged``); the CLI knows nothing else about it.
    """
    for kind in ("audits", "blobs"):
        check_section(cfg, kind, registry)
    found = [
        (kind, b)
        for kind in ("audits", "blobs")
        for b in cfg.section(kind).backends.values()
        if only is None or b.name == only
    ]
    if only is not None and not found:
        declared = sorted({n for k in ("audits", "blobs") for n in cfg.section(k).backends})
        raise ConfigError(
            f"--backend {only!r} is not a backend of this config (declared: {', '.join(declared)})",
            source=cfg.source,
        )
    targets: list[tuple[str, str, Any]] = []
    skipped: list[dict[str, str]] = []
    for kind, b in found:
        factory = factory_for(cfg, kind, b.name, registry)
        has_schema = callable(getattr(factory, "open_for_migrations", None))
        if only is not None and not b.enabled:
            raise ConfigError(f"backend {only!r} is disabled", source=cfg.source)
        if only is not None and not has_schema:
            raise ConfigError(
                f"backend {only!r} (type {b.type!r}) has no versioned schema to manage",
                source=cfg.source,
            )
        if not b.enabled:
            continue
        if has_schema:
            targets.append((kind, b.name, factory))
        else:
            skipped.append({"section": kind, "backend": b.name, "type": b.type})
    return targets, skipped


def _each_schema(
    config_path: str | None, only: str | None, action: Callable[[SchemaManaged], Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``action`` on every targeted backend, opened without its schema check."""
    cfg = load_config(config_path)
    targets, skipped = _schema_targets(cfg, get_registry(), only)
    results = []
    for kind, name, factory in targets:
        row: dict[str, Any] = {"section": kind, "backend": name}
        store = None
        try:
            store = open_backend(cfg, kind, name, factory, opener=factory.open_for_migrations)
            if not isinstance(store, SchemaManaged):
                raise PluginError(f"{type(store).__name__} lacks the schema_* methods")
            row["result"] = action(store)
        except ConfigError:
            raise
        except Exception as exc:
            row["error"] = redact(f"{type(exc).__name__}: {exc}")
        finally:
            if store is not None:
                store.close()
        results.append(row)
    return results, skipped


def _report_schema(
    results: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    as_json: bool,
    render: Callable[[list[dict[str, Any]]], None],
) -> None:
    if as_json:
        _emit_json({"backends": results, "skipped": skipped})
    else:
        if not results:
            console.print("No enabled backend has a versioned schema.", highlight=False)
        render([r for r in results if "result" in r])
        for s in skipped:
            console.print(
                Text(f"skipped {s['section']}.{s['backend']} (type {s['type']}): no schema")
            )
        for r in results:
            if "error" in r:
                err_console.print(
                    f"[bold red]error:[/] {escape(r['section'])}.{escape(r['backend'])}: "
                    f"{escape(r['error'])}",
                    highlight=False,
                    soft_wrap=True,
                )
    if any("error" in r for r in results):
        sys.exit(1)


_BACKEND_OPTION = click.option(
    "--backend", "only", default=None, help="Only this backend (by its config name)."
)
_JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@db.command(name="current")
@with_config
@_BACKEND_OPTION
@_JSON_OPTION
def db_current(config_path: str | None, only: str | None, as_json: bool) -> None:
    """Show each backend's schema revision and whether it is up to date."""
    results, skipped = _each_schema(config_path, only, lambda store: store.schema_current())

    def render(rows: list[dict[str, Any]]) -> None:
        columns = ["section", "backend", "state", "revision", "latest"]
        table_rows = [
            [r["section"], r["backend"], r["result"]["state"], r["result"]["revision"],
             r["result"]["head"]]
            for r in rows
        ]  # fmt: skip
        console.print(_table("Schema", columns, table_rows))

    _report_schema(results, skipped, as_json, render)


@db.command(name="history")
@with_config
@_BACKEND_OPTION
@_JSON_OPTION
def db_history(config_path: str | None, only: str | None, as_json: bool) -> None:
    """List the migrations, oldest first, and which each backend has applied."""
    results, skipped = _each_schema(config_path, only, lambda store: store.schema_history())

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            columns = ["revision", "after", "applied", "description"]
            table_rows = [
                [h["revision"], h["down_revision"], _yes(h["applied"]), h["description"]]
                for h in r["result"]
            ]
            console.print(
                _table(f"Migrations of {r['section']}.{r['backend']}", columns, table_rows)
            )

    _report_schema(results, skipped, as_json, render)


@db.command(name="upgrade")
@with_config
@_BACKEND_OPTION
@_JSON_OPTION
def db_upgrade(config_path: str | None, only: str | None, as_json: bool) -> None:
    """Upgrade each backend's schema to the latest revision (safe to run on every deploy)."""
    results, skipped = _each_schema(config_path, only, lambda store: store.schema_upgrade())

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            res = r["result"]
            if not res["changed"]:
                what = f"already at {res['to']}"
            elif res["before"] == "empty":
                what = f"created at {res['to']}"
            elif res["before"] == "unversioned":
                what = f"adopted (tables made before migrations) and upgraded to {res['to']}"
            else:
                what = f"upgraded from {res['from']} to {res['to']}"
            console.print(Text(f"{r['section']}.{r['backend']}: {what}"))

    _report_schema(results, skipped, as_json, render)


@main.command()
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
        _emit_json(report.to_dict())
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
            console.print(_table("Not repaired", columns, rows, keep=("key",)))
    if report.failed:
        sys.exit(1)


@main.command()
@with_config
@click.argument("audit_id")
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON.")
@click.option("--events", "with_events", is_flag=True, help="Also print the audit's event log.")
def show(config_path: str | None, audit_id: str, as_json: bool, with_events: bool) -> None:
    """Show one audit, with its findings and screenshots (and its event log)."""
    events: list[Any] = []
    with open_stores(config_path) as stores:
        audit, source = stores.audits.get_with_source(audit_id)
        if audit is not None and with_events:
            if Capability.EVENTS not in stores.audits.capabilities:
                _fail("none of the audit backends keeps events (Capability.EVENTS)", 1)
                return
            after = 0
            while page := stores.audits.events(audit_id, after=after, limit=MAX_EVENTS_PAGE):
                events.extend(page)
                last = page[-1].seq
                if last is None:  # a store must number what it stores
                    raise RuntimeError("the audit store returned an unnumbered event")
                after = last
    if audit is None:
        _fail(f"audit {audit_id!r} not found", 1)
        return
    data = audit.to_dict()
    event_dicts = [
        {"seq": e.seq, "type": e.type, "created_at": e.created_at.isoformat(), "data": e.data}
        for e in events
    ]
    if as_json:
        _emit_json(
            {"source": source, "audit": data, **({"events": event_dicts} if with_events else {})}
        )
        return
    fields = [
        [
            key,
            "-"
            if value in (None, {}, "")
            else json.dumps(value)
            if isinstance(value, dict | list)
            else value,
        ]
        for key, value in data.items()
        if key not in ("findings", "screenshots")
    ]
    console.print(
        _table(
            f"Audit {audit.id} (read from {source})", ["field", "value"], fields, keep=("field",)
        )
    )
    if audit.findings:
        columns = ["category", "pattern", "severity", "confidence", "screenshot", "description"]
        rows = [
            [
                f.category,
                f.pattern_type,
                f.severity,
                f"{f.confidence:.2f}",
                f.screenshot_index,
                f.description,
            ]
            for f in audit.findings
        ]
        console.print(_table("Findings", columns, rows))
    if audit.screenshots:
        rows = [
            [s.index, s.label, s.blob_key, s.size_bytes, s.content_type] for s in audit.screenshots
        ]
        console.print(
            _table(
                "Screenshots",
                ["index", "label", "blob key", "bytes", "type"],
                rows,
                keep=("blob key",),
            )
        )
    if with_events:
        rows = [[e["seq"], e["created_at"], e["type"], json.dumps(e["data"])] for e in event_dicts]
        console.print(_table("Events", ["seq", "at", "type", "data"], rows))


def _cli_time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


@main.command(name="list")
@with_config
@click.option(
    "--status",
    type=click.Choice([s.value for s in AuditStatus]),
    default=None,
    help="Only audits with this status.",
)
@click.option("--risk-level", default=None, help="Only audits with this risk level.")
@click.option("--url", default=None, help="Only audits of this exact URL.")
@click.option(
    "--created-after", default=None, help="ISO 8601 time (naive = UTC): created at or after."
)
@click.option("--created-before", default=None, help="ISO 8601 time (naive = UTC): created before.")
@click.option(
    "--order", type=click.Choice(["newest", "oldest"]), default="newest", show_default=True
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--cursor", default=None, help="Continue after a previous page's next_cursor.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
def list_(
    config_path: str | None,
    status: str | None,
    risk_level: str | None,
    url: str | None,
    created_after: str | None,
    created_before: str | None,
    order: str,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List audits, newest first (or oldest first), filtered."""
    window = {
        "created_after": _cli_time("--created-after", created_after),
        "created_before": _cli_time("--created-before", created_before),
    }
    with open_stores(config_path) as stores:
        page = stores.audits.list(
            status=status, risk_level=risk_level, url=url, order=order, limit=limit,
            cursor=cursor, **window,
        )  # fmt: skip
    if as_json:
        _emit_json({"items": [a.to_dict() for a in page.items], "next_cursor": page.next_cursor})
        return
    rows = [
        [
            a.id,
            a.status.value,
            a.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "-" if a.trust_score is None else f"{a.trust_score:.2f}",
            a.risk_level,
            a.url,
        ]
        for a in page.items
    ]
    columns = ["id", "status", "created", "trust", "risk", "url"]
    console.print(_table(f"Audits ({order} first)", columns, rows, keep=("id",)))
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}", highlight=False)


# --- copy and verify -------------------------------------------------------------------------


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
            if backend is not None and _per_process(backend):
                raise ConfigError(
                    f"{name!r} is an in-memory backend: it lives in one process's memory, so "
                    "this command would only see its own empty copy",
                    source=cfg.source,
                    key=f"{kind}.backends.{name}",
                )


@main.command()
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
    state = state_path or str(sync.default_state_path(cfg, source, target))
    resume = (
        "nothing was written (dry run)"
        if dry_run
        else f"progress is saved in {state}: run the same command to resume"
    )
    try:
        with _progress_bar() as bar:
            reports = sync.copy_backends(
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
        _fail(f"interrupted; {resume}", 130)
        return
    except (ConfigError, PluginError):
        raise
    except Exception as exc:
        _fail(f"copy stopped: {type(exc).__name__}: {redact(str(exc))}; {resume}", 1)
        return
    if as_json:
        _emit_json(
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
    console.print(_table(None, columns, rows))
    for r in reports:
        if r.kept_newer:
            err_console.print(
                f"[yellow]note:[/] {_count(r.kept_newer, 'audit')} newer in {escape(target)} "
                "left alone (--overwrite-newer to replace them): "
                f"{escape(', '.join(r.kept_newer_ids))}",
                highlight=False,
                soft_wrap=True,
            )


@main.command()
@with_config
@click.option("--from", "source", default=None, help="One backend to compare (a config name).")
@click.option("--to", "target", default=None, help="The other backend to compare.")
@click.option(
    "--max-diffs",
    type=click.IntRange(0, 1_000_000),
    default=sync.MAX_DETAILS,
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
        _fail("give both --from and --to, or neither", 2)
    cfg = load_config(config_path)
    if source is not None and target is not None:
        _refuse_per_process(cfg, [source, target])
    with _progress_bar() as bar:
        reports = sync.verify_backends(
            cfg,
            source,
            target,
            max_details=max_diffs,
            skip=_per_process,
            progress=_progress_callback(bar),
        )
    clean = all(r.clean for r in reports)
    if as_json:
        _emit_json(
            {"config": cfg.source, "clean": clean, "sections": [r.to_dict() for r in reports]}
        )
    else:
        _print_verify(reports)
    if not clean:
        sys.exit(1)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_verify(reports: list[sync.VerifyReport]) -> None:
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
                _table(f"{r.kind} differences", ["key", "problem", "detail"], rows, keep=("key",))
            )
        if r.total > len(r.differences):
            console.print(
                Text(f"… and {r.total - len(r.differences)} more (--max-diffs N or --json)")
            )
