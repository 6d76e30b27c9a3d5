"""The example audit service over real HTTP: the dual-write migration flow, end to end.

Each test starts ``uvicorn examples.audit_service.app:app`` in a new process on a free loopback
port, with its working directory in a temporary folder (so ``./veritas-data`` lands there), and
talks to it with httpx. What landed where is then checked by opening the SQLite file directly
with the ``sql`` backend and by reading the blob folder.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import need_service

import veritas_store as vs
from veritas_store_plugins.sql import SqlAuditStore

try:
    import fastapi  # noqa: F401
    import httpx
    import uvicorn  # noqa: F401

    MISSING: ImportError | None = None
except ImportError as exc:  # depends on the installed extras
    MISSING = exc


@pytest.fixture(autouse=True)
def _service_packages() -> None:
    if MISSING is not None:
        need_service("the example service's packages (pip install -e '.[service]')", MISSING)


REPO = Path(__file__).resolve().parents[1]
APP = "examples.audit_service.app:app"
STARTUP_SECONDS = 60


class Service:
    """A running ``uvicorn`` process serving the example app."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        for _attempt in range(3):  # a free port can be taken before uvicorn binds it
            port = _free_port()
            self.url = f"http://127.0.0.1:{port}"
            self.log = cwd / f"uvicorn-{port}.log"
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", APP, "--app-dir", str(REPO),
                     "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                    cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            if self._wait_until_up():
                return
        raise AssertionError(f"the service did not start:\n{self.output()}")

    def _wait_until_up(self) -> bool:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop it as an operator would: SIGTERM, a graceful shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def crash(self) -> None:
        """Kill it with SIGKILL: no shutdown code runs."""
        self.process.kill()
        self.process.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """``start(**env)`` runs the service in ``tmp_path``; every one is stopped afterwards."""
    started: list[Service] = []

    def run(**env: str) -> Service:
        environment = {k: v for k, v in os.environ.items() if k not in {
            "VERITAS_STORE_CONFIG", "USE_DB_PERSISTENCE"}}  # fmt: skip
        environment.update({"AUDIT_SIM_STEP_SECONDS": "0.01", **env})
        service = Service(tmp_path, environment)
        started.append(service)
        return service

    yield run
    for service in started:
        service.stop()


# -- helpers ---------------------------------------------------------------------------------------


def run_audit(client: httpx.Client, url: str, tier: str = "standard") -> tuple[str, list[Any]]:
    """Start an audit and read its whole event stream."""
    answer = client.post("/audit/start", json={"url": url, "tier": tier, "verdict_mode": "expert"})
    audit_id = answer.raise_for_status().json()["audit_id"]
    events = []
    with client.stream("GET", f"/audit/{audit_id}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: "), line
                events.append(json.loads(line.removeprefix("data: ")))
    return audit_id, events


async def run_audit_async(client: httpx.AsyncClient, url: str) -> tuple[str, list[Any]]:
    answer = await client.post("/audit/start", json={"url": url, "tier": "standard",
                                                     "verdict_mode": "quick"})  # fmt: skip
    audit_id = answer.raise_for_status().json()["audit_id"]
    events = []
    async with client.stream("GET", f"/audit/{audit_id}/stream") as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                events.append(json.loads(line.removeprefix("data: ")))
    return audit_id, events


def status(client: httpx.Client, audit_id: str) -> tuple[str, vs.Audit]:
    """Which backend answered, and the audit it returned."""
    answer = client.get(f"/audit/{audit_id}/status")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["audit_id"] == audit_id and body["status"] == body["audit"]["status"]
    return body["read_from"], vs.Audit.from_dict(body["audit"])


def database(root: Path) -> SqlAuditStore:
    """The service's SQLite file, opened directly with the sql backend."""
    path = root / "veritas-data" / "audits.db"
    assert path.is_file(), "no SQLite database was written"
    return SqlAuditStore(f"sqlite:///{path}")


def screenshot_events(events: list[Any]) -> list[Any]:
    return [e for e in events if e["type"] == "screenshot"]


