"""The built-in backends of veritas-store.

Each module is an ordinary plugin registered through the ``veritas_store`` entry-point group,
exactly as a third-party plugin is, and imports nothing but the public ``veritas_store`` API.
"""
