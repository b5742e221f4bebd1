"""The CANDIDATE backend: the FastAPI rewrite of the legacy Next.js routes.

This is the "candidate" in a shadow run. It reads the same data (examples/store.py)
and serves the same routes with pydantic response models, camelCase aliases and
an exception handler that mimics Next's `{ "error": ... }` bodies. Most of it
matches the legacy; the places that do not are deliberate, realistic migration
slips, each marked in the code with `SLIP n` and listed in examples/README.md:

  SLIP 1  datetimes left to pydantic: "...T12:00:00Z" instead of "...T12:00:00.000Z",
          and "...:17.250000Z" (microseconds) instead of "...:17.250Z"
  SLIP 2  optional field serialized as null where JSON.stringify dropped it
  SLIP 3  Python round() (half-to-even) instead of JS toFixed (half-up)
  SLIP 4  FastAPI's 422 validation errors where the legacy answered 400
  SLIP 5  field missing from the response model
  SLIP 6  datetime.isoformat(): "+00:00" instead of "Z"
  SLIP 7  Decimal money serialized by pydantic as a JSON string
  SLIP 8  field renamed in the Python model
  SLIP 9  unknown insight answered 404 where the legacy answered 400
  SLIP 10 list returned in primary-key order instead of newest first
  SLIP 11 405 body is FastAPI's {"detail": ...}, not {"error": ...}
  SLIP 12 Socket.IO: the third `progress` event (the halfway mark) carries
          `"progress": "50"`, a string, relayed from the worker's Redis hash
  SLIP 13 SSE: the generator stops after the last `progress` event; the final
          `event: done` is never sent (clients only see the connection close)

The endpoints the team got right (and that therefore agree byte for byte with
the legacy) are GET /api/health, GET /api/insights, GET /api/process-updates and
the 404 of GET /api/analysis/{id} for an unknown numeric id.

The real-time routes are ported too: a Socket.IO server (python-socketio) on path
`/api/socketio` and `GET /api/process-updates/stream?analysisId=` (server-sent
events, FastAPI's StreamingResponse). Apart from SLIP 12 and SLIP 13 they answer
exactly like the legacy. `app` is the Socket.IO server wrapped around the FastAPI
app (`http_app`).

Run: python examples/candidate/app.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard

if __package__ in (None, ""):  # started as `python examples/candidate/app.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import socketio
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from examples import store

GZIP_MINIMUM_SIZE = 1400  # same threshold as the legacy
SOCKETIO_PATH = "api/socketio"  # the path the legacy's clients already use
SOCKETIO_INTERVAL = 0.04  # seconds between two Socket.IO progress events
SSE_INTERVAL = 0.1  # seconds between two server-sent events
# GZipMiddleware skips text/event-stream; no-transform and X-Accel-Buffering for proxies
SSE_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


def js_iso(value: datetime) -> str:
    """`Date.prototype.toISOString()`; added after /api/insights showed up in a parity report."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# A datetime that serializes like JavaScript. Only the models written after the
# first parity report use it; the older ones still use plain `datetime` (SLIP 1).
JsDatetime = Annotated[datetime, PlainSerializer(js_iso, return_type=str, when_used="json")]


def request_id() -> str:
    return str(uuid.uuid4())


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


# --------------------------------------------------------------------------------------
# Response models
# --------------------------------------------------------------------------------------


class HealthChecks(CamelModel):
    database: str
    queue: str


class Health(CamelModel):
    status: str
    service: str
    checks: HealthChecks


class OwnerOut(CamelModel):
    id: str
    name: str
    email: str


class MetricsOut(CamelModel):
    conversion_rate: float
    avg_order_value: float
    sample_size: int
    confidence: float


class SegmentOut(CamelModel):
    name: str
    share: float
    lift: float


class AnalysisOut(CamelModel):
    id: int
    request_id: str
    name: str
    status: str
    dataset_id: str
    owner: OwnerOut
    created_at: datetime  # SLIP 1: plain datetime -> "2024-05-01T12:00:00Z"
    progress: int
    metrics: MetricsOut
    tags: list[str]
    segments: list[SegmentOut]
    # SLIP 1 + SLIP 2: "…:17.250000Z" when set, and `null` (not absent) when unfinished
    completed_at: datetime | None = None


