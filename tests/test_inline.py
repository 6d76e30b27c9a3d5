"""Calls attempted on the event loop (``Capability.INLINE``): what runs there, what it never
waits for, and how a call that would wait goes to a worker with nothing changed.

Everything runs against real SQLite files; a second process holds SQLite's write lock where a
test needs a lock held elsewhere.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from faulty import FaultyPlugin
from observers import Recorder

import veritas_store as vs
from veritas_store.aio import AsyncAuditRecorder, AsyncStores, open_async_stores
from veritas_store.demo import DEMO_RESULT
from veritas_store.testing import no_wait
from veritas_store_plugins.memory import MemoryAuditStore, MemoryBlobStore

T = TypeVar("T")


def sqlite_config(tmp_path: Path, **sql: Any) -> dict[str, Any]:
    """The embedded default's shape: SQLite read first, memory beside it; memory blobs."""
    return {
        "audits": {
            "backends": {
                "sql": {"type": "sql", "url": f"sqlite:///{tmp_path}/audits.db", **sql},
                "memory": {"type": "memory"},
            }
        },
        "blobs": {"backends": {"m": {"type": "memory"}}},
        "journal": str(tmp_path / "journal.db"),
    }


def record_threads(store: Any, *names: str) -> list[tuple[str, int, bool]]:
    """Wrap ``store``'s methods so each call records (name, thread id, may_wait())."""
    calls: list[tuple[str, int, bool]] = []
    for name in names:
        method = getattr(store, name)

        def wrapper(*args: Any, _name: str = name, _method: Callable[..., Any] = method) -> Any:
            calls.append((_name, threading.get_ident(), vs.may_wait()))
            return _method(*args)

        setattr(store, name, wrapper)
    return calls


WHEN = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def audit(audit_id: str) -> vs.Audit:
    return vs.Audit(
        id=audit_id, url=f"https://{audit_id}.example", created_at=WHEN, updated_at=WHEN
    )


# -- where calls run -------------------------------------------------------------------------------


def test_sqlite_audit_calls_run_on_the_event_loop_thread(tmp_path: Path) -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            assert stores.inline
            assert vs.Capability.INLINE in stores.audits.capabilities
            sql = stores.sync.audits.backends["sql"]
            calls = record_threads(sql, "create", "update", "get", "delete")
            a = audit("a1")
            await stores.audits.create(a)
            done = attrs.evolve(a, status=vs.AuditStatus.COMPLETED, trust_score=71.5)
            await stores.audits.update(done)
            assert await stores.audits.get("a1") == done
            assert await stores.audits.get_with_source("a1") == (done, "sql")
            assert await stores.audits.delete("a1") is True
        assert [(name, thread) for name, thread, _ in calls] == [
            (name, loop_thread) for name in ("create", "update", "get", "get", "delete")
        ]
        assert not any(may_wait for _, _, may_wait in calls)

    asyncio.run(main())
    # what the inline lane wrote is in the file, for any other connection to read
    with vs.open_stores(sqlite_config(tmp_path)) as stores:
        assert stores.audits.backends["sql"].get("a1") is None


def test_the_recorder_s_lifecycle_runs_on_the_event_loop_thread(tmp_path: Path) -> None:
    async def main() -> vs.Audit:
        loop_thread = threading.get_ident()
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            calls = record_threads(stores.sync.audits.backends["sql"], "create", "update", "get")
            recorder = AsyncAuditRecorder(stores)
            await recorder.started("r1", "https://r1.example")
            finished = await recorder.completed("r1", DEMO_RESULT)
            assert {thread for _, thread, _ in calls} == {loop_thread}
            assert [name for name, _, _ in calls] == ["get", "create", "get", "update"]
            return finished

    finished = asyncio.run(main())
    with vs.open_stores(sqlite_config(tmp_path)) as stores:
        assert stores.audits.backends["sql"].get("r1") == finished
        assert vs.result_of(finished)["trust_score"] == DEMO_RESULT["trust_score"]


