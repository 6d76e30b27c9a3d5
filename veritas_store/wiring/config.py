"""Config: a TOML file, a dict of the same shape, or the embedded default, into typed objects.

The steps, each with errors that name the file and the key: parse TOML -> fill a missing
``[audits]`` / ``[blobs]`` from the embedded default -> expand ``${VAR}`` / ``${VAR:-default}``
-> structure with cattrs (unknown keys rejected) -> resolve relative paths -> check ranges and
cross references. Expansion, path resolution and structuring are in ``raw.py``; this module
has the typed ``Config`` and the rules across keys. Which backend types exist is checked later,
against the plugin registry, when the stores are built.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from ..composite.routing import STAGES, stage_uses  # routing holds the stage table
from ..records.errors import ConfigError
from .raw import RawMigration, RawSection, boolean_word, expand, resolve_path, structure

CONFIG_ENV = "VERITAS_STORE_CONFIG"
EMBEDDED_DEFAULT = "<embedded default>"
SECTIONS = ("audits", "blobs")
PATH_OPTIONS = ("url", "path")
DEFAULT_JOURNAL = "veritas-data/journal.db"
MAX_RETRIES = 100


# --- the typed config -------------------------------------------------------------------


def redact(value: Any) -> Any:
    """The value with passwords in URLs and secret-looking option values masked."""
    if isinstance(value, str):
        return re.sub(r"(://[^/:@\s]*:)[^@\s]+@", r"\1***@", value)
    if isinstance(value, Mapping):
        return {
            k: "***" if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


_SECRET_KEY = re.compile(r"pass|secret|token|credential|access_key|(^|_)key$", re.IGNORECASE)


@attrs.frozen
class BackendConfig:
    """One backend table. ``options`` are the keys that go to the backend's factory.

    ``timeout`` (seconds, None: no deadline), ``retries`` and ``backoff`` (the first retry's
    delay in seconds, doubled each time) are the resilience keys (see ``resilience.py``).
    """

    name: str
    type: str
    enabled: bool = True
    required: bool = True
    options: dict[str, Any] = attrs.field(factory=dict, repr=lambda o: repr(redact(o)))
    timeout: float | None = None
    retries: int = 0
    backoff: float = 0.1


@attrs.frozen
class MigrationConfig:
    """``[<section>.migration]``: a pair of backends and the stage of moving from one to the other.

    The stage's meaning (what is read and written, in which order) is in ``composite/routing.py``.
    """

    from_: str  # TOML key "from"
    to: str
    stage: str
    compare_ratio: float = 1.0


@attrs.frozen
class SectionConfig:
    """``[audits]`` or ``[blobs]``: backends in declaration order and the read order."""

    backends: dict[str, BackendConfig]
    read_order: tuple[str, ...] | None = None
    read_repair: bool = False
    migration: MigrationConfig | None = None

    @property
    def enabled(self) -> list[BackendConfig]:
        return [b for b in self.backends.values() if b.enabled]

    def effective_read_order(self) -> list[str]:
        """Enabled backends in ``read_order``, then enabled ones it leaves out, as declared."""
        listed = [n for n in (self.read_order or ()) if self.backends[n].enabled]
        rest = [b.name for b in self.enabled if b.name not in listed]
        return listed + rest


@attrs.frozen
class Config:
    audits: SectionConfig
    blobs: SectionConfig
    source: str  # the file's path, "<dict>" or "<embedded default>"
    base_dir: Path  # where relative paths were resolved
    journal: Path | None = None  # the repair journal's file; None: journaling is off

    def section(self, kind: str) -> SectionConfig:
        return self.audits if kind == "audits" else self.blobs


# --- loading ----------------------------------------------------------------------------


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
) -> Config:
    """Read a config from a path, a dict, ``$VERITAS_STORE_CONFIG`` or the embedded default."""
    if isinstance(source, Config):
        return source
    if source is None:
        env_path = os.environ.get(CONFIG_ENV)
        if env_path:
            return load_config(Path(env_path))
        return _build(_embedded_default_raw(), EMBEDDED_DEFAULT, Path.cwd())
    if isinstance(source, Mapping):
        return _build(dict(source), "<dict>", Path.cwd())
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=str(path)) from None
    return _build(raw, str(path), path.resolve().parent)


def _embedded_default_raw() -> dict[str, Any]:
    text = resources.files("veritas_store").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _build(raw: dict[str, Any], source: str, base_dir: Path) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a table, got {type(raw).__name__}", source=source)
    default = None
    for section in SECTIONS:
        if section not in raw:
            default = default or _embedded_default_raw()
            raw = {**raw, section: default[section]}
    typed = structure(expand(raw, source), source)
    sections = {name: _section(getattr(typed, name), name, source, base_dir) for name in SECTIONS}
    journal = _journal_path(typed.journal, source, base_dir)
    return Config(sections["audits"], sections["blobs"], source, base_dir, journal)


def _journal_path(value: str | bool, source: str, base_dir: Path) -> Path | None:
    """``journal = "path"`` (relative to ``base_dir``), or a false boolean to turn it off."""
    if isinstance(value, str):
        if (word := boolean_word(value)) is not None:
            value = word
        elif not value.strip():
            raise ConfigError(
                "expected a file path, or false to turn the journal off; got ''",
                source=source,
                key="journal",
            )
    if value is False:
        return None
    path = Path(DEFAULT_JOURNAL if value is True else value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _section(raw: RawSection, name: str, source: str, base_dir: Path) -> SectionConfig:
    backends = {}
    for backend_name, b in raw.backends.items():
        options = {
            k: resolve_path(v, base_dir) if k in PATH_OPTIONS else v for k, v in b.options.items()
        }
        where = f"{name}.backends.{backend_name}"
        if b.timeout is not None and not 0 < b.timeout <= 86_400:
            raise ConfigError(
                f"expected a number of seconds greater than 0 and at most 86400, got {b.timeout}",
                source=source,
                key=f"{where}.timeout",
            )
        if not 0 <= b.retries <= MAX_RETRIES:
            raise ConfigError(
                f"expected an integer from 0 to {MAX_RETRIES}, got {b.retries}",
                source=source,
                key=f"{where}.retries",
            )
        if not 0 <= b.backoff <= 60:
            raise ConfigError(
                f"expected a number of seconds from 0 to 60, got {b.backoff}",
                source=source,
                key=f"{where}.backoff",
            )
        backends[backend_name] = BackendConfig(
            backend_name,
            b.type,
            b.enabled,
            b.required,
            options,
            timeout=float(b.timeout) if b.timeout is not None else None,
            retries=b.retries,
            backoff=float(b.backoff),
        )
    if not backends:
        raise ConfigError("declare at least one backend", source=source, key=f"{name}.backends")
    for i, ref in enumerate(raw.read_order or ()):
        _check_declared(ref, backends, name, source, f"{name}.read_order[{i}]")
    if not any(b.enabled for b in backends.values()):
        raise ConfigError(
            "every backend is disabled; enable at least one", source=source, key=f"{name}.backends"
        )
    read_order = tuple(raw.read_order) if raw.read_order is not None else None
    migration = _migration(raw.migration, backends, name, source) if raw.migration else None
    return SectionConfig(backends, read_order, raw.read_repair, migration)


def _check_declared(
    ref: str, backends: dict[str, BackendConfig], section: str, source: str, key: str
) -> None:
    """``ref`` (in ``read_order`` or a migration) must name a backend of the section."""
    if ref not in backends:
        raise ConfigError(
            f"{ref!r} is not a backend of [{section}] (declared: {', '.join(backends)})",
            source=source,
            key=key,
        )


def _migration(
    raw: RawMigration, backends: dict[str, BackendConfig], section: str, source: str
) -> MigrationConfig:
    where = f"{section}.migration"
    for key, ref in (("from", raw.from_), ("to", raw.to)):
        _check_declared(ref, backends, section, source, f"{where}.{key}")
    if raw.from_ == raw.to:
        raise ConfigError(
            f"'from' and 'to' name the same backend {raw.to!r}", source=source, key=f"{where}.to"
        )
    stage = raw.stage.strip().lower()
    if stage not in STAGES:
        raise ConfigError(
            f"unknown stage {raw.stage!r}; expected one of: {', '.join(STAGES)}",
            source=source,
            key=f"{where}.stage",
        )
    if not 0 <= raw.compare_ratio <= 1:
        raise ConfigError(
            f"expected a number from 0 to 1, got {raw.compare_ratio}",
            source=source,
            key=f"{where}.compare_ratio",
        )
    for key, ref in (("from", raw.from_), ("to", raw.to)):
        if ref in stage_uses(stage, raw.from_, raw.to) and not backends[ref].enabled:
            raise ConfigError(
                f"stage {stage!r} uses backend {ref!r}, but it is disabled; enable it or "
                "choose a stage that does not use it",
                source=source,
                key=f"{where}.{key}",
            )
    return MigrationConfig(raw.from_, raw.to, stage, float(raw.compare_ratio))