class StartAnalysisIn(CamelModel):
    name: str = Field(min_length=1)
    dataset_id: str
    # SLIP 14: an empty list stays empty here; the legacy's `metrics || DEFAULT`-style
    # fallback replaces it (and the estimate follows). Found by `pytest --shadow-openapi`.
    metrics: list[str] = Field(default_factory=lambda: ["conversionRate", "avgOrderValue"])
    priority: Literal["normal", "high"] = "normal"


class StartedAnalysisOut(CamelModel):
    id: int
    request_id: str
    name: str
    dataset_id: str
    status: str
    # SLIP 5: `priority` was accepted but never made it into the response model
    metrics: list[str]
    created_at: datetime  # SLIP 1
    estimated_duration_sec: int


class ResultIn(CamelModel):
    metric: str
    value: float


class ProcessResultsIn(CamelModel):
    analysis_id: int
    results: list[ResultIn] = Field(min_length=1)


class ProcessResultsOut(CamelModel):
    request_id: str
    analysis_id: int
    status: str
    accepted: int
    metrics: list[str]
    min: float
    max: float
    processed_at: str  # SLIP 6: built with datetime.isoformat() for the queue message
    cost: Decimal  # SLIP 7: pydantic serializes Decimal as a JSON string: "1.05"


class UpdateOut(CamelModel):
    analysis_id: int
    status: str
    progress: int
    message: str
    at: JsDatetime


class UpdatesOut(CamelModel):
    since: JsDatetime | None
    updates: list[UpdateOut]
    has_more: bool
    next_since: JsDatetime | None


class InsightOut(CamelModel):
    id: int
    analysis_id: int
    title: str
    severity: str
    confidence_score: float
    created_at: JsDatetime


class InsightList(CamelModel):
    insights: list[InsightOut]
    total: int


class EvidenceOut(CamelModel):
    metric: str
    value: float
    baseline: float


class InsightDetail(CamelModel):
    id: int
    analysis_id: int
    title: str
    severity: str
    confidence: float  # SLIP 8: renamed; the legacy calls it "confidenceScore"
    created_at: JsDatetime
    summary: str
    recommendation: str
    evidence: list[EvidenceOut]


class ReportOut(CamelModel):
    id: int
    analysis_id: int
    title: str
    format: str
    size_bytes: int
    author: str
    created_at: JsDatetime


class ReportList(CamelModel):
    reports: list[ReportOut]
    total: int


class ProgressOut(CamelModel):
    analysis_id: str | int  # echoed as the client sent it
    progress: int
    message: str


class CompletedOut(CamelModel):
    analysis_id: str | int
    status: Literal["completed"] = "completed"


# --------------------------------------------------------------------------------------
# App
# --------------------------------------------------------------------------------------

http_app = FastAPI(title="analysis-api (candidate)", version="2.0.0")
http_app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE)
# `make demo` makes the rewrite fail on purpose to show a rollback: while the file named
# by --faults lists a path (one per line), requests to it answer 503.
FAULTS: list[Path] = []


@http_app.middleware("http")
async def injected_faults(request: Request, call_next):  # type: ignore[no-untyped-def]
    if FAULTS and FAULTS[0].is_file():
        failing = FAULTS[0].read_text(encoding="utf-8").split()
        if request.url.path in failing:
            return JSONResponse({"error": "injected fault (demo)"}, status_code=503)
    return await call_next(request)


