"""A plugin whose hook implementation is misspelled: the hook is register_audit_backends."""

import veritas_store as vs


class MisspelledStore:
    pass


@vs.hookimpl
def register_audit_backend(register):  # type: ignore[no-untyped-def]
    register("misspelled", MisspelledStore)
