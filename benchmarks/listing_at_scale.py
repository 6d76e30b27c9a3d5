"""Listing at scale: is a newest-first page at 1,000,000 audits as fast as at 10,000?

For each database (SQLite and PostgreSQL by default) this bulk-loads two sets of the ``sql``
backend's tables under two prefixes, one with ``--small`` audits and one with ``--large`` (each
audit with two findings and one screenshot), then times five pages of 50 read with
``SqlAuditStore.list()`` on both -- the first page, a deep keyset page (the cursor from the
middle of the table), a first page filtered by a rare status, one filtered by a rare risk
level, and a URL's history oldest first (1 audit in 20 is of that URL) -- alternating
between the two sizes so that other load on the machine weighs on both alike. It prints each
page's median time at both sizes, the ratio, PASS/FAIL against the target (ratio <= 1.5),
and the query plan at the large size, which must use an index and no sort. Exit code 1 if any
line FAILs.

    python benchmarks/listing_at_scale.py                      # 10k vs 1M, SQLite + PostgreSQL
    python benchmarks/listing_at_scale.py --db sqlite --small 1000 --large 20000

PostgreSQL comes from ``--pg-url`` (default: the test server, 127.0.0.1:5432 database test);
the tables get unique prefixes and are dropped at the end (``--keep`` keeps them). Both sizes
are measured in the same run, on the same machine, so the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

import veritas_store as vs
from veritas_store_plugins.sql import SqlAuditStore

TARGET = 1.5
PAGE = 50
BATCH = 20_000
BASE = datetime(2024, 1, 1, tzinfo=UTC)
URLS = {
    "sqlite": None,  # a file in a temporary folder
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
}
NARRATIVE = (
    "The checkout adds a pre-ticked insurance box and the cancel link is hidden in grey text "
    "below the fold; countdown timers reset on reload. "
)


HISTORY_URL = "https://history.example/checkout?ref=bench"  # one site audited again and again
HISTORY_EVERY = 20  # 1 in 20 audits (as rare as the status filter): full pages at any size


def risk_of(n: int) -> str:
    """Mostly medium; 1 in 20 critical: the rare risk level the filtered page asks for."""
    return "critical" if n % 20 == 11 else ("low", "medium", "high", "medium")[n % 4]


def status_of(n: int) -> str:
    """Mostly completed; 1 in 20 an error: the rare status the filtered page asks for."""
    if n % 20 == 7:
        return "error"
    return ("completed", "completed", "completed", "running", "queued")[n % 5]


def rows(start: int, stop: int) -> Iterator[tuple[list[dict], list[dict], list[dict]]]:
    """Audit, finding and screenshot rows for audits ``start..stop-1``, in batches."""
    for lo in range(start, stop, BATCH):
        audits, findings, shots = [], [], []
        for n in range(lo, min(lo + BATCH, stop)):
            audit_id = f"a{n:08d}"
            # 30 s apart, with pairs sharing a timestamp: ties the id must break
            created = BASE + timedelta(seconds=30 * (n // 2))
            audits.append(
                {
                    "id": audit_id,
                    "url": HISTORY_URL if n % HISTORY_EVERY == 13 else f"https://shop-{n}.example/",
                    "tier": "standard",
                    "verdict_mode": "expert",
                    "status": status_of(n),
                    "created_at": created,
                    "started_at": created + timedelta(seconds=1),
                    "completed_at": created + timedelta(seconds=40),
                    "updated_at": created + timedelta(seconds=40),
                    "trust_score": (n % 100) / 100,
                    "risk_level": risk_of(n),
                    "narrative": NARRATIVE,
                    "signal_scores": {"visual": 0.4, "copy": 0.7},
                    "site_type": "ecommerce",
                    "site_type_confidence": 0.9,
                    "security_results": {"https": True},
                    "pages_scanned": 5,
                    "elapsed_seconds": 40.5,
                    "error_message": None,
                    "recommendations": ["Check the cart"],
                    "domain_info": {"age_days": n % 4000, "country": "DE"},
                    "overrides": None,
                    "errors": [],
                    "extra": {},
                }
            )
            for pos in range(2):
                findings.append(
                    {
                        "audit_id": audit_id,
                        "position": pos,
                        "category": "urgency",
                        "pattern_type": "countdown",
                        "severity": "high",
                        "confidence": 0.8,
                        "description": "a countdown timer that resets",
                        "screenshot_index": 0,
                        "evidence": "00:59",
                        "id": f"f-{pos}",
                        "plain_english": "The timer is fake.",
                    }
                )
            shots.append(
                {
                    "audit_id": audit_id,
                    "position": 0,
                    "idx": 0,
                    "label": "home",
                    "blob_key": f"{audit_id}/0000.png",
                    "size_bytes": 48_000,
                    "content_type": "image/png",
                    "sha256": "ab" * 32,
                }
            )
        yield audits, findings, shots


def load(store: SqlAuditStore, start: int, stop: int) -> float:
    """Insert audits ``start..stop-1``; returns seconds. PostgreSQL: COPY; others: executemany."""
    tables = {t.name.removeprefix(store_prefix(store)): t for t in store.metadata.sorted_tables}
    began = time.perf_counter()
    if store.engine.dialect.name == "postgresql":
        raw = store.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                for batch in rows(start, stop):
                    for table, data in zip(
                        ("audits", "findings", "screenshots"), batch, strict=True
                    ):
                        copy_rows(cur, tables[table], data)
            raw.commit()
        finally:
            raw.close()
    else:
        with store.engine.begin() as conn:
            for batch in rows(start, stop):
                for table, data in zip(("audits", "findings", "screenshots"), batch, strict=True):
                    conn.execute(tables[table].insert(), data)
    analyze(store)
    return time.perf_counter() - began


def copy_rows(cur: Any, table: sa.Table, data: list[dict]) -> None:
    columns = [c.name for c in table.columns]
    with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in data:
            copy.write_row([pg_value(row.get(c)) for c in columns])


def pg_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # the backend stores naive UTC
    return value


def analyze(store: SqlAuditStore) -> None:
    """Fresh planner statistics, as autovacuum (PostgreSQL) or ANALYZE would keep them."""
    with store.engine.connect() as conn:
        mysql = conn.dialect.name in ("mysql", "mariadb")
        for table in store.metadata.sorted_tables:
            conn.exec_driver_sql(f"ANALYZE {'TABLE ' if mysql else ''}{table.name}")
        conn.commit()


def store_prefix(store: SqlAuditStore) -> str:
    return store.schema_current()["table_prefix"]


def disk_mb(store: SqlAuditStore) -> float:
    """Space the tables and their indexes take (for sizing), in MB."""
    names = [t.name for t in store.metadata.sorted_tables]
    with store.engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            total = sum(
                conn.exec_driver_sql(f"SELECT pg_total_relation_size('{n}')").scalar()
                for n in names
            )
        elif dialect == "sqlite":  # needs the dbstat table (built into Python's SQLite)
            placeholders = ",".join("?" * len(names))
            index_of = conn.exec_driver_sql(
                f"SELECT name FROM sqlite_master WHERE tbl_name IN ({placeholders})", tuple(names)
            ).scalars()
            objects = tuple(index_of)
            marks = ",".join("?" * len(objects))
            total = conn.exec_driver_sql(
                f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({marks})", objects
            ).scalar()
        else:
            listed = ",".join(repr(n) for n in names)
            total = conn.exec_driver_sql(
                "SELECT sum(data_length + index_length) FROM information_schema.tables "
                f"WHERE table_schema = DATABASE() AND table_name IN ({listed})"
            ).scalar()
    return float(total or 0) / 1e6


def deep_cursor(store: SqlAuditStore, depth: int) -> str:
    """The cursor a client holds after paging ``depth`` audits in (found once, not timed)."""
    (audits,) = [t for t in store.metadata.sorted_tables if t.name.endswith("audits")]
    query = (
        sa.select(audits.c.id)
        .order_by(audits.c.created_at.desc(), audits.c.id.desc())
        .offset(depth)
        .limit(1)
    )
    with store.engine.connect() as conn:
        audit_id = conn.execute(query).scalar_one()
    audit = store.get(audit_id)
    assert audit is not None
    return vs.encode_cursor(audit)


def queries(store: SqlAuditStore, size: int) -> dict[str, dict[str, Any]]:
    return {
        "first page": {},
        "deep keyset page": {"cursor": deep_cursor(store, size // 2)},
        "status=error page": {"status": "error"},
        "risk=critical page": {"risk_level": "critical"},
        "URL history, oldest first": {"url": HISTORY_URL, "order": "oldest"},
    }


def once(store: SqlAuditStore, kwargs: dict[str, Any]) -> float:
    began = time.perf_counter()
    store.list(limit=PAGE, **kwargs)
    return time.perf_counter() - began


def median_ms_pair(
    small: tuple[SqlAuditStore, dict[str, Any]],
    large: tuple[SqlAuditStore, dict[str, Any]],
    repeat: int,
) -> tuple[float, float]:
    """Median times of the same page at both sizes, timed alternately so that whatever else
    the machine does at the time weighs on both alike."""
    for store, kwargs in (small, large):
        for _ in range(3):  # warm the pool and the caches
            page = store.list(limit=PAGE, **kwargs)
        assert len(page.items) == PAGE, "not enough audits for a full page"
    small_times, large_times = [], []
    for _ in range(repeat):
        small_times.append(once(*small))
        large_times.append(once(*large))
    return statistics.median(small_times) * 1000, statistics.median(large_times) * 1000


def plan(store: SqlAuditStore, kwargs: dict[str, Any]) -> tuple[bool, str]:
    """The plan of the audits query that list() sends: (uses an index and no sort, summary)."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.list(limit=PAGE, **kwargs)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    statement, parameters = next((s, p) for s, p in sent if "ORDER BY" in s.upper())
    dialect = store.engine.dialect.name
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if dialect == "postgresql":
            cur.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            nodes = list(pg_nodes(cur.fetchone()[0][0]["Plan"]))
            summary = " > ".join(
                f"{n['Node Type']}"
                + (f" {n['Scan Direction']}" if "Scan Direction" in n else "")
                + (f" using {n['Index Name']}" if "Index Name" in n else "")
                + (f" [cond {n['Index Cond']}]" if "Index Cond" in n else "")
                for n in nodes
            )
            ok = any("Index Name" in n for n in nodes) and not any(
                n["Node Type"] in ("Sort", "Seq Scan") for n in nodes
            )
        elif dialect == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            details = [r[-1] for r in cur.fetchall()]
            summary = "; ".join(details)
            ok = any("INDEX ix_" in d for d in details) and not any(
                "TEMP B-TREE" in d for d in details
            )
        else:
            cur.execute("EXPLAIN " + statement, parameters)
            found = cur.fetchall()
            summary = "; ".join(f"{r[2]} {r[3]} key={r[5]} extra={r[-1]}" for r in found)
            ok = all(r[5] and "filesort" not in str(r[-1]) for r in found)
        cur.close()
    finally:
        raw.close()
    return ok, summary


