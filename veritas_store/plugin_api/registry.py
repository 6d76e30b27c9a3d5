"""The one plugin manager: entry-point loading with per-plugin fault isolation.

Plugins (the built-ins too) are modules or objects with ``@hookimpl`` functions, found through
the ``veritas_store`` entry-point group. A plugin that fails to import, implements a hook that
does not exist (a misspelled name) or fails while registering is recorded with its
distribution name and left out; the others keep working. ``VERITAS_STORE_PLUGINS`` is a
comma-separated allow-list of entry-point or distribution names to load (the others are
skipped); ``VERITAS_STORE_STRICT_PLUGINS=1`` makes a broken plugin an error.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from ..records.errors import PluginError
from . import hookspecs

log = logging.getLogger("veritas_store.plugins")

ENTRY_POINT_GROUP = "veritas_store"
ALLOW_LIST_ENV = "VERITAS_STORE_PLUGINS"
STRICT_ENV = "VERITAS_STORE_STRICT_PLUGINS"
KINDS = ("audits", "blobs")

LOADED, FAILED, SKIPPED = "loaded", "failed", "skipped"


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
    """One plugin the registry saw: loaded, failed (``error`` says why) or skipped."""

    name: str
    distribution: str | None
    version: str | None
    error: str | None = None  # why it was left out, if it failed
    status: str = LOADED  # LOADED, FAILED or SKIPPED (not in the allow-list)
    types: tuple[tuple[str, str], ...] = ()  # (kind, type name) it registered


def _normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


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
        self.allow_list: tuple[str, ...] | None = None  # from $VERITAS_STORE_PLUGINS
        self.unmatched: tuple[str, ...] = ()  # allow-list names no installed plugin has

    # -- loading ------------------------------------------------------------------------

    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> None:
        if eps is None:
            eps = entry_points(group=ENTRY_POINT_GROUP)
        raw = os.environ.get(ALLOW_LIST_ENV, "")
        allow = tuple(n.strip() for n in raw.split(",") if n.strip()) or None
        self.allow_list = allow
        wanted = {_normalise(n) for n in allow} if allow else set()
        matched: set[str] = set()
        for ep in eps:
            dist = getattr(ep, "dist", None)
            dist_name = dist.name if dist is not None else None
            version = dist.version if dist is not None else None
            if allow is not None:
                names = {_normalise(ep.name)} | ({_normalise(dist_name)} if dist_name else set())
                if not names & wanted:
                    self.plugins.setdefault(
                        ep.name, PluginInfo(ep.name, dist_name, version, status=SKIPPED)
                    )
                    continue
                matched |= names & wanted
            known = self.plugins.get(ep.name)
            if known is not None and known.status != SKIPPED:
                other = f"distribution {known.distribution!r}" if known.distribution else "another"
                self._failed(
                    ep.name, dist_name, version, f"has the same entry-point name as {other}", None
                )
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._failed(ep.name, dist_name, version, f"failed to import {ep.value}", exc)
                continue
            self.add_plugin(plugin, ep.name, distribution=dist_name, version=version)
        if allow is not None:
            self.unmatched = tuple(n for n in allow if _normalise(n) not in matched)
            if self.unmatched:
                message = (
                    f"{ALLOW_LIST_ENV} names {', '.join(map(repr, self.unmatched))}, but no "
                    "installed plugin has that entry-point or distribution name"
                )
                if self.strict:
                    raise PluginError(message)
                log.warning("%s", message)

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
        known = self.plugins.get(name)
        if known is not None and known.status != SKIPPED:
            raise PluginError(f"a plugin named {name!r} is already registered")
        error: Exception | None
        try:
            self.pm.register(plugin, name=name)
            problem = self._hook_problem(plugin)
            if problem is None:
                self.pm.check_pending()  # anything the check above did not name
        except Exception as exc:
            problem, error = "is not a valid plugin", exc
        else:
            error = None
        if problem is not None:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._failed(name, distribution, version, problem, error)
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
        types = tuple((bt.kind, bt.name) for bt in collected)
        self.plugins[name] = PluginInfo(name, distribution, version, types=types)

    def _hook_problem(self, plugin: object) -> str | None:
        """What is wrong with a registered plugin's hook implementations, if anything."""
        callers = self.pm.get_hookcallers(plugin) or []
        if not callers:
            return (
                "implements no veritas_store hook (are its functions decorated with "
                "@veritas_store.hookimpl?)"
            )
        unknown = [hc.name for hc in callers if hc.spec is None]
        if not unknown:
            return None
        known = sorted(n for n, hc in vars(self.pm.hook).items() if hc.spec is not None)
        hints = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1)
            hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"implements unknown hook {', '.join(hints)}; the hooks are {', '.join(known)}"

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
        self,
        name: str,
        dist: str | None,
        version: str | None,
        what: str,
        exc: BaseException | None,
    ) -> None:
        who = f"plugin {name!r}" + (f" (distribution {dist!r})" if dist else "")
        message = f"{who} {what}" + (f": {type(exc).__name__}: {exc}" if exc else "")
        if self.strict:
            raise PluginError(f"{message} ({STRICT_ENV} is set)") from exc
        log.warning("%s; it is not loaded", message)
        info = PluginInfo(name, dist, version, error=message, status=FAILED)
        if name not in self.plugins or self.plugins[name].status == SKIPPED:
            self.plugins[name] = info
        else:  # a second plugin with a taken name: keep both in the report
            self.plugins[f"{name} ({dist or 'unknown distribution'})"] = info

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
