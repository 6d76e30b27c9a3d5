"""The data every benchmark writes, defined once so the framework and its raw baselines store
exactly the same values.

One audit lifecycle is: create (status running) -> update (completed, 10 findings, 3 screenshot
references, scores, narrative, JSON dicts) -> get. Strings carry the audit id, so no two audits
share their text (as in a real service) and the memory figures are not flattered by sharing.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

CREATED_AT = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
COMPLETED_AT = CREATED_AT + timedelta(seconds=42, microseconds=654321)
N_FINDINGS = 10
N_SCREENSHOTS = 3


def created_values(audit_id: str) -> dict[str, Any]:
    """The fields of a freshly started audit (the rest take their defaults)."""
    return {
        "id": audit_id,
        "url": f"https://shop.example/{audit_id}/checkout",
        "tier": "standard",
        "verdict_mode": "expert",
        "status": "running",
        "created_at": CREATED_AT,
        "started_at": CREATED_AT,
        "updated_at": CREATED_AT,
    }


def finding_values(audit_id: str) -> list[dict[str, Any]]:
    return [
        {
            "category": "urgency",
            "pattern_type": f"countdown-{i}",
            "severity": "high" if i % 3 == 0 else "medium",
            "confidence": 0.5 + i / 40,
            "description": f"A countdown timer resets on reload ({audit_id}, finding {i}).",
            "screenshot_index": i % N_SCREENSHOTS,
            "evidence": f"<div class='timer'>00:0{i}:59</div> on /{audit_id}/cart",
        }
        for i in range(N_FINDINGS)
    ]


def screenshot_values(audit_id: str) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "label": ("home", "cart", "checkout")[i],
            "blob_key": f"{audit_id}/{i:04d}.png",
            "size_bytes": 200_000 + i,
            "content_type": "image/png",
            "sha256": f"{i:x}" * 64 if i else "0" * 64,
        }
        for i in range(N_SCREENSHOTS)
    ]


def completed_values(audit_id: str) -> dict[str, Any]:
    """The fields that change when the audit completes (findings and screenshots as dicts)."""
    return {
        "status": "completed",
        "completed_at": COMPLETED_AT,
        "updated_at": COMPLETED_AT,
        "trust_score": 61.5,
        "risk_level": "medium",
        "narrative": f"The checkout of {audit_id} pressures visitors with fake urgency. " * 4,
        "signal_scores": {"urgency": 0.8, "scarcity": 0.35, "social_proof": 0.1},
        "site_type": "ecommerce",
        "site_type_confidence": 0.93,
        "security_results": {"https": True, "hsts": False, "headers": ["csp", "xfo"]},
        "pages_scanned": 7,
        "elapsed_seconds": 42.65,
        "findings": finding_values(audit_id),
        "screenshots": screenshot_values(audit_id),
    }


def png_bytes(size: int = 200_000, seed: int = 7) -> bytes:
    """A valid, incompressible RGB PNG of about ``size`` bytes (noise does not compress)."""
    width = 256
    height = max(1, size // (width * 3))
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


def run_tag() -> str:
    """A short tag that keeps ids of one benchmark run apart from the next's."""
    return os.urandom(3).hex()
