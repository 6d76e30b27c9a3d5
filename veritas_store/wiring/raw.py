"""The raw config: TOML values (or a dict's) checked and typed before any rule is applied.

``${VAR}`` / ``${VAR:-default}`` expansion, relative-path resolution, and the cattrs
structuring into the ``Raw*`` classes, with unknown keys rejected and every error message
naming the key (``at 'audits.backends.sql.enabled': expected a boolean ...``). The rules
across keys (read orders, migrations, ranges) and the public ``Config`` are in ``config.py``.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception

from ..records.errors import ConfigError

# Keys of a backend table that the framework reads; every other key goes to the factory.
RESILIENCE_KEYS = frozenset({"timeout", "retries", "backoff"})
FRAMEWORK_KEYS = frozenset({"type", "enabled", "required"}) | RESILIENCE_KEYS
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def boolean_word(text: str) -> bool | None:
    """``true``/``1``/``yes``/``on`` -> True, ``false``/``0``/``no``/``off`` -> False, else None."""
    word = text.strip().lower()
    return True if word in _TRUE else False if word in _FALSE else None


# --- ${VAR} expansion -------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: Any, source: str, path: str = "") -> Any:
    """``value`` with every ``${VAR}`` / ``${VAR:-default}`` in its strings replaced."""
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
        return {k: expand(v, source, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# --- relative paths ---------------------------------------------------------------------

_SQLITE_URL = re.compile(r"^(sqlite(?:\+\w+)?:///)(?!/)(.+)$")


def resolve_path(value: Any, base_dir: Path) -> Any:
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
class RawBackend:
    type: str
    enabled: bool = True
    required: bool = True
    options: dict[str, Any] = attrs.field(factory=dict)
    timeout: float | None = None
    retries: int = 0
    backoff: float = 0.1


@attrs.frozen
class RawMigration:
    from_: str
    to: str
    stage: str
    compare_ratio: float = 1.0


@attrs.frozen
class RawSection:
    backends: dict[str, RawBackend] = attrs.field(factory=dict)
    read_order: list[str] | None = None
    read_repair: bool = False
    migration: RawMigration | None = None


@attrs.frozen
class RawConfig:
    audits: RawSection
    blobs: RawSection
    journal: str | bool = True


def structure(expanded: dict[str, Any], source: str) -> RawConfig:
    """The expanded TOML as ``RawConfig``; ``ConfigError`` naming every bad key otherwise."""
    try:
        return _converter.structure(expanded, RawConfig)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        messages = cattrs.transform_error(exc, path="$", format_exception=_format)
        raise ConfigError("; ".join(_tidy(m) for m in messages), source=source) from None


class _ConfigValueError(ValueError):
    """A value error whose message is already what the user should read."""


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and (word := boolean_word(value)) is not None:
        return word
    raise _ConfigValueError(f"expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise _ConfigValueError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _structure_backend(value: Any, _: type) -> RawBackend:
    # Framework keys are checked field by field (errors name e.g. '...sql.enabled'); every
    # other key is an option for the backend's factory.
    if not isinstance(value, Mapping):
        raise _ConfigValueError(f"expected a table, got {type(value).__name__}")
    split: dict[str, Any] = {k: v for k, v in value.items() if k in FRAMEWORK_KEYS}
    split["options"] = {k: v for k, v in value.items() if k not in FRAMEWORK_KEYS}
    return _structure_backend_fields(split, RawBackend)


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
    if type_ in (RawSection, RawConfig, RawBackend, RawMigration) or (
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
_converter.register_structure_hook(RawBackend, _structure_backend)
_converter.register_structure_hook(int, _structure_number)
_converter.register_structure_hook(float, _structure_number)
_converter.register_structure_hook_func(lambda t: t == float | None, _structure_optional_float)
_converter.register_structure_hook_func(lambda t: t == str | bool, _structure_path_or_bool)
_converter.register_structure_hook_func(lambda t: t == list[str], _structure_name_list)
_structure_backend_fields = make_dict_structure_fn(
    RawBackend, _converter, _cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True
)
_converter.register_structure_hook(
    RawMigration,
    make_dict_structure_fn(
        RawMigration,
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
