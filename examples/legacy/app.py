"""The LEGACY backend: Next.js API routes, transliterated to plain Starlette.

This is the "primary" in a shadow run. It is written the way the original
`pages/api/**.ts` files were: one handler per route file taking `(req, res)`,
`req.query` holding both the query string and the dynamic `[id]` segment, and
`res.status(...).json(...)` for every answer. What matters for the comparison is
that its JSON looks like what Node printed:

* dates are `Date.prototype.toISOString()`: `2024-05-01T12:00:00.000Z`, always
  three fractional digits and a `Z`;
* numbers are JavaScript numbers: `Number(x.toFixed(2))` rounds half away from
  zero on the exact binary value, and an integral float prints as `57`, not `57.0`;
* `undefined` properties are dropped by `JSON.stringify`, so a missing optional
  field is absent, not `null`;
* errors are `res.status(4xx).json({ error: "..." })`.

Every response carries a fresh `requestId` (`crypto.randomUUID()`) on the
analysis endpoints; nothing else depends on the process, so two instances of this
app (primary and "secondary") differ only in that field.

Two real-time routes, as the customer's API has them:

* `pages/api/socketio.ts`: a Socket.IO server on path `/api/socketio`. Client
  event `subscribe` `{analysisId}` -> five `progress` events
  `{analysisId, progress, message}` (0, 25, 50, 75, 100; 40 ms apart), then
  `complete` `{analysisId, status: "completed"}`; client event `status` with an
  ack -> `{ok: true, service: "analysis-api"}`.
* `pages/api/process-updates/stream.ts`: `GET /api/process-updates/stream?analysisId=`
  answers `text/event-stream`: five `event: progress` (100 ms apart), then
  `event: done` `{analysisId, status: "completed"}`, then the stream ends.

Both are deterministic given the analysisId. `app` is the Socket.IO server
wrapped around the HTTP routes (`http_app`), as Next's custom server would have it.

Run: python examples/legacy/app.py --port 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Self

if __package__ in (None, ""):  # started as `python examples/legacy/app.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import socketio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from examples import store

GZIP_MINIMUM_SIZE = 1400  # bytes; single objects stay plain, the lists get compressed
SOCKETIO_PATH = "api/socketio"  # `new Server(res.socket.server, { path: "/api/socketio" })`
SOCKETIO_INTERVAL = 0.04  # seconds between two Socket.IO progress events
SSE_INTERVAL = 0.1  # seconds between two server-sent events
# Starlette's GZipMiddleware never compresses text/event-stream; no-transform asks
# proxies not to either, and X-Accel-Buffering: no keeps nginx from buffering.
SSE_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


# --------------------------------------------------------------------------------------
# What Node/JavaScript would do
# --------------------------------------------------------------------------------------


def to_iso_string(value: datetime) -> str:
    """`new Date(value).toISOString()`: UTC, millisecond precision, trailing `Z`."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_fixed(value: float, digits: int) -> float:
    """`Number(value.toFixed(digits))`.

    `toFixed` rounds the exact binary value and picks the larger candidate on a
    tie (so 57.125 -> "57.13"), which is ROUND_HALF_UP on `Decimal(value)` (exact).
    """
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def js_value(value: Any) -> Any:
    """What `JSON.parse(JSON.stringify(value))` would hold: JS number semantics.

    Integral floats become ints (JS prints `1`, not `1.0`), NaN/Infinity become
    null, and `None` values inside objects are kept (they stand for `null`;
    handlers drop `undefined` fields themselves by not adding them).
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(key): js_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [js_value(item) for item in value]
    return value


def parse_date(text: str) -> datetime | None:
    """`new Date(text)` for the ISO 8601 forms clients send; None for "Invalid Date".

    The server runs with TZ=UTC, so a timestamp without an offset is UTC.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_JS_INTEGER = re.compile(r"^\s*-?\d+(\.0*)?\s*$")


def parse_integer(text: str) -> int | None:
    """`Number(text)` followed by `Number.isInteger`; None when that is false."""
    if not _JS_INTEGER.match(text):
        return None
    return int(float(text))


def random_uuid() -> str:
    """`crypto.randomUUID()`."""
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------
# A tiny NextApiRequest / NextApiResponse shim
# --------------------------------------------------------------------------------------


class NextApiRequest:
    """What a Next.js API route receives: method, headers, query (incl. `[id]`), body."""

    def __init__(self, request: Request, body: Any) -> None:
        self.method = request.method
        self.headers = request.headers
        query: dict[str, str] = dict(request.query_params)
        query.update({key: str(value) for key, value in request.path_params.items()})
        self.query = query
        self.body = body


