"""AuditRecorder: the audit service's lifecycle callbacks as store writes."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aio_support import LoopThread, Synced

import veritas_store as vs
from veritas_store.aio import AsyncAuditRecorder, open_async_stores
from veritas_store.demo import DEMO_RESULT, make_png

PNG = make_png(4, 3, (10, 200, 30))
PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.fixture(params=["sync", "async"])
def stores_and_recorder(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[vs.Stores, Any]]:
    """Every test runs twice: on ``AuditRecorder``, and on ``AsyncAuditRecorder`` through a
    loop in another thread, so the two cannot drift apart. ``stores`` is the sync view."""
    monkeypatch.chdir(tmp_path)
    cfg = {
        "audits": {"backends": {"db": {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"},
                                "mem": {"type": "memory"}}},
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": str(tmp_path / "blobs")},
                               "bmem": {"type": "memory"}}},
    }  # fmt: skip
    if request.param == "sync":
        with vs.open_stores(cfg) as s:
            yield s, vs.AuditRecorder(s)
        return
    runner = LoopThread()
    astores = runner.call(open_async_stores(cfg))
    try:
        yield astores.sync, Synced(AsyncAuditRecorder(astores), runner)
    finally:
        runner.call(astores.aclose())
        runner.close()


@pytest.fixture
def stores(stores_and_recorder: tuple[vs.Stores, Any]) -> vs.Stores:
    return stores_and_recorder[0]


@pytest.fixture
def recorder(stores_and_recorder: tuple[vs.Stores, Any]) -> vs.AuditRecorder:
    return stores_and_recorder[1]


def seed_result(**changes: Any) -> dict[str, Any]:
    """The seed application's result dict (a fresh deep copy)."""
    result = copy.deepcopy(DEMO_RESULT)
    result.update(changes)
    return result


def stored(stores: vs.Stores, audit_id: str) -> vs.Audit | None:
    """The audit, checked to be equal in every audit backend."""
    copies = [store.get(audit_id) for store in stores.audits.backends.values()]
    assert all(c == copies[0] for c in copies), copies
    return copies[0]


def all_blobs(stores: vs.Stores) -> dict[str, list[str]]:
    return {name: list(store.list()) for name, store in stores.blobs.backends.items()}


# -- started ---------------------------------------------------------------------------------------


def test_started_creates_a_running_audit(stores: vs.Stores, recorder: vs.AuditRecorder) -> None:
    before = vs.utcnow()
    audit = recorder.started("rec-1", "https://shop.example", tier="deep", verdict_mode="quick")
    assert stored(stores, "rec-1") == audit
    assert (audit.url, audit.tier, audit.verdict_mode) == ("https://shop.example", "deep", "quick")
    assert audit.status is vs.AuditStatus.RUNNING
    assert audit.started_at is not None and audit.started_at >= before
    assert audit.created_at >= before
    assert audit.updated_at >= audit.started_at
    assert audit.completed_at is None


def test_started_on_a_queued_audit_keeps_created_at(
    stores: vs.Stores, recorder: vs.AuditRecorder
) -> None:
    created = vs.utcnow() - timedelta(minutes=5)
    stores.audits.create(vs.Audit(id="rec-q", url="https://queued.example", created_at=created))
    audit = recorder.started("rec-q", "https://queued.example")
    assert stored(stores, "rec-q") == audit
    assert audit.status is vs.AuditStatus.RUNNING
    assert audit.created_at == created
    assert audit.started_at > created
    assert audit.updated_at > created


# -- completed -------------------------------------------------------------------------------------


