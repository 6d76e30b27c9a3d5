"""The ``veritas-store`` command line for operators.

Every command takes ``--config PATH`` (before or after the command name); without it the file
named by ``$VERITAS_STORE_CONFIG`` or the embedded default is used. Commands that print data
take ``--json``. Exit codes: 0 ok, 1 a failure or a difference, 2 a config or usage error.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .config import Config, load_config, redact
from .errors import ConfigError, PluginError, VeritasStoreError
from .hookspecs import PLUGIN_API_VERSION
from .model import AuditStatus
from .plugins import ALLOW_LIST_ENV, FAILED, LOADED, PluginRegistry, get_registry
from .stores import check_section, factory_for, open_backend, open_stores

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
    def wrapper(ctx: click.Context, config_path: str | None, **kwargs: Any) -> Any:
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
    from .demo import run_demo

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
    title: str, columns: list[str], rows: list[list[Any]], keep: tuple[str, ...] = ()
) -> Table:
    """A table whose cells are plain text (never markup); ``keep`` columns never wrap (ids)."""
    table = Table(title=Text(title))
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
    failed = [r for r in rows if r["status"] == "error"]
    if as_json:
        _emit_json({"config": cfg.source, "backends": rows, "warnings": warnings, "ok": not failed})
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
        if kind == "audits":
            store.list(limit=1)
        else:
            store.exists("veritas-health-check")
        row.update(status="ok", detail=_describe(backend.options))
    except ConfigError:
        raise  # a rejected option value is a config error (exit 2), not an unhealthy backend
    except Exception as exc:
        row.update(status="error", detail=redact(f"{type(exc).__name__}: {exc}"))
    finally:
        if store is not None:
            store.close()
    row["ms"] = (time.perf_counter() - started) * 1000
    return row


def _describe(options: dict[str, Any]) -> str:
    for key in ("url", "path"):
        if key in options:
            return str(redact(options[key]))
    return ""


def _read_order_warnings(cfg: Config) -> list[str]:
    """A per-process backend read before a shared one serves stale data across processes."""
    warnings = []
    for kind in ("audits", "blobs"):
        section = cfg.section(kind)
        order = [section.backends[n] for n in section.effective_read_order()]
        shared_after = [b.name for b in order if b.type != PERSISTENT_HINT]
        for i, b in enumerate(order):
            if b.type == PERSISTENT_HINT and any(o.type != PERSISTENT_HINT for o in order[i + 1 :]):
                warnings.append(
                    f"[{kind}] the per-process memory backend {b.name!r} is read before "
                    f"{', '.join(repr(n) for n in shared_after)}: with several processes, reads "
                    "can be stale; put shared backends first in read_order"
                )
                break
    return warnings


@main.command()
@with_config
@click.argument("audit_id")
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON.")
def show(config_path: str | None, audit_id: str, as_json: bool) -> None:
    """Show one audit, with its findings and screenshots."""
    with open_stores(config_path) as stores:
        audit, source = stores.audits.get_with_source(audit_id)
    if audit is None:
        _fail(f"audit {audit_id!r} not found", 1)
        return
    data = audit.to_dict()
    if as_json:
        _emit_json({"source": source, "audit": data})
        return
    fields = [
        [
            key,
            "-"
            if value in (None, {}, "")
            else json.dumps(value)
            if isinstance(value, dict)
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


@main.command(name="list")
@with_config
@click.option(
    "--status",
    type=click.Choice([s.value for s in AuditStatus]),
    default=None,
    help="Only audits with this status.",
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--cursor", default=None, help="Continue after a previous page's next_cursor.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
def list_(
    config_path: str | None, status: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List audits, newest first."""
    with open_stores(config_path) as stores:
        page = stores.audits.list(status=status, limit=limit, cursor=cursor)
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
    console.print(_table("Audits (newest first)", columns, rows, keep=("id",)))
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
