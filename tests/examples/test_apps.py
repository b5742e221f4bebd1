"""The example backends: routes answer, agreeing endpoints agree, every slip is real.

The apps are driven in-process through httpx's ASGI transport (starlette's
TestClient warns about httpx under this Starlette version, and warnings are errors).
The real-time routes (Socket.IO, server-sent events) are tested against real uvicorn
servers on 127.0.0.1 (tests/conftest.py's `serve`), with real clients, no proxy.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import socketio
from starlette.types import ASGIApp

from examples import store
from examples.candidate.app import app as candidate_app
from examples.legacy.app import app as legacy_app
from examples.legacy.app import to_fixed
from examples.realtime import drive_realtime, summary_line
from examples.traffic import SECRET_COOKIE, SECRET_TOKEN, DemoRequest, demo_requests
from tests.conftest import Server, free_port, serve

ROOT = Path(__file__).resolve().parents[2]
JS_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Client:
    """A tiny synchronous client for an ASGI app; `raw` holds the body as sent on the wire."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        json_body: Any = None,
    ) -> tuple[httpx.Response, bytes]:
        async def go() -> tuple[httpx.Response, bytes]:
            transport = httpx.ASGITransport(app=self.app)
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
                client.stream(
                    method, url, headers=headers, content=content, json=json_body
                ) as response,
            ):
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            return response, raw

        return asyncio.run(go())

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.send("GET", url, headers=headers)

    def post(self, url: str, body: Any) -> httpx.Response:
        return self.send("POST", url, json_body=body)

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response, raw = self.request(method, url, **kwargs)
        headers = httpx.Headers(response.headers)
        if headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
            del headers["content-encoding"]
        headers["content-length"] = str(len(raw))
        # rebuild a readable response from the (decoded) wire body
        return httpx.Response(response.status_code, headers=headers, content=raw)


def canonical(response: httpx.Response, drop: tuple[str, ...] = ()) -> str:
    """JSON with sorted keys: equal strings mean equal JSON up to key order (1 != 1.0)."""
    body = response.json()
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if key not in drop}
    return json.dumps(body, sort_keys=True)


@pytest.fixture(scope="module")
def legacy() -> Client:
    return Client(legacy_app)


@pytest.fixture(scope="module")
def candidate() -> Client:
    return Client(candidate_app)


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/health", None),
    ("GET", "/api/analysis/3", None),
    ("POST", "/api/start-analysis", {"name": "Checkout funnel Q3 2024", "datasetId": "ds_0042"}),
    (
        "POST",
        "/api/process-results",
        {"analysisId": 3, "results": [{"metric": "bounceRate", "value": 0.4321}]},
    ),
    ("GET", "/api/process-updates?since=2024-05-01T18:00:00.000Z", None),
    ("GET", "/api/insights", None),
    ("GET", "/api/insights/3", None),
    ("GET", "/api/reports", None),
]

AGREEING: list[str] = [
    "/api/health",
    "/api/insights",
    "/api/process-updates",
    "/api/process-updates?since=2024-05-01T18:00:00.000Z",
    "/api/process-updates?since=2024-05-02",
    "/api/process-updates?since=2030-01-01T00:00:00.000Z",  # empty page
    "/api/process-updates?since=yesterday",  # 400 in both
    "/api/analysis/999",  # 404 in both
    "/api/analysis/0",
]


def _call(client: Client, method: str, path: str, body: Any) -> httpx.Response:
    return client.post(path, body) if method == "POST" else client.get(path)


