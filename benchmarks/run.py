"""veritas-store benchmarks: each figure beside a raw baseline measured in the same run.

    python benchmarks/run.py            # the full run (under 5 minutes on 2 cores)
    python benchmarks/run.py --quick    # a smoke run: fewer rounds, smaller counts
    python benchmarks/run.py --only lifecycle,fanout --json results.json

Method: a framework variant and its baseline take turns *operation by operation* (who goes first
rotates), so load from other processes on a shared machine falls on both alike; the operations are
grouped in rounds, after one warm-up round that is not counted. A figure is the median over rounds
of the mean time per operation; a ratio is the median of the per-round ratios. In-process work that
only computes and writes to the page cache (the memory and SQLite lifecycles, SQLite ``get()``) is
timed in CPU time of this process: on a shared machine the wall clock mostly measures the other
tenants, and the CPU-time ratio is the stricter one (time spent waiting would be added to both sides
alike). Everything that waits on a disk, a server or a sleep (fsync'ed screenshots, S3, PostgreSQL,
fan-out) is timed on the wall clock. Operations that take about a microsecond (the memory ``get()``)
are timed in batches instead, and their figure is the best batch (best-of-N: a timer call per
operation would cost as much as the operation). PASS/FAIL compares the ratio (or the memory
``get()`` latency) with the issue's target. Docs: docs/performance.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "tests"))  # s3server: the moto server the tests use

import attrs  # noqa: E402
from baselines import RawPostgres, RawS3, RawSqlite, atomic_write, read_file  # noqa: E402
from slow import SlowPlugin  # noqa: E402
from workload import completed_values, created_values, png_bytes, run_tag  # noqa: E402

import veritas_store as vs  # noqa: E402

PG_URL = os.environ.get("VERITAS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECTIONS = ("startup", "lifecycle", "read", "screenshots", "fanout", "async", "memory")
STARTUP = "import veritas_store as vs; vs.open_stores().close()"  # the embedded default


# --- results ----------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    figure: str
    baseline: str
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None  # None: no target
    note: str = ""

    @property
    def result(self) -> str:
        return "" if self.passed is None else "PASS" if self.passed else "FAIL"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        print(
            f"  {row.name:<38} {row.figure:>14}   {row.baseline:<32} {ratio:>7}  "
            f"{row.target:<10} {row.result}",
            flush=True,
        )
        if row.note:
            print(f"  {'':<38} {row.note}", flush=True)


def at_least(ratio: float, target: float) -> tuple[str, bool]:
    return f">= {target:.2f}x", ratio >= target


def at_most(ratio: float, target: float) -> tuple[str, bool]:
    return f"<= {target:.2f}x", ratio <= target


def rate(value: float) -> str:
    return f"{value:,.0f} /s"


def micros(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


def millis(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


# --- timing -----------------------------------------------------------------------------------


Op = Callable[[int, int], object]  # (round, i): the i-th operation of a round


def alternating(
    variants: dict[str, Op], rounds: int, ops: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float]]:
    """Mean seconds per operation of each variant in each counted round (round 0 warms up).

    The variants take turns operation by operation, the first of each turn rotating. ``clock``
    is the wall clock, or ``time.process_time`` for the CPU time this process spent.
    """
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):
        spent = dict.fromkeys(names, 0.0)
        for i in range(ops):
            shift = (r + i) % len(names)
            for name in names[shift:] + names[:shift]:
                start = clock()
                variants[name](r, i)
                spent[name] += clock() - start
        if r:
            for name in names:
                seconds[name].append(spent[name] / ops)
    return seconds


def batched(variants: dict[str, Op], rounds: int, ops: int) -> dict[str, list[float]]:
    """Like ``alternating`` for microsecond operations: one timer call per batch of ``ops``."""
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            op = variants[name]
            start = time.perf_counter()
            for i in range(ops):
                op(r, i)
            if r:
                seconds[name].append((time.perf_counter() - start) / ops)
    return seconds


def typical(seconds: list[float]) -> float:
    return statistics.median(seconds)


def speed_ratio(framework: list[float], baseline: list[float]) -> float:
    """Framework operations per second over the baseline's (above 1: faster)."""
    return statistics.median(b / f for f, b in zip(framework, baseline, strict=True))