def check_screenshots(root: Path, audit: vs.Audit, events: list[Any]) -> None:
    """Every streamed screenshot is a file under the blob folder, referenced on the audit."""
    shots = screenshot_events(events)
    assert [s.index for s in audit.screenshots] == [e["index"] for e in shots] == [0, 1, 2]
    for ref, event in zip(audit.screenshots, shots, strict=True):
        image = base64.b64decode(event["data"])
        assert image.startswith(b"\x89PNG")
        assert ref.blob_key == event["blob_key"] == f"{audit.id}/{ref.index:04d}.png"
        assert (ref.label, ref.content_type) == (event["label"], "image/png")
        stored = (root / "veritas-data" / "blobs" / ref.blob_key).read_bytes()
        assert stored == image
        assert ref.sha256 == hashlib.sha256(image).hexdigest() == event["sha256"]
        assert ref.size_bytes == len(image)


def check_completed(audit: vs.Audit, audit_id: str, url: str, events: list[Any]) -> None:
    final = events[-1]
    assert final["type"] == "audit_complete" and final["status"] == "completed"
    assert all(e["audit_id"] == audit_id for e in events)
    result = final["result"]
    assert (audit.id, audit.url, audit.status) == (audit_id, url, vs.AuditStatus.COMPLETED)
    assert audit.started_at <= audit.completed_at
    for field in ("trust_score", "risk_level", "narrative", "site_type", "pages_scanned"):
        assert getattr(audit, field) == result[field], field
    assert audit.signal_scores == result["signal_scores"]
    assert audit.security_results == result["security_results"]
    findings = result["dark_pattern_summary"]["findings"]
    assert [f.pattern_type for f in audit.findings] == [f["pattern_type"] for f in findings]
    assert url in audit.narrative


# -- the migration flow ----------------------------------------------------------------------------


def test_every_audit_is_written_to_sqlite_memory_and_disk(start: Any, tmp_path: Path) -> None:
    service = start()
    url = "https://shop.example/checkout?ref=ad"
    with service.client() as client:
        assert client.get("/health").json()["audits"] == ["sql", "memory"]
        audit_id, events = run_audit(client, url, tier="deep")
        assert [e["type"] for e in events][:2] == ["progress", "screenshot"]
        assert any(e["type"] == "progress" and e["phase"] == "judge" for e in events)

        source, answered = status(client, audit_id)
        assert source == "sql"
        check_completed(answered, audit_id, url, events)
        assert answered.tier == "deep"

        db = database(tmp_path)  # SQLite has the whole record ...
        in_db = db.get(audit_id)
        assert in_db == answered
        check_screenshots(tmp_path, in_db, events)
        for event in screenshot_events(events):  # ... and the service reads the files back
            image = client.get(f"/audit/{audit_id}/screenshots/{event['index']}")
            assert image.headers["content-type"] == "image/png"
            assert image.content == base64.b64decode(event["data"])

        # Memory has every write too: with the database's copy gone, memory answers in full.
        assert db.delete(audit_id)
        db.close()
        assert status(client, audit_id) == ("memory", in_db)


def test_status_reads_the_database_first_and_falls_back_to_memory(
    start: Any, tmp_path: Path
) -> None:
    service = start()
    with service.client() as client:
        audit_id, events = run_audit(client, "https://news.example/")
        source, original = status(client, audit_id)
        assert source == "sql"

        # The database is read first: a change made there shows, though memory differs.
        db = database(tmp_path)
        db.update(attrs.evolve(original, narrative="edited in the database"))
        db.close()
        source, answered = status(client, audit_id)
        assert (source, answered.narrative) == ("sql", "edited in the database")

        queued = client.post("/audit/start", json={"url": "https://later.example/"}).json()
        queued_id = queued["audit_id"]

        # A database that fails is skipped: memory answers, with its own copy.
        with sqlite3.connect(tmp_path / "veritas-data" / "audits.db") as conn:
            conn.execute("ALTER TABLE veritas_audits RENAME TO veritas_audits_broken")
        assert status(client, audit_id) == ("memory", original)

        # Writes need the database (it is required): the audit that runs now fails, its client
        # is told, and memory is not written either, so it never gets ahead of the database.
        with client.stream("GET", f"/audit/{queued_id}/stream") as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line]
        assert [e["type"] for e in events] == ["audit_error"]
        assert events[0]["error"].startswith("WriteError")
        source, queued_audit = status(client, queued_id)
        assert (source, queued_audit.status) == ("memory", vs.AuditStatus.QUEUED)
        refused = client.post("/audit/start", json={"url": "https://new.example/"})
        assert refused.status_code == 503 and "sql" in refused.json()["detail"]

        assert client.get("/audit/no-such-audit/status").status_code == 404
        assert client.get("/audit/bad%20id/status").status_code == 400


