"""A writer process for test_crash.py: audits and blobs through a composite until it is killed.

Usage: ``python crash_writer.py CONFIG START [HANG_AT]``. For n = START, START+1, ... it creates
audit ``wNNNN`` and puts blob ``wNNNN/blob.bin``, then prints ``ack N``: a line is printed only
after both writes returned. With HANG_AT, the ``mirror`` audit backend's create blocks from
audit HANG_AT on, so a kill lands in the middle of that write's fan-out.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from faulty import FaultyPlugin  # noqa: E402

import veritas_store as vs  # noqa: E402


def audit(n: int) -> vs.Audit:
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    return vs.Audit(
        id=f"w{n:04d}", url=f"https://shop{n}.example", created_at=created, updated_at=created,
        narrative="x" * (n % 50), pages_scanned=n,
    )  # fmt: skip


def blob_key(n: int) -> str:
    return f"w{n:04d}/blob.bin"


def payload(n: int) -> bytes:
    """Deterministic content of 64 KiB to 2 MiB: a partial copy can never pass for a whole one."""
    size = 65536 * (1 + n % 32)
    seed = hashlib.sha256(str(n).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def main() -> None:
    config, start = sys.argv[1], int(sys.argv[2])
    hang_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
    with vs.open_stores(config, plugins=[FaultyPlugin()]) as stores:
        n = start
        while True:
            if n == hang_at:
                stores.audits.backends["mirror"].hang("create")
            stores.audits.create(audit(n))
            stores.blobs.put(blob_key(n), payload(n), "application/octet-stream")
            print(f"ack {n}", flush=True)
            n += 1


if __name__ == "__main__":
    main()