def latency_ratio(framework: list[float], baseline: list[float]) -> float:
    """Framework latency over the baseline's (above 1: slower)."""
    return 1 / speed_ratio(framework, baseline)


# --- helpers ----------------------------------------------------------------------------------


def open_config(
    workdir: Path,
    audits: dict[str, Any],
    blobs: dict[str, Any] | None = None,
    journal: bool = True,
    **kw: Any,
) -> Any:
    """Stores as a user opens them; a composite of several backends journals its writes (the
    default behaviour) to a journal in the run's temporary folder."""
    config: dict[str, Any] = {
        "audits": audits,
        "blobs": blobs or {"backends": {"memory": {"type": "memory"}}},
        "journal": str(workdir / "journal.db") if journal else False,
    }
    return vs.open_stores(config, **kw)


def memory_audits() -> dict[str, Any]:
    return {"backends": {"memory": {"type": "memory"}}}


def sql_audits(url: str, **options: Any) -> dict[str, Any]:
    return {"backends": {"sql": {"type": "sql", "url": url, **options}}}


def lifecycle(audits: Any, audit_id: str) -> vs.Audit | None:
    """create (running) -> update (completed, 10 findings, 3 screenshots) -> get."""
    audit = vs.Audit(**created_values(audit_id))
    audits.create(audit)
    done = completed_values(audit_id)
    done["findings"] = [vs.Finding(**f) for f in done["findings"]]
    done["screenshots"] = [vs.Screenshot(**s) for s in done["screenshots"]]
    audits.update(attrs.evolve(audit, **done))
    return audits.get(audit_id)


