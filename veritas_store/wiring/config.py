"""Config: a TOML file, a dict of the same shape, or the embedded default, into typed objects.

The steps, each with errors that name the file and the key: parse TOML -> fill a missing
``[audits]`` / ``[blobs]`` from the embedded default -> expand ``${VAR}`` / ``${VAR:-default}``
-> structure with cattrs (unknown keys rejected) -> resolve relative paths -> check cross
references. Which backend types exist is checked later, against the plugin registry, when the
stores are built.
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception

from ..composite.routing import STAGES, stage_uses  # routing holds the stage table
from ..records.errors import ConfigError

CONFIG_ENV = "VERITAS_STORE_CONFIG"
EMBEDDED_DEFAULT = "<embedded default>"
SECTIONS = ("audits", "blobs")
# Keys of a backend table that the framework reads; every other key goes to the factory.
RESILIENCE_KEYS = frozenset({"timeout", "retries", "backoff"})
FRAMEWORK_KEYS = frozenset({"type", "enabled", "required"}) | RESILIENCE_KEYS
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
    expanded = _expand(raw, source, "")
    try:
        typed = _converter.structure(expanded, _RawConfig)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        messages = cattrs.transform_error(exc, path="$", format_exception=_format)
        raise ConfigError("; ".join(_tidy(m) for m in messages), source=source) from None
    sections = {name: _section(getattr(typed, name), name, source, base_dir) for name in SECTIONS}
    journal = _journal_path(typed.journal, source, base_dir)
    return Config(sections["audits"], sections["blobs"], source, base_dir, journal)


def _journal_path(value: str | bool, source: str, base_dir: Path) -> Path | None:
    """``journal = "path"`` (relative to ``base_dir``), or a false boolean to turn it off."""
    if isinstance(value, str):
        if value.strip().lower() in _TRUE | _FALSE:
            value = value.strip().lower() in _TRUE
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


def _section(raw: _RawSection, name: str, source: str, base_dir: Path) -> SectionConfig:
    backends = {}
    for backend_name, b in raw.backends.items():
        options = {
            k: _resolve_path(v, base_dir) if k in PATH_OPTIONS else v for k, v in b.options.items()
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
        if ref not in backends:
            raise ConfigError(
                f"{ref!r} is not a backend of [{name}] (declared: {', '.join(backends)})",
                source=source,
                key=f"{name}.read_order[{i}]",
            )
    if not any(b.enabled for b in backends.values()):
        raise ConfigError(
            "every backend is disabled; enable at least one", source=source, key=f"{name}.backends"
        )
    read_order = tuple(raw.read_order) if raw.read_order is not None else None
    migration = _migration(raw.migration, backends, name, source) if raw.migration else None
    return SectionConfig(backends, read_order, raw.read_repair, migration)


def _migration(
    raw: _RawMigration, backends: dict[str, BackendConfig], section: str, source: str
) -> MigrationConfig:
    where = f"{section}.migration"
    for key, ref in (("from", raw.from_), ("to", raw.to)):
        if ref not in backends:
            raise ConfigError(
                f"{ref!r} is not a backend of [{section}] (declared: {', '.join(backends)})",
                source=source,
                key=f"{where}.{key}",
            )
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


# --- ${VAR} expansion -------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, source: str, path: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            current = os.environ.get(name)
            if current:  # like the shell's ${VAR:-default}: empty counts as unset
                return current
            if default is not None:
                return default
            if current is not None:
                return current
            raise ConfigError(
                f"environment variable {name} is not set and has no default "
                f"(write ${{{name}:-default}} to give one)",
                source=source,
                key=path or None,
            )

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _expand(v, source, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# --- relative paths ---------------------------------------------------------------------

_SQLITE_URL = re.compile(r"^(sqlite(?:\+\w+)?:///)(?!/)(.+)$")


def _resolve_path(value: Any, base_dir: Path) -> Any:
    """Make a relative local path (``rel/dir``, ``file:rel``, ``sqlite:///rel.db``) absolute."""
    if not isinstance(value, str) or not value:
        return value
    sqlite = _SQLITE_URL.match(value)
    if sqlite:
        target = sqlite.group(2)
        if target.startswith(":memory:") or target.startswith("file:"):
            return value
        return sqlite.group(1) + str(base_dir / target)
    if "://" in value:
        return value
    if value.startswith("file:"):
        return "file://" + str(base_dir / value[len("file:") :])
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


# --- structuring with cattrs --------------------------------------------------------------


@attrs.frozen
class _RawBackend:
    type: str
    enabled: bool = True
    required: bool = True
    options: dict[str, Any] = attrs.field(factory=dict)
    timeout: float | None = None
    retries: int = 0
    backoff: float = 0.1


@attrs.frozen
class _RawMigration:
    from_: str
    to: str
    stage: str
    compare_ratio: float = 1.0


@attrs.frozen
class _RawSection:
    backends: dict[str, _RawBackend] = attrs.field(factory=dict)
    read_order: list[str] | None = None
    read_repair: bool = False
    migration: _RawMigration | None = None


@attrs.frozen
class _RawConfig:
    audits: _RawSection
    blobs: _RawSection
    journal: str | bool = True


class _ConfigValueError(ValueError):
    """A value error whose message is already what the user should read."""


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _ConfigValueError(f"expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise _ConfigValueError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _structure_backend(value: Any, _: type) -> _RawBackend:
    # Framework keys are checked field by field (errors name e.g. '...sql.enabled'); every
    # other key is an option for the backend's factory.
    if not isinstance(value, Mapping):
        raise _ConfigValueError(f"expected a table, got {type(value).__name__}")
    split: dict[str, Any] = {k: v for k, v in value.items() if k in FRAMEWORK_KEYS}
    split["options"] = {k: v for k, v in value.items() if k not in FRAMEWORK_KEYS}
    return _structure_backend_fields(split, _RawBackend)


def _structure_number(value: Any, kind: type) -> Any:
    """An int or a float from TOML, or from text (``${VAR}`` expands to text)."""
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            pass
    elif (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and (kind is float or float(value).is_integer())
    ):
        return kind(value)
    what = "an integer" if kind is int else "a number"
    raise _ConfigValueError(f"expected {what}, got {type(value).__name__} {value!r}")


def _structure_optional_float(value: Any, _: type) -> float | None:
    return None if value is None else _structure_number(value, float)


def _structure_path_or_bool(value: Any, _: type) -> str | bool:
    if isinstance(value, bool | str):
        return value
    raise _ConfigValueError(
        f"expected a file path, or false to turn the journal off; got {type(value).__name__}"
    )


def _structure_name_list(value: Any, _: type) -> list[str]:
    if not isinstance(value, list):
        raise _ConfigValueError(
            f"expected a list of backend names, got {type(value).__name__} {value!r}"
        )
    return [_structure_str(v, str) for v in value]


def _format(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _ConfigValueError):
        return str(exc)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown key(s): {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, KeyError):
        return "required key missing"
    if type_ in (_RawSection, _RawConfig, _RawBackend, _RawMigration) or (
        isinstance(exc, AttributeError | TypeError) and type_ is None
    ):
        return "expected a table"
    return format_exception(exc, type_)


def _tidy(message: str) -> str:
    """'problem @ $.audits.backends['sql'].enabled' -> 'at audits.backends.sql.enabled: problem'."""
    text, _, where = message.rpartition(" @ ")
    where = re.sub(r"\['([^']*)'\]", r".\1", where).removeprefix("$").lstrip(".")
    return f"at '{where}': {text}" if where else text


_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(_RawBackend, _structure_backend)
_converter.register_structure_hook(int, _structure_number)
_converter.register_structure_hook(float, _structure_number)
_converter.register_structure_hook_func(lambda t: t == float | None, _structure_optional_float)
_converter.register_structure_hook_func(lambda t: t == str | bool, _structure_path_or_bool)
_converter.register_structure_hook_func(lambda t: t == list[str], _structure_name_list)
_structure_backend_fields = make_dict_structure_fn(
    _RawBackend, _converter, _cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True
)
_converter.register_structure_hook(
    _RawMigration,
    make_dict_structure_fn(
        _RawMigration,
        _converter,
        _cattrs_forbid_extra_keys=True,
        _cattrs_detailed_validation=True,
        from_=override(rename="from"),
    ),
)


def coerce_option(value: Any, annotation: Any) -> Any:
    """An option given as text (as ``${VAR}`` always is) converted to a bool/int/float hint."""
    if not isinstance(value, str):
        return value
    kinds = set(typing.get_args(annotation)) if typing.get_args(annotation) else {annotation}
    kinds.discard(type(None))
    if str in kinds or len(kinds) != 1:
        return value
    (kind,) = kinds
    if kind is bool:
        return _structure_bool(value, bool)
    if kind in (int, float):
        try:
            return kind(value.strip())
        except ValueError:
            raise _ConfigValueError(
                f"expected {'an integer' if kind is int else 'a number'}, got {value!r}"
            ) from None
    return value
