"""What the repair journal costs per write: the same writes with ``journal = false`` (the
baseline) and with the journal on, in one run, in a temporary folder on the current disk.

    python benchmarks/journal_cost.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import veritas_store as vs
from veritas_store.testing import sample_audit


def measure(folder: Path, journal: Any, n: int) -> tuple[float, float]:
    """Microseconds per audit create (SQLite + memory) and per blob put (disk + memory)."""
    tag = "on" if journal else "off"
    cfg = {
        "audits": {
            "backends": {
                "db": {"type": "sql", "url": f"sqlite:///{folder}/{tag}.sqlite"},
                "mem": {"type": "memory"},
            }
        },
        "blobs": {
            "backends": {
                "disk": {"type": "fsspec", "url": str(folder / f"blobs-{tag}")},
                "mem": {"type": "memory"},
            }
        },
        "journal": journal,
    }
    with vs.open_stores(cfg) as stores:
        start = time.perf_counter()
        for i in range(n):
            stores.audits.create(sample_audit(f"a{i}"))
        audits = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(n):
            stores.blobs.put(f"b/{i}.bin", b"x" * 10_000)
        blobs = time.perf_counter() - start
    return audits / n * 1e6, blobs / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        folder = Path(tmp)
        off = measure(folder, False, n)
        on = measure(folder, str(folder / "journal.db"), n)
    print(f"{n} writes each, in {Path('.').resolve()}")
    for label, base, cost in (
        ("audit create, SQLite + memory", off[0], on[0]),
        ("blob put (10 kB), disk + memory", off[1], on[1]),
    ):
        print(
            f"{label:34} journal off {base:8.0f} us   on {cost:8.0f} us   "
            f"+{cost - base:6.0f} us   x{cost / base:.2f}"
        )


if __name__ == "__main__":
    main()
