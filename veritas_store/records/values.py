"""The values records are built from, and their checks: UTC datetimes, finite floats, storable
text, counts, frozen JSON. Each converter or validator names the field it rejects.

Stores never change a record, so everything a backend must preserve is decided here: datetimes
are timezone-aware and normalised to UTC, numbers are finite floats, dict fields hold only JSON
values, text holds no NUL (PostgreSQL cannot store it).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

MAX_INT = 2**31 - 1  # INTEGER on every SQL dialect we support


def utcnow() -> datetime:
    return datetime.now(UTC)


class AuditStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"


# --- converters and validators (each names the field it rejects) -------------------------


def field_of(instance_or_cls: object, field: attrs.Attribute[Any]) -> str:
    cls = instance_or_cls if isinstance(instance_or_cls, type) else type(instance_or_cls)
    return f"{cls.__name__}.{field.name}"


# Converters and validators run for every field of every record built, reads included: each
# starts with a fast path for the common valid value, and only the slow path builds messages.


def to_utc(value: Any, self: Any, field: attrs.Attribute[Any]) -> datetime | None:
    if value is None:
        return None
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # already what astimezone(UTC) would return
    if not isinstance(value, datetime):
        raise TypeError(f"{field_of(self, field)} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{field_of(self, field)} must be timezone-aware (got naive {value.isoformat()}); "
            "use datetime.now(timezone.utc) or attach a tzinfo"
        )
    return value.astimezone(UTC)


def _to_utc_required(value: Any, self: Any, field: attrs.Attribute[Any]) -> datetime:
    if value is None:
        raise TypeError(f"{field_of(self, field)} must be a datetime, not None")
    return to_utc(value, self, field)  # type: ignore[return-value]


def _to_float(value: Any, self: Any, field: attrs.Attribute[Any]) -> float | None:
    if value is None:
        return None
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{field_of(self, field)} must be a number, got {type(value).__name__} {value!r}"
        )
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{field_of(self, field)} must be a finite number, got {value!r}")
    return result


def _to_float_required(value: Any, self: Any, field: attrs.Attribute[Any]) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    if value is None:
        raise TypeError(f"{field_of(self, field)} must be a number, not None")
    return _to_float(value, self, field)  # type: ignore[return-value]


def to_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str | bytes | Mapping):
        raise TypeError(f"expected a sequence, got {type(value).__name__}")
    return tuple(value)


def to_status(value: Any) -> AuditStatus:
    if type(value) is AuditStatus:
        return value
    try:
        return AuditStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in AuditStatus)
        raise ValueError(f"status must be one of {allowed}, got {value!r}") from None


def _unstorable(value: str) -> str | None:
    """Why a string cannot be stored, or None (checked on every text field: kept cheap)."""
    # Every SQL database refuses NUL, and UTF-8 cannot encode a lone surrogate.
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():  # ASCII text holds no surrogate: skip the encoding
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (it holds a lone surrogate)"
    return None


def _storable(value: str, where: str) -> None:
    problem = _unstorable(value)
    if problem is not None:
        raise ValueError(f"{where} {problem}")


def check_text(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is str and value.isascii() and "\x00" not in value:
        return  # the common case, decided without a call
    if not isinstance(value, str):
        raise TypeError(f"{field_of(instance, field)} must be a str, got {type(value).__name__}")
    if _unstorable(value) is not None:  # the message (and where) only when it is needed
        _storable(value, field_of(instance, field))


def check_optional_text(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if value is None or (type(value) is str and value.isascii() and "\x00" not in value):
        return
    check_text(instance, field, value)


def check_count(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is int and 0 <= value <= MAX_INT:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field_of(instance, field)} must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_INT:
        raise ValueError(f"{field_of(instance, field)} must be between 0 and {MAX_INT}")


def check_optional_count(instance: Any, field: attrs.Attribute[Any], value: Any) -> None:
    if value is None or (type(value) is int and 0 <= value <= MAX_INT):
        return
    check_count(instance, field, value)


_NOT_PLAIN = object()


def _frozen_plain_json(value: Any) -> Any:
    """A frozen deep copy of ``value`` if it holds only plain, storable JSON values, else
    ``_NOT_PLAIN`` (then the full check decides and names the problem): one pass, no messages.
    """
    kind = type(value)
    if kind is str:
        plain = (value.isascii() and "\x00" not in value) or _unstorable(value) is None
        return value if plain else _NOT_PLAIN
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NOT_PLAIN
    if kind is FrozenDict or kind is FrozenList:
        # Made only here or by freeze_json after the checks, and immutable all the way down:
        # shared as it is (attrs.evolve re-runs every converter on every field it keeps).
        return value
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str or _unstorable(key) is not None:
                return _NOT_PLAIN
            frozen = _frozen_plain_json(item)
            if frozen is _NOT_PLAIN:
                return _NOT_PLAIN
            copy[key] = frozen
        return FrozenDict(copy)
    if kind is list:
        items = []
        for item in value:
            frozen = _frozen_plain_json(item)
            if frozen is _NOT_PLAIN:
                return _NOT_PLAIN
            items.append(frozen)
        return FrozenList(items)
    return _NOT_PLAIN


def _check_json(value: Any, path: str) -> None:
    """Raise naming the first value under ``path`` that is not storable JSON."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str):
            _storable(value, path)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} must be a finite number, got {value!r}")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} keys must be str, got {key!r}")
            _storable(key, f"{path} key {key!r}")
            _check_json(item, f"{path}[{key!r}]")
        return
    raise TypeError(
        f"{path} must hold only JSON values (dict, list, str, int, float, bool, None), "
        f"got {type(value).__name__}"
    )


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses changes: records are immutable, even their JSON fields."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("audit records are immutable; change them with attrs.evolve")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))


