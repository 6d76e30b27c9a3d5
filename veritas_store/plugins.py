"""The one plugin manager: entry-point loading with per-plugin fault isolation.

Plugins (the built-ins too) are modules or objects with ``@hookimpl`` functions, found through
the ``veritas_store`` entry-point group. A plugin that fails to import or to register is
recorded with its distribution name and left out; the others keep working. Set
``VERITAS_STORE_PLUGINS`` to a comma-separated allow-list of entry-point names to load only
those, and ``VERITAS_STORE_STRICT_PLUGINS=1`` to make a broken plugin an error.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError

log = logging.getLogger("veritas_store.plugins")

ENTRY_POINT_GROUP = "veritas_store"
ALLOW_LIST_ENV = "VERITAS_STORE_PLUGINS"
STRICT_ENV = "VERITAS_STORE_STRICT_PLUGINS"
KINDS = ("audits", "blobs")


@attrs.frozen
class BackendType:
    """A backend type a plugin registered."""

    kind: str  # "audits" or "blobs"
    name: str
    factory: Callable[..., Any]
    description: str
    plugin: str
    distribution: str | None
    version: str | None


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    error: str | None = None  # why it was left out, if it was


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class PluginRegistry:
    """The backend types registered by every loaded plugin."""

    def __init__(self, *, strict: bool | None = None) -> None:
        self.strict = _truthy(os.environ.get(STRICT_ENV)) if strict is None else strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.types: dict[str, dict[str, list[BackendType]]] = {kind: {} for kind in KINDS}

    # -- loading ------------------------------------------------------------------------

    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> None:
        if eps is None:
            eps = entry_points(group=ENTRY_POINT_GROUP)
        allow = os.environ.get(ALLOW_LIST_ENV)
        allowed = {n.strip() for n in allow.split(",") if n.strip()} if allow else None
        for ep in eps:
            if allowed is not None and ep.name not in allowed:
                continue
            dist = getattr(ep, "dist", None)
            dist_name = dist.name if dist is not None else None
            version = dist.version if dist is not None else None
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._failed(ep.name, dist_name, version, f"failed to import {ep.value}", exc)
                continue
            self.add_plugin(plugin, ep.name, distribution=dist_name, version=version)

    def add_plugin(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Register a plugin object or module and collect the backend types it registers."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self.plugins:
            raise PluginError(f"a plugin named {name!r} is already registered")
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()  # a misspelled @hookimpl is an unknown hook
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._failed(name, distribution, version, "is not a valid plugin", exc)
            return
        collected: list[BackendType] = []
        try:
            for kind, hook in (
                ("audits", self.pm.hook.register_audit_backends),
                ("blobs", self.pm.hook.register_blob_backends),
            ):
                for impl in hook.get_hookimpls():
                    if impl.plugin is plugin:
                        register = self._registrar(kind, name, distribution, version, collected)
                        _call(impl, register=register)
        except Exception as exc:
            self.pm.unregister(plugin)
            self._failed(name, distribution, version, "failed while registering backends", exc)
            return
        for bt in collected:
            self.types[bt.kind].setdefault(bt.name, []).append(bt)
        self.plugins[name] = PluginInfo(name, distribution, version)

    def _registrar(
        self,
        kind: str,
        plugin: str,
        distribution: str | None,
        version: str | None,
        collected: list[BackendType],
    ) -> Callable[..., None]:
        def register(type_name: str, factory: Callable[..., Any], description: str = "") -> None:
            if not isinstance(type_name, str) or not type_name:
                raise PluginError(f"plugin {plugin!r} registered a type with no name")
            if not callable(factory):
                raise PluginError(f"plugin {plugin!r}: factory for {type_name!r} is not callable")
            collected.append(
                BackendType(kind, type_name, factory, description, plugin, distribution, version)
            )

        return register

    def _failed(
        self, name: str, dist: str | None, version: str | None, what: str, exc: BaseException
    ) -> None:
        who = f"plugin {name!r}" + (f" (distribution {dist!r})" if dist else "")
        message = f"{who} {what}: {type(exc).__name__}: {exc}"
        if self.strict:
            raise PluginError(message) from exc
        log.warning("%s; it is not loaded", message)
        self.plugins[name] = PluginInfo(name, dist, version, error=message)

    # -- lookup -------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        return sorted(self.types[kind])

    def lookup(self, kind: str, type_name: str) -> BackendType | None:
        """The backend type, None if unknown; ``PluginError`` if two plugins claim the name."""
        found = self.types[kind].get(type_name)
        if not found:
            return None
        if len(found) > 1:
            who = " and ".join(
                f"{bt.plugin!r}" + (f" ({bt.distribution})" if bt.distribution else "")
                for bt in found
            )
            raise PluginError(f"{kind} backend type {type_name!r} is registered by {who}")
        return found[0]

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Tell the observers of ``hook``; an observer that raises is logged, never propagated."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                _call(impl, **kwargs)
            except Exception:
                log.exception("%s observer %s raised", hook, impl.plugin_name)

    def notify_backend_error(self, **kwargs: Any) -> None:
        self.notify("backend_error", **kwargs)


def _call(impl: Any, **kwargs: Any) -> Any:
    # pluggy lets an implementation take any subset of the spec's arguments
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide registry of installed plugins, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            registry = PluginRegistry()
            registry.load_entry_points()
            _default = registry
        return _default


def reset_registry() -> None:
    """Forget the loaded plugins (the next ``get_registry()`` loads them again)."""
    global _default
    with _default_lock:
        _default = None
