"""One writer process for tests/test_concurrency.py (run as a script, never imported by pytest).

    python concurrent_writer.py PLAN.json WRITER_NAME RESULT.json

Opens the stores of the plan's config, waits for the plan's go-file (so every process starts
writing at once), then runs ``threads`` threads. Each thread:

- creates its own audits, updates each twice and saves a screenshot on some of them;
- takes part in a race on the shared audits: creates them if absent, then updates them in turn
  with records whose every field says who wrote them.

The result file holds each own audit's last acknowledged record, every acknowledged write to a
shared audit with its start and end time (CLOCK_MONOTONIC: one clock for every process), and
every exception any thread met.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import veritas_store as vs

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
BASE = datetime(2024, 6, 1, tzinfo=UTC)


def tagged(audit_id: str, tag: str, version: int) -> vs.Audit:
    """A record every field of which is derived from ``tag``: a mix-up cannot go unnoticed."""
    digest = sum(tag.encode()) % 1000
    return vs.Audit(
        id=audit_id,
        url=f"https://{tag}.example/",
        tier=tag,
        status=vs.AuditStatus.COMPLETED if version % 2 else vs.AuditStatus.RUNNING,
        created_at=BASE,
        updated_at=BASE + timedelta(microseconds=version),
        trust_score=digest / 1000,
        narrative=f"written by {tag}",
        signal_scores={"writer": tag, "version": version},
        pages_scanned=version,
        findings=tuple(
            vs.Finding("cat", "pattern", "low", 0.5, f"{tag} finding {i}")
            for i in range(version % 3)
        ),
    )


def shared_id(i: int) -> str:
    return f"shared-{i}"


def main(plan_path: str, writer: str, result_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    own: dict[str, dict[str, Any]] = {}
    shots: dict[str, str] = {}
    writes: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()

    with vs.open_stores(plan["config"]) as stores:
        Path(plan["ready_dir"], writer).touch()
        go = Path(plan["go_file"])
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go-file")
            time.sleep(0.005)

        def work(thread: int) -> None:
            name = f"{writer}-t{thread}"
            try:
                for j in range(plan["shared"]):  # everyone races to create them
                    with contextlib.suppress(vs.AuditExists):
                        stores.audits.create(tagged(shared_id(j), f"{name}-create", 0))
                for j in range(plan["own"]):
                    audit_id = f"{name}-{j}"
                    record = None
                    for version in range(3):
                        record = tagged(audit_id, f"{name}-{j}-v{version}", version)
                        (stores.audits.create if version == 0 else stores.audits.update)(record)
                    if j % 5 == 0:
                        data = PNG + f"{audit_id}".encode()
                        shot = stores.screenshots.save(audit_id, 0, "home", data)
                        record = stores.audits.get(audit_id)
                        shots[audit_id] = shot.sha256
                    assert record is not None
                    with lock:
                        own[audit_id] = record.to_dict()
                    # and one turn on a shared audit
                    target = shared_id((thread + j) % plan["shared"])
                    tag = f"{name}-shared-{j}"
                    start = time.monotonic_ns()
                    stores.audits.update(tagged(target, tag, j + 1))
                    end = time.monotonic_ns()
                    with lock:
                        writes.append(
                            {"id": target, "tag": tag, "version": j + 1, "start": start, "end": end}
                        )
            except Exception:
                with lock:
                    errors.append(traceback.format_exc())

        threads = [threading.Thread(target=work, args=(t,)) for t in range(plan["threads"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    result = {"own": own, "shots": shots, "writes": writes, "errors": errors}
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:4])