def pg_reachable() -> str | None:
    """None if PostgreSQL answers, else why not."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


# --- sections ---------------------------------------------------------------------------------


def bench_startup(report: Report, quick: bool, workdir: Path) -> None:
    """A new process importing veritas-store and opening the embedded default (its SQLite file
    made in the warm-up round) against one that only imports SQLAlchemy; wall clock."""
    folder = workdir / "startup"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VERITAS_STORE_CONFIG"}

    def python(code: str) -> Op:
        return lambda r, i: subprocess.run(
            [sys.executable, "-c", code], cwd=folder, env=env, check=True
        )

    rounds, ops = (1, 2) if quick else (5, 3)  # a process start is noisy: five rounds
    wall = alternating(
        {"sqlalchemy": python("import sqlalchemy"), "veritas": python(STARTUP)}, rounds, ops
    )
    ratio = latency_ratio(wall["veritas"], wall["sqlalchemy"])
    target, passed = at_most(ratio, 2.0)
    report.add(
        Row(
            "start-up: import + open_stores()",
            millis(typical(wall["veritas"])),
            f"python -c 'import sqlalchemy' {millis(typical(wall['sqlalchemy']))}",
            ratio,
            target,
            passed,
            note="ratio: time over the baseline's (lower is better)",
        )
    )


def bench_lifecycle(report: Report, quick: bool, workdir: Path) -> None:
    rounds, ops = (3, 20) if quick else (9, 60)
    tag = run_tag()
    raw = RawSqlite(str(workdir / "raw.db"))

    def composite(db: str) -> dict[str, Any]:
        return {
            "read_order": ["sql", "memory"],
            "backends": {
                "sql": {"type": "sql", "url": f"sqlite:///{workdir / db}"},
                "memory": {"type": "memory"},
            },
        }

    stores = {
        "memory": open_config(workdir, memory_audits()),
        "sqlite": open_config(workdir, sql_audits(f"sqlite:///{workdir / 'fw.db'}")),
        "memory+sqlite": open_config(workdir, composite("composite.db")),
        # the repair journal's share: two more SQLite transactions per write
        "memory+sqlite, journal off": open_config(
            workdir, composite("composite-nj.db"), journal=False
        ),
    }
    pg_problem = pg_reachable()
    raw_pg = None
    prefix = f"bench{tag}_"
    if pg_problem is None:
        stores["postgresql"] = open_config(workdir, sql_audits(PG_URL, table_prefix=prefix))
        raw_pg = RawPostgres(PG_URL.replace("postgresql+psycopg", "postgresql"), f"raw{prefix}")

    def framework(name: str) -> Op:
        audits = stores[name].audits
        slug = "".join(c if c.isalnum() else "-" for c in name)  # a valid audit id part
        return lambda r, i: lifecycle(audits, f"{tag}-{slug}-{r}-{i}")

    def raw_op(target: Any, name: str) -> Op:
        return lambda r, i: target.lifecycle(f"{tag}-{name}-{r}-{i}")

    in_process = {"raw sqlite3": raw_op(raw, "raw")}
    in_process.update({name: framework(name) for name in stores if name != "postgresql"})
    try:
        cpu = alternating(in_process, rounds, ops, clock=time.process_time)
        if raw_pg is not None:  # a server's work is not this process's CPU time: wall clock
            server = {
                "raw sqlite3": raw_op(raw, "raw-wall"),
                "postgresql": framework("postgresql"),
                "raw psycopg": raw_op(raw_pg, "rawpg"),
            }
            wall = alternating(server, max(2, rounds // 3), ops)
    finally:
        if raw_pg is not None:  # the PostgreSQL database is shared: drop what we made
            pg = stores["postgresql"].audits.backends["sql"]
            pg.metadata.drop_all(pg.engine)
            raw_pg.drop()
            raw_pg.close()
        for s in stores.values():
            s.close()
        raw.close()

    base = cpu["raw sqlite3"]
    base_text = f"raw sqlite3 {rate(1 / typical(base))} CPU"
    targets = {"sqlite": 0.6, "memory+sqlite": 0.5}
    for name in in_process:
        if name == "raw sqlite3":
            continue
        ratio = speed_ratio(cpu[name], base)
        target, passed = at_least(ratio, targets[name]) if name in targets else ("", None)
        figure = f"{rate(1 / typical(cpu[name]))} CPU"
        report.add(Row(f"lifecycle {name}", figure, base_text, ratio, target, passed))
    if raw_pg is None:
        report.add(Row("lifecycle postgresql", "skipped", f"PostgreSQL unreachable: {pg_problem}"))
        return
    figure = rate(1 / typical(wall["postgresql"]))
    for baseline in ("raw sqlite3", "raw psycopg"):
        report.add(
            Row(
                "lifecycle postgresql",
                figure,
                f"{baseline} {rate(1 / typical(wall[baseline]))}",
                speed_ratio(wall["postgresql"], wall[baseline]),
            )
        )


def bench_read(report: Report, quick: bool, workdir: Path) -> None:
    rounds = 3 if quick else 7
    tag = run_tag()
    ids = [f"{tag}-read-{i}" for i in range(200)]
    mem = open_config(workdir, memory_audits())
    sql = open_config(workdir, sql_audits(f"sqlite:///{workdir / 'read.db'}"))
    raw = RawSqlite(str(workdir / "read-raw.db"))
    plain: dict[str, vs.Audit] = {}
    for audit_id in ids:
        plain[audit_id] = lifecycle(mem.audits, audit_id)  # type: ignore[assignment]
        lifecycle(sql.audits, audit_id)
        raw.lifecycle(audit_id)

    def reads(get: Callable[[str], Any]) -> Op:
        return lambda r, i: get(ids[i % len(ids)])

    try:
        fast = batched({"dict": reads(plain.get), "memory": reads(mem.audits.get)}, rounds, 20_000)
        slow = alternating(
            {"raw": reads(raw.read), "sqlite": reads(sql.audits.get)},
            rounds,
            100 if quick else 300,
            clock=time.process_time,
        )
    finally:
        mem.close()
        sql.close()
        raw.close()
    latency = min(fast["memory"])  # best batch: see the module docstring
    report.add(
        Row(
            "get() memory",
            micros(latency),
            f"dict.get {micros(min(fast['dict']))}",
            latency / min(fast["dict"]),
            "< 10 us",
            latency < 10e-6,
            note="ratio here is latency: framework / baseline",
        )
    )
    report.add(
        Row(
            "get() sqlite",
            f"{micros(typical(slow['sqlite']))} CPU",
            f"raw sqlite3 {micros(typical(slow['raw']))} CPU",
            latency_ratio(slow["sqlite"], slow["raw"]),
            note="ratio here is latency: framework / baseline",
        )
    )


def bench_screenshots(report: Report, quick: bool, workdir: Path) -> None:
    png = png_bytes()
    tag = run_tag()

    def screenshot_pair(
        blobs: dict[str, Any],
        raw_save: Callable[[str, bytes], None],
        raw_load: Callable[[str], bytes],
        label: str,
        rounds: int,
        ops: int,
        target: float,
    ) -> None:
        stores = open_config(workdir, memory_audits(), {"backends": {"b": blobs}})
        per_audit = 5

        def ids(r: int, i: int) -> tuple[str, int]:
            return f"{tag}-{label}-{r}-{i // per_audit}", i % per_audit

        def save(r: int, i: int) -> None:
            audit_id, index = ids(r, i)
            stores.screenshots.save(audit_id, index, "home", png)

        def raw_path(r: int, i: int) -> str:
            audit_id, index = ids(r, i)
            return f"raw/{audit_id}/{index:04d}.png"

        for r in range(rounds + 1):  # the audits exist before the clock runs
            for i in range(0, ops, per_audit):
                stores.audits.create(vs.Audit(**created_values(ids(r, i)[0])))
        try:
            saved = alternating(
                {"raw": lambda r, i: raw_save(raw_path(r, i), png), "fw": save}, rounds, ops
            )
            loaded = alternating(
                {
                    "raw": lambda r, i: raw_load(raw_path(r, i)),
                    "fw": lambda r, i: stores.screenshots.load(*ids(r, i)),
                },
                rounds,
                ops,
            )
        finally:
            stores.close()
        base = f"{'raw atomic write' if label == 'local' else 'raw s3fs pipe'} " + millis(
            typical(saved["raw"])
        )
        ratio = speed_ratio(saved["fw"], saved["raw"])
        t, ok = at_least(ratio, target)
        report.add(
            Row(
                f"screenshot save {label}",
                millis(typical(saved["fw"])),
                base,
                ratio,
                t,
                ok,
            )
        )
        base = f"{'raw read' if label == 'local' else 'raw s3fs cat'} " + millis(
            typical(loaded["raw"])
        )
        report.add(
            Row(
                f"screenshot load {label}",
                millis(typical(loaded["fw"])),
                base,
                speed_ratio(loaded["fw"], loaded["raw"]),
                note="load checks the sha256 recorded on the audit",
            )
        )

    root = workdir / "blobs"
    screenshot_pair(
        {"type": "fsspec", "url": str(root)},
        lambda key, data: atomic_write(
            str(root / os.path.dirname(key)), os.path.basename(key), data
        ),
        lambda key: read_file(str(root / key)),
        "local",
        *((3, 15) if quick else (9, 40)),
        0.85,
    )

    try:
        from s3server import start_s3_server

        server = start_s3_server()
    except Exception as exc:
        report.add(Row("screenshot save s3", "skipped", f"moto S3 server unavailable: {exc}"))
        return
    try:
        bucket = server.make_bucket()
        raw = RawS3(server.storage_options(), bucket)
        screenshot_pair(
            {
                "type": "fsspec",
                "url": f"s3://{bucket}",
                "storage_options": server.storage_options(),
            },
            raw.save,
            raw.load,
            "s3",
            *((3, 8) if quick else (9, 30)),
            0.9,
        )
    finally:
        server.stop()


def bench_fanout(report: Report, quick: bool, workdir: Path) -> None:
    rounds, ops = (3, 3) if quick else (7, 5)
    plugin = SlowPlugin()
    tag = run_tag()

    def config(n: int) -> dict[str, Any]:
        return {"backends": {f"slow{i}": {"type": "slow"} for i in range(n)}}

    sizes = (1, 2) if quick else (1, 2, 3)
    stores = {n: open_config(workdir, config(n), config(n), plugins=[plugin]) for n in sizes}
    audit_id = f"{tag}-fanout"
    audit = vs.Audit(**created_values(audit_id))
    for s in stores.values():
        s.audits.create(audit)
    blob = png_bytes(2_000)

    def update(n: int) -> Op:
        audits = stores[n].audits
        return lambda r, i: audits.update(attrs.evolve(audit, pages_scanned=r * ops + i))

    def put(n: int) -> Op:
        blobs = stores[n].blobs
        return lambda r, i: blobs.put(f"{audit_id}/{i:04d}.png", blob, "image/png")

    try:
        updates = alternating({str(n): update(n) for n in sizes}, rounds, ops)
        puts = alternating({str(n): put(n) for n in sizes}, rounds, ops)
    finally:
        for s in stores.values():
            s.close()
    for label, seconds in (("audit update", updates), ("blob put", puts)):
        one = typical(seconds["1"])
        for n in sizes[1:]:
            ratio = latency_ratio(seconds[str(n)], seconds["1"])
            target, passed = at_most(ratio, 1.2) if n == 2 else ("", None)
            report.add(
                Row(
                    f"fan-out {label}, {n} backends",
                    millis(typical(seconds[str(n)])),
                    f"1 backend {millis(one)}",
                    ratio,
                    target,
                    passed,
                    note="ratio here is latency: composite / one backend",
                )
            )


def bench_async(report: Report, quick: bool, workdir: Path) -> None:
    """The async API against the sync one on the lifecycle: SQLite, then PostgreSQL."""
    async_lifecycles(report, "sqlite", sql_audits(f"sqlite:///{workdir / 'async.db'}"),
                     *((3, 50) if quick else (15, 100)))  # fmt: skip
    problem = pg_reachable()
    if problem is not None:
        report.add(Row("async lifecycle postgresql", "skipped", f"PostgreSQL: {problem}"))
        return
    prefix = f"bench{run_tag()}_"
    try:
        async_lifecycles(report, "postgresql", sql_audits(PG_URL, table_prefix=prefix),
                         *((2, 30) if quick else (7, 50)))  # fmt: skip
    finally:
        with vs.open_stores({"audits": sql_audits(PG_URL, table_prefix=prefix)}) as stores:
            pg = stores.audits.backends["sql"]
            pg.metadata.drop_all(pg.engine)
            pg.engine.dispose()


class _OnPool:
    """The sync audit store's calls, each awaited on a thread pool (``run_in_executor``)."""

    def __init__(self, loop: Any, pool: Any, audits: Any) -> None:
        self._loop, self._pool, self._audits = loop, pool, audits

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._audits, name)
        return lambda *args: self._loop.run_in_executor(self._pool, method, *args)


