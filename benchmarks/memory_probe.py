"""Peak memory of N completed audits, measured in a fresh process so nothing else counts.

    python benchmarks/memory_probe.py framework 100000   # in the memory backend, via open_stores
    python benchmarks/memory_probe.py dicts 100000       # the same data as plain dicts

Prints JSON: the resident set size after imports, the peak (``ru_maxrss``) after storing, and
the count. The difference divided by the count is the cost of one audit.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
from typing import Any

from workload import completed_values, created_values


def current_rss_kb() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def values(i: int) -> dict[str, Any]:
    audit_id = f"audit-{i:07d}"
    return created_values(audit_id) | completed_values(audit_id)


def store_framework(count: int) -> Any:
    import veritas_store as vs

    stores = vs.open_stores(
        {
            "audits": {"backends": {"m": {"type": "memory"}}},
            "blobs": {"backends": {"m": {"type": "memory"}}},
        }
    )
    gc.collect()
    before = current_rss_kb()
    for i in range(count):
        data = values(i)
        data["findings"] = [vs.Finding(**f) for f in data["findings"]]
        data["screenshots"] = [vs.Screenshot(**s) for s in data["screenshots"]]
        stores.audits.create(vs.Audit(**data))
    return before, stores


def store_dicts(count: int) -> Any:
    import veritas_store  # noqa: F401  (same imports as the framework run)

    gc.collect()
    before = current_rss_kb()
    audits = {}
    for i in range(count):
        data = values(i)
        audits[data["id"]] = data
    return before, audits


def main() -> None:
    kind, count = sys.argv[1], int(sys.argv[2])
    before, keep = {"framework": store_framework, "dicts": store_dicts}[kind](count)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"kind": kind, "count": count, "before_kb": before, "peak_kb": peak}))
    del keep


if __name__ == "__main__":
    main()