def test_a_failed_audit_is_recorded_as_an_error(start: Any, tmp_path: Path) -> None:
    service = start()
    with service.client() as client:
        audit_id, events = run_audit(client, "https://unreachable.invalid/")
        assert events[-1]["type"] == "audit_error"
        assert "cannot resolve unreachable.invalid" in events[-1]["error"]
        source, audit = status(client, audit_id)
        assert (source, audit.status) == ("sql", vs.AuditStatus.ERROR)
        assert "cannot resolve" in audit.error_message
        assert database(tmp_path).get(audit_id) == audit

        assert client.get(f"/audit/{audit_id}/stream").status_code == 409  # it already ran
        assert client.get("/audit/no-such-audit/stream").status_code == 404
        bad = client.post("/audit/start", json={"url": "https://x\u0000.example"})
        assert bad.status_code == 422


def test_audits_survive_the_app_being_killed_and_restarted(start: Any, tmp_path: Path) -> None:
    first = start()
    with first.client() as client:
        audit_id, events = run_audit(client, "https://persist.example/")
        before = status(client, audit_id)
    first.crash()  # the hardest restart: every acknowledged write must be in SQLite

    second = start()  # a new process: its memory backend starts empty
    assert second.process.pid != first.process.pid
    with second.client() as client:
        assert status(client, audit_id) == before  # from SQLite, whole
        for event in screenshot_events(events):
            image = client.get(f"/audit/{audit_id}/screenshots/{event['index']}")
            assert image.content == base64.b64decode(event["data"])
        new_id, new_events = run_audit(client, "https://after-restart.example/")
        source, new = status(client, new_id)
        assert source == "sql"
        check_completed(new, new_id, "https://after-restart.example/", new_events)


def test_use_db_persistence_false_keeps_everything_out_of_sqlite(
    start: Any, tmp_path: Path
) -> None:
    service = start(USE_DB_PERSISTENCE="false")
    url = "https://rollback.example/"
    with service.client() as client:
        assert client.get("/health").json()["audits"] == ["memory"]
        audit_id, events = run_audit(client, url)
        source, audit = status(client, audit_id)
        assert source == "memory"
        check_completed(audit, audit_id, url, events)
        check_screenshots(tmp_path, audit, events)  # blobs stay on disk: the flag is audits'
    data = tmp_path / "veritas-data"
    assert sorted(p.name for p in data.iterdir()) == ["blobs"]  # no audits.db, -wal or -shm
    service.stop()

    again = start(USE_DB_PERSISTENCE="false")  # memory only: nothing outlives the process
    with again.client() as client:
        assert client.get(f"/audit/{audit_id}/status").status_code == 404
    assert not (data / "audits.db").exists()


def test_fifty_concurrent_audits_all_complete_with_nothing_lost_or_mixed_up(
    start: Any, tmp_path: Path
) -> None:
    service = start()
    urls = [f"https://site-{n}.example/page?n={n}" for n in range(50)]

    async def run_all() -> list[tuple[str, list[Any]]]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=service.url, timeout=120, limits=limits) as client:
            return await asyncio.gather(*(run_audit_async(client, url) for url in urls))

    runs = asyncio.run(run_all())
    ids = [audit_id for audit_id, _ in runs]
    assert len(set(ids)) == 50

    db = database(tmp_path)
    page = db.list(limit=1000)
    assert sorted(a.id for a in page.items) == sorted(ids)  # every one, once
    in_db = {a.id: a for a in page.items}
    images = set()
    for (audit_id, events), url in zip(runs, urls, strict=True):
        audit = in_db[audit_id]
        check_completed(audit, audit_id, url, events)
        check_screenshots(tmp_path, audit, events)
        images.update(e["sha256"] for e in screenshot_events(events))
    assert len(images) == 150  # each audit's own images (they differ per audit and index)
    blob_dirs = sorted(p.name for p in (tmp_path / "veritas-data" / "blobs").iterdir())
    assert blob_dirs == sorted(ids)

    with service.client() as client:
        for audit_id in ids:  # the database answers; then memory, with the same records
            assert status(client, audit_id) == ("sql", in_db[audit_id])
            assert db.delete(audit_id)
            assert status(client, audit_id) == ("memory", in_db[audit_id])
    db.close()