def test_completed_records_the_seed_result(stores: vs.Stores, recorder: vs.AuditRecorder) -> None:
    started = recorder.started("rec-2", "https://shop.example")
    shot = recorder.event(
        "rec-2", {"type": "screenshot", "index": 0, "label": "landing", "data": PNG_DATA_URL}
    )
    result = seed_result()
    result["dark_pattern_summary"]["findings"][0]["unknown_key"] = "ignored"
    result["dark_pattern_summary"]["findings"][1]["model_version"] = 3
    result["screenshots"] = []  # not a result field: must not wipe the recorded screenshots
    result["status"] = "weird"  # likewise ignored

    audit = recorder.completed("rec-2", result)

    assert stored(stores, "rec-2") == audit
    assert audit.status is vs.AuditStatus.COMPLETED
    assert audit.completed_at is not None and audit.completed_at >= started.started_at
    assert audit.updated_at >= audit.completed_at
    assert audit.started_at == started.started_at
    assert audit.created_at == started.created_at
    assert audit.error_message is None
    assert audit.trust_score == 0.42
    assert audit.risk_level == "high"
    assert audit.narrative == DEMO_RESULT["narrative"]
    assert audit.signal_scores == {"visual": 0.35, "temporal": 0.2, "graph": 0.7, "security": 0.9}
    assert audit.site_type == "ecommerce"
    assert audit.site_type_confidence == 0.93
    assert audit.security_results == {"tls": {"grade": "A"}, "hsts": True}
    assert audit.pages_scanned == 3
    assert audit.elapsed_seconds == 12.5
    assert audit.findings == (
        vs.Finding(
            "urgency",
            "fake_countdown",
            "high",
            0.91,
            "Countdown timer restarts on every page load",
            1,
            "timer resets from 09:59",
        ),
        vs.Finding(
            "sneaking",
            "pre_checked_addon",
            "medium",
            0.78,
            "Travel insurance is pre-selected at checkout",
            2,
            None,
        ),
    )
    assert audit.screenshots == (shot,)
    assert stores.screenshots.load("rec-2", 0) == PNG


def test_completed_with_none_fields_uses_the_defaults(
    stores: vs.Stores, recorder: vs.AuditRecorder
) -> None:
    recorder.started("rec-3", "https://x.example")
    audit = recorder.completed(
        "rec-3",
        {
            "trust_score": None,
            "signal_scores": None,
            "security_results": None,
            "pages_scanned": None,
            "dark_pattern_summary": None,
        },
    )
    assert stored(stores, "rec-3") == audit
    assert audit.trust_score is None
    assert (audit.signal_scores, audit.security_results, audit.pages_scanned) == ({}, {}, 0)
    assert audit.findings == ()


def test_completed_does_not_share_the_callers_dicts(
    stores: vs.Stores, recorder: vs.AuditRecorder
) -> None:
    # Stores never change a record: the caller reusing its result dict afterwards must not
    # rewrite what was stored (in the memory backend, or in the audit completed() returned).
    recorder.started("rec-4", "https://x.example")
    result = seed_result()
    audit = recorder.completed("rec-4", result)
    snapshot = copy.deepcopy(audit.signal_scores), copy.deepcopy(audit.security_results)
    result["signal_scores"]["visual"] = 0.0
    result["security_results"]["tls"]["grade"] = "F"
    for name, store in stores.audits.backends.items():
        copy_ = store.get("rec-4")
        assert (copy_.signal_scores, copy_.security_results) == snapshot, name
    assert (audit.signal_scores, audit.security_results) == snapshot


# -- failed ----------------------------------------------------------------------------------------


def test_failed_on_a_never_started_audit_creates_it(
    stores: vs.Stores, recorder: vs.AuditRecorder
) -> None:
    audit = recorder.failed("rec-5", "browser crashed")
    assert stored(stores, "rec-5") == audit
    assert audit.url == "about:blank"
    assert audit.status is vs.AuditStatus.ERROR
    assert audit.error_message == "browser crashed"
    assert audit.completed_at is not None


def test_failed_after_started_keeps_the_url(stores: vs.Stores, recorder: vs.AuditRecorder) -> None:
    started = recorder.started("rec-6", "https://shop.example/p", tier="deep")
    recorder.event("rec-6", {"type": "screenshot", "index": 2, "data": PNG_DATA_URL})
    audit = recorder.failed("rec-6", "timeout after 30s")
    assert stored(stores, "rec-6") == audit
    assert audit.url == "https://shop.example/p"
    assert audit.tier == "deep"
    assert audit.started_at == started.started_at
    assert audit.status is vs.AuditStatus.ERROR
    assert audit.error_message == "timeout after 30s"
    assert audit.completed_at is not None
    assert [s.index for s in audit.screenshots] == [2]


def test_failed_records_any_error_text(stores: vs.Stores, recorder: vs.AuditRecorder) -> None:
    # failed() runs in the service's error handler: it must record the failure whatever the
    # text, as it already does for an audit that was never started (NULs are dropped there).
    new = recorder.failed("rec-7a", "bad\x00bytes")
    assert new.error_message == "badbytes"
    recorder.started("rec-7b", "https://x.example")
    audit = recorder.failed("rec-7b", "bad\x00bytes")
    assert stored(stores, "rec-7b") == audit
    assert audit.status is vs.AuditStatus.ERROR
    assert audit.error_message == "badbytes"


