"""The demo: one realistic audit lifecycle through the configured stores.

queued -> running -> three screenshots -> findings -> completed, then a report of what landed
in each backend and which backend answered the read.
"""

from __future__ import annotations

import base64
import struct
import uuid
import zlib
from typing import Any

from .recorder import AuditRecorder
from .records.model import Audit
from .records.values import AuditStatus, utcnow


def make_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, decodable PNG of one colour (stdlib only)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


DEMO_RESULT: dict[str, Any] = {
    "trust_score": 0.42,
    "risk_level": "high",
    "narrative": "The checkout adds insurance by default and a countdown timer resets on reload.",
    "signal_scores": {"visual": 0.35, "temporal": 0.2, "graph": 0.7, "security": 0.9},
    "site_type": "ecommerce",
    "site_type_confidence": 0.93,
    "security_results": {"tls": {"grade": "A"}, "hsts": True},
    "pages_scanned": 3,
    "elapsed_seconds": 12.5,
    "dark_pattern_summary": {
        "findings": [
            {
                "category": "urgency",
                "pattern_type": "fake_countdown",
                "severity": "high",
                "confidence": 0.91,
                "description": "Countdown timer restarts on every page load",
                "screenshot_index": 1,
                "evidence": "timer resets from 09:59",
            },
            {
                "category": "sneaking",
                "pattern_type": "pre_checked_addon",
                "severity": "medium",
                "confidence": 0.78,
                "description": "Travel insurance is pre-selected at checkout",
                "screenshot_index": 2,
            },
        ]
    },
}

SCREENSHOTS = [
    (0, "landing page", (32, 96, 160)),
    (1, "product page with timer", (200, 60, 40)),
    (2, "checkout", (40, 160, 80)),
]


def run_demo(stores: Any, url: str = "https://shop.example.com") -> dict[str, Any]:
    """Run the lifecycle and return a report of where everything landed."""
    audit_id = f"demo-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    recorder = AuditRecorder(stores)
    steps = []
    stores.audits.create(Audit(id=audit_id, url=url, tier="standard", verdict_mode="expert"))
    steps.append(AuditStatus.QUEUED.value)
    recorder.started(audit_id, url, tier="standard", verdict_mode="expert")
    steps.append(AuditStatus.RUNNING.value)
    for index, label, colour in SCREENSHOTS:
        png = base64.b64encode(make_png(64, 40, colour)).decode()
        recorder.event(
            audit_id,
            {
                "type": "screenshot",
                "index": index,
                "label": label,
                "data": f"data:image/png;base64,{png}",
            },
        )
        steps.append(f"screenshot {index}")
    recorder.completed(audit_id, DEMO_RESULT)
    steps.append(AuditStatus.COMPLETED.value)

    audit, source = stores.audits.get_with_source(audit_id)
    assert audit is not None
    audit_backends = []
    for name, store in stores.audits.backends.items():
        stored = store.get(audit_id)
        audit_backends.append(
            {
                "backend": name,
                "has_audit": stored is not None,
                "status": stored.status.value if stored else None,
                "findings": len(stored.findings) if stored else 0,
                "screenshots": len(stored.screenshots) if stored else 0,
                "equal_to_read": stored == audit,
            }
        )
    blob_backends = [
        {"backend": name, "keys": list(store.list(f"{audit_id}/"))}
        for name, store in stores.blobs.backends.items()
    ]
    screenshot_sizes = {
        s.index: len(stores.screenshots.load(audit_id, s.index)) for s in audit.screenshots
    }
    return {
        "audit_id": audit_id,
        "steps": steps,
        "read_from": source,
        "audit": audit.to_dict(),
        "audit_backends": audit_backends,
        "blob_backends": blob_backends,
        "screenshots_loaded": screenshot_sizes,
    }
