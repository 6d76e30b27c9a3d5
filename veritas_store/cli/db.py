"""``veritas-store db``: schema migrations of the backends with a versioned schema."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
from rich.markup import escape
from rich.text import Text

from ..plugin_api.protocols import SchemaManaged
from ..plugin_api.registry import PluginRegistry, get_registry
from ..records.errors import ConfigError, PluginError
from ..wiring.config import Config, load_config, redact
from ..wiring.stores import check_section, factory_for, open_backend
from .base import console, emit_json, err_console, table, with_config, yes


@click.group()
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
        emit_json({"backends": results, "skipped": skipped})
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
        console.print(table("Schema", columns, table_rows))

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
                [h["revision"], h["down_revision"], yes(h["applied"]), h["description"]]
                for h in r["result"]
            ]
            console.print(
                table(f"Migrations of {r['section']}.{r['backend']}", columns, table_rows)
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