# -- events ----------------------------------------------------------------------------------------


def test_screenshot_event_saves_through_screenshot_storage(
    stores: vs.Stores, recorder: vs.AuditRecorder, tmp_path: Path
) -> None:
    recorder.started("rec-8", "https://x.example")
    shot = recorder.event(
        "rec-8", {"type": "screenshot", "index": 1, "label": "checkout", "data": PNG_DATA_URL}
    )
    assert shot is not None
    assert (shot.index, shot.label, shot.blob_key, shot.content_type) == (
        1,
        "checkout",
        "rec-8/0001.png",
        "image/png",
    )
    assert stored(stores, "rec-8").screenshots == (shot,)
    assert (tmp_path / "blobs" / "rec-8" / "0001.png").read_bytes() == PNG
    assert stores.screenshots.load("rec-8", 1) == PNG

    unlabelled = recorder.event(
        "rec-8", {"type": "screenshot", "index": 4, "data": base64.b64encode(PNG).decode()}
    )
    assert unlabelled.label == "screenshot 4"
    assert [s.index for s in stored(stores, "rec-8").screenshots] == [1, 4]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "progress", "percent": 40},
        {"type": "finding", "category": "urgency"},
        {"type": "log", "data": PNG_DATA_URL, "index": 0},
        {"type": "Screenshot", "data": PNG_DATA_URL, "index": 0},
        {"data": PNG_DATA_URL, "index": 0},
        {},
    ],
)
def test_other_events_are_ignored(
    stores: vs.Stores, recorder: vs.AuditRecorder, event: dict[str, Any]
) -> None:
    before = recorder.started("rec-9", "https://x.example")
    assert recorder.event("rec-9", event) is None
    assert stored(stores, "rec-9") == before
    assert all_blobs(stores) == {"disk": [], "bmem": []}


# -- malformed input changes nothing ---------------------------------------------------------------


def _finding(**changes: Any) -> dict[str, Any]:
    finding = {
        "category": "urgency",
        "pattern_type": "timer",
        "severity": "high",
        "confidence": 0.9,
        "description": "d",
    }
    finding.update(changes)
    return {k: v for k, v in finding.items() if v is not _DROP}


_DROP = object()

MALFORMED_RESULTS = {
    "trust_score text": seed_result(trust_score="high"),
    "trust_score nan": seed_result(trust_score=float("nan")),
    "trust_score bool": seed_result(trust_score=True),
    "pages_scanned text": seed_result(pages_scanned="3"),
    "pages_scanned negative": seed_result(pages_scanned=-1),
    "signal_scores list": seed_result(signal_scores=[0.1, 0.2]),
    "security_results not json": seed_result(security_results={"when": object()}),
    "narrative with NUL": seed_result(narrative="a\x00b"),
    "risk_level int": seed_result(risk_level=3),
    "finding without category": seed_result(
        dark_pattern_summary={"findings": [_finding(), _finding(category=_DROP)]}
    ),
    "finding confidence text": seed_result(
        dark_pattern_summary={"findings": [_finding(confidence="very")]}
    ),
    "finding not a dict": seed_result(dark_pattern_summary={"findings": ["urgency"]}),
    "findings not a list": seed_result(dark_pattern_summary={"findings": "urgency"}),
    "finding severity int": seed_result(dark_pattern_summary={"findings": [_finding(severity=5)]}),
    "finding screenshot_index negative": seed_result(
        dark_pattern_summary={"findings": [_finding(screenshot_index=-2)]}
    ),
}


@pytest.fixture
def running(stores: vs.Stores, recorder: vs.AuditRecorder) -> vs.Audit:
    recorder.started("rec-m", "https://x.example")
    recorder.event("rec-m", {"type": "screenshot", "index": 0, "data": PNG_DATA_URL})
    audit = stored(stores, "rec-m")
    assert audit is not None and len(audit.screenshots) == 1
    return audit


def _unchanged(stores: vs.Stores, before: vs.Audit) -> None:
    for name, store in stores.audits.backends.items():
        assert store.get(before.id) == before, name
    assert all_blobs(stores) == {"disk": ["rec-m/0000.png"], "bmem": ["rec-m/0000.png"]}