# --------------------------------------------------------------------------------------
# Routes and agreement
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_answers_on_both(
    legacy: Client, candidate: Client, method: str, path: str, body: Any
) -> None:
    for client in (legacy, candidate):
        response = _call(client, method, path, body)
        assert response.status_code in (200, 201), (path, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert 50 <= len(response.content) <= 9000
        assert isinstance(response.json(), dict)


@pytest.mark.parametrize("path", AGREEING)
def test_agreeing_endpoints_are_equal(legacy: Client, candidate: Client, path: str) -> None:
    primary, copy = legacy.get(path), candidate.get(path)
    assert primary.status_code == copy.status_code
    assert canonical(primary) == canonical(copy)


def test_agreeing_endpoints_are_byte_equal_here(legacy: Client, candidate: Client) -> None:
    # Even key order agrees on these, which is more than the harness needs.
    for path in ("/api/health", "/api/insights", "/api/process-updates"):
        assert legacy.get(path).content == candidate.get(path).content


def test_list_endpoints_are_large_enough(legacy: Client) -> None:
    assert len(legacy.get("/api/reports").json()["reports"]) == store.REPORT_COUNT == 50
    assert len(legacy.get("/api/insights").json()["insights"]) == store.INSIGHT_COUNT
    updates = legacy.get("/api/process-updates").json()
    assert len(updates["updates"]) == store.UPDATES_PAGE and updates["hasMore"] is True


# --------------------------------------------------------------------------------------
# The documented slips (examples/README.md), one by one
# --------------------------------------------------------------------------------------


def test_slip_created_at_format(legacy: Client, candidate: Client) -> None:
    primary, copy = legacy.get("/api/analysis/3").json(), candidate.get("/api/analysis/3").json()
    assert primary["createdAt"] == "2024-05-02T09:25:00.000Z"
    assert copy["createdAt"] == "2024-05-02T09:25:00Z"
    # milliseconds: three digits in JS, microseconds from pydantic
    assert primary["completedAt"] == "2024-05-02T10:37:35.382Z"
    assert copy["completedAt"] == "2024-05-02T10:37:35.382000Z"


def test_slip_completed_at_null_instead_of_absent(legacy: Client, candidate: Client) -> None:
    row = store.analysis(9)
    assert row is not None and row.status == "queued" and row.completed_at is None
    primary, copy = legacy.get("/api/analysis/9").json(), candidate.get("/api/analysis/9").json()
    assert "completedAt" not in primary
    assert copy["completedAt"] is None


def test_slip_avg_order_value_rounding(legacy: Client, candidate: Client) -> None:
    row = store.analysis(6)
    assert row is not None and row.metrics.avg_order_value == 204.625
    primary, copy = legacy.get("/api/analysis/6").json(), candidate.get("/api/analysis/6").json()
    assert primary["metrics"]["avgOrderValue"] == 204.63  # toFixed(2): half up
    assert copy["metrics"]["avgOrderValue"] == 204.62  # round(): half to even
    # ... while ids whose raw value ends in .375/.875 agree (id 3: 239.375)
    assert (
        legacy.get("/api/analysis/3").json()["metrics"]
        == (candidate.get("/api/analysis/3").json()["metrics"])
    )


def test_slip_avg_order_value_affects_about_half_the_ids() -> None:
    differing = [
        i
        for i in range(1, store.ANALYSIS_COUNT + 1)
        if (row := store.analysis(i)) is not None
        and to_fixed(row.metrics.avg_order_value, 2) != round(row.metrics.avg_order_value, 2)
    ]
    assert 10 <= len(differing) <= 30


def test_slip_invalid_analysis_id_status(legacy: Client, candidate: Client) -> None:
    primary, copy = legacy.get("/api/analysis/abc"), candidate.get("/api/analysis/abc")
    assert (primary.status_code, primary.json()) == (400, {"error": "Invalid analysis id"})
    assert copy.status_code == 422
    assert copy.json()["detail"][0]["type"] == "int_parsing"


def test_slip_start_analysis(legacy: Client, candidate: Client) -> None:
    body = {"name": "Checkout funnel Q3 2024", "datasetId": "ds_0042", "priority": "high"}
    primary = legacy.post("/api/start-analysis", body)
    copy = candidate.post("/api/start-analysis", body)
    assert primary.status_code == copy.status_code == 201
    p, c = primary.json(), copy.json()
    assert p["priority"] == "high" and "priority" not in c  # removed field
    assert JS_ISO.match(p["createdAt"]) and c["createdAt"] == p["createdAt"][:-5] + "Z"
    drop = ("priority", "createdAt", "requestId")
    assert canonical(primary, drop) == canonical(copy, drop)  # everything else agrees


def test_slip_start_analysis_empty_metrics(legacy: Client, candidate: Client) -> None:
    # SLIP 14, found by the plugin's differential run (docs/pytest.md), not planted on purpose.
    body = {"name": "x", "datasetId": "ds_1", "metrics": []}
    p = legacy.post("/api/start-analysis", body).json()
    c = candidate.post("/api/start-analysis", body).json()
    assert p["metrics"] == ["conversionRate", "avgOrderValue"] and c["metrics"] == []
    assert p["estimatedDurationSec"] != c["estimatedDurationSec"]


def test_slip_start_analysis_invalid_body_status(legacy: Client, candidate: Client) -> None:
    body = {"datasetId": "ds_0042"}
    primary = legacy.post("/api/start-analysis", body)
    copy = candidate.post("/api/start-analysis", body)
    assert (primary.status_code, primary.json()) == (
        400,
        {"error": "name and datasetId are required"},
    )
    assert copy.status_code == 422


def test_slip_process_results_integral_float_id(legacy: Client, candidate: Client) -> None:
    # SLIP 15, found by the plugin's differential run: 3.0 is an integer to JSON Schema
    # (and to JavaScript), but the legacy's check takes only an integer literal.
    body = {"analysisId": 3.0, "results": [{"metric": "m", "value": 0.5}]}
    assert legacy.post("/api/process-results", body).status_code == 400
    assert candidate.post("/api/process-results", body).status_code == 200


def test_slip_process_results(legacy: Client, candidate: Client) -> None:
    body = {
        "analysisId": 3,
        "results": [
            {"metric": "bounceRate", "value": 0.4321},
            {"metric": "retention7d", "value": 0.25},
            {"metric": "bounceRate", "value": 0.5},
        ],
    }
    primary, copy = (
        legacy.post("/api/process-results", body),
        candidate.post("/api/process-results", body),
    )
    assert primary.status_code == copy.status_code == 200
    p, c = primary.json(), copy.json()
    assert p["processedAt"] == "2024-05-02T11:25:00.000Z"
    assert c["processedAt"] == "2024-05-02T11:25:00+00:00"
    assert p["cost"] == 1.05 and isinstance(p["cost"], float)  # number
    assert c["cost"] == "1.05"  # string: type changed
    drop = ("processedAt", "cost", "requestId")
    assert canonical(primary, drop) == canonical(copy, drop)


def test_process_results_unknown_analysis_agrees(legacy: Client, candidate: Client) -> None:
    body = {"analysisId": 777, "results": [{"metric": "bounceRate", "value": 0.5}]}
    primary, copy = (
        legacy.post("/api/process-results", body),
        candidate.post("/api/process-results", body),
    )
    assert primary.status_code == copy.status_code == 404
    assert canonical(primary) == canonical(copy)


def test_slip_insight_field_renamed(legacy: Client, candidate: Client) -> None:
    primary, copy = legacy.get("/api/insights/2"), candidate.get("/api/insights/2")
    p, c = primary.json(), copy.json()
    assert p["confidenceScore"] == 0.82 and "confidence" not in p
    assert c["confidence"] == 0.82 and "confidenceScore" not in c
    drop = ("confidenceScore", "confidence")
    assert canonical(primary, drop) == canonical(copy, drop)


def test_slip_unknown_insight_status(legacy: Client, candidate: Client) -> None:
    primary, copy = legacy.get("/api/insights/42"), candidate.get("/api/insights/42")
    assert primary.status_code == 400 and copy.status_code == 404
    assert primary.json() == copy.json() == {"error": "Unknown insight"}  # status only
    assert legacy.get("/api/insights/x").status_code == 400
    assert candidate.get("/api/insights/x").status_code == 422


def test_slip_reports_order(legacy: Client, candidate: Client) -> None:
    p = legacy.get("/api/reports").json()["reports"]
    c = candidate.get("/api/reports").json()["reports"]
    assert [r["id"] for r in c] == list(range(1, 51))
    assert [r["createdAt"] for r in p] == sorted((r["createdAt"] for r in p), reverse=True)
    assert [r["id"] for r in p] != [r["id"] for r in c]
    assert sorted(p, key=lambda r: r["id"]) == c  # same rows, other order


def test_slip_method_not_allowed_body(legacy: Client, candidate: Client) -> None:
    primary = legacy.send("DELETE", "/api/health")
    copy = candidate.send("DELETE", "/api/health")
    assert primary.status_code == copy.status_code == 405
    assert primary.json() == {"error": "Method DELETE Not Allowed"}
    assert copy.json() == {"detail": "Method Not Allowed"}


# --------------------------------------------------------------------------------------
# Determinism, request ids, a second legacy instance
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_deterministic_apart_from_request_id(
    legacy: Client, candidate: Client, method: str, path: str, body: Any
) -> None:
    for client in (legacy, candidate):
        first, second = _call(client, method, path, body), _call(client, method, path, body)
        assert canonical(first, ("requestId",)) == canonical(second, ("requestId",))
        if "requestId" in first.json():
            assert first.json()["requestId"] != second.json()["requestId"]
            uuid.UUID(first.json()["requestId"])


def test_request_id_present_on_both_sides(legacy: Client, candidate: Client) -> None:
    for client in (legacy, candidate):
        assert "requestId" in client.get("/api/analysis/1").json()
        assert "requestId" not in client.get("/api/health").json()


def _load_fresh_legacy() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "legacy_second_instance", ROOT / "examples" / "legacy" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_second_legacy_instance_differs_only_in_request_id(legacy: Client) -> None:
    secondary = Client(_load_fresh_legacy().app)
    for method, path, body in ROUTES:
        first, second = _call(legacy, method, path, body), _call(secondary, method, path, body)
        assert first.status_code == second.status_code
        assert first.content != second.content or "requestId" not in first.json()
        assert canonical(first, ("requestId",)) == canonical(second, ("requestId",))


# --------------------------------------------------------------------------------------
# gzip
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("app", [legacy_app, candidate_app], ids=["legacy", "candidate"])
@pytest.mark.parametrize("path", ["/api/reports", "/api/insights"])
def test_gzip_when_asked(app: ASGIApp, path: str) -> None:
    client = Client(app)
    response, raw = client.request("GET", path, headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(raw))
    plain, plain_raw = client.request("GET", path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert json.loads(plain_raw) == json.loads(gzip.decompress(raw))


@pytest.mark.parametrize("app", [legacy_app, candidate_app], ids=["legacy", "candidate"])
def test_small_responses_stay_uncompressed(app: ASGIApp) -> None:
    client = Client(app)
    for path in ("/api/health", "/api/analysis/3", "/api/insights/3", "/api/process-updates"):
        response, _ = client.request("GET", path, headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in response.headers, path


# --------------------------------------------------------------------------------------
# Demo traffic
# --------------------------------------------------------------------------------------


def test_demo_requests_deterministic() -> None:
    assert demo_requests(80) == demo_requests(80)
    assert demo_requests(80, seed=1) != demo_requests(80, seed=2)
    assert len(demo_requests(5)) == 5 and demo_requests(0) == []
    assert all(isinstance(r, DemoRequest) for r in demo_requests(30))


def _route_of(request: DemoRequest) -> str:
    path = request.path.split("?")[0]
    path = re.sub(r"^/api/(analysis|insights)/[^/]+$", r"/api/\1/{id}", path)
    return f"{request.method} {path}"


def test_demo_requests_cover_everything() -> None:
    sample = demo_requests(60)
    routes = {_route_of(r) for r in sample}
    assert routes == {
        "GET /api/health",
        "GET /api/analysis/{id}",
        "POST /api/start-analysis",
        "POST /api/process-results",
        "GET /api/process-updates",
        "GET /api/insights",
        "GET /api/insights/{id}",
        "GET /api/reports",
    }
    gets = sum(r.method == "GET" for r in sample)
    assert gets > len(sample) * 0.6
    assert any(r.headers.get("Accept-Encoding") == "gzip" for r in sample)
    assert any(r.headers.get("Authorization") == f"Bearer {SECRET_TOKEN}" for r in sample)
    assert any(r.headers.get("Cookie") == f"session={SECRET_COOKIE}" for r in sample)
    assert all((r.body is None) == (r.method == "GET") for r in sample)


def test_demo_traffic_against_both_apps(legacy: Client, candidate: Client) -> None:
    statuses: set[tuple[int, int]] = set()
    for request in demo_requests(120):
        primary = legacy.send(
            request.method, request.path, headers=request.headers, content=request.body
        )
        copy = candidate.send(
            request.method, request.path, headers=request.headers, content=request.body
        )
        assert primary.status_code < 500 and copy.status_code < 500, request
        primary.json()
        copy.json()
        statuses.add((primary.status_code, copy.status_code))
    # success, agreeing 404, and the status slips all occur in the sample
    assert {(200, 200), (201, 201), (404, 404), (400, 422), (400, 404)} <= statuses


@pytest.mark.parametrize("which", ["legacy", "candidate"])
def test_script_entry_point_imports(which: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / which / "app.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout


# --------------------------------------------------------------------------------------
# Real-time routes: Socket.IO on /api/socketio, SSE on /api/process-updates/stream
# (real uvicorn servers on 127.0.0.1, real clients, no proxy)
# --------------------------------------------------------------------------------------

STREAM = "/api/process-updates/stream"
ACK = {"ok": True, "service": "analysis-api"}


def _expected_progress(analysis_id: Any) -> list[dict[str, Any]]:
    """The legacy's progress events for analysis 3 (dataset ds_0038) or an unknown id."""
    row = store.analysis(int(analysis_id)) if str(analysis_id).isdigit() else None
    loading = f"Loading dataset {row.dataset_id}" if row else "Loading dataset"
    steps = [
        (0, "Queued"),
        (25, loading),
        (50, "Crunching events"),
        (75, "Computing metrics"),
        (100, "Analysis finished"),
    ]
    return [{"analysisId": analysis_id, "progress": p, "message": m} for p, m in steps]


@pytest.fixture(scope="module")
def legacy_server() -> Iterator[Server]:
    with serve(legacy_app) as server:
        yield server


@pytest.fixture(scope="module")
def candidate_server() -> Iterator[Server]:
    with serve(candidate_app) as server:
        yield server


def _talk(url: str, subscribe: Any, timeout: float = 5.0) -> tuple[list[tuple[str, Any]], Any]:
    """One Socket.IO conversation: the events after `subscribe`, in order, and the
    `status` ack."""

    async def go() -> tuple[list[tuple[str, Any]], Any]:
        client = socketio.AsyncClient(reconnection=False)
        events: list[tuple[str, Any]] = []
        finished = asyncio.Event()

        def record(name: str) -> None:
            async def handler(data: Any) -> None:
                events.append((name, data))
                if name != "progress":
                    finished.set()

            client.on(name, handler)

        for name in ("progress", "complete", "error"):
            record(name)
        await client.connect(url, transports=["websocket"], socketio_path="api/socketio")
        try:
            await client.emit("subscribe", subscribe)
            await asyncio.wait_for(finished.wait(), timeout)
            ack = await client.call("status", timeout=timeout)
        finally:
            await client.disconnect()
        return events, ack

    return asyncio.run(go())


def test_socketio_legacy_progress_then_complete(legacy_server: Server) -> None:
    events, ack = _talk(legacy_server.url, {"analysisId": "3"})
    assert events == [("progress", step) for step in _expected_progress("3")] + [
        ("complete", {"analysisId": "3", "status": "completed"})
    ]
    assert all(type(data["progress"]) is int for name, data in events if name == "progress")
    assert events[1][1]["message"] == "Loading dataset ds_0038"  # from examples/store.py
    assert ack == ACK


def test_slip_socketio_candidate_progress_string(
    legacy_server: Server, candidate_server: Server
) -> None:
    legacy_events, legacy_ack = _talk(legacy_server.url, {"analysisId": "6"})
    events, ack = _talk(candidate_server.url, {"analysisId": "6"})
    assert [data["progress"] for name, data in events if name == "progress"] == [
        0,
        25,
        "50",  # SLIP 12: a string in the third progress event
        75,
        100,
    ]
    assert events[-1] == ("complete", {"analysisId": "6", "status": "completed"})
    assert ack == legacy_ack == ACK
    # everything else is the legacy's conversation
    third = events[2][1]
    assert third["progress"] == "50"
    patched = [*events[:2], ("progress", {**third, "progress": 50}), *events[3:]]
    assert patched == legacy_events


@pytest.mark.parametrize("which", ["legacy", "candidate"])
def test_socketio_subscribe_without_analysis_id(
    which: str, legacy_server: Server, candidate_server: Server
) -> None:
    server = legacy_server if which == "legacy" else candidate_server
    events, ack = _talk(server.url, {"id": 3})
    assert events == [("error", {"error": "analysisId is required"})]
    assert ack == ACK


def test_socketio_second_legacy_instance_agrees(legacy_server: Server) -> None:
    with serve(_load_fresh_legacy().app) as secondary:
        assert _talk(legacy_server.url, {"analysisId": 9}) == _talk(
            secondary.url, {"analysisId": 9}
        )
    events, _ = _talk(legacy_server.url, {"analysisId": 9})
    assert events[0] == ("progress", {"analysisId": 9, "progress": 0, "message": "Queued"})


def _read_stream(
    url: str, analysis_id: str = "3", headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[tuple[str, Any, float]], float]:
    """GET the SSE stream: the response, (event, data, seconds since the request) per
    event, and the seconds until the stream ended."""

    async def go() -> tuple[httpx.Response, list[tuple[str, Any, float]], float]:
        events: list[tuple[str, Any, float]] = []
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            start = time.monotonic()
            async with client.stream(
                "GET", STREAM, params={"analysisId": analysis_id}, headers=headers
            ) as response:
                event, data = "message", ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[len("event: ") :]
                    elif line.startswith("data: "):
                        data = line[len("data: ") :]
                    elif line == "" and data:
                        events.append((event, json.loads(data), time.monotonic() - start))
                        event, data = "message", ""
            return response, events, time.monotonic() - start

    return asyncio.run(go())


@pytest.mark.parametrize("which", ["legacy", "candidate"])
def test_sse_streams_event_by_event(
    which: str, legacy_server: Server, candidate_server: Server
) -> None:
    server = legacy_server if which == "legacy" else candidate_server
    response, events, total = _read_stream(server.url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-encoding" not in response.headers  # GZipMiddleware leaves SSE alone
    assert response.headers["cache-control"] == "no-cache, no-transform"
    progress = [(name, data) for name, data, _ in events if name == "progress"]
    assert progress == [("progress", step) for step in _expected_progress("3")]
    # 100 ms apart: the first event arrives long before the stream ends (not buffered)
    first_at = events[0][2]
    assert total >= 0.35
    assert first_at < total - 0.2, (first_at, total)


def test_sse_legacy_ends_with_done(legacy_server: Server) -> None:
    _, events, _ = _read_stream(legacy_server.url, "6")
    assert [name for name, _, _ in events] == ["progress"] * 5 + ["done"]
    assert events[-1][1] == {"analysisId": "6", "status": "completed"}
    assert events[-1][2] - events[-2][2] > 0.05  # one more interval before `done`


def test_slip_sse_candidate_never_sends_done(
    legacy_server: Server, candidate_server: Server
) -> None:
    _, legacy_events, _ = _read_stream(legacy_server.url, "6")
    _, events, _ = _read_stream(candidate_server.url, "6")
    assert [name for name, _, _ in events] == ["progress"] * 5  # SLIP 13: no `done`
    assert [(n, d) for n, d, _ in events] == [(n, d) for n, d, _ in legacy_events[:-1]]


def test_sse_second_legacy_instance_agrees(legacy_server: Server) -> None:
    with serve(_load_fresh_legacy().app) as secondary:
        first = [(n, d) for n, d, _ in _read_stream(legacy_server.url, "12")[1]]
        second = [(n, d) for n, d, _ in _read_stream(secondary.url, "12")[1]]
    assert first == second and len(first) == 6


def test_sse_without_analysis_id_agrees(legacy: Client, candidate: Client) -> None:
    primary, copy = legacy.get(STREAM), candidate.get(STREAM)
    assert primary.status_code == copy.status_code == 400
    assert primary.json() == copy.json() == {"error": "analysisId is required"}
    assert canonical(primary) == canonical(copy)


def test_demo_realtime_driver(legacy_server: Server, candidate_server: Server) -> None:
    result = asyncio.run(drive_realtime(legacy_server.url, conversations=3, streams=3))
    assert not result.errors
    assert [c.analysis_id for c in result.conversations] == ["3", "6", "9"]
    assert all(c.completed and len(c.progress) == 5 and c.ack == ACK for c in result.conversations)
    assert all(s.done and len(s.events) == 6 for s in result.streams)
    assert summary_line(result) == (
        "3 Socket.IO conversations (3 complete, 15 progress events, 3 acks), "
        "3 SSE streams (18 events, 3 done)"
    )
    candidate_run = asyncio.run(drive_realtime(candidate_server.url, 1, 1))
    assert not candidate_run.errors and not candidate_run.streams[0].done


def test_demo_realtime_driver_tolerates_errors() -> None:
    port = free_port()  # nothing listens there
    start = time.monotonic()
    result = asyncio.run(drive_realtime(f"http://127.0.0.1:{port}", 2, 2, timeout=2.0))
    assert time.monotonic() - start < 10
    assert len(result.errors) == 4
    line = summary_line(result)
    assert "\n" not in line and "4 errors" in line
