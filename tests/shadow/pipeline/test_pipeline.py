"""shadow.pipeline.core: copies sent to the real candidate app, paired, compared and stored."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from comparators.model import Payload
from shadow.model import BackendResponse, Request
from shadow.pipeline.core import Pipeline, PipelineSettings
from shadow.store.writer import open_for_reading
from tests.conftest import Server, free_port

JSON_HEADERS = (("accept", "application/json"),)


def fetch(server: Server, req: Request) -> BackendResponse:
    """The primary's answer as the proxy would see it: raw body bytes and wire headers."""
    with (
        httpx.Client(base_url=server.url, trust_env=False) as client,
        client.stream(req.method, req.target, headers=list(req.headers), content=req.body) as resp,
    ):
        body = b"".join(resp.iter_raw())
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw)
    return BackendResponse(Payload(resp.status_code, headers, body), elapsed_ms=1.0)


def run(
    db: Path,
    candidate_url: str,
    items: Sequence[tuple[str, Request, BackendResponse]],
    **settings: Any,
) -> Pipeline:
    settings.setdefault("compare_processes", 0)  # in-process: no pool start-up per test
    if "config_path" not in settings:
        # Keep the example's datetime slip visible: equal instants in other ISO forms
        # are equal by default (a normalizer), which would hide `$.createdAt`.
        config = db.parent / "slips.toml"
        config.write_text("[compare]\nnormalize = { iso_instants = false }\n")
        settings["config_path"] = str(config)

    async def go() -> Pipeline:
        p = Pipeline(PipelineSettings(db=str(db), candidate=candidate_url, run_id="t1", **settings))
        await p.start()
        for key, req, _ in items:
            p.on_request(key, req, time.time())
        for key, _, primary in items:
            p.on_primary(key, primary)
        await p.close()
        return p

    return asyncio.run(go())


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    con = open_for_reading(str(db), wait=5)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_known_slip_is_stored_as_differ(tmp_path: Path, legacy: Server, candidate: Server) -> None:
    db = tmp_path / "p.duckdb"
    req = Request("GET", "/api/analysis/1", "", JSON_HEADERS)
    primary = fetch(legacy, req)
    assert primary.payload is not None and primary.payload.status == 200
    p = run(db, candidate.url, [("k1", req, primary)])
    rows = query(
        db,
        "SELECT exchange_id, run_id, endpoint, path, verdict, primary_status, candidate_status, "
        "candidate_error, diff_count FROM exchanges",
    )
    assert rows == [
        (
            "k1",
            "t1",
            "GET /api/analysis/{id}",
            "/api/analysis/1",
            "differ",
            200,
            200,
            None,
            rows[0][8],
        )
    ]
    assert rows[0][8] >= 2
    diffs = dict(query(db, "SELECT path, kind FROM differences WHERE exchange_id = 'k1'"))
    assert diffs["$.createdAt"] == "value_changed"
    assert diffs["$.requestId"] == "value_changed"
    assert len(diffs) == rows[0][8]
    (cv,) = query(db, "SELECT candidate_value FROM differences WHERE path = '$.createdAt'")[0]
    assert json.loads(cv).endswith("Z") and ".000Z" not in json.loads(cv)
    assert p.counters.by_verdict == {"differ": 1}
    assert p.counters.compared == 1 and p.counters.stored == 1
    run_row = query(db, "SELECT run_id, candidate_url, exchanges, ended_at IS NOT NULL FROM runs")
    assert run_row == [("t1", candidate.url, 1, True)]