def test_audits_outlive_their_client_and_a_shutdown_leaves_none_running(
    start: Any, tmp_path: Path
) -> None:
    service = start(AUDIT_SIM_STEP_SECONDS="0.2")  # about two seconds per audit

    def start_and_hang_up(client: httpx.Client) -> str:
        audit_id = client.post("/audit/start", json={"url": "https://slow.example/"}).json()
        audit_id = audit_id["audit_id"]
        with client.stream("GET", f"/audit/{audit_id}/stream") as response:
            first = next(response.iter_lines())
            assert json.loads(first.removeprefix("data: "))["type"] == "progress"
        return audit_id  # the connection is closed here, mid-audit

    with service.client() as client:
        finished = start_and_hang_up(client)
        deadline = time.monotonic() + 60
        while status(client, finished)[1].status is not vs.AuditStatus.COMPLETED:
            assert time.monotonic() < deadline, "the audit stopped with its client"
            time.sleep(0.1)
        interrupted = start_and_hang_up(client)
    service.stop()  # while `interrupted` still runs

    db = database(tmp_path)
    assert db.get(finished).status is vs.AuditStatus.COMPLETED
    audit = db.get(interrupted)
    assert audit.status is vs.AuditStatus.ERROR
    assert audit.error_message == "the service stopped before the audit finished"
    db.close()


def _sse(client: httpx.Client, path: str) -> list[Any]:
    events = []
    with client.stream("GET", path) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def test_history_compare_and_a_late_event_replay_after_a_restart(
    start: Any, tmp_path: Path
) -> None:
    first = start()
    with first.client() as client:
        runs = [run_audit(client, url) for url in ("https://a.example/", "https://b.example/",
                                                   "https://a.example/")]  # fmt: skip
    first.crash()
    second = start()  # memory empty: everything below comes from SQLite
    with second.client() as client:
        # the whole result, every key the stream's final result had, equal
        for audit_id, events in runs:
            body = client.get(f"/audit/{audit_id}/status").json()
            final = events[-1]["result"]
            assert {k: body["result"][k] for k in final} == final
        # history: filtered, newest first, paged
        ids = [r[0] for r in runs]
        everything = client.get("/audits/history", params={"limit": 100}).json()["items"]
        assert [a["audit_id"] for a in everything] == ids[::-1]
        risk = everything[0]["risk_level"]
        paged, cursor = [], None
        while True:
            params = {"risk_level": risk, "limit": 1, **({"cursor": cursor} if cursor else {})}
            page = client.get("/audits/history", params=params).json()
            paged += [a["audit_id"] for a in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert paged == [a["audit_id"] for a in everything if a["risk_level"] == risk]
        assert client.get("/audits/history", params={"status": "nope"}).status_code == 400
        # compare: one URL's audits in time order, with deltas
        rows = client.get("/audits/compare", params={"url": "https://a.example/"}).json()["audits"]
        assert [r["audit_id"] for r in rows] == [ids[0], ids[2]]
        assert rows[0]["trust_score_delta"] is None
        assert rows[1]["trust_score_delta"] == rows[1]["trust_score"] - rows[0]["trust_score"]
        by_ids = client.get("/audits/compare", params={"ids": f"{ids[1]},{ids[0]}"}).json()
        assert [r["audit_id"] for r in by_ids["audits"]] == [ids[1], ids[0]]
        # a late client replays the stored events, in order, screenshots by blob key
        audit_id, streamed = runs[0]
        replayed = _sse(client, f"/audit/{audit_id}/events")
        assert [e["seq"] for e in replayed] == list(range(1, len(replayed) + 1))
        # the stream's audit_complete is the runner's audit_result, as recorded
        recorded = [{"audit_complete": "audit_result"}.get(e["type"], e["type"]) for e in streamed]
        assert [e["type"] for e in replayed] == recorded
        shots = [e for e in replayed if e["type"] == "screenshot"]
        assert shots and all(e["data"] is None and e["blob_key"] for e in shots)
        assert _sse(client, f"/audit/{audit_id}/events?after=2")[0]["seq"] == 3
        assert client.get("/audit/nope/events").status_code == 404
