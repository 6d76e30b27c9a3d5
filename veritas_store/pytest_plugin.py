"""The conformance kit's pytest plugin, loaded by pytest through the ``pytest11`` entry point.

It imports nothing but pytest, so it costs nothing in a project that has veritas-store
installed without the ``testing`` extra. It makes pytest rewrite the kit's assertions (so a
failing contract test shows the values it compared) and registers the ``veritas_contract``
marker that every kit test carries (``pytest -m "not veritas_contract"`` skips the kit).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pytest

pytest.register_assert_rewrite("veritas_store.testing")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "veritas_contract: a test of the veritas-store conformance kit"
    )


def pytest_report_header(config: pytest.Config) -> str:
    try:
        installed = version("veritas-store")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        installed = "unknown"
    return f"veritas-store {installed} (conformance kit: veritas_store.testing)"
