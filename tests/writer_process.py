"""A separate process writing audits through a config, for the scale-out tests.

    python writer_process.py CONFIG WORKER COUNT [--shared N]
    python writer_process.py CONFIG WORKER COUNT --direct [--threads T]

Opens the stores of CONFIG and, for i in range(COUNT), writes audit ``w{WORKER}-{i:05d}``.
By default as a service instance records one: started, then completed (``AuditRecorder``);
with ``--shared N`` it also overwrites the audits ``shared-0`` .. ``shared-{N-1}`` (which every
worker writes) with its own version after each of its audits, so that the workers'
transactions collide. With ``--direct`` it puts one screenshot blob and creates the completed
audit that references it (the fewest round trips per audit, for volume), on T threads.
Prints one JSON line: ``{"worker": W, "written": n}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import veritas_store as vs

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def png(worker: int, i: int) -> bytes:
    """A small PNG-looking payload unique to this audit."""
    return PNG_HEADER + f"worker {worker} audit {i}".encode() * 8


def shared_version(audit_id: str, worker: int, round_: int) -> vs.Audit:
    """Worker ``worker``'s version of a shared audit: its findings count says whose it is."""
    return vs.Audit(
        id=audit_id,
        url="https://shared.example",
        narrative=f"worker {worker} round {round_}",
        created_at=BASE,
        updated_at=BASE + timedelta(seconds=round_),
        findings=tuple(
            vs.Finding("c", f"w{worker}", "low", 0.5, f"{worker}/{k}") for k in range(worker + 1)
        ),
    )


def direct(stores: vs.Stores, worker: int, i: int) -> None:
    audit_id = f"w{worker}-{i:05d}"
    data = png(worker, i)
    key = f"{audit_id}/0000.png"
    info = stores.blobs.put(key, data, "image/png")
    shot = vs.Screenshot(0, "home", key, info.size, "image/png", hashlib.sha256(data).hexdigest())
    stores.audits.create(
        vs.Audit(
            id=audit_id,
            url=f"https://shop-{i}.example",
            status=vs.AuditStatus.COMPLETED,
            created_at=BASE + timedelta(milliseconds=i),
            screenshots=(shot,),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("worker", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--shared", type=int, default=0)
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with vs.open_stores(args.config) as stores:
        if args.direct:
            with ThreadPoolExecutor(args.threads) as pool:
                for done in pool.map(lambda i: direct(stores, args.worker, i), range(args.count)):
                    assert done is None
        else:
            recorder = vs.AuditRecorder(stores)
            for i in range(args.count):
                audit_id = f"w{args.worker}-{i:05d}"
                recorder.started(audit_id, f"https://shop-{i}.example", tier="standard")
                recorder.completed(audit_id, {"trust_score": (i % 100) / 100})
                if args.shared:
                    shared_id = f"shared-{i % args.shared}"
                    stores.audits.update(shared_version(shared_id, args.worker, i))
    json.dump({"worker": args.worker, "written": args.count}, sys.stdout)


if __name__ == "__main__":
    main()
