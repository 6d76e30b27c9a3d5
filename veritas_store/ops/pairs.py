"""Which backend pairs a config gives, and opening them: what ``copy`` and ``verify`` share.

Backends are named by their config names, looked up in ``[audits]`` and ``[blobs]``: a pair
acts on every section that declares both names. A named backend is opened even when it is
disabled, because backfilling a backend before enabling it is what ``copy`` is for.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from ..plugin_api.registry import PluginRegistry
from ..records.errors import ConfigError
from ..wiring.config import SECTIONS, Config
from ..wiring.stores import factory_for, open_backend

# progress(task, done, total): total is None when it is not known in advance (audits).
Progress = Callable[[str, int, int | None], None]

PAGE_SIZE = 200  # audits per page, and per checkpoint
MAX_DETAILS = 20  # differences (or kept-newer ids) listed per section by default


def no_progress(task: str, done: int, total: int | None) -> None:
    pass


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@attrs.frozen
class Pair:
    """The same two config names in one section."""

    kind: str  # "audits" or "blobs"
    source: str
    target: str


def pairs_for(cfg: Config, source: str, target: str) -> list[Pair]:
    """The sections that declare both names; a ``ConfigError`` when there is none."""
    if source == target:
        raise ConfigError(f"--from and --to both name {source!r}", source=cfg.source)
    for name in (source, target):
        if not any(name in cfg.section(kind).backends for kind in SECTIONS):
            declared = "; ".join(
                f"[{kind}]: {', '.join(cfg.section(kind).backends)}" for kind in SECTIONS
            )
            raise ConfigError(
                f"no backend named {name!r} in [audits] or [blobs] (declared {declared})",
                source=cfg.source,
            )
    pairs = [
        Pair(kind, source, target)
        for kind in SECTIONS
        if source in cfg.section(kind).backends and target in cfg.section(kind).backends
    ]
    if not pairs:
        where = {
            name: next(k for k in SECTIONS if name in cfg.section(k).backends)
            for name in (source, target)
        }
        raise ConfigError(
            f"{source!r} (in [{where[source]}]) and {target!r} (in [{where[target]}]) are in "
            "no common section: there is nothing to compare",
            source=cfg.source,
        )
    return pairs


@contextlib.contextmanager
def opened(cfg: Config, registry: PluginRegistry, pair: Pair) -> Iterator[tuple[Any, Any]]:
    """The pair's two backends, opened from config (disabled ones too), closed afterwards."""
    factories = [factory_for(cfg, pair.kind, n, registry) for n in (pair.source, pair.target)]
    backends: list[Any] = []
    try:
        for name, factory in zip((pair.source, pair.target), factories, strict=True):
            backends.append(open_backend(cfg, pair.kind, name, factory))
        yield backends[0], backends[1]
    finally:
        for store in backends:
            with contextlib.suppress(Exception):
                store.close()
