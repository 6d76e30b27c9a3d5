"""The benchmark suite compares like with like: checks of its baselines, not timings.

A ratio against a raw baseline only means something if the baseline stores the same data with
the same statements and durability; these tests pin that (no timing is asserted anywhere).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from baselines import RawSqlite  # noqa: E402
from run import lifecycle, open_config, sql_audits  # noqa: E402
from slow import SlowPlugin  # noqa: E402
from workload import png_bytes  # noqa: E402

import veritas_store as vs  # noqa: E402


def _table(path: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall()
    conn.close()
    return rows


def test_raw_sqlite_baseline_stores_what_the_sql_backend_stores(tmp_path: Path) -> None:
    raw = RawSqlite(str(tmp_path / "raw.db"))
    stores = open_config(tmp_path, sql_audits(f"sqlite:///{tmp_path / 'fw.db'}"))
    try:
        read_back = raw.lifecycle("bench-1")
        assert lifecycle(stores.audits, "bench-1") is not None
    finally:
        stores.close()
        raw.close()
    for table in ("audits", "findings", "screenshots"):
        framework = _table(tmp_path / "fw.db", f"veritas_{table}")
        assert _table(tmp_path / "raw.db", table) == framework
        assert framework  # the lifecycle wrote rows of every kind
    assert [len(part) for part in read_back[1:]] == [10, 3]  # the get read the children back


def _indexes(path: Path, prefix: str) -> dict[str, list[Any]]:
    """Each index of the tables ``prefix*``, by name without the prefix: its key, one
    (column or expression) per entry, as SQLite reports it."""
    with sqlite3.connect(path) as conn:
        names = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            if not name.startswith("sqlite_autoindex")
        ]
        found = {
            name.replace(f"ix_{prefix}", "ix_"): [
                row[2] for row in conn.execute(f"PRAGMA index_xinfo({name})") if row[5]
            ]
            for name in names
        }
    conn.close()
    return found


def test_raw_sqlite_baseline_maintains_the_backends_indexes(tmp_path: Path) -> None:
    """Every index the sql backend keeps up to date on a write, the baseline keeps too (the
    filter indexes of revision 0002 were once missing from it: ~7% of its write work)."""
    RawSqlite(str(tmp_path / "raw.db")).close()
    open_config(tmp_path, sql_audits(f"sqlite:///{tmp_path / 'fw.db'}")).close()
    framework = _indexes(tmp_path / "fw.db", "veritas_")
    assert _indexes(tmp_path / "raw.db", "") == framework
    assert {"ix_audits_url_created", "ix_audits_risk_level_created"} <= set(framework)


def test_raw_sqlite_baseline_has_the_backends_durability(tmp_path: Path) -> None:
    raw = RawSqlite(str(tmp_path / "raw.db"))
    try:
        pragmas = {
            name: raw.conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys")
        }
    finally:
        raw.close()
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1}


def test_the_benchmark_png_is_a_200_kb_image_screenshots_accept(tmp_path: Path) -> None:
    png = png_bytes()
    assert 195_000 < len(png) < 205_000
    with open_config(tmp_path, {"backends": {"m": {"type": "memory"}}}) as stores:
        stores.audits.create(vs.Audit(id="a1", url="https://x.example"))
        shot = stores.screenshots.save("a1", 0, "home", png)
        assert (shot.content_type, shot.size_bytes) == ("image/png", len(png))


def test_slow_backends_are_real_backends_in_a_composite(tmp_path: Path) -> None:
    config = {"backends": {"s1": {"type": "slow", "delay_ms": 1}, "s2": {"type": "slow"}}}
    with open_config(tmp_path, config, config, plugins=[SlowPlugin()]) as stores:
        stores.audits.create(vs.Audit(id="a1", url="https://x.example"))
        stores.blobs.put("a1/0000.png", b"png", "image/png")
        for name in ("s1", "s2"):
            assert stores.audits.backends[name].get("a1") is not None
            assert stores.blobs.backends[name].get("a1/0000.png") == b"png"
    assert (tmp_path / "journal.db").exists()  # the composite's journal, not ./veritas-data


def test_memory_probe_reports_a_peak_for_each_kind(tmp_path: Path) -> None:
    for kind in ("dicts", "framework"):
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / "memory_probe.py"), kind, "200"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=True,
        )
        result = json.loads(done.stdout)
        assert result["kind"] == kind and result["count"] == 200
        assert result["peak_kb"] >= result["before_kb"] > 0