@pytest.mark.parametrize(
    ("change", "inline"),
    [
        ({}, True),
        ({"sql": {"inline": False}}, False),
        ({"sql": {"inline": "${VERITAS_TEST_INLINE:-false}"}}, False),
        ({"sql": {"url": "sqlite://"}}, False),  # in-memory: one connection under a lock
        ({"sql": {"timeout": 5}}, False),  # a deadline runs the call on a thread
        ({"memory": {"retries": 2}}, False),  # retries sleep
        ({"read_repair": True}, False),
        ({"second": {"type": "sql", "url": "sqlite:///{tmp}/b.db"}}, False),  # journaled
        ({"drop_memory": True}, True),
        ({"only_memory": True}, True),
        ({"migration": {"from": "memory", "to": "sql", "stage": "shadow"}}, False),
        ({"migration": {"from": "memory", "to": "sql", "stage": "dualwrite"}}, False),
        ({"migration": {"from": "memory", "to": "sql", "stage": "complete"}}, True),
    ],
)
def test_which_composites_run_calls_inline(
    tmp_path: Path, change: dict[str, Any], inline: bool
) -> None:
    cfg = sqlite_config(tmp_path)
    section = cfg["audits"]
    backends = section["backends"]
    for key, value in change.items():
        if key in backends:
            backends[key].update(value)
        elif key == "second":
            backends[key] = {**value, "url": value["url"].format(tmp=tmp_path)}
        elif key == "drop_memory":
            del backends["memory"]
        elif key == "only_memory":
            del backends["sql"]
        else:
            section[key] = value

    async def main() -> None:
        async with open_async_stores(cfg) as stores:
            assert stores.inline is inline
            assert (vs.Capability.INLINE in stores.audits.capabilities) is inline
            # either way the calls work
            await stores.audits.create(audit("c1"))
            assert (await stores.audits.get("c1")) == audit("c1")

    asyncio.run(main())


def test_the_inline_option_applies_to_sqlite_files_only() -> None:
    from veritas_store_plugins.sql import SqlAuditStore

    SqlAuditStore.check_options(url="sqlite:///x.db", inline=True)
    SqlAuditStore.check_options(url="postgresql+psycopg://u@h/db", inline=False)
    with pytest.raises(ValueError, match="inline applies only to a SQLite database file"):
        SqlAuditStore.check_options(url="postgresql+psycopg://u@h/db", inline=True)
    with pytest.raises(ValueError, match="in-memory SQLite"):
        SqlAuditStore.check_options(url="sqlite://", inline=True)
    with pytest.raises(TypeError, match="inline must be true or false"):
        SqlAuditStore.check_options(url="sqlite:///x.db", inline="sometimes")


def test_a_typo_in_the_inline_option_is_a_config_error(tmp_path: Path) -> None:
    cfg = sqlite_config(tmp_path, inline="maybe")
    with pytest.raises(vs.ConfigError, match="inline"):
        vs.open_stores(cfg)


# -- what the lane never waits for -----------------------------------------------------------------

HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("COMMIT")
    """
)


@pytest.fixture
def lock_holder() -> Iterator[Callable[[Path, float], subprocess.Popen[str]]]:
    """Start a process that holds SQLite's write lock on a database for some seconds."""
    started: list[subprocess.Popen[str]] = []

    def hold(db: Path, seconds: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


async def ticking(stop: asyncio.Event, gaps: list[float]) -> None:
    """Tick every 2 ms until ``stop``; record how late each tick came."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.002)
        gaps.append(time.perf_counter() - start - 0.002)


async def while_ticking(call: Awaitable[T]) -> tuple[T, float, list[float]]:
    """Await ``call`` while a task ticks every 2 ms: its result, the seconds it took, and how
    late each tick came (a call that blocked the loop makes a tick that late)."""
    stop, gaps = asyncio.Event(), []
    ticker = asyncio.ensure_future(ticking(stop, gaps))
    started = time.perf_counter()
    try:
        result = await call
    finally:
        stop.set()
        await ticker
    return result, time.perf_counter() - started, gaps


def test_a_write_another_process_blocks_goes_to_a_worker_and_the_loop_keeps_ticking(
    tmp_path: Path, lock_holder: Callable[[Path, float], subprocess.Popen[str]]
) -> None:
    """SQLite's write lock held by another process for 0.6 s: the inline attempt gets
    "database is locked" at once (busy_timeout 0), nothing is written, and the write waits on
    a worker. Waiting in SQLite's busy handler on the loop would stall it for the 0.6 s."""

    async def main() -> None:
        loop_thread = threading.get_ident()
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            await stores.audits.create(audit("before"))  # the tables exist
            calls = record_threads(stores.sync.audits.backends["sql"], "create")
            memory_calls = record_threads(stores.sync.audits.backends["memory"], "create")
            holder = lock_holder(tmp_path / "audits.db", 0.6)
            _, waited, gaps = await while_ticking(stores.audits.create(audit("blocked")))
            assert holder.wait(10) == 0
            assert waited > 0.3, "the create did not wait for the other process's lock"
            assert max(gaps) < 0.1, f"the loop stalled {max(gaps) * 1000:.0f} ms"
            assert len(gaps) > 50
            # tried on the loop (refused before writing), then done on a worker
            assert [(t == loop_thread, w) for _, t, w in calls] == [(True, False), (False, True)]
            assert [t == loop_thread for _, t, _ in memory_calls] == [False]  # written once
            assert await stores.audits.get("blocked") == audit("blocked")

    asyncio.run(main())


def test_a_sync_thread_writing_sends_async_writes_to_a_worker(
    tmp_path: Path, lock_holder: Callable[[Path, float], subprocess.Popen[str]]
) -> None:
    """A sync thread of the same process waits for another process's lock while it holds this
    process's SQLite write lock: the async write does not wait for it on the loop."""

    async def main() -> None:
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            await stores.audits.create(audit("before"))
            holder = lock_holder(tmp_path / "audits.db", 0.6)
            writer = threading.Thread(target=stores.sync.audits.create, args=(audit("sync"),))
            writer.start()
            await asyncio.sleep(0.1)  # the thread is in SQLite's busy handler by now
            _, _, gaps = await while_ticking(stores.audits.create(audit("async")))
            writer.join(10)
            assert holder.wait(10) == 0
            assert max(gaps) < 0.1, f"the loop stalled {max(gaps) * 1000:.0f} ms"
            for audit_id in ("before", "sync", "async"):
                assert await stores.audits.get_with_source(audit_id) == (audit(audit_id), "sql")

    asyncio.run(main())


def test_the_recorder_waits_on_a_worker_for_an_audit_lock_a_sync_thread_holds(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            calls = record_threads(stores.sync.audits.backends["sql"], "create")
            lock = stores.sync.locks("held")
            released = threading.Event()

            def hold() -> None:
                with lock:
                    released.wait(10)

            holder = threading.Thread(target=hold)
            holder.start()
            stop, gaps = asyncio.Event(), []
            ticker = asyncio.ensure_future(ticking(stop, gaps))
            started = asyncio.ensure_future(AsyncAuditRecorder(stores).started("held", "https://h"))
            await asyncio.sleep(0.2)
            assert not started.done()  # waiting for the lock, on a worker
            released.set()
            running = await started
            stop.set()
            await ticker
            holder.join(10)
            assert running.status == vs.AuditStatus.RUNNING
            assert max(gaps) < 0.1, f"the loop stalled {max(gaps) * 1000:.0f} ms"
            assert [t == loop_thread for _, t, _ in calls] == [False]

    asyncio.run(main())


def test_inline_writes_keep_the_wal_small_and_wait_for_checkpoints_on_the_loop(
    tmp_path: Path,
) -> None:
    """Ten tasks write without a pause. Inline writes never checkpoint on the loop; the lane's
    checkpointer keeps the WAL about as small as SQLite's own automatic checkpoints do (without
    it, or without the write lock for its last pass, it grows to ~120 MB here), and the writes
    that meet it wait for it on the loop: none goes to a worker."""
    findings = tuple(
        vs.Finding(category="c", pattern_type=f"p{i}", severity="high", confidence=0.9,
                   description="d" * 400)
        for i in range(10)
    )  # fmt: skip

    async def main() -> None:
        loop_thread = threading.get_ident()
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            assert stores.inline
            calls = record_threads(stores.sync.audits.backends["sql"], "create", "update")
            wal, sizes, done = tmp_path / "audits.db-wal", [0], False

            async def watch() -> None:
                while not done:
                    await asyncio.sleep(0.01)
                    sizes.append(wal.stat().st_size if wal.exists() else 0)

            async def write(task: int) -> None:
                for i in range(150):
                    a = audit(f"w{task}-{i}")
                    await stores.audits.create(a)
                    changed = attrs.evolve(a, findings=findings, narrative="n" * 2000)
                    await stores.audits.update(changed)

            watcher = asyncio.ensure_future(watch())
            await asyncio.gather(*(write(t) for t in range(10)))
            done = True
            await watcher
            sizes.append(wal.stat().st_size)
            # measured while open: closing the last connection checkpoints and removes it
            assert max(sizes) < 12 * 2**20, f"the WAL grew to {max(sizes) / 2**20:.1f} MB"
            assert len(calls) >= 3000
            on_workers = [name for name, thread, _ in calls if thread != loop_thread]
            assert on_workers == []

    asyncio.run(main())
    with vs.open_stores(sqlite_config(tmp_path)) as stores:
        assert stores.audits.backends["sql"].get("w9-149").findings == findings


# -- how the composite treats an attempt -----------------------------------------------------------


class Reluctant(MemoryAuditStore):
    """A memory store that, the first ``refusals`` times it is asked without waiting, answers
    ``WouldBlock`` (before changing anything), as a backend whose lock is taken would."""

    def __init__(self, refusals: int = 1) -> None:
        super().__init__()
        self.refusals = refusals
        self.calls: list[tuple[str, bool]] = []

    def _ask(self, operation: str) -> None:
        self.calls.append((operation, vs.may_wait()))
        if not vs.may_wait() and self.refusals > 0:
            self.refusals -= 1
            raise vs.WouldBlock(f"{operation}: test refusal")

    def create(self, audit: vs.Audit) -> None:
        self._ask("create")
        super().create(audit)

    def get(self, audit_id: str) -> vs.Audit | None:
        self._ask("get")
        return super().get(audit_id)


class Busy(MemoryAuditStore):
    """A memory store whose own short job (``busy()``) makes calls without waiting answer
    ``WouldBlock(until=...)``: the future completes when the job is over."""

    def __init__(self) -> None:
        super().__init__()
        self.job: Future[None] | None = None
        self.calls: list[tuple[int, bool]] = []

    def busy(self, seconds: float) -> None:
        job = self.job = Future()

        def finish() -> None:
            self.job = None
            job.set_result(None)

        threading.Timer(seconds, finish).start()

    def create(self, audit: vs.Audit) -> None:
        self.calls.append((threading.get_ident(), vs.may_wait()))
        if self.job is not None and not vs.may_wait():
            raise vs.WouldBlock("a job of the store's own is running", until=self.job)
        super().create(audit)


class Slow(MemoryAuditStore):
    """A memory store whose ``get`` computes for 1 ms (CPU, not a wait: allowed inline)."""

    def get(self, audit_id: str) -> vs.Audit | None:
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass
        return super().get(audit_id)


class GatedBlobs(MemoryBlobStore):
    """A memory blob store (not inline) whose ``put`` waits until ``gate`` is set."""

    capabilities = frozenset({vs.Capability.LIST})
    gate = threading.Event()

    def put(self, key: str, data: bytes, content_type: str | None = None) -> vs.BlobInfo:
        if not self.gate.wait(20):
            raise TimeoutError("the test never opened the gate")
        return super().put(key, data, content_type)


class ReluctantPlugin:
    @vs.hookimpl
    def register_audit_backends(self, register: Any) -> None:
        register("reluctant", Reluctant, description="test: refuses to be asked without waiting")
        register("busy", Busy, description="test: tells a call what to wait for")
        register("slow", Slow, description="test: computes for 1 ms per get")

    @vs.hookimpl
    def register_blob_backends(self, register: Any) -> None:
        register("gated", GatedBlobs, description="test: a put waits for a gate")


def reluctant_config(tmp_path: Path, **lead: Any) -> dict[str, Any]:
    return {
        "audits": {
            "backends": {
                "lead": {"type": "reluctant", **lead},
                "follow": {"type": "reluctant", "refusals": 99},
            }
        },
        "blobs": {"backends": {"m": {"type": "memory"}}},
        "journal": str(tmp_path / "journal.db"),
    }


def test_a_leader_s_would_block_changes_nothing_and_the_call_runs_on_a_worker(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        cfg = reluctant_config(tmp_path, refusals=1)
        async with open_async_stores(cfg, plugins=[ReluctantPlugin()]) as stores:
            lead, follow = stores.sync.audits.backends.values()
            await stores.audits.create(audit("x"))
            # refused on the loop (nothing reached the follower), then done on a worker, where
            # the follower was asked too; the follower's own refusals never came into play
            assert lead.calls == [("create", False), ("create", True)]
            assert follow.calls == [("create", True)]
            assert lead.get("x") == follow.get("x") == audit("x")
            assert follow.refusals == 99

    asyncio.run(main())


def test_a_call_told_what_to_wait_for_waits_for_it_on_the_loop_and_runs_there(
    tmp_path: Path,
) -> None:
    cfg = {
        "audits": {"backends": {"b": {"type": "busy"}}},
        "blobs": {"backends": {"m": {"type": "memory"}}},
        "journal": False,
    }

    async def main() -> None:
        loop_thread = threading.get_ident()
        async with open_async_stores(cfg, plugins=[ReluctantPlugin()]) as stores:
            (busy,) = stores.sync.audits.backends.values()
            busy.busy(0.2)
            _, waited, gaps = await while_ticking(stores.audits.create(audit("u")))
            assert 0.1 < waited < 5
            assert max(gaps) < 0.1  # it waited on the loop without blocking it
            assert busy.calls == [(loop_thread, False), (loop_thread, False)]
            assert busy.get("u") == audit("u")

    asyncio.run(main())


def test_an_inline_write_s_followers_may_wait(tmp_path: Path) -> None:
    """After the leader has written, the call has to finish: the followers run with waiting
    allowed (a follower's WouldBlock would lose its copy), and inline, one after another."""

    async def main() -> None:
        loop_thread = threading.get_ident()
        cfg = reluctant_config(tmp_path, refusals=0)
        async with open_async_stores(cfg, plugins=[ReluctantPlugin()]) as stores:
            lead, follow = stores.sync.audits.backends.values()
            threads = record_threads(follow, "create")
            await stores.audits.create(audit("y"))
            assert lead.calls == [("create", False)]
            assert follow.calls == [("create", True)]
            assert [t for _, t, _ in threads] == [loop_thread]
            assert follow.get("y") == audit("y")
            # a read that the first backend refuses runs again on a worker, all of it
            lead.refusals = 1
            assert await stores.audits.get_with_source("y") == (audit("y"), "lead")
            assert lead.calls[-2:] == [("get", False), ("get", True)]

    asyncio.run(main())


class ThreadRecorder(Recorder):
    """Records the observer hooks' calls, and the thread each ``backend_error`` ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    @vs.hookimpl
    def backend_error(
        self, kind: str, backend: str, operation: str, key: str | None, error: Exception
    ) -> None:
        self.threads.append(threading.get_ident())
        super().backend_error(kind, backend, operation, key, error)


def flaky_config(first: str, fail_on: str) -> dict[str, Any]:
    """Memory and an optional inline memory backend failing ``fail_on``; ``first`` is read
    and written first."""
    flaky = {"type": "faulty", "inner": "memory", "fail_on": [fail_on],
             "capabilities": ["list", "inline"], "required": False}  # fmt: skip
    backends = {"flaky": flaky, "memory": {"type": "memory"}}
    return {
        "audits": {"backends": backends, "read_order": [first]},
        "blobs": {"backends": {"m": {"type": "memory"}}},
        "journal": False,
    }


def test_a_backend_failing_on_the_loop_is_reported_from_a_worker() -> None:
    """The observer hooks are the application's code and may block: a failure met on the
    event loop before anything was written sends the call to a worker, which reports it."""
    observer = ThreadRecorder()

    async def main() -> None:
        loop_thread = threading.get_ident()
        cfg = flaky_config("flaky", fail_on="get")
        async with open_async_stores(cfg, plugins=[FaultyPlugin(), observer]) as stores:
            assert stores.inline
            await stores.audits.create(audit("r"))
            assert await stores.audits.get_with_source("r") == (audit("r"), "memory")
        assert [call["operation"] for call in observer.calls["backend_error"]] == ["get"]
        assert len(observer.threads) == 1 and observer.threads[0] != loop_thread

    asyncio.run(main())


def test_a_follower_failing_after_an_inline_write_is_reported_and_the_write_stands() -> None:
    """After the first backend has written, the call finishes where it is: the follower's
    failure is reported on the loop (the write is not sent to a worker and made twice)."""
    observer = ThreadRecorder()

    async def main() -> None:
        loop_thread = threading.get_ident()
        cfg = flaky_config("memory", fail_on="create")
        async with open_async_stores(cfg, plugins=[FaultyPlugin(), observer]) as stores:
            assert stores.inline
            calls = record_threads(stores.sync.audits.backends["memory"], "create")
            await stores.audits.create(audit("f"))
            assert [(t, w) for _, t, w in calls] == [(loop_thread, False)]  # written once
            assert await stores.audits.get_with_source("f") == (audit("f"), "memory")
        assert [call["backend"] for call in observer.calls["backend_error"]] == ["flaky"]
        assert observer.threads == [loop_thread]

    asyncio.run(main())


def test_a_composite_that_cannot_run_inline_refuses_before_doing_anything(tmp_path: Path) -> None:
    cfg = sqlite_config(tmp_path, inline=False)
    with vs.open_stores(cfg) as stores:
        sql_calls = record_threads(stores.audits.backends["sql"], "create", "get")
        memory_calls = record_threads(stores.audits.backends["memory"], "create", "get")
        with no_wait():
            for attempt in (
                lambda: stores.audits.create(audit("n")),
                lambda: stores.audits.get("n"),
                lambda: stores.audits.delete("n"),
                lambda: stores.audits.list(),
                lambda: stores.blobs.url("n/0000.png"),
            ):
                with pytest.raises(vs.WouldBlock):
                    attempt()
            # the memory blob composite can: one backend, whose put is the whole write
            assert stores.blobs.put("n/0000.png", b"x").size == 1
        assert sql_calls == memory_calls == []
        assert stores.audits.get("n") is None


def test_sqlite_refuses_what_it_does_not_run_inline(tmp_path: Path) -> None:
    with vs.open_stores(sqlite_config(tmp_path)) as stores:
        sql = stores.audits.backends["sql"]
        sql.create(audit("e"))
        with no_wait():
            for attempt in (
                lambda: sql.list(),
                lambda: sql.events("e"),
                lambda: sql.append_events("e", [vs.AuditEvent(type="log_entry", data={})]),
            ):
                with pytest.raises(vs.WouldBlock):
                    attempt()
            assert sql.get("e") == audit("e")  # a single-audit read runs
        assert sql.events("e") == ()


# -- the event loop stays fair ---------------------------------------------------------------------


def test_many_tasks_calls_inline_at_once_leave_the_loop_turns_for_its_timers() -> None:
    """40 tasks' 1-ms calls ready at once run ~2 ms of them per turn of the loop, then let
    it poll for I/O and run its timers: a 2-ms ticker is never ~40 ms late."""
    cfg = {
        "audits": {"backends": {"s": {"type": "slow"}}},
        "blobs": {"backends": {"m": {"type": "memory"}}},
        "journal": False,
    }

    async def main() -> None:
        async with open_async_stores(cfg, plugins=[ReluctantPlugin()]) as stores:
            assert stores.inline
            await stores.audits.create(audit("s"))
            calls = [stores.audits.get("s") for _ in range(40)]
            found, waited, gaps = await while_ticking(asyncio.gather(*calls))
            assert found == [audit("s")] * 40
            assert waited >= 0.04  # 40 calls of 1 ms ran, one after the other
            assert max(gaps) < 0.015, f"a tick came {max(gaps) * 1000:.1f} ms late"

    asyncio.run(main())


def test_calls_go_to_workers_while_a_worker_is_busy(tmp_path: Path) -> None:
    """A worker running Python would take the interpreter lock from the loop in the middle
    of an inline call: while one is busy, calls are handed to workers too."""
    cfg = sqlite_config(tmp_path)
    cfg["blobs"] = {"backends": {"g": {"type": "gated"}}}

    async def main() -> None:
        loop_thread = threading.get_ident()
        async with open_async_stores(cfg, plugins=[ReluctantPlugin()]) as stores:
            calls = record_threads(stores.sync.audits.backends["sql"], "create")
            GatedBlobs.gate.clear()
            put = asyncio.ensure_future(stores.blobs.put("k/0000.png", b"x"))
            await asyncio.sleep(0.05)  # the put waits at the gate, on a worker
            await stores.audits.create(audit("while-busy"))
            GatedBlobs.gate.set()
            await put
            await stores.audits.create(audit("idle"))
            assert [t == loop_thread for _, t, _ in calls] == [False, True]

    asyncio.run(main())


def test_a_task_making_many_inline_calls_lets_other_tasks_run(tmp_path: Path) -> None:
    async def main() -> None:
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            await stores.audits.create(audit("f"))
            turns = 0
            done = False

            async def other() -> None:
                nonlocal turns
                while not done:
                    turns += 1
                    await asyncio.sleep(0)

            task = asyncio.ensure_future(other())
            await asyncio.sleep(0)
            for _ in range(500):
                await stores.audits.get("f")
            done = True
            await task
            assert turns >= 400, f"the other task ran {turns} times during 500 calls"

    asyncio.run(main())


def test_a_call_cancelled_before_it_runs_inline_writes_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with open_async_stores(sqlite_config(tmp_path)) as stores:
            create = asyncio.ensure_future(stores.audits.create(audit("c")))
            await asyncio.sleep(0)  # it has started and is yielding before it runs
            create.cancel()
            with pytest.raises(asyncio.CancelledError):
                await create
            assert await stores.audits.get("c") is None

    asyncio.run(main())


def test_async_stores_that_are_closed_refuse_inline_calls(tmp_path: Path) -> None:
    async def main() -> None:
        stores: AsyncStores = await open_async_stores(sqlite_config(tmp_path))
        await stores.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await stores.audits.get("a")

    asyncio.run(main())
