"""``plugins`` and ``check``: what is installed, and whether the config's backends work."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import click
from rich.markup import escape
from rich.text import Text

from ..composite.journal import read_stats
from ..plugin_api.hookspecs import PLUGIN_API_VERSION
from ..plugin_api.protocols import Capability, SchemaManaged, capabilities_of
from ..plugin_api.registry import ALLOW_LIST_ENV, FAILED, LOADED, PluginRegistry, get_registry
from ..records.errors import ConfigError
from ..wiring.config import Config, load_config, redact
from ..wiring.stores import check_section, factory_for, open_backend
from .base import console, emit_json, err_console, fail, per_process, table, with_config, yes


@click.command()
@with_config
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List plugins (distribution, version, types, load errors) and the backend types."""
    # This command reports load problems itself: no second copy through the log.
    logging.getLogger("veritas_store.plugins").addHandler(logging.NullHandler())
    report = _plugin_report(get_registry())
    if as_json:
        emit_json(report)
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
    console.print(table("Plugins", columns, plugin_rows, keep=("plugin", "distribution")))
    columns = ["kind", "type", "plugin", "description"]
    type_rows = [[r[c] for c in columns] for r in report["types"]]
    console.print(table("Backend types", columns, type_rows))
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


@click.command()
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
        emit_json(
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
                yes(r["required"]),
                Text(r["status"], style=colour[r["status"]]),
                "" if r["ms"] is None else f"{r['ms']:.1f}",
                r["detail"],
            ]
            for r in rows
        ]
        columns = ["section", "backend", "type", "required", "status", "ms", "detail"]
        console.print(table("Backends", columns, table_rows))
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
        fail(f"the repair journal {str(cfg.journal)!r} cannot be read: {exc}", 1)
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


def _read_order_warnings(cfg: Config) -> list[str]:
    """A per-process backend read before a shared one serves stale data across processes."""
    warnings = []
    for kind in ("audits", "blobs"):
        section = cfg.section(kind)
        order = [section.backends[n] for n in section.effective_read_order()]
        for i, b in enumerate(order):
            shared_after = [o.name for o in order[i + 1 :] if not per_process(o)]
            if per_process(b) and shared_after:
                warnings.append(
                    f"[{kind}] the per-process backend {b.name!r} is read before "
                    f"{', '.join(repr(n) for n in shared_after)}: with several processes, reads "
                    "can be stale; put shared backends first in read_order"
                )
                break
    return warnings
