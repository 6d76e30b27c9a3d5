"""A plugin that cannot be imported: it needs a package that is not installed."""

import a_dependency_that_is_not_installed  # noqa: F401

import veritas_store as vs


@vs.hookimpl
def register_audit_backends(register):  # type: ignore[no-untyped-def]
    register("never", object)
