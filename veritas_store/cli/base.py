"""What every command shares: the consoles, error exits, ``--config``, JSON and table output."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..records.errors import ConfigError, PluginError, VeritasStoreError
from ..wiring.config import BackendConfig

console = Console()
err_console = Console(stderr=True)

PERSISTENT_HINT = "memory"  # type name of the per-process backend


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
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
            fail(str(exc), 2)
        except VeritasStoreError as exc:
            fail(f"{type(exc).__name__}: {exc}", 1)

    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def yes(flag: bool) -> Text:
    return Text("yes", style="green") if flag else Text("no", style="red")


def table(
    title: str | None, columns: list[str], rows: list[list[Any]], keep: tuple[str, ...] = ()
) -> Table:
    """A table whose cells are plain text (never markup); ``keep`` columns never wrap (ids)."""
    shown = Table(title=Text(title) if title else None)
    for col in columns:
        shown.add_column(col, no_wrap=col in keep, overflow="fold")  # never "…": no text lost
    for row in rows:
        shown.add_row(
            *(v if isinstance(v, Text) else Text("-" if v is None else str(v)) for v in row)
        )
    return shown


def per_process(backend: BackendConfig) -> bool:
    """A backend whose data lives in this process only: the memory type, or an in-memory URL
    (``memory://...``, an in-memory SQLite database) of any type."""
    if backend.type == PERSISTENT_HINT:
        return True
    url = backend.options.get("url")
    return isinstance(url, str) and bool(_IN_MEMORY_URL.match(url))


_IN_MEMORY_URL = re.compile(r"memory://|sqlite(\+\w+)?://(/:memory:)?(\?.*)?$")