@http_app.exception_handler(HTTPException)
async def next_style_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Our own HTTPExceptions answer like Next did: `{"error": "..."}`.

    Only FastAPI's HTTPException is mapped. Routing errors (405) are Starlette's
    and keep FastAPI's `{"detail": ...}` body (SLIP 11), and request validation
    errors keep FastAPI's 422 (SLIP 4).
    """
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def to_analysis_out(row: store.Analysis) -> AnalysisOut:
    return AnalysisOut(
        id=row.id,
        request_id=request_id(),
        name=row.name,
        status=row.status,
        dataset_id=row.dataset_id,
        owner=OwnerOut(id=row.owner.id, name=row.owner.name, email=row.owner.email),
        created_at=row.created_at,
        progress=row.progress,
        metrics=MetricsOut(
            conversion_rate=round(row.metrics.conversion_rate, 4),
            # SLIP 3: round() is half-to-even on the binary value: 57.125 -> 57.12,
            # where the legacy's toFixed(2) gives 57.13 (and 57.625 -> 57.62 vs 57.63).
            avg_order_value=round(row.metrics.avg_order_value, 2),
            sample_size=row.metrics.sample_size,
            confidence=row.metrics.confidence,
        ),
        tags=list(row.tags),
        segments=[SegmentOut(name=s.name, share=s.share, lift=s.lift) for s in row.segments],
        completed_at=row.completed_at,
    )


def to_insight_out(row: store.Insight) -> InsightOut:
    return InsightOut(
        id=row.id,
        analysis_id=row.analysis_id,
        title=row.title,
        severity=row.severity,
        confidence_score=row.confidence_score,
        created_at=row.created_at,
    )


@http_app.get("/api/health", response_model=Health)
async def health() -> Health:
    return Health(
        status="ok", service="analysis-api", checks=HealthChecks(database="ok", queue="ok")
    )


# SLIP 4: `analysis_id: int` makes FastAPI answer 422 {"detail": [...]} for /api/analysis/abc,
# where the legacy answered 400 {"error": "Invalid analysis id"}.
@http_app.get("/api/analysis/{analysis_id}", response_model=AnalysisOut)
async def get_analysis(analysis_id: int) -> AnalysisOut:
    row = store.analysis(analysis_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Analysis not found")
    return to_analysis_out(row)


# SLIP 4: a body without name/datasetId is a 422 here, a 400 in the legacy.
@http_app.post("/api/start-analysis", response_model=StartedAnalysisOut, status_code=201)
async def start_analysis(body: StartAnalysisIn) -> StartedAnalysisOut:
    new_id = store.new_analysis_id(body.name, body.dataset_id)
    return StartedAnalysisOut(
        id=new_id,
        request_id=request_id(),
        name=body.name,
        dataset_id=body.dataset_id,
        status="queued",
        metrics=body.metrics,
        created_at=store.new_analysis_created_at(new_id),
        estimated_duration_sec=store.estimated_duration_sec(len(body.metrics), body.priority),
    )


@http_app.post("/api/process-results", response_model=ProcessResultsOut)
async def process_results(body: ProcessResultsIn) -> ProcessResultsOut:
    row = store.analysis(body.analysis_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Analysis not found")
    values = [item.value for item in body.results]
    cost = (Decimal(len(body.results)) * Decimal(store.COST_PER_RESULT)).quantize(Decimal("0.01"))
    return ProcessResultsOut(
        request_id=request_id(),
        analysis_id=body.analysis_id,
        status="processed",
        accepted=len(body.results),
        metrics=sorted({item.metric for item in body.results}),
        min=min(values),
        max=max(values),
        processed_at=store.processed_at(row).isoformat(),  # SLIP 6
        cost=cost,  # SLIP 7
    )


@http_app.get("/api/process-updates", response_model=UpdatesOut)
async def process_updates(since: Annotated[str | None, Query()] = None) -> UpdatesOut:
    since_at: datetime | None = None
    if since is not None:
        try:
            parsed = datetime.fromisoformat(since)
        except ValueError:
            raise HTTPException(status_code=400, detail="Invalid since parameter") from None
        since_at = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    rows, has_more = store.updates_since(since_at)
    return UpdatesOut(
        since=since_at,
        updates=[
            UpdateOut(
                analysis_id=row.analysis_id,
                status=row.status,
                progress=row.progress,
                message=row.message,
                at=row.at,
            )
            for row in rows
        ],
        has_more=has_more,
        next_since=rows[-1].at if rows else None,
    )


@http_app.get("/api/insights", response_model=InsightList)
async def list_insights() -> InsightList:
    rows = store.insights()
    return InsightList(insights=[to_insight_out(row) for row in rows], total=len(rows))


# SLIP 4 again for /api/insights/abc (422), and SLIP 9 for an unknown numeric id (404).
@http_app.get("/api/insights/{insight_id}", response_model=InsightDetail)
async def get_insight(insight_id: int) -> InsightDetail:
    row = store.insight(insight_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Unknown insight")  # SLIP 9
    return InsightDetail(
        id=row.id,
        analysis_id=row.analysis_id,
        title=row.title,
        severity=row.severity,
        confidence=row.confidence_score,  # SLIP 8
        created_at=row.created_at,
        summary=row.summary,
        recommendation=row.recommendation,
        evidence=[
            EvidenceOut(metric=ev.metric, value=ev.value, baseline=ev.baseline)
            for ev in row.evidence
        ],
    )


@http_app.get("/api/reports", response_model=ReportList)
async def list_reports() -> ReportList:
    rows = store.reports()  # SLIP 10: the port dropped `ORDER BY created_at DESC`
    return ReportList(
        reports=[
            ReportOut(
                id=row.id,
                analysis_id=row.analysis_id,
                title=row.title,
                format=row.format,
                size_bytes=row.size_bytes,
                author=row.author,
                created_at=row.created_at,
            )
            for row in rows
        ],
        total=len(rows),
    )


# --------------------------------------------------------------------------------------
# Real-time: progress of an analysis job (Socket.IO and server-sent events)
# --------------------------------------------------------------------------------------


def progress_steps(analysis_id: str | int) -> list[ProgressOut]:
    """0, 25, 50, 75, 100 percent; a known analysis names its dataset."""
    row = None
    if re.fullmatch(r"\s*-?\d+(\.0*)?\s*", str(analysis_id)):  # what JS Number() takes
        row = store.analysis(int(float(analysis_id)))
    loading = f"Loading dataset {row.dataset_id}" if row is not None else "Loading dataset"
    messages = (
        (0, "Queued"),
        (25, loading),
        (50, "Crunching events"),
        (75, "Computing metrics"),
        (100, "Analysis finished"),
    )
    return [
        ProgressOut(analysis_id=analysis_id, progress=progress, message=message)
        for progress, message in messages
    ]


def has_analysis_id(value: Any) -> TypeGuard[str | int]:
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def event_json(model: CamelModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


# Not in the OpenAPI schema, like the Socket.IO server: FastAPI would document it as
# application/json, and `shadow routes --openapi` lists the REST routes only.
@http_app.get("/api/process-updates/stream", include_in_schema=False)
async def process_updates_stream(
    analysis_id: Annotated[str | None, Query(alias="analysisId")] = None,
) -> StreamingResponse:
    if not analysis_id:
        raise HTTPException(status_code=400, detail="analysisId is required")
    steps = progress_steps(analysis_id)

    async def events() -> AsyncIterator[str]:
        for index, step in enumerate(steps):
            if index:
                await asyncio.sleep(SSE_INTERVAL)
            yield sse("progress", event_json(step))
        # SLIP 13: the port ends the generator here; the legacy sends, after one more
        # interval, `event: done` with {"analysisId": ..., "status": "completed"}.

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)


@sio.on("subscribe")
async def on_subscribe(sid: str, data: Any = None) -> None:
    analysis_id = data.get("analysisId") if isinstance(data, dict) else None
    if not has_analysis_id(analysis_id):
        await sio.emit("error", {"error": "analysisId is required"}, to=sid)
        return
    for index, step in enumerate(progress_steps(analysis_id)):
        if index:
            await asyncio.sleep(SOCKETIO_INTERVAL)
        payload = event_json(step)
        if index == 2:
            # SLIP 12: the halfway mark is relayed from the worker's Redis hash
            # (HGET job:<id> progress), where every value is a string: "50", not 50.
            payload["progress"] = str(step.progress)
        await sio.emit("progress", payload, to=sid)
    await asyncio.sleep(SOCKETIO_INTERVAL)
    await sio.emit("complete", event_json(CompletedOut(analysis_id=analysis_id)), to=sid)


@sio.on("status")
async def on_status(sid: str, *args: Any) -> dict[str, Any]:
    return {"ok": True, "service": "analysis-api"}


# Socket.IO answers under /api/socketio/, every other request goes to FastAPI.
app = socketio.ASGIApp(sio, other_asgi_app=http_app, socketio_path=SOCKETIO_PATH)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Candidate (FastAPI) example backend")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--faults", type=Path, help="file listing paths that answer 503")
    args = parser.parse_args(argv)
    if args.faults:
        FAULTS.append(args.faults)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
