"""Operator tools over a config: copy and verify between backends, repair from the journal."""
