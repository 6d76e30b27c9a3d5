"""Start-up imports only what the embedded default uses (behaviour, not timing: the time is
in benchmarks/run.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
import veritas_store as vs
with vs.open_stores() as stores:
    if stores.audits.get("a1") is None:
        stores.audits.create(vs.Audit(id="a1", url="https://example.com"))
    assert stores.audits.get("a1") is not None
print(json.dumps(sorted(sys.modules)))
"""
UNUSED = (
    "alembic",
    "mako",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.mysql",
    "psycopg",
    "pymysql",
    "click",
)


def loaded_modules(cwd: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k != "VERITAS_STORE_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("start", ["first", "again"])
def test_the_embedded_default_opens_without_alembic_or_unused_dialects(
    tmp_path: Path, start: str
) -> None:
    if start == "again":  # the schema exists: the common start
        loaded_modules(tmp_path)
    modules = loaded_modules(tmp_path)
    assert "sqlalchemy" in modules and "veritas_store_plugins.sql" in modules  # the probe ran
    assert (tmp_path / "veritas-data" / "audits.db").exists()
    for name in UNUSED:
        assert name not in modules, f"{name} was imported at start-up"