def test_compare_in_a_process_pool_with_config(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    """The default: comparisons run in a spawned pool that loads the config itself."""
    config = tmp_path / "shadow.toml"
    config.write_text(
        '[compare]\nignore_paths = ["$.requestId"]\nnormalize = { iso_instants = false }\n'
        '[[endpoints]]\nroute = "/api/analysis/{id}"\n'
        '[endpoints.compare]\nignore_paths = ["$.createdAt", "$.completedAt"]\n'
    )
    db = tmp_path / "pool.duckdb"
    analysis = Request("GET", "/api/analysis/1", "", JSON_HEADERS)
    start = Request(
        "POST",
        "/api/start-analysis",
        "",
        (("content-type", "application/json"),),
        b'{"name": "x", "datasetId": "ds_1"}',
    )
    p = run(
        db,
        candidate.url,
        [("a", analysis, fetch(legacy, analysis)), ("s", start, fetch(legacy, start))],
        compare_processes=1,
        config_path=str(config),
        unsafe_methods=frozenset({"POST"}),
    )
    assert dict(query(db, "SELECT exchange_id, verdict FROM exchanges")) == {
        "a": "match",
        "s": "differ",
    }
    paths = {r[0] for r in query(db, "SELECT path FROM differences WHERE exchange_id = 's'")}
    assert "$.createdAt" in paths  # the analysis endpoint's rules do not apply here
    assert "$.requestId" not in paths  # the global rule does
    assert p.counters.stored == 2


def test_matching_endpoint_is_stored_as_match(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    db = tmp_path / "m.duckdb"
    req = Request("GET", "/api/health", "", JSON_HEADERS)
    run(db, candidate.url, [("h", req, fetch(legacy, req))])
    assert query(db, "SELECT verdict, diff_count FROM exchanges") == [("match", 0)]
    assert query(db, "SELECT count(*) FROM differences") == [(0,)]


def test_gzip_list_compared_after_decoding(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    db = tmp_path / "g.duckdb"
    req = Request("GET", "/api/insights", "", (("accept-encoding", "gzip"),))
    primary = fetch(legacy, req)
    assert primary.payload is not None and primary.payload.header("content-encoding") == "gzip"
    run(db, candidate.url, [("g", req, primary)], bodies="all")
    verdict, body = query(db, "SELECT verdict, primary_body FROM exchanges")[0]
    assert verdict == "match"
    assert json.loads(body)["total"] == 12  # stored decoded


def test_matching_exchanges_keep_no_bodies_by_default(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    db = tmp_path / "b.duckdb"
    same = Request("GET", "/api/insights")
    slip = Request("GET", "/api/analysis/1")
    run(db, candidate.url, [("s", same, fetch(legacy, same)), ("d", slip, fetch(legacy, slip))])
    rows = dict(query(db, "SELECT verdict, primary_body IS NOT NULL FROM exchanges"))
    assert rows == {"match": False, "differ": True}


def test_unsafe_post_is_skipped_not_copied(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    db = tmp_path / "s.duckdb"
    req = Request(
        "POST",
        "/api/start-analysis",
        "",
        (("content-type", "application/json"),),
        b'{"name": "x", "datasetId": "ds_1"}',
    )
    primary = fetch(legacy, req)
    run(db, candidate.url, [("post", req, primary)])
    rows = query(
        db,
        "SELECT verdict, skip_reason, primary_status, candidate_status, candidate_error, "
        "candidate_body FROM exchanges",
    )
    assert rows == [("skipped", "POST is not copied (unsafe method)", 201, None, None, None)]
    assert query(db, "SELECT count(*) FROM differences") == [(0,)]


def test_unsafe_post_copied_when_allowed(tmp_path: Path, legacy: Server, candidate: Server) -> None:
    db = tmp_path / "a.duckdb"
    req = Request(
        "POST",
        "/api/start-analysis",
        "",
        (("content-type", "application/json"),),
        b'{"name": "x", "datasetId": "ds_1"}',
    )
    run(db, candidate.url, [("post", req, fetch(legacy, req))], unsafe_methods=frozenset({"POST"}))
    assert query(db, "SELECT verdict, skip_reason, candidate_status FROM exchanges") == [
        ("differ", None, 201)
    ]
    paths = {r[0] for r in query(db, "SELECT path FROM differences")}
    assert {"$.createdAt", "$.priority"} <= paths


def test_primary_error(tmp_path: Path, candidate: Server) -> None:
    db = tmp_path / "pe.duckdb"
    req = Request("GET", "/api/health")
    run(db, candidate.url, [("e", req, BackendResponse.failed("connection reset by peer"))])
    assert query(db, "SELECT verdict, primary_error, primary_status FROM exchanges") == [
        ("primary_error", "connection reset by peer", None)
    ]


def test_candidate_down(tmp_path: Path, legacy: Server) -> None:
    db = tmp_path / "cd.duckdb"
    req = Request("GET", "/api/health")
    down = f"http://127.0.0.1:{free_port()}"
    p = run(db, down, [("c", req, fetch(legacy, req))])
    verdict, err, status, pstatus = query(
        db, "SELECT verdict, candidate_error, candidate_status, primary_status FROM exchanges"
    )[0]
    assert (verdict, status, pstatus) == ("candidate_error", None, 200)
    assert err
    assert p.counters.by_verdict == {"candidate_error": 1}


def test_many_requests_grouped_by_endpoint(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    db = tmp_path / "many.duckdb"
    items = []
    for i, target in enumerate(
        [
            "/api/analysis/2",
            "/api/analysis/3?x=1",
            "/api/insights/2",
            "/api/health",
            "/api/analysis/abc",
        ]
    ):
        path, _, q = target.partition("?")
        req = Request("GET", path, q, JSON_HEADERS)
        items.append((f"k{i}", req, fetch(legacy, req)))
    run(db, candidate.url, items)
    got = dict(query(db, "SELECT endpoint, count(*) FROM exchanges GROUP BY endpoint"))
    assert got == {
        "GET /api/analysis/{id}": 2,
        "GET /api/analysis/abc": 1,
        "GET /api/insights/{id}": 1,
        "GET /api/health": 1,
    }
    statuses = query(
        db, "SELECT primary_status, candidate_status FROM exchanges WHERE exchange_id = 'k4'"
    )
    assert statuses == [(400, 422)]
    kinds = {r[0] for r in query(db, "SELECT kind FROM differences WHERE exchange_id = 'k4'")}
    assert "status" in kinds


def test_request_without_primary_answer_is_stored_as_shutdown_skip(
    tmp_path: Path, candidate: Server
) -> None:
    db = tmp_path / "np.duckdb"

    async def go() -> None:
        settings = PipelineSettings(
            db=str(db), candidate=candidate.url, run_id="t1", compare_processes=0
        )
        p = Pipeline(settings)
        await p.start()
        p.on_request("lonely", Request("GET", "/api/health"), time.time())
        p.on_primary("unknown-key", BackendResponse.failed("x"))  # ignored
        await p.close()

    asyncio.run(go())
    rows = query(db, "SELECT verdict, skip_reason, primary_error FROM exchanges")
    assert rows == [
        (
            "skipped",
            "shutdown: the primary had not answered",
            "no answer from the primary by shutdown",
        )
    ]
    assert query(db, "SELECT requests, exchanges FROM runs") == [(1, 1)]


def test_close_with_copies_still_queued_ends_the_run(tmp_path: Path) -> None:
    db = tmp_path / "hang.duckdb"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # accepts, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        async def go() -> None:
            # one copy at a time, 0.1 s each: 40 copies outlast close()'s wait of timeout + 2 s
            settings = PipelineSettings(
                db=str(db), candidate=url, run_id="t1", compare_processes=0,
                timeout=0.1, concurrency=1,
            )  # fmt: skip
            p = Pipeline(settings)
            await p.start()
            for i in range(40):
                p.on_request(f"k{i}", Request("GET", "/api/health"), time.time())
                p.on_primary(f"k{i}", BackendResponse(Payload(200), elapsed_ms=1.0))
            await p.close()

        asyncio.run(go())
    assert query(db, "SELECT ended_at IS NOT NULL FROM runs") == [(True,)]


def test_comparison_process_dying_falls_back_to_comparing_here(
    tmp_path: Path, legacy: Server, candidate: Server
) -> None:
    """If the pool process is killed (memory), later exchanges are still compared and stored."""
    import os
    import signal

    db = tmp_path / "broken.duckdb"
    req = Request("GET", "/api/analysis/2", "", JSON_HEADERS)
    primary = fetch(legacy, req)

    async def go() -> Pipeline:
        p = Pipeline(
            PipelineSettings(db=str(db), candidate=candidate.url, run_id="b1", compare_processes=1)
        )
        await p.start()
        p.on_request("warm", req, time.time())
        p.on_primary("warm", primary)
        await p.wait_for("warm")  # the pool has started and compared one
        executor: Any = p._executor
        for proc in list(executor._processes.values()):
            os.kill(proc.pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        for i in range(5):
            p.on_request(f"k{i}", req, time.time())
            p.on_primary(f"k{i}", primary)
        await asyncio.wait_for(p.close(), 60)
        return p

    asyncio.run(go())
    assert query(db, "SELECT count(*) FROM exchanges")[0][0] == 6
    assert query(db, "SELECT DISTINCT verdict FROM exchanges") == [("differ",)]


def test_unsafe_copies_never_go_to_the_secondary(tmp_path: Path) -> None:
    """An allowed POST runs on the primary and the candidate: never a third time on the
    secondary, a legacy instance with its own data. Safe requests still go to both."""
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.conftest import serve

    def counting() -> tuple[Starlette, list[str]]:
        seen: list[str] = []

        async def handle(request: StarletteRequest) -> JSONResponse:
            seen.append(request.method)
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/api/x", handle, methods=["GET", "POST"])]), seen

    cand_app, cand_seen = counting()
    sec_app, sec_seen = counting()
    primary = BackendResponse(Payload(200, (("content-type", "application/json"),), b'{"ok":true}'))
    get = Request("GET", "/api/x")
    post = Request("POST", "/api/x", "", (("content-type", "application/json"),), b"{}")
    with serve(cand_app) as cand, serve(sec_app) as sec:
        db = tmp_path / "s.duckdb"
        run(
            db,
            cand.url,
            [("g", get, primary), ("p", post, primary)],
            secondary=sec.url,
            unsafe_methods=frozenset({"POST"}),
        )
    assert sorted(cand_seen) == ["GET", "POST"]
    assert sec_seen == ["GET"]
    stored = query(db, "SELECT method, secondary_status FROM exchanges ORDER BY method")
    assert stored == [("GET", 200), ("POST", None)]


def test_rows_the_store_cannot_take_are_spilled_counted_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """Any failure of a write (not only a locked file) keeps the flush loop alive."""
    from comparators import compare
    from shadow.model import Exchange
    from shadow.pipeline.records import exchange_row

    db = tmp_path / "s.duckdb"
    ok = BackendResponse(Payload(200, (("content-type", "application/json"),), b'{"a":1}'), 1.0)

    def row(key: str) -> Any:
        ex = Exchange(key, Request("GET", "/a"), ok, ok, "GET /a", time.time())
        return exchange_row(ex, compare(ok.payload, ok.payload), "t1")  # type: ignore[arg-type]

    async def go() -> Pipeline:
        p = Pipeline(
            PipelineSettings(db=str(db), candidate="http://127.0.0.1:9", run_id="t1",
                             compare_processes=0)
        )  # fmt: skip
        await p.start()
        p.writer.add(row("bad")._replace(ts="not a timestamp"))
        await p._flush()  # the batch fails in Arrow, not in DuckDB
        p.writer.add(row("good"))
        await p.close()
        return p

    p = asyncio.run(go())
    assert p.run.rows_spilled == 1
    assert query(db, "SELECT exchange_id FROM exchanges") == [("good",)]
    assert query(db, "SELECT rows_spilled, ended_at IS NOT NULL FROM runs") == [(1, True)]
    spilled = (tmp_path / "s.duckdb.unflushed-t1.jsonl").read_text().splitlines()
    assert len(spilled) == 1 and json.loads(spilled[0])["exchange_id"] == "bad"
