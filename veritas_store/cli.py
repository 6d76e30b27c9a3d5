"""The ``veritas-store`` command line for operators.

Every command takes ``--config PATH`` (before or after the command name); without it the file
named by ``$VERITAS_STORE_CONFIG`` or the embedded default is used. Commands that print data
take ``--json``. Exit codes: 0 ok, 1 a failure or a difference, 2 a config or usage error.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .config import Config, load_config, redact
from .errors import ConfigError, PluginError, VeritasStoreError
from .model import AuditStatus
from .plugins import PluginRegistry, get_registry
from .stores import check_section, factory_for, open_backend, open_stores

console = Console()
err_console = Console(stderr=True)

PERSISTENT_HINT = "memory"  # type name of the per-process backend


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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
    console.print(f"[bold]Demo audit[/] {report['audit_id']}  (config: {report['config']})")
    console.print("Lifecycle: " + " → ".join(report["steps"]))
    table = Table(title="Audit backends")
    for col in ("backend", "has audit", "status", "findings", "screenshots", "same as read"):
        table.add_column(col)
    for row in report["audit_backends"]:
        table.add_row(
            row["backend"],
            _yes(row["has_audit"]),
            row["status"] or "-",
            str(row["findings"]),
            str(row["screenshots"]),
            _yes(row["equal_to_read"]),
        )
    console.print(table)
    blobs = Table(title="Blob backends")
    blobs.add_column("backend")
    blobs.add_column("screenshot keys")
    for row in report["blob_backends"]:
        blobs.add_row(row["backend"], "\n".join(row["keys"]) or "-")
    console.print(blobs)
    console.print(f"Read answered by: [bold]{report['read_from']}[/]")
    console.print(
        f"Trust score {report['audit']['trust_score']}, risk {report['audit']['risk_level']}, "
        f"{len(report['audit']['findings'])} findings, "
        f"{len(report['screenshots_loaded'])} screenshots loaded and verified."
    )


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


@main.command()
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List registered backend types with their plugin and distribution, and broken plugins."""
    registry = get_registry()
    rows = [
        {
            "kind": kind,
            "type": bt.name,
            "plugin": bt.plugin,
            "distribution": bt.distribution,
            "version": bt.version,
            "description": bt.description,
        }
        for kind in ("audits", "blobs")
        for types in registry.types[kind].values()
        for bt in types
    ]
    broken = [
        {"plugin": p.name, "distribution": p.distribution, "version": p.version, "error": p.error}
        for p in registry.plugins.values()
        if p.error
    ]
    if as_json:
        _emit_json({"types": rows, "errors": broken})
        return
    table = Table(title="Backend types")
    for col in ("kind", "type", "plugin", "distribution", "version", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["kind"],
            r["type"],
            r["plugin"],
            r["distribution"] or "-",
            r["version"] or "-",
            r["description"],
        )
    console.print(table)
    for b in broken:
        err_console.print(f"[yellow]not loaded:[/] {b['error']}", highlight=False)


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
        console.print(f"Config: {cfg.source}")
        table = Table(title="Backends")
        for col in ("section", "backend", "type", "required", "status", "ms", "detail"):
            table.add_column(col)
        colour = {"ok": "green", "error": "red", "disabled": "dim"}
        for r in rows:
            table.add_row(
                r["section"],
                r["backend"],
                r["type"],
                _yes(r["required"]),
                f"[{colour[r['status']]}]{r['status']}[/]",
                "" if r["ms"] is None else f"{r['ms']:.1f}",
                r["detail"],
            )
        console.print(table)
        for w in warnings:
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
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
    table = Table(title=f"Audit {audit.id} (read from {source})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if key in ("findings", "screenshots"):
            continue
        table.add_row(
            key,
            "-"
            if value in (None, {}, "")
            else json.dumps(value)
            if isinstance(value, dict)
            else str(value),
        )
    console.print(table)
    if audit.findings:
        ft = Table(title="Findings")
        for col in ("category", "pattern", "severity", "confidence", "screenshot", "description"):
            ft.add_column(col)
        for f in audit.findings:
            ft.add_row(
                f.category,
                f.pattern_type,
                f.severity,
                f"{f.confidence:.2f}",
                "-" if f.screenshot_index is None else str(f.screenshot_index),
                f.description,
            )
        console.print(ft)
    if audit.screenshots:
        st = Table(title="Screenshots")
        for col in ("index", "label", "blob key", "bytes", "type"):
            st.add_column(col)
        for s in audit.screenshots:
            st.add_row(str(s.index), s.label, s.blob_key, str(s.size_bytes), s.content_type)
        console.print(st)


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
    table = Table(title="Audits (newest first)")
    for col in ("id", "status", "created", "trust", "risk", "url"):
        table.add_column(col)
    for a in page.items:
        table.add_row(
            a.id,
            a.status.value,
            a.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "-" if a.trust_score is None else f"{a.trust_score:.2f}",
            a.risk_level or "-",
            a.url,
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