class NextApiResponse:
    """`res.status(code).json(body)` and `res.setHeader(name, value)`."""

    def __init__(self) -> None:
        self._status = 200
        self._headers: dict[str, str] = {}

    def status(self, code: int) -> Self:
        self._status = code
        return self

    def set_header(self, name: str, value: str) -> Self:
        self._headers[name] = value
        return self

    def json(self, body: Any) -> Response:
        return JSONResponse(js_value(body), status_code=self._status, headers=self._headers)

    def event_stream(self, chunks: AsyncIterator[str]) -> Response:
        """`res.writeHead(200, {"Content-Type": "text/event-stream", ...})` + `res.write()`s."""
        headers = {**self._headers, **SSE_HEADERS}
        return StreamingResponse(
            chunks, status_code=self._status, media_type="text/event-stream", headers=headers
        )


Handler = Callable[[NextApiRequest, NextApiResponse], Awaitable[Response]]


def api_route(path: str, handler: Handler) -> Route:
    """Mount a `pages/api` handler. Like Next, the route answers every method itself."""

    async def endpoint(request: Request) -> Response:
        body: Any = None
        raw = await request.body()
        if raw and "application/json" in request.headers.get("content-type", ""):
            try:
                body = json.loads(raw)  # Next's default bodyParser
            except ValueError:
                return NextApiResponse().status(400).json({"error": "Invalid JSON"})
        return await handler(NextApiRequest(request, body), NextApiResponse())

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Route(path, endpoint, methods=methods)


def method_not_allowed(req: NextApiRequest, res: NextApiResponse, allowed: str) -> Response:
    res.set_header("Allow", allowed)
    return res.status(405).json({"error": f"Method {req.method} Not Allowed"})


# --------------------------------------------------------------------------------------
# Serializers shared by several route files (lib/serialize.ts)
# --------------------------------------------------------------------------------------


def serialize_analysis(row: store.Analysis) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "requestId": random_uuid(),
        "name": row.name,
        "status": row.status,
        "datasetId": row.dataset_id,
        "owner": {"id": row.owner.id, "name": row.owner.name, "email": row.owner.email},
        "createdAt": to_iso_string(row.created_at),
        "progress": row.progress,
        "metrics": {
            "conversionRate": to_fixed(row.metrics.conversion_rate, 4),
            "avgOrderValue": to_fixed(row.metrics.avg_order_value, 2),
            "sampleSize": row.metrics.sample_size,
            "confidence": row.metrics.confidence,
        },
        "tags": list(row.tags),
        "segments": [
            {"name": seg.name, "share": seg.share, "lift": seg.lift} for seg in row.segments
        ],
    }
    # `completedAt: row.completedAt?.toISOString()` is undefined for unfinished
    # analyses, and JSON.stringify drops undefined: the key is simply absent.
    if row.completed_at is not None:
        body["completedAt"] = to_iso_string(row.completed_at)
    return body


def serialize_insight(row: store.Insight) -> dict[str, Any]:
    return {
        "id": row.id,
        "analysisId": row.analysis_id,
        "title": row.title,
        "severity": row.severity,
        "confidenceScore": row.confidence_score,
        "createdAt": to_iso_string(row.created_at),
    }


# --------------------------------------------------------------------------------------
# pages/api/health.ts
# --------------------------------------------------------------------------------------