def async_lifecycles(
    report: Report, label: str, audits: dict[str, Any], rounds: int, ops: int, tasks: int = 50
) -> None:
    """One task awaiting lifecycles one after another, then ``tasks`` tasks sharing them, each
    against the sync API on the same database; rounds of whole batches, order rotating."""
    import asyncio

    from veritas_store.aio import open_async_stores

    tag = run_tag()
    config = {
        "audits": audits,
        "blobs": {"backends": {"memory": {"type": "memory"}}},
        "journal": False,  # one audit backend: nothing to journal anyway
    }
    sync = vs.open_stores(config)

    async def alifecycle(audits: Any, audit_id: str) -> None:
        audit = vs.Audit(**created_values(audit_id))
        await audits.create(audit)
        done = completed_values(audit_id)
        done["findings"] = [vs.Finding(**f) for f in done["findings"]]
        done["screenshots"] = [vs.Screenshot(**s) for s in done["screenshots"]]
        await audits.update(attrs.evolve(audit, **done))
        await audits.get(audit_id)

    async def measure() -> dict[str, list[float]]:
        async with open_async_stores(config) as stores:

            async def sync_api(r: int) -> None:  # the sync API, called as a sync caller would
                for i in range(ops):
                    lifecycle(sync.audits, f"{tag}-sync-{r}-{i}")

            async def one_task(r: int) -> None:
                for i in range(ops):
                    await alifecycle(stores.audits, f"{tag}-one-{r}-{i}")

            async def hand_off(r: int) -> None:  # the floor: each sync call on a pool thread
                for i in range(ops):
                    await alifecycle(on_pool, f"{tag}-pool-{r}-{i}")

            async def many_tasks(r: int) -> None:
                async def task(t: int) -> None:
                    for i in range(t, ops, tasks):
                        await alifecycle(stores.audits, f"{tag}-many-{r}-{i}")

                await asyncio.gather(*(task(t) for t in range(tasks)))

            pool = concurrent.futures.ThreadPoolExecutor(16)
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.01) for _ in range(16)))
            on_pool = _OnPool(loop, pool, sync.audits)
            variants = {"sync": sync_api, "one": one_task, "many": many_tasks, "pool": hand_off}
            names = list(variants)
            seconds: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds + 1):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    start = time.perf_counter()
                    await variants[name](r)
                    if r:
                        seconds[name].append((time.perf_counter() - start) / ops)
            pool.shutdown()
            return seconds

    try:
        seconds = asyncio.run(measure())
    finally:
        sync.close()
    one = speed_ratio(seconds["one"], seconds["sync"])
    target, passed = at_least(one, 0.8)
    one_rate = rate(1 / typical(seconds["one"]))
    report.add(
        Row(
            f"async lifecycle {label}, 1 task",
            one_rate,
            f"sync API {rate(1 / typical(seconds['sync']))}",
            one,
            target,
            passed,
        )
    )
    report.add(
        Row(
            f"async lifecycle {label}, 1 task",
            one_rate,
            f"run_in_executor per call {rate(1 / typical(seconds['pool']))}",
            speed_ratio(seconds["one"], seconds["pool"]),
            note="the floor: the sync API, each call handed to a pool thread and back",
        )
    )
    many = speed_ratio(seconds["many"], seconds["one"])
    report.add(
        Row(
            f"async lifecycle {label}, {tasks} tasks",
            rate(1 / typical(seconds["many"])),
            f"async, 1 task {one_rate}",
            many,
            "> 1.00x",
            many > 1,
            note=f"{speed_ratio(seconds['many'], seconds['sync']):.2f}x the sync API",
        )
    )


