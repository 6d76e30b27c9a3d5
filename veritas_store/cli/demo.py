"""``veritas-store demo``: a realistic audit lifecycle through the configured stores."""

from __future__ import annotations

import click
from rich.text import Text

from ..wiring.stores import open_stores
from .base import console, emit_json, table, with_config, yes


@click.command()
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
        emit_json(report)
        return
    console.print(Text(f"Demo audit {report['audit_id']}  (config: {report['config']})"))
    console.print("Lifecycle: " + " → ".join(report["steps"]))
    audit_rows = [
        [
            r["backend"],
            yes(r["has_audit"]),
            r["status"],
            r["findings"],
            r["screenshots"],
            yes(r["equal_to_read"]),
        ]
        for r in report["audit_backends"]
    ]
    columns = ["backend", "has audit", "status", "findings", "screenshots", "same as read"]
    console.print(table("Audit backends", columns, audit_rows))
    blob_rows = [[r["backend"], "\n".join(r["keys"]) or "-"] for r in report["blob_backends"]]
    console.print(
        table("Blob backends", ["backend", "screenshot keys"], blob_rows, keep=("screenshot keys",))
    )
    console.print(Text(f"Read answered by: {report['read_from']}"))
    console.print(
        f"Trust score {report['audit']['trust_score']}, risk {report['audit']['risk_level']}, "
        f"{len(report['audit']['findings'])} findings, "
        f"{len(report['screenshots_loaded'])} screenshots loaded and verified."
    )
