"""The ``veritas-store`` command line for operators.

Every command takes ``--config PATH`` (before or after the command name); without it the file
named by ``$VERITAS_STORE_CONFIG`` or the embedded default is used. Commands that print data
take ``--json``. Exit codes: 0 ok, 1 a failure or a difference, 2 a config or usage error.

This module is the entry point (``veritas-store`` and ``python -m veritas_store.cli``): the
top-level group and its global ``--config``. The commands live in one module per group:
``health`` (plugins, check), ``audits`` (show, list), ``db`` (schema migrations), ``operate``
(repair, copy, verify) and ``demo``; what they share is in ``base``.
"""

from __future__ import annotations

import click

from . import audits, db, demo, health, operate


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


main.add_command(demo.demo)
main.add_command(health.plugins)
main.add_command(health.check)
main.add_command(db.db)
main.add_command(operate.repair)
main.add_command(audits.show)
main.add_command(audits.list_)
main.add_command(operate.copy)
main.add_command(operate.verify)
