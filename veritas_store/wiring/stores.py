"""``open_stores``: from a config to live composite stores.

For each section, every backend's type is looked up in the plugin registry (a typo lists the
registered types), its options are checked against the factory's signature (an unknown option
is named), and the enabled backends are opened and wrapped in a composite.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..composite.audits import CompositeAuditStore
from ..composite.base import Member
from ..composite.blobs import CompositeBlobStore
from ..composite.journal import Journal
from ..composite.resilience import Resilience
from ..composite.routing import Routing, route
from ..locks import KeyedLocks
from ..plugin_api.protocols import capabilities_of
from ..plugin_api.registry import FAILED, PluginRegistry, get_registry
from ..records.errors import BackendUnavailable, ConfigError, PluginError, SchemaError
from ..screenshots import ScreenshotStorage
from .config import Config, SectionConfig, load_config, redact
from .raw import coerce_option

log = logging.getLogger("veritas_store")

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | Config | None


class Stores:
    """The stores a config describes. A context manager: leaving it closes every backend."""

    def __init__(
        self,
        audits: CompositeAuditStore,
        blobs: CompositeBlobStore,
        config: Config,
        registry: PluginRegistry,
        journal: Journal | None = None,
    ) -> None:
        self.audits = audits
        self.blobs = blobs
        self.config = config
        self.registry = registry
        self.journal = journal  # the repair journal, None when off or nothing to journal
        self.locks = KeyedLocks()
        self.screenshots = ScreenshotStorage(audits, blobs, self.locks)
        self._closed = False

    def close(self) -> None:
        """Release engines, connections and filesystems. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.audits.close()
        self.blobs.close()
        if self.journal is not None:
            self.journal.close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Stores(config={self.config.source!r}, audits={list(self.audits.backends)}, "
            f"blobs={list(self.blobs.backends)})"
        )


def open_stores(config: ConfigSource = None, *, plugins: Iterable[object] = ()) -> Stores:
    """Open the stores of a config: a TOML path, a dict, or (None) the default.

    With no argument this reads the file named by ``$VERITAS_STORE_CONFIG``, else the embedded
    default. ``plugins`` adds plugin objects or modules beside the installed ones.
    """
    return build_stores(load_config(config), registry_with(plugins))


def build_stores(
    cfg: Config, registry: PluginRegistry, adapt: Callable[[Any], Any] | None = None
) -> Stores:
    """Check every section, open the enabled backends and wrap them in composites.

    ``adapt`` (used by ``veritas_store.aio``) may replace each opened backend by a stand-in
    before the composite sees it.
    """
    for kind in ("audits", "blobs"):  # every config error before anything is opened
        check_section(cfg, kind, registry)
    opened: list[Any] = []
    try:
        audit_members = open_section(cfg, "audits", registry, opened, adapt)
        blob_members = open_section(cfg, "blobs", registry, opened, adapt)
    except BaseException:
        for store in opened:
            try:
                store.close()
            except Exception:
                log.exception("closing a backend after a failed open")
        raise
    routes: dict[str, Routing] = {}
    for kind in ("audits", "blobs"):
        section = cfg.section(kind)
        routes[kind] = route(section.effective_read_order(), section.migration)

    def composite(cls: Any, kind: str, members: list[Member[Any]]) -> Any:
        section = cfg.section(kind)
        return cls(
            members, notify=registry.notify, routing=routes[kind], read_repair=section.read_repair
        )

    audits = composite(CompositeAuditStore, "audits", audit_members)
    blobs = composite(CompositeBlobStore, "blobs", blob_members)
    # The journal file is opened only if some write may miss a durable backend.
    journaled = [c for c in (audits, blobs) if c.wants_journal]
    journal = None
    if cfg.journal is not None and journaled:
        try:
            journal = Journal(cfg.journal)
        except Exception as exc:
            for store in opened:
                store.close()
            raise BackendUnavailable(
                f"the repair journal {str(cfg.journal)!r} could not be opened: {exc}"
            ) from exc
        for c in journaled:
            c.journal = journal
    return Stores(audits, blobs, cfg, registry, journal)


def registry_with(plugins: Iterable[object] = ()) -> PluginRegistry:
    extra = list(plugins)
    if not extra:
        return get_registry()
    registry = PluginRegistry()
    registry.load_entry_points()
    for plugin in extra:
        registry.add_plugin(plugin)
    return registry


def check_section(cfg: Config, kind: str, registry: PluginRegistry) -> None:
    """Every backend's type is registered and its options fit the factory (enabled or not)."""
    section: SectionConfig = cfg.section(kind)
    for backend in section.backends.values():
        factory_for(cfg, kind, backend.name, registry)


def factory_for(cfg: Config, kind: str, name: str, registry: PluginRegistry) -> Any:
    backend = cfg.section(kind).backends[name]
    where = f"{kind}.backends.{name}"
    bt = registry.lookup(kind, backend.type)
    if bt is None:
        known = ", ".join(registry.names(kind)) or "none"
        failed = [p for p in registry.plugins.values() if p.status == FAILED]
        hint = (
            "; not loaded: "
            + ", ".join(f"{p.name!r} ({p.distribution or 'no distribution'})" for p in failed)
            + " (see `veritas-store plugins`)"
            if failed
            else ""
        )
        raise ConfigError(
            f"unknown {kind} backend type {backend.type!r}; registered types: {known}{hint}",
            source=cfg.source,
            key=f"{where}.type",
        )
    _check_options(bt.factory, backend.options, cfg.source, where, backend.type)
    return bt.factory


