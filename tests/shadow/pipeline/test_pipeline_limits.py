"""shadow.pipeline.core under pressure: byte budgets, failing comparisons, the drain deadline,
stale requests, a flush that raises, and a run continued by a restarted worker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from comparators.model import Payload
from shadow.model import BackendResponse, Request
from shadow.pipeline import evaluate
from shadow.pipeline.core import Pipeline, PipelineSettings
from shadow.store.writer import open_for_reading
from tests.conftest import Server, serve

JSON = (("content-type", "application/json"),)


def answer(body: bytes = b'{"ok": 1}', status: int = 200) -> BackendResponse:
    return BackendResponse(Payload(status, JSON, body), elapsed_ms=1.0)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = open_for_reading(str(db), wait=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    """/slow answers after 1 s; /big/N answers N bytes of JSON; anything else at once."""

    async def handle(request: StarletteRequest) -> Response:
        path = request.url.path
        if path.startswith("/slow"):
            await asyncio.sleep(1.0)
        if path.startswith("/big/"):
            n = int(path.rsplit("/", 1)[1])
            return Response(b'{"x": "' + b"a" * n + b'"}', media_type="application/json")
        return JSONResponse({"ok": 1})

    with serve(Starlette(routes=[Route("/{p:path}", handle, methods=["GET", "POST"])])) as s:
        yield s


def settings(db: Path, url: str, **kw: Any) -> PipelineSettings:
    kw.setdefault("compare_processes", 0)
    return PipelineSettings(db=str(db), candidate=url, run_id=kw.pop("run_id", "r1"), **kw)


def test_memory_budget_sheds_copies_keeps_rows_and_frees_bytes(
    tmp_path: Path, backend: Server
) -> None:
    db = tmp_path / "m.duckdb"
    body = b"x" * 40_000

    async def go() -> Pipeline:
        p = Pipeline(settings(db, backend.url, memory_budget=100_000))
        await p.start()
        for i in range(5):  # each holds ~40 kB until the slow candidate answers
            p.on_request(f"k{i}", Request("GET", f"/slow/{i}", body=body), time.time())
        assert p.held_bytes <= 100_000 + 3 * 500  # the shed ones hold no body
        for i in range(5):
            p.on_primary(f"k{i}", answer())
        await p.close()
        assert p.held_bytes == 0  # everything settled frees what it held
        return p

    p = asyncio.run(go())
    rows = query(db, "SELECT skip_reason, count(*) FROM exchanges GROUP BY ALL ORDER BY 1")
    shed = dict(rows).get("dropped: worker memory budget full (100000 bytes)")
    assert shed == 3, rows  # two fit in 100 kB, three did not
    assert dict(rows).get(None) == 2
    assert p.counters.dropped == 3
    assert query(db, "SELECT requests, exchanges, copies_dropped FROM runs") == [(5, 5, 3)]


def test_answers_over_max_body_are_compared_by_digest(tmp_path: Path, backend: Server) -> None:
    db = tmp_path / "b.duckdb"
    same = b'{"x": "' + b"a" * 5000 + b'"}'
    other = b'{"x": "' + b"a" * 4999 + b'"}'

    async def go() -> None:
        p = Pipeline(settings(db, backend.url, max_body=1000))
        await p.start()
        p.on_request("same", Request("GET", "/big/5000"), time.time())
        p.on_request("other", Request("GET", "/big/5000"), time.time())
        from shadow.model import capped_payload

        p.on_primary("same", BackendResponse(capped_payload(200, JSON, same, 1000)))
        p.on_primary("other", BackendResponse(capped_payload(200, JSON, other, 1000)))
        await p.close()

    asyncio.run(go())
    verdicts = dict(query(db, "SELECT exchange_id, verdict FROM exchanges"))
    assert verdicts == {"same": "match", "other": "differ"}
    assert query(db, "SELECT exchange_id, path FROM differences") == [("other", "$body")]


def test_a_failing_comparison_is_stored_as_skipped_and_counted(
    tmp_path: Path, backend: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "f.duckdb"
    real = evaluate.evaluate

    def flaky(exchange: Any, *args: Any, **kw: Any) -> Any:
        if exchange.request.path == "/boom" and exchange.skip_reason is None:
            raise RuntimeError("comparator bug")
        return real(exchange, *args, **kw)

    monkeypatch.setattr(evaluate, "evaluate", flaky)

    async def go() -> Pipeline:
        p = Pipeline(settings(db, backend.url))
        await p.start()
        for key, path in (("a", "/ok"), ("b", "/boom"), ("c", "/ok2")):
            p.on_request(key, Request("GET", path), time.time())
            p.on_primary(key, answer(b'{"ok": 2}'))  # differs: a real comparison
            await p.wait_for(key)
        await p.close()
        return p

    p = asyncio.run(go())
    rows = dict(query(db, "SELECT exchange_id, coalesce(skip_reason, verdict) FROM exchanges"))
    assert rows == {"a": "differ", "b": "comparison failed: RuntimeError", "c": "differ"}
    assert p.counters.compare_failed == 1


def test_drain_deadline_stores_unfinished_comparisons_as_shutdown(
    tmp_path: Path, backend: Server
) -> None:
    db = tmp_path / "d.duckdb"

    async def go() -> None:
        # A real comparison process takes far longer than 50 ms to start: at the
        # deadline the comparisons are still in it.
        p = Pipeline(settings(db, backend.url, compare_processes=1, drain_timeout=0.05))
        await p.start()
        for i in range(3):
            p.on_request(f"k{i}", Request("GET", f"/ok/{i}"), time.time())
        await asyncio.sleep(0.5)  # the copies are back
        for i in range(3):
            p.on_primary(f"k{i}", answer(b'{"ok": 2}'))
        t0 = time.monotonic()
        await p.close()
        assert time.monotonic() - t0 < 10  # the pool was stopped, not waited for

    asyncio.run(go())
    rows = query(db, "SELECT verdict, skip_reason FROM exchanges")
    assert rows == [("skipped", "shutdown: comparison not finished by the drain deadline")] * 3


def test_drain_deadline_cuts_slow_copies_short(tmp_path: Path, backend: Server) -> None:
    db = tmp_path / "s.duckdb"

    async def go() -> float:
        p = Pipeline(settings(db, backend.url, drain_timeout=0.2, timeout=5.0))
        await p.start()
        p.on_request("k", Request("GET", "/slow"), time.time())
        p.on_primary("k", answer())
        t0 = time.monotonic()
        await p.close()
        return time.monotonic() - t0

    took = asyncio.run(go())
    assert took < 0.9  # the candidate's 1 s answer was not waited for
    assert query(db, "SELECT skip_reason, candidate_error FROM exchanges") == [
        ("shutdown: the candidate had not answered by the drain deadline", None)
    ]


def test_stale_request_without_primary_answer_becomes_a_row(
    tmp_path: Path, backend: Server
) -> None:
    db = tmp_path / "st.duckdb"

    async def go() -> None:
        p = Pipeline(settings(db, backend.url, stale_after=0.1, flush_interval=0.1))
        await p.start()
        p.on_request("lonely", Request("GET", "/ok"), time.time())
        await asyncio.sleep(0.6)  # a flush or two: the request expires
        assert p.held_bytes == 0
        await p.close()

    asyncio.run(go())
    assert query(db, "SELECT skip_reason, primary_error FROM exchanges") == [
        (
            "lost: no answer from the primary reached the worker",
            "the primary's answer never reached shadow",
        )
    ]
    assert query(db, "SELECT copies_dropped FROM runs") == [(1,)]


def test_flush_loop_survives_an_exception(
    tmp_path: Path, backend: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "fl.duckdb"
    calls = {"n": 0}

    async def go() -> None:
        p = Pipeline(settings(db, backend.url, flush_interval=0.05))
        real = p._expire_stale

        def boom() -> None:
            calls["n"] += 1
            if calls["n"] <= 2:
                raise ValueError("unexpected")
            real()

        monkeypatch.setattr(p, "_expire_stale", boom)
        await p.start()
        await asyncio.sleep(0.3)  # the loop raised twice and went on
        p.on_request("k", Request("GET", "/ok"), time.time())
        p.on_primary("k", answer())
        await p.wait_for("k")
        await asyncio.sleep(0.3)  # stored by the loop, not only by close()
        assert p.counters.stored == 1
        await p.close()

    asyncio.run(go())
    assert calls["n"] > 2


def test_restarted_worker_continues_the_run(tmp_path: Path, backend: Server) -> None:
    db = tmp_path / "r.duckdb"
    config = tmp_path / "c.toml"
    config.write_text(
        '[[accepted]]\nendpoint = "GET /ok"\npath = "$.ok"\nreason = "known"\n', encoding="utf-8"
    )

    async def one(key: str, **kw: Any) -> None:
        p = Pipeline(settings(db, backend.url, config_path=str(config), **kw))
        await p.start()
        p.on_request(key, Request("GET", "/ok"), time.time())
        p.on_primary(key, answer())
        await p.close()

    asyncio.run(one("first"))
    started = query(db, "SELECT started_at FROM runs")
    asyncio.run(one("second", resume=True, restarts=1))
    assert query(db, "SELECT started_at, exchanges, requests, worker_restarts FROM runs") == [
        (started[0][0], 2, 2, 1)
    ]
    assert query(db, "SELECT count(*) FROM run_accepted") == [(1,)]  # not written twice


def test_answers_past_the_memory_budget_let_go_of_their_body_and_skip(
    tmp_path: Path, backend: Server
) -> None:
    db = tmp_path / "ab.duckdb"

    async def go() -> Pipeline:
        p = Pipeline(settings(db, backend.url, memory_budget=50_000))
        await p.start()
        for i in range(3):  # small requests: all admitted
            p.on_request(f"k{i}", Request("GET", f"/slow/{i}"), time.time())
        for i in range(3):  # 30 kB answers: the second and third pass the budget
            p.on_primary(f"k{i}", answer(b'{"x": "' + b"a" * 30_000 + b'"}'))
        assert p.held_bytes <= 50_000
        await p.close()
        return p

    p = asyncio.run(go())
    rows = query(db, "SELECT skip_reason, count(*) FROM exchanges GROUP BY ALL ORDER BY 1")
    assert rows == [("dropped: worker memory budget full (50000 bytes)", 2), (None, 1)]
    assert p.counters.dropped == 2


def test_a_skip_reason_from_the_source_means_no_copy(tmp_path: Path, backend: Server) -> None:
    db = tmp_path / "sk.duckdb"

    async def go() -> Pipeline:
        p = Pipeline(settings(db, backend.url))
        await p.start()
        p.on_request("big", Request("POST", "/ok"), time.time(), "request body over 10 bytes")
        assert p._pending["big"].candidate is None  # never sent
        p.on_primary("big", answer())
        await p.close()
        return p

    asyncio.run(go())
    assert query(db, "SELECT skip_reason FROM exchanges") == [("request body over 10 bytes",)]


def test_requests_read_after_the_drain_deadline_are_not_copied(
    tmp_path: Path, backend: Server
) -> None:
    db = tmp_path / "late.duckdb"

    async def go() -> None:
        p = Pipeline(settings(db, backend.url, drain_timeout=0.01))
        await p.start()
        p.begin_stop()  # the source stopped; the backlog is still being read
        await asyncio.sleep(0.05)
        p.on_request("late", Request("GET", "/ok"), time.time())
        assert p._pending["late"].candidate is None
        p.on_primary("late", answer())
        await p.close()

    asyncio.run(go())
    assert query(db, "SELECT skip_reason FROM exchanges") == [
        ("shutdown: read after the drain deadline, not copied",)
    ]


def test_a_failing_recording_does_not_cost_the_row(
    tmp_path: Path, backend: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "rec.duckdb"

    async def go() -> None:
        p = Pipeline(settings(db, backend.url, record=str(tmp_path / "t.jsonl")))
        assert p._recorder is not None

        def broken(*_a: Any, **_k: Any) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(p._recorder, "add", broken)
        await p.start()
        p.on_request("k", Request("GET", "/ok"), time.time())
        p.on_primary("k", answer())
        await p.wait_for("k")
        assert p.held_bytes == 0
        await p.close()

    asyncio.run(go())
    assert query(db, "SELECT count(*) FROM exchanges") == [(1,)]


def test_secrets_in_paths_and_backend_urls_stay_out_of_endpoints_and_runs(
    tmp_path: Path, backend: Server
) -> None:
    db = tmp_path / "sec.duckdb"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdEFGH1234"
    with_password = backend.url.replace("http://", "http://bob:s3cretPW@")

    async def go() -> None:
        p = Pipeline(settings(db, with_password, options={"primary": with_password}))
        await p.start()
        for key, path in (("a", f"/t/{jwt}/x"), ("b", "/app;jsessionid=ABCDEF0123456789SECRET")):
            p.on_request(key, Request("GET", path), time.time())
            p.on_primary(key, answer())
        await p.close()

    asyncio.run(go())
    dump = json.dumps(
        [
            query(db, "SELECT endpoint, path FROM exchanges"),
            query(db, "SELECT candidate_url, primary_url, options FROM runs"),
        ],
        default=str,
    )
    for secret in (jwt, "ABCDEF0123456789SECRET", "s3cretPW"):
        assert secret not in dump
    assert "[REDACTED]" in dump
