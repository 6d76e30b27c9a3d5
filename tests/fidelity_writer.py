"""Subprocess of test_result_fidelity: ``write CONFIG OUT`` replays a realistic runner event
stream through AuditRecorder, writes the in-memory result to OUT and kills itself (SIGKILL, no
clean-up); ``read CONFIG OUT`` opens the same config in a fresh process and writes the status
response rebuilt from the store alone."""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
from typing import Any

from pngs import noisy_png

import veritas_store as vs

AUDIT_ID = "runner-audit-1"
URL = "https://shop.example/deals?ref=fidelity"


FINDINGS = [
    {"id": f"f-{i}", "category": cat, "pattern_type": kind, "severity": sev,
     "confidence": conf, "description": f"{kind} seen on page {i}",
     "plain_english": f"The site uses a {kind.replace('_', ' ')} to push you. ✋"}
    for i, (cat, kind, sev, conf) in enumerate([
        ("urgency", "fake_countdown", "high", 0.93),
        ("sneaking", "pre_checked_addon", "medium", 0.7),
        ("obstruction", "hard_cancel", "critical", 1),
    ])
]  # fmt: skip
SECURITY = {
    "tls": {"grade": "A", "protocols": ["TLSv1.3"], "hsts": True},
    "headers": {"csp": None, "x_frame_options": "DENY", "score": 0.5},
}


def events() -> list[dict[str, Any]]:
    shots = [(0, "landing", 260, 260), (1, "product", 330, 330), (2, "checkout", 470, 470)]
    stream: list[dict[str, Any]] = [
        {"type": "phase_start", "phase": "crawl", "message": "Crawling"}
    ]
    for index, label, w, h in shots:
        data = base64.b64encode(noisy_png(w, h, index)).decode()
        stream.append(
            {"type": "screenshot", "index": index, "label": label, "url": URL, "data": data}
        )
        stream.append({"type": "log_entry", "level": "info", "message": f"captured {label}"})
    stream.append({"type": "screenshot", "index": 3, "label": "cart", "url": URL, "data": None})
    stream.append({"type": "phase_complete", "phase": "crawl"})
    stream += [{"type": "finding", "finding": f} for f in FINDINGS]
    stream.append({"type": "site_type", "site_type": "ecommerce", "confidence": 0.88})
    stream += [{"type": "security_result", "module": m, "result": r} for m, r in SECURITY.items()]
    stream.append({"type": "stats_update", "stats": {"pages": 4, "findings": 3}})
    stream.append({"type": "phase_error", "phase": "whois", "error": "timeout"})
    stream.append({"type": "audit_result", "result": result()})
    return stream


def result() -> dict[str, Any]:
    narrative = "# Verdict\n\n" + "\n".join(
        f"- **Point {i}**: the checkout adds an item you did not choose (é, «»)."
        for i in range(120)
    )
    return {
        "url": URL, "status": "completed", "audit_tier": "deep", "trust_score": 31.5,
        "risk_level": "high", "signal_scores": {"visual": 0.4, "legal": 0.9, "temporal": 0.2},
        "overrides": {"risk_level": {"from": "medium", "to": "high", "reason": "critical"}},
        "narrative": narrative, "recommendations": ["Do not buy here", "Check the cart twice"],
        "findings": FINDINGS,
        "dark_pattern_summary": {"total": 3, "by_severity": {"high": 1, "medium": 1, "critical": 1},
                                 "findings": FINDINGS},
        "security_results": SECURITY, "site_type": "ecommerce", "site_type_confidence": 0.88,
        "domain_info": {"age_days": 41, "registrar": "NameCheap", "country": "PA",
                        "ip": "203.0.113.9", "ssl_issuer": "Let's Encrypt",
                        "inconsistencies": ["country differs from imprint"],
                        "entity_verified": False},
        "pages_scanned": 4, "screenshots_count": 4, "elapsed_seconds": 73.25,
        "errors": [{"phase": "whois", "error": "timeout"}], "verdict_mode": "expert",
    }  # fmt: skip


def write(config: dict[str, Any], out: str) -> None:
    with vs.open_stores(config) as stores:
        recorder = vs.AuditRecorder(stores)
        recorder.started(AUDIT_ID, URL, tier="deep", verdict_mode="expert")
        final = None
        for event in events():
            if event["type"] == "audit_result":
                final = event["result"]
                recorder.completed(AUDIT_ID, final)
            else:
                recorder.event(AUDIT_ID, event)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(final, f)
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit: the process just dies


def read(config: dict[str, Any], out: str) -> None:
    with vs.open_stores(config) as stores:
        audit, source = stores.audits.get_with_source(AUDIT_ID)
        assert audit is not None
        shots = {
            s.index: len(stores.screenshots.load(AUDIT_ID, s.index)) for s in audit.screenshots
        }
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"source": source, "result": vs.result_of(audit), "shots": shots}, f)


if __name__ == "__main__":
    mode, config_path, out = sys.argv[1:]
    with open(config_path, encoding="utf-8") as f:
        cfg = json.load(f)
    {"write": write, "read": read}[mode](cfg, out)