def open_section(
    cfg: Config,
    kind: str,
    registry: PluginRegistry,
    opened: list[Any],
    adapt: Callable[[Any], Any] | None = None,
) -> list[Member[Any]]:
    members = []
    for backend in cfg.section(kind).enabled:
        factory = factory_for(cfg, kind, backend.name, registry)
        store = open_backend(cfg, kind, backend.name, factory)
        opened.append(store)
        try:
            capabilities_of(store)
        except TypeError as exc:
            bt = registry.lookup(kind, backend.type)
            who = f"plugin {bt.plugin!r}" if bt else "its plugin"
            raise PluginError(
                f"{kind} backend type {backend.type!r} ({who}) declares invalid capabilities: {exc}"
            ) from exc
        if adapt is not None:
            store = adapt(store)
        policy = Resilience(backend.timeout, backend.retries, backend.backoff)
        members.append(Member(backend.name, store, backend.required, backend.type, policy))
    return members


def open_backend(cfg: Config, kind: str, name: str, factory: Any, opener: Any = None) -> Any:
    """Open one backend: ``factory(**options)``, or ``opener(**options)`` when given (an
    alternative constructor that takes the same options, e.g. ``open_for_migrations``)."""
    backend = cfg.section(kind).backends[name]
    where = f"{kind}.backends.{name}"
    options = _coerced_options(factory, backend.options, cfg.source, where)
    try:
        return (opener or factory)(**options)
    except SchemaError as exc:  # already says which database and what to run
        raise SchemaError(f"{kind} backend {name!r}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid options: {redact(str(exc))}", source=cfg.source, key=where
        ) from exc
    except Exception as exc:
        raise BackendUnavailable(
            f"{kind} backend {name!r} (type {backend.type!r}) could not be opened: "
            f"{type(exc).__name__}: {redact(str(exc))}",
            {name: exc},
        ) from exc


def _coerced_options(
    factory: Any, options: Mapping[str, Any], source: str, where: str
) -> dict[str, Any]:
    """Options converted to the factory's bool/int/float hints (``${VAR}`` gives only text)."""
    hints = _hints(factory)
    result = {}
    for key, value in options.items():
        try:
            result[key] = coerce_option(value, hints[key]) if key in hints else value
        except ValueError as exc:
            raise ConfigError(str(exc), source=source, key=f"{where}.{key}") from None
    return result


def _check_options(
    factory: Any, options: Mapping[str, Any], source: str, where: str, type_name: str
) -> None:
    _check_names_and_types(factory, options, source, where, type_name)
    # Only the plugin knows which values are valid; a factory may say so without opening
    # anything (``check_options``). A factory would find a bad value only after the backends
    # opened before it had created their files.
    check = getattr(factory, "check_options", None)
    if callable(check):
        try:
            check(**_coerced_options(factory, options, source, where))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"invalid options: {redact(str(exc))}", source=source, key=where
            ) from None
        except Exception:  # the check could not tell (a driver not installed, ...): the
            log.debug("check_options of %s failed", where, exc_info=True)  # open will say


def _check_names_and_types(
    factory: Any, options: Mapping[str, Any], source: str, where: str, type_name: str
) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable: let the call itself complain
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for backend type "
            f"{type_name!r}; it accepts: {', '.join(accepted) or 'no options'}",
            source=source,
            key=f"{where}.{unknown[0]}",
        )
    missing = [
        n for n in accepted if params[n].default is inspect.Parameter.empty and n not in options
    ]
    if missing:
        raise ConfigError(
            f"missing required option(s) {', '.join(map(repr, missing))} for backend type "
            f"{type_name!r}",
            source=source,
            key=where,
        )
    # Wrong types are found here, before any backend is opened.
    hints = _hints(factory)
    for key, value in _coerced_options(factory, options, source, where).items():
        if key in hints and not _conforms(value, hints[key]):
            expected = re.sub(r"\b(typing|collections\.abc)\.", "", str(hints[key]))
            raise ConfigError(
                f"expected {_TYPE_NAMES.get(hints[key], expected)}, got {type(value).__name__}",
                source=source,
                key=f"{where}.{key}",
            )


_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}


def _hints(factory: Any) -> Mapping[str, Any]:
    target = factory
    if isinstance(factory, type):
        cls: type[Any] = factory  # a class's hints are its __init__'s
        target = cls.__init__
    try:
        return _cached_hints(target)
    except TypeError:  # an unhashable callable: worked out each time
        return _type_hints(target)


@functools.lru_cache(maxsize=256)
def _cached_hints(target: Any) -> Mapping[str, Any]:
    # evaluating string annotations is most of open_stores()'s own time; each factory is
    # checked several times per open (options, names, types)
    return _type_hints(target)


def _type_hints(target: Any) -> Mapping[str, Any]:
    try:
        return types.MappingProxyType(typing.get_type_hints(target))
    except Exception:
        return types.MappingProxyType({})


def _conforms(value: Any, hint: Any) -> bool:
    """Whether an option value fits a factory's type hint (a hint we cannot check: yes)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    target = origin or hint
    if not isinstance(target, type):
        return True  # Literal, a TypeVar, ...: the factory checks
    if isinstance(value, bool) and target in (int, float):
        return False
    if target is float:
        return isinstance(value, int | float)
    try:
        return isinstance(value, target)
    except TypeError:
        return True
