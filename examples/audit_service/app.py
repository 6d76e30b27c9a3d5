"""An audit service on veritas-store: the seed application's dual-write migration, end to end.

Run it from the repository root (``pip install -e '.[service]'`` first)::

    uvicorn examples.audit_service.app:app

``POST /audit/start`` queues an audit, ``GET /audit/{id}/stream`` runs a simulated audit and
streams its events (server-sent events, one JSON object per ``data:`` line), and
``GET /audit/{id}/status`` reads the audit back, saying which backend answered. Everything goes
through ``veritas_store.aio`` on the stores of ``open_async_stores()``: the embedded default
(audits in ``./veritas-data/audits.db`` and in memory, SQLite read first; screenshots under
``./veritas-data/blobs``), or the config file named by ``VERITAS_STORE_CONFIG``.
``USE_DB_PERSISTENCE=false`` rolls back to memory only, with no code change.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

import veritas_store as vs
from veritas_store.aio import AsyncAuditRecorder, AsyncStores, open_async_stores
from veritas_store.demo import make_png

log = logging.getLogger("audit_service")

# The simulation's pace: seconds per step, and screenshots per audit.
STEP_SECONDS = float(os.environ.get("AUDIT_SIM_STEP_SECONDS", "0.2"))
SCREENSHOTS = int(os.environ.get("AUDIT_SIM_SCREENSHOTS", "3"))

PHASES = [
    ("scout", "Visiting the site and capturing pages"),
    ("security", "Checking TLS, headers and forms"),
    ("vision", "Looking for dark patterns in the screenshots"),
    ("graph", "Cross-checking the business behind the site"),
    ("judge", "Weighing the evidence"),
]
TERMINAL = ("audit_complete", "audit_error")


class StartRequest(BaseModel):
    url: str = Field(min_length=1, max_length=4096)
    tier: str = "standard"
    verdict_mode: str = "expert"


class SiteUnreachable(Exception):
    """The simulated browser could not load the site."""


# -- the service -----------------------------------------------------------------------------------


class AuditService:
    """Runs simulated audits and records them through the async API."""

    def __init__(self, stores: AsyncStores) -> None:
        self.stores = stores
        self.recorder = AsyncAuditRecorder(stores)
        self.runs: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, request: StartRequest) -> str:
        audit_id = uuid.uuid4().hex
        try:
            audit = vs.Audit(
                id=audit_id, url=request.url, tier=request.tier, verdict_mode=request.verdict_mode
            )
        except (TypeError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        await self.stores.audits.create(audit)  # queued, in every audit backend
        return audit_id

    async def run(self, audit_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Start the audit's run; its events arrive on the returned queue.

        The run is a task of its own: a client that disconnects does not stop the audit.
        """
        audit = await self.stores.audits.get(audit_id)
        if audit is None:
            raise HTTPException(404, f"audit {audit_id!r} not found")
        if audit_id in self.runs or audit.status is not vs.AuditStatus.QUEUED:
            raise HTTPException(409, f"audit {audit_id!r} is {audit.status.value}; see its status")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.runs[audit_id] = queue
        task = asyncio.create_task(self._run(audit, queue), name=f"audit-{audit_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return queue

    async def _run(self, audit: vs.Audit, queue: asyncio.Queue[dict[str, Any]]) -> None:
        audit_id = audit.id
        try:
            await self.recorder.started(audit_id, audit.url, audit.tier, audit.verdict_mode)
            async for event in simulate_audit(audit_id, audit.url):
                shot = await self.recorder.event(audit_id, event)  # saves screenshots
                if shot is not None:
                    event = {**event, "blob_key": shot.blob_key, "sha256": shot.sha256}
                if event["type"] == "audit_result":
                    done = await self.recorder.completed(audit_id, event["result"])
                    event = {**event, "type": "audit_complete", "status": done.status.value}
                await queue.put({"audit_id": audit_id, **event})
        except asyncio.CancelledError:
            await self._fail(audit_id, queue, "the service stopped before the audit finished")
            raise
        except Exception as exc:
            log.warning("audit %s failed: %s: %s", audit_id, type(exc).__name__, exc)
            await self._fail(audit_id, queue, f"{type(exc).__name__}: {exc}")
        finally:
            self.runs.pop(audit_id, None)

    async def _fail(self, audit_id: str, queue: asyncio.Queue[dict[str, Any]], error: str) -> None:
        """Record the failure, and tell the client even if the stores cannot record it."""
        try:
            await self.recorder.failed(audit_id, error)
        except Exception:
            log.exception("could not record the failure of audit %s", audit_id)
        await queue.put({"audit_id": audit_id, "type": "audit_error", "error": error})

    async def shutdown(self) -> None:
        """Stop the audits still running; each is recorded as failed."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# -- the simulated audit ---------------------------------------------------------------------------


async def simulate_audit(audit_id: str, url: str) -> AsyncIterator[dict[str, Any]]:
    """The events of a pretend audit: progress, screenshots (real PNGs), then the result.

    A URL on the reserved ``.invalid`` top-level domain is a site that cannot be reached.
    """
    began = time.monotonic()
    host = urlsplit(url).hostname or url
    for step, (phase, message) in enumerate(PHASES, start=1):
        percent = round(100 * (step - 1) / len(PHASES))
        yield {"type": "progress", "phase": phase, "percent": percent, "message": message}
        await asyncio.sleep(STEP_SECONDS)
        if phase == "scout":
            if host.endswith(".invalid"):
                raise SiteUnreachable(f"cannot resolve {host}")
            for index in range(SCREENSHOTS):
                png = make_png(320, 200, _colour(audit_id, index))
                label = "landing page" if index == 0 else f"page {index + 1}"
                data = base64.b64encode(png).decode()
                yield {"type": "screenshot", "index": index, "label": label, "data": data}
                await asyncio.sleep(STEP_SECONDS)
    yield {"type": "audit_result", "result": simulated_result(url, time.monotonic() - began)}


def _colour(audit_id: str, index: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{audit_id}/{index}".encode()).digest()
    return digest[0], digest[1], digest[2]


def simulated_result(url: str, elapsed: float) -> dict[str, Any]:
    """A result dict shaped like the seed application's, derived from the URL."""
    d = hashlib.sha256(url.encode()).digest()
    trust = round(d[0] / 255, 3)
    risk = "low" if trust >= 0.7 else "medium" if trust >= 0.4 else "high"
    findings = [
        {
            "category": "urgency",
            "pattern_type": "fake_countdown",
            "severity": "high",
            "confidence": round(0.5 + d[1] / 510, 3),
            "description": f"A countdown on {url} restarts on every page load",
            "screenshot_index": 0,
            "evidence": "timer resets from 09:59",
        },
    ]
    if SCREENSHOTS > 1:
        findings.append(
            {
                "category": "sneaking",
                "pattern_type": "pre_checked_addon",
                "severity": "medium",
                "confidence": round(0.5 + d[2] / 510, 3),
                "description": "Insurance is pre-selected at checkout",
                "screenshot_index": 1,
            }
        )
    return {
        "trust_score": trust,
        "risk_level": risk,
        "narrative": f"Simulated audit of {url}: {len(findings)} dark pattern(s) found.",
        "signal_scores": {
            name: round(d[3 + i] / 255, 3)
            for i, name in enumerate(("visual", "temporal", "graph", "security"))
        },
        "site_type": ("ecommerce", "news", "saas", "marketplace")[d[7] % 4],
        "site_type_confidence": round(0.6 + d[8] / 640, 3),
        "security_results": {"tls": {"grade": "AB"[d[9] % 2]}, "hsts": bool(d[10] % 2)},
        "pages_scanned": SCREENSHOTS,
        "elapsed_seconds": round(elapsed, 3),
        "dark_pattern_summary": {"findings": findings},
    }


# -- the HTTP API ----------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with open_async_stores() as stores:
        service = AuditService(stores)
        app.state.service = service
        log.info("audit service on %r", stores)
        try:
            yield
        finally:
            await service.shutdown()


app = FastAPI(title="veritas-store example audit service", lifespan=lifespan)


def _service(request: Request) -> AuditService:
    return request.app.state.service  # type: ignore[no-any-return]


@app.exception_handler(vs.InvalidKey)
async def _invalid_key(request: Request, exc: vs.InvalidKey) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


@app.exception_handler(vs.BackendUnavailable)
@app.exception_handler(vs.WriteError)
async def _unavailable(request: Request, exc: vs.VeritasStoreError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


@app.post("/audit/start")
async def start_audit(body: StartRequest, request: Request) -> dict[str, str]:
    return {"audit_id": await _service(request).start(body)}


@app.get("/audit/{audit_id}/status")
async def audit_status(audit_id: str, request: Request) -> dict[str, Any]:
    """The audit from the first backend in read order that has it (SQLite, then memory)."""
    audit, source = await _service(request).stores.audits.get_with_source(audit_id)
    if audit is None:
        raise HTTPException(404, f"audit {audit_id!r} not found")
    return {
        "audit_id": audit.id,
        "status": audit.status.value,
        "read_from": source,
        "audit": audit.to_dict(),
        # the service's result dict, every key, rebuilt from the store (a restart loses nothing)
        "result": vs.result_of(audit) if audit.status is vs.AuditStatus.COMPLETED else None,
    }


def _summary(audit: vs.Audit) -> dict[str, Any]:
    return {
        "audit_id": audit.id,
        "url": audit.url,
        "status": audit.status.value,
        "risk_level": audit.risk_level,
        "trust_score": audit.trust_score,
        "created_at": audit.created_at.isoformat(),
    }


@app.get("/audits/history")
async def audit_history(
    request: Request,
    status: str | None = None,
    risk_level: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The history page: audits newest first, filtered by status and risk level, paged."""
    try:
        page = await _service(request).stores.audits.list(
            status=status or None, risk_level=risk_level or None, limit=limit, cursor=cursor
        )
    except ValueError as exc:  # a bad status, limit or cursor (InvalidCursor is one)
        raise HTTPException(400, str(exc)) from None
    return {"items": [_summary(a) for a in page.items], "next_cursor": page.next_cursor}


@app.get("/audits/compare")
async def audit_compare(
    request: Request, url: str | None = None, ids: str | None = None
) -> dict[str, Any]:
    """The compare page: audits of one URL (oldest first, every page) or a comma-separated list
    of ids (in that order), with the trust-score delta and risk-level change of each against
    the previous one."""
    audits_store = _service(request).stores.audits
    if (url is None) == (ids is None):
        raise HTTPException(400, "give either url or ids")
    audits: list[vs.Audit] = []
    if url is not None:
        cursor = None
        while True:
            page = await audits_store.list(url=url, order="oldest", limit=500, cursor=cursor)
            audits.extend(page.items)
            if (cursor := page.next_cursor) is None:
                break
    else:
        for audit_id in [i for i in (ids or "").split(",") if i]:
            audit = await audits_store.get(audit_id)
            if audit is None:
                raise HTTPException(404, f"audit {audit_id!r} not found")
            audits.append(audit)
    rows = []
    for previous, audit in zip([None, *audits], audits, strict=False):
        delta = None
        if previous is not None and None not in (previous.trust_score, audit.trust_score):
            delta = audit.trust_score - previous.trust_score  # type: ignore[operator]
        rows.append({
            **_summary(audit),
            "trust_score_delta": delta,
            "risk_level_changed": previous is not None and previous.risk_level != audit.risk_level,
            "previous_risk_level": previous.risk_level if previous is not None else None,
        })  # fmt: skip
    return {"audits": rows}


@app.get("/audit/{audit_id}/events")
async def audit_events(audit_id: str, request: Request, after: int = 0) -> StreamingResponse:
    """A late client (or one after a restart) replays the stored event log as server-sent
    events, from ``after`` on; ``id:`` is each event's sequence number."""
    audits_store = _service(request).stores.audits
    try:
        first = await audits_store.events(audit_id, after=after, limit=1000)
    except vs.AuditNotFound:
        raise HTTPException(404, f"audit {audit_id!r} not found") from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None

    async def replay() -> AsyncIterator[str]:
        page = first
        while page:
            for event in page:
                body = {"type": event.type, **event.data, "seq": event.seq}
                yield f"id: {event.seq}\ndata: {json.dumps(body)}\n\n"
            page = await audits_store.events(audit_id, after=page[-1].seq, limit=1000)

    return StreamingResponse(replay(), media_type="text/event-stream")


@app.get("/audit/{audit_id}/stream")
async def audit_stream(audit_id: str, request: Request) -> StreamingResponse:
    """Run the audit and stream its events as server-sent events."""
    queue = await _service(request).run(audit_id)

    async def events() -> AsyncIterator[str]:
        while True:
            event = await queue.get()
            yield f"data: {json.dumps(event)}\n\n"
            if event["type"] in TERMINAL:
                return

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@app.get("/audit/{audit_id}/screenshots/{index}")
async def audit_screenshot(audit_id: str, index: int, request: Request) -> Response:
    """A screenshot's image, read from the blob store and checked against its sha256."""
    stores = _service(request).stores
    audit = await stores.audits.get(audit_id)
    shot = next((s for s in audit.screenshots if s.index == index), None) if audit else None
    if shot is None:
        raise HTTPException(404, f"audit {audit_id!r} has no screenshot {index}")
    return Response(await stores.screenshots.load(audit_id, index), media_type=shot.content_type)


@app.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Which backends are enabled, in read order (memory only when USE_DB_PERSISTENCE=false)."""
    stores = _service(request).stores
    return {
        "status": "ok",
        "audits": list(stores.audits.sync.backends),
        "blobs": list(stores.blobs.sync.backends),
        "running": sorted(_service(request).runs),
    }