async def health(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "GET":
        return method_not_allowed(req, res, "GET")
    return res.status(200).json(
        {"status": "ok", "service": "analysis-api", "checks": {"database": "ok", "queue": "ok"}}
    )


# --------------------------------------------------------------------------------------
# pages/api/analysis/[id].ts
# --------------------------------------------------------------------------------------


async def analysis_by_id(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "GET":
        return method_not_allowed(req, res, "GET")
    analysis_id = parse_integer(req.query["id"])
    if analysis_id is None:
        return res.status(400).json({"error": "Invalid analysis id"})
    row = store.analysis(analysis_id)
    if row is None:
        return res.status(404).json({"error": "Analysis not found"})
    return res.status(200).json(serialize_analysis(row))


# --------------------------------------------------------------------------------------
# pages/api/start-analysis.ts
# --------------------------------------------------------------------------------------


async def start_analysis(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "POST":
        return method_not_allowed(req, res, "POST")
    body = req.body if isinstance(req.body, dict) else {}
    name, dataset_id = body.get("name"), body.get("datasetId")
    if not isinstance(name, str) or not name or not isinstance(dataset_id, str):
        return res.status(400).json({"error": "name and datasetId are required"})
    metrics = body.get("metrics") or ["conversionRate", "avgOrderValue"]
    priority = body.get("priority") or "normal"
    new_id = store.new_analysis_id(name, dataset_id)
    return res.status(201).json(
        {
            "id": new_id,
            "requestId": random_uuid(),
            "name": name,
            "datasetId": dataset_id,
            "status": "queued",
            "priority": priority,
            "metrics": list(metrics),
            "createdAt": to_iso_string(store.new_analysis_created_at(new_id)),
            "estimatedDurationSec": store.estimated_duration_sec(len(metrics), priority),
        }
    )


# --------------------------------------------------------------------------------------
# pages/api/process-results.ts
# --------------------------------------------------------------------------------------


async def process_results(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "POST":
        return method_not_allowed(req, res, "POST")
    body = req.body if isinstance(req.body, dict) else {}
    analysis_id: Any = body.get("analysisId")
    results: Any = body.get("results")
    well_formed = (
        isinstance(analysis_id, int)
        and not isinstance(analysis_id, bool)
        and isinstance(results, list)
        and len(results) > 0
        and all(
            isinstance(item, dict)
            and isinstance(item.get("metric"), str)
            and isinstance(item.get("value"), int | float)
            for item in results
        )
    )
    if not well_formed:
        return res.status(400).json({"error": "analysisId and a non-empty results array required"})
    row = store.analysis(analysis_id)
    if row is None:
        return res.status(404).json({"error": "Analysis not found"})
    values = [float(item["value"]) for item in results]
    metrics = sorted({str(item["metric"]) for item in results})
    return res.status(200).json(
        {
            "requestId": random_uuid(),
            "analysisId": analysis_id,
            "status": "processed",
            "accepted": len(results),
            "metrics": metrics,
            "min": min(values),
            "max": max(values),
            "processedAt": to_iso_string(store.processed_at(row)),
            # Number((results.length * 0.35).toFixed(2)): a JSON number
            "cost": to_fixed(len(results) * float(store.COST_PER_RESULT), 2),
        }
    )


# --------------------------------------------------------------------------------------
# pages/api/process-updates.ts
# --------------------------------------------------------------------------------------


async def process_updates(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "GET":
        return method_not_allowed(req, res, "GET")
    since = None
    if "since" in req.query:
        since = parse_date(req.query["since"])
        if since is None:
            return res.status(400).json({"error": "Invalid since parameter"})
    rows, has_more = store.updates_since(since)
    return res.status(200).json(
        {
            "since": to_iso_string(since) if since is not None else None,
            "updates": [
                {
                    "analysisId": row.analysis_id,
                    "status": row.status,
                    "progress": row.progress,
                    "message": row.message,
                    "at": to_iso_string(row.at),
                }
                for row in rows
            ],
            "hasMore": has_more,
            "nextSince": to_iso_string(rows[-1].at) if rows else None,
        }
    )


# --------------------------------------------------------------------------------------
# pages/api/insights/index.ts
# --------------------------------------------------------------------------------------


async def insights_index(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "GET":
        return method_not_allowed(req, res, "GET")
    rows = store.insights()
    return res.status(200).json(
        {"insights": [serialize_insight(row) for row in rows], "total": len(rows)}
    )


# --------------------------------------------------------------------------------------
# pages/api/insights/[id].ts
# --------------------------------------------------------------------------------------


async def insight_by_id(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "GET":
        return method_not_allowed(req, res, "GET")
    # insights.find(i => String(i.id) === req.query.id): an unknown *or* malformed
    # id both end up here, and this route has always answered 400 for them.
    row = next((i for i in store.insights() if str(i.id) == req.query["id"]), None)
    if row is None:
        return res.status(400).json({"error": "Unknown insight"})
    return res.status(200).json(
        {
            **serialize_insight(row),
            "summary": row.summary,
            "recommendation": row.recommendation,
            "evidence": [
                {"metric": ev.metric, "value": ev.value, "baseline": ev.baseline}
                for ev in row.evidence
            ],
        }
    )


# --------------------------------------------------------------------------------------
# pages/api/reports.ts  (the large list: 50 rows, gzip-compressed when asked)
# --------------------------------------------------------------------------------------


async def reports_index(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "GET":
        return method_not_allowed(req, res, "GET")
    # prisma.report.findMany({ orderBy: { createdAt: "desc" } }): newest first
    rows = sorted(store.reports(), key=lambda row: row.created_at, reverse=True)
    return res.status(200).json(
        {
            "reports": [
                {
                    "id": row.id,
                    "analysisId": row.analysis_id,
                    "title": row.title,
                    "format": row.format,
                    "sizeBytes": row.size_bytes,
                    "author": row.author,
                    "createdAt": to_iso_string(row.created_at),
                }
                for row in rows
            ],
            "total": len(rows),
        }
    )


# --------------------------------------------------------------------------------------
# lib/progress.ts: the steps an analysis job reports (shared by both real-time routes)
# --------------------------------------------------------------------------------------


def progress_steps(analysis_id: Any) -> list[dict[str, Any]]:
    """The `progress` payloads for one analysis: 0, 25, 50, 75, 100 percent.

    `analysisId` is echoed as the client sent it; a known analysis names its dataset.
    """
    known = parse_integer(str(analysis_id))
    row = store.analysis(known) if known is not None else None
    loading = f"Loading dataset {row.dataset_id}" if row is not None else "Loading dataset"
    messages = (
        (0, "Queued"),
        (25, loading),
        (50, "Crunching events"),
        (75, "Computing metrics"),
        (100, "Analysis finished"),
    )
    return [
        {"analysisId": analysis_id, "progress": progress, "message": message}
        for progress, message in messages
    ]


def completed(analysis_id: Any) -> dict[str, Any]:
    return {"analysisId": analysis_id, "status": "completed"}


def has_analysis_id(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool)
    )


# --------------------------------------------------------------------------------------
# pages/api/process-updates/stream.ts  (server-sent events)
# --------------------------------------------------------------------------------------


def sse(event: str, data: Any) -> str:
    # res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
    return f"event: {event}\ndata: {json.dumps(js_value(data), separators=(',', ':'))}\n\n"


async def process_updates_stream(req: NextApiRequest, res: NextApiResponse) -> Response:
    if req.method != "GET":
        return method_not_allowed(req, res, "GET")
    analysis_id = req.query.get("analysisId")
    if not analysis_id:
        return res.status(400).json({"error": "analysisId is required"})

    async def events() -> AsyncIterator[str]:
        for index, step in enumerate(progress_steps(analysis_id)):
            if index:
                await asyncio.sleep(SSE_INTERVAL)
            yield sse("progress", step)
        await asyncio.sleep(SSE_INTERVAL)
        yield sse("done", completed(analysis_id))  # then res.end()

    return res.status(200).event_stream(events())


# --------------------------------------------------------------------------------------
# pages/api/socketio.ts  (Socket.IO server on path /api/socketio)
# --------------------------------------------------------------------------------------

sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)


@sio.on("subscribe")
async def on_subscribe(sid: str, data: Any = None) -> None:
    # socket.on("subscribe", ({ analysisId }) => { ... }): the job's progress, to this socket
    analysis_id = data.get("analysisId") if isinstance(data, dict) else None
    if not has_analysis_id(analysis_id):
        await sio.emit("error", {"error": "analysisId is required"}, to=sid)
        return
    for index, step in enumerate(progress_steps(analysis_id)):
        if index:
            await asyncio.sleep(SOCKETIO_INTERVAL)
        await sio.emit("progress", js_value(step), to=sid)
    await asyncio.sleep(SOCKETIO_INTERVAL)
    await sio.emit("complete", completed(analysis_id), to=sid)


@sio.on("status")
async def on_status(sid: str, *args: Any) -> dict[str, Any]:
    # socket.on("status", (...args) => args.at(-1)({ ok: true, service: "analysis-api" }))
    return {"ok": True, "service": "analysis-api"}


http_app = Starlette(
    routes=[
        api_route("/api/health", health),
        api_route("/api/analysis/{id}", analysis_by_id),
        api_route("/api/start-analysis", start_analysis),
        api_route("/api/process-results", process_results),
        api_route("/api/process-updates", process_updates),
        api_route("/api/process-updates/stream", process_updates_stream),
        api_route("/api/insights", insights_index),
        api_route("/api/insights/{id}", insight_by_id),
        api_route("/api/reports", reports_index),
    ],
    middleware=[Middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE)],
)

# Socket.IO answers under /api/socketio/, every other request goes to the routes above.
app = socketio.ASGIApp(sio, other_asgi_app=http_app, socketio_path=SOCKETIO_PATH)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Legacy (Next.js-style) example backend")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