@pytest.mark.parametrize("result", list(MALFORMED_RESULTS.values()), ids=list(MALFORMED_RESULTS))
def test_malformed_result_raises_invalid_record_and_changes_nothing(
    stores: vs.Stores, recorder: vs.AuditRecorder, running: vs.Audit, result: dict[str, Any]
) -> None:
    with pytest.raises(vs.InvalidRecord):
        recorder.completed("rec-m", result)
    _unchanged(stores, running)


@pytest.mark.parametrize("result", [None, [("trust_score", 0.5)], "done"])
def test_a_result_that_is_not_a_dict_is_invalid_record(
    stores: vs.Stores, recorder: vs.AuditRecorder, running: vs.Audit, result: Any
) -> None:
    with pytest.raises(vs.InvalidRecord):
        recorder.completed("rec-m", result)
    _unchanged(stores, running)


MALFORMED_EVENTS = {
    "undecodable data": (
        {"type": "screenshot", "index": 1, "data": "not base64!!"},
        vs.InvalidImage,
    ),
    "data not an image": (
        {"type": "screenshot", "index": 1, "data": base64.b64encode(b"plain text").decode()},
        vs.InvalidImage,
    ),
    "data missing": ({"type": "screenshot", "index": 1}, vs.InvalidRecord),
    "index missing": ({"type": "screenshot", "data": PNG_DATA_URL}, vs.InvalidRecord),
    "index text": (
        {"type": "screenshot", "index": "1", "data": PNG_DATA_URL},
        (vs.InvalidKey, vs.InvalidRecord),
    ),
    "index negative": (
        {"type": "screenshot", "index": -1, "data": PNG_DATA_URL},
        (vs.InvalidKey, vs.InvalidRecord),
    ),
    "label not text": (
        {"type": "screenshot", "index": 1, "label": 5, "data": PNG_DATA_URL},
        vs.InvalidRecord,
    ),
    "label with NUL": (
        {"type": "screenshot", "index": 1, "label": "a\x00b", "data": PNG_DATA_URL},
        vs.InvalidRecord,
    ),
    "not a dict": (["screenshot"], vs.InvalidRecord),
}


@pytest.mark.parametrize(
    "event, error", list(MALFORMED_EVENTS.values()), ids=list(MALFORMED_EVENTS)
)
def test_malformed_event_raises_a_typed_error_and_changes_nothing(
    stores: vs.Stores, recorder: vs.AuditRecorder, running: vs.Audit, event: Any, error: Any
) -> None:
    with pytest.raises(error):
        recorder.event("rec-m", event)
    _unchanged(stores, running)


def test_malformed_started_raises_invalid_record_and_changes_nothing(
    stores: vs.Stores, recorder: vs.AuditRecorder, running: vs.Audit
) -> None:
    with pytest.raises(vs.InvalidRecord):
        recorder.started("rec-m", None)  # type: ignore[arg-type]
    with pytest.raises(vs.InvalidRecord):
        recorder.started("rec-m", "https://x.example", tier=3)  # type: ignore[arg-type]
    _unchanged(stores, running)
    with pytest.raises(vs.InvalidRecord):
        recorder.started("rec-new", "https://x\x00.example")
    assert stored(stores, "rec-new") is None


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", "", ".x"])
def test_bad_audit_ids_raise_invalid_key(
    stores: vs.Stores, recorder: vs.AuditRecorder, bad: str
) -> None:
    for call in (
        lambda: recorder.started(bad, "https://x.example"),
        lambda: recorder.completed(bad, seed_result()),
        lambda: recorder.failed(bad, "boom"),
        lambda: recorder.event(bad, {"type": "screenshot", "index": 0, "data": PNG_DATA_URL}),
    ):
        with pytest.raises(vs.InvalidKey):
            call()
    assert stores.audits.list().items == ()
    assert all_blobs(stores) == {"disk": [], "bmem": []}


def test_a_full_lifecycle_reads_back_equal_from_every_backend(
    stores: vs.Stores, recorder: vs.AuditRecorder
) -> None:
    recorder.started("rec-life", "https://shop.example")
    for index in (2, 0, 1):
        recorder.event(
            "rec-life",
            {"type": "screenshot", "index": index, "label": f"page {index}", "data": PNG_DATA_URL},
        )
    final = recorder.completed("rec-life", seed_result())
    assert stored(stores, "rec-life") == final
    assert [s.index for s in final.screenshots] == [0, 1, 2]
    assert stores.audits.get_with_source("rec-life") == (final, "db")