def bench_memory(report: Report, quick: bool, workdir: Path) -> None:
    count = 20_000 if quick else 100_000
    probe = HERE / "memory_probe.py"
    per_audit = {}
    for kind in ("dicts", "framework"):
        out = subprocess.run(
            [sys.executable, str(probe), kind, str(count)],
            check=True,
            capture_output=True,
            text=True,
            cwd=workdir,
        ).stdout
        result = json.loads(out)
        per_audit[kind] = (result["peak_kb"] - result["before_kb"]) * 1024 / count
    report.add(
        Row(
            f"memory per audit ({count:,})",
            f"{per_audit['framework']:,.0f} B",
            f"plain dicts {per_audit['dicts']:,.0f} B",
            per_audit["framework"] / per_audit["dicts"],
            note="peak RSS of a fresh process; ratio: framework / dicts (lower is better)",
        )
    )


BENCHES = {
    "startup": bench_startup,
    "lifecycle": bench_lifecycle,
    "read": bench_read,
    "screenshots": bench_screenshots,
    "fanout": bench_fanout,
    "async": bench_async,
    "memory": bench_memory,
}


# --- main -------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer rounds")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")

    info = machine()
    print(
        f"veritas-store {vs.__version__} benchmarks{' (quick)' if args.quick else ''}: "
        f"{info['cpus']} CPUs, {info['cpu']}, Python {info['python']}, {info['system']}, "
        f"load average {info['load']}"
    )
    print(
        f"  {'benchmark':<38} {'figure':>14}   {'baseline (same run)':<32} {'ratio':>7}  "
        f"{'target':<10} result"
    )
    report = Report()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="veritas-bench-"))
    try:
        for name in sections:
            gc.collect()
            BENCHES[name](report, args.quick, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    failed = [row.name for row in report.rows if row.passed is False]
    passed = sum(row.passed is True for row in report.rows)
    print(
        f"{passed} PASS, {len(failed)} FAIL in {elapsed:.0f} s"
        + (f" (FAIL: {', '.join(failed)})" if failed else "")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "quick": args.quick,
                    "seconds": round(elapsed, 1),
                    "rows": [asdict(row) | {"result": row.result} for row in report.rows],
                },
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
