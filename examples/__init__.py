"""Example applications built on veritas-store (not part of the installed package)."""