def pg_nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from pg_nodes(child)


def bench(name: str, url: str, small: int, large: int, repeat: int, keep: bool) -> list[dict]:
    """Two table sets in one database, ``small`` and ``large`` audits, timed side by side."""
    tag = uuid.uuid4().hex[:6]
    stores: list[SqlAuditStore] = []
    results: list[dict] = []
    try:
        for size, prefix in ((small, f"bench{tag}_s_"), (large, f"bench{tag}_l_")):
            stores.append(SqlAuditStore(url, table_prefix=prefix))
            print(f"[{name}] loading {size:,} audits ...", flush=True)
            took = load(stores[-1], 0, size)
            print(f"[{name}]   {took:.1f}s ({size / took:,.0f} audits/s)", flush=True)
        at_small, at_large = stores
        size_mb = disk_mb(at_large)
        print(f"[{name}] {large:,} audits take {size_mb:,.0f} MB with indexes", flush=True)
        pages = zip(queries(at_small, small).items(), queries(at_large, large).items(), strict=True)
        for (query, small_kwargs), (_, large_kwargs) in pages:
            small_ms, large_ms = median_ms_pair(
                (at_small, small_kwargs), (at_large, large_kwargs), repeat
            )
            ok, summary = plan(at_large, large_kwargs)
            ratio = large_ms / small_ms
            results.append(
                {
                    "db": name,
                    "query": query,
                    "small_ms": small_ms,
                    "large_ms": large_ms,
                    "ratio": ratio,
                    "pass": ratio <= TARGET,
                    "index_used": ok,
                    "plan": summary,
                }
            )
    finally:
        for store in stores:
            prefix = store_prefix(store)
            if keep:
                print(f"[{name}] kept tables {prefix}*")
            else:
                store.metadata.drop_all(store.engine)
                with store.engine.begin() as conn:
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}alembic_version")
            store.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite,postgresql,mariadb")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per page (median)")
    parser.add_argument("--pg-url", default=URLS["postgresql"])
    parser.add_argument("--mariadb-url", default=URLS["mariadb"])
    parser.add_argument("--keep", action="store_true", help="keep the tables (and file)")
    args = parser.parse_args(argv)
    if not 20 * PAGE <= args.small < args.large:  # a full page of the 1-in-20 status
        parser.error(f"need {20 * PAGE} <= --small < --large")
    results = []
    with tempfile.TemporaryDirectory(prefix="veritas-bench-") as folder:
        urls = {
            "sqlite": f"sqlite:///{folder}/bench.db",
            "postgresql": args.pg_url,
            "mariadb": args.mariadb_url,
        }
        for name in args.db.split(","):
            results += bench(name, urls[name], args.small, args.large, args.repeat, args.keep)
    out = io.StringIO()
    small, large = f"{args.small:,}", f"{args.large:,}"
    out.write(
        f"\n{'db':<11} {'page (50 audits)':<18} {small + ' ms':>12} {large + ' ms':>12} "
        f"{'ratio':>6}  target  result  index\n"
    )
    for r in results:
        out.write(
            f"{r['db']:<11} {r['query']:<18} {r['small_ms']:>12.2f} {r['large_ms']:>12.2f} "
            f"{r['ratio']:>6.2f}  <={TARGET}  {'PASS' if r['pass'] else 'FAIL':<6}  "
            f"{'yes' if r['index_used'] else 'NO'}\n"
        )
    out.write("\nQuery plans at the large size:\n")
    for r in results:
        out.write(f"  {r['db']} / {r['query']}: {r['plan']}\n")
    print(out.getvalue())
    failed = [r for r in results if not (r["pass"] and r["index_used"])]
    print("RESULT:", "FAIL" if failed else "PASS", f"({len(results) - len(failed)}/{len(results)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