class FrozenList(list):  # type: ignore[type-arg]
    """A list that refuses changes (inside the JSON fields of a record)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("audit records are immutable; change them with attrs.evolve")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> Any:
        return (FrozenList, (list(self),))


def freeze_json(value: Any) -> Any:
    """A deep copy of a JSON value whose dicts and lists cannot be changed.

    Copying keeps a record from sharing objects with the caller; freezing keeps a reader (the
    memory backend hands out the stored object) from changing what is stored.
    """
    if type(value) is FrozenDict or type(value) is FrozenList:
        return value  # frozen all the way down already
    if isinstance(value, dict):
        return FrozenDict((k, freeze_json(v)) for k, v in value.items())
    if isinstance(value, list):
        return FrozenList(freeze_json(v) for v in value)
    return value


def _to_json_dict(value: Any, self: Any, field: attrs.Attribute[Any]) -> dict[str, Any]:
    """A frozen copy of a JSON dict field, checked in the same pass."""
    if not isinstance(value, dict):
        raise TypeError(f"{field_of(self, field)} must be a dict, got {type(value).__name__}")
    frozen = _frozen_plain_json(value)
    if frozen is _NOT_PLAIN:  # a problem, or only values the fast pass does not know (enums)
        _check_json(value, field_of(self, field))
        frozen = freeze_json(value)
    return frozen  # type: ignore[no-any-return]


def _to_json_value(value: Any, self: Any, field: attrs.Attribute[Any]) -> Any:
    """A frozen copy of any JSON value (or None), checked in the same pass."""
    frozen = _frozen_plain_json(value)
    if frozen is _NOT_PLAIN:
        _check_json(value, field_of(self, field))
        frozen = freeze_json(value)
    return frozen


def items_of(kind: type) -> Any:
    def check(instance: Any, field: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
        for item in value:
            if not isinstance(item, kind):
                raise TypeError(
                    f"{field_of(instance, field)} must hold {kind.__name__} objects, "
                    f"got {type(item).__name__}"
                )

    return check


def float_field(*, default: Any = None) -> Any:
    converter = attrs.Converter(_to_float, takes_self=True, takes_field=True)
    return attrs.field(default=default, converter=converter)


# A field without a default is spelled out in its class (attrs.field there), so that type
# checkers see it has none.
REQUIRED_FLOAT = attrs.Converter(_to_float_required, takes_self=True, takes_field=True)


def json_dict_field() -> Any:
    converter = attrs.Converter(_to_json_dict, takes_self=True, takes_field=True)
    return attrs.field(factory=dict, converter=converter)


def json_value_field() -> Any:
    converter = attrs.Converter(_to_json_value, takes_self=True, takes_field=True)
    return attrs.field(default=None, converter=converter)


def datetime_field(*, required: bool = False) -> Any:
    conv = _to_utc_required if required else to_utc
    converter = attrs.Converter(conv, takes_self=True, takes_field=True)
    if required:
        return attrs.field(factory=utcnow, converter=converter)
    return attrs.field(default=None, converter=converter)
