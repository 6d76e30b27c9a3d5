"""``show`` and ``list``: read audits through the configured stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from ..plugin_api.protocols import Capability
from ..records.paging import MAX_EVENTS_PAGE
from ..records.values import AuditStatus
from ..wiring.stores import open_stores
from .base import console, emit_json, fail, table, with_config


@click.command()
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
                fail("none of the audit backends keeps events (Capability.EVENTS)", 1)
                return
            after = 0
            while page := stores.audits.events(audit_id, after=after, limit=MAX_EVENTS_PAGE):
                events.extend(page)
                last = page[-1].seq
                if last is None:  # a store must number what it stores
                    raise RuntimeError("the audit store returned an unnumbered event")
                after = last
    if audit is None:
        fail(f"audit {audit_id!r} not found", 1)
        return
    data = audit.to_dict()
    event_dicts = [
        {"seq": e.seq, "type": e.type, "created_at": e.created_at.isoformat(), "data": e.data}
        for e in events
    ]
    if as_json:
        emit_json(
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
        table(f"Audit {audit.id} (read from {source})", ["field", "value"], fields, keep=("field",))
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
        console.print(table("Findings", columns, rows))
    if audit.screenshots:
        rows = [
            [s.index, s.label, s.blob_key, s.size_bytes, s.content_type] for s in audit.screenshots
        ]
        console.print(
            table(
                "Screenshots",
                ["index", "label", "blob key", "bytes", "type"],
                rows,
                keep=("blob key",),
            )
        )
    if with_events:
        rows = [[e["seq"], e["created_at"], e["type"], json.dumps(e["data"])] for e in event_dicts]
        console.print(table("Events", ["seq", "at", "type", "data"], rows))


def _cli_time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


@click.command(name="list")
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
        emit_json({"items": [a.to_dict() for a in page.items], "next_cursor": page.next_cursor})
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
    console.print(table(f"Audits ({order} first)", columns, rows, keep=("id",)))
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}", highlight=False)
