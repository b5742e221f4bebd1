"""Memory is bounded by bytes: bodies over --max-body, and the worker's --worker-memory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shadow.store.writer import reading
from tests.conftest import run_proxy, serve
from tests.faults.faultkit import accounting, app, stop
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
BIG = random.Random(9).randbytes(MIB)
OTHER = BIG[:-1] + bytes([BIG[-1] ^ 1])  # differs in the last byte only, past any cut
MAX_BODY = 64 * 1024


def _apps(candidate_hits: list[tuple[str, int]]) -> tuple[object, object]:
    async def big(request: Request) -> Response:
        return Response(BIG, media_type="application/octet-stream")

    async def big_candidate(request: Request) -> Response:
        same = request.path_params["kind"] == "same"
        return Response(BIG if same else OTHER, media_type="application/octet-stream")

    async def upload(request: Request) -> JSONResponse:
        return JSONResponse({"received": len(await request.body())})

    async def upload_candidate(request: Request) -> JSONResponse:
        body = await request.body()
        candidate_hits.append((request.url.path, len(body)))
        return JSONResponse({"received": len(body)})

    primary = app({"/big/{kind}": big, "/up/{name}": upload})
    candidate = app({"/big/{kind}": big_candidate, "/up/{name}": upload_candidate})
    return primary, candidate


def test_bodies_over_max_body_compared_by_digest_and_long_requests_not_copied(
    tmp_path: Path,
) -> None:
    db = tmp_path / "big.duckdb"
    hits: list[tuple[str, int]] = []
    primary_app, candidate_app = _apps(hits)
    answered = 0
    options = ("--max-body", "64k", "--mirror-unsafe", "POST")
    with (
        serve(primary_app) as primary,
        serve(candidate_app) as cand,
        run_proxy(primary.url, cand.url, db, tmp_path, *options) as proxy,
        httpx.Client(timeout=30, trust_env=False) as client,
    ):
        for i in range(2):
            for kind in ("same", "differ"):
                resp = client.get(f"{proxy.url}/big/{kind}?i={i}")
                assert resp.status_code == 200 and resp.content == BIG  # the client's, whole
                answered += 1
            long = client.post(f"{proxy.url}/up/long{i}", content=b"x" * (MAX_BODY + 1))
            short = client.post(f"{proxy.url}/up/short{i}", content=b"y" * 1000)
            assert long.json() == {"received": MAX_BODY + 1}
            assert short.json() == {"received": 1000}
            answered += 2
        stop(proxy)
    assert proxy.process.returncode == 0, proxy.output
    acc = accounting(db)
    acc.check(answered=answered)
    assert acc.rows == answered

    with reading(str(db)) as con:
        outcomes = con.execute(
            "SELECT path, verdict, skip_reason FROM shadow_exchange_outcomes(NULL)"
        ).fetchall()
    by_path: dict[str, set[tuple[str, str | None]]] = {}
    for path, verdict, skip in outcomes:
        by_path.setdefault(str(path), set()).add((str(verdict), skip))
    assert by_path["/big/same"] == {("match", None)}
    assert by_path["/big/differ"] == {("differ", None)}
    reason = f"request body over {MAX_BODY} bytes: not copied"
    for i in range(2):
        assert by_path[f"/up/long{i}"] == {("skipped", reason)}
        assert by_path[f"/up/short{i}"] == {("match", None)}
    # The candidate got the short POSTs (so a copied long one would show) and never a long one.
    assert sorted(hits) == [("/up/short0", 1000), ("/up/short1", 1000)]

    diffs = rows(
        db,
        "SELECT d.path, d.primary_value, d.candidate_value, e.notes FROM differences d "
        "JOIN exchanges e USING (exchange_id) WHERE e.path = '/big/differ'",
    )
    assert len(diffs) == 2  # one `$body` difference per exchange, nothing else
    for path, primary_value, candidate_value, notes in diffs:
        assert path == "$body"
        for value, body in ((primary_value, BIG), (candidate_value, OTHER)):
            fingerprint = json.loads(value)
            assert fingerprint["length"] == MIB, value
            assert fingerprint["sha256"] == hashlib.sha256(body).hexdigest(), value
        assert "length and SHA-256" in str(notes)


BURST = 24
POST_BODY = 64 * 1024
BUDGET = 256 * 1024


def test_worker_memory_budget_skips_and_counts_copies(tmp_path: Path) -> None:
    db = tmp_path / "budget.duckdb"
    copies: list[int] = []

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"received": len(await request.body())})

    async def slow(request: Request) -> JSONResponse:
        copies.append(len(await request.body()))
        await asyncio.sleep(1.0)
        return JSONResponse({"received": copies[-1]})

    async def burst(url: str) -> int:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            posts = [
                client.post(f"{url}/up/{i}", content=bytes([i]) * POST_BODY) for i in range(BURST)
            ]
            answers = await asyncio.gather(*posts)
        assert all(a.json() == {"received": POST_BODY} for a in answers)
        return len(answers)

    options = ("--worker-memory", "256k", "--mirror-unsafe", "POST")
    with (
        serve(app({"/up/{n}": echo})) as primary,
        serve(app({"/up/{n}": slow})) as cand,
        run_proxy(primary.url, cand.url, db, tmp_path, *options) as proxy,
    ):
        answered = asyncio.run(burst(proxy.url))
        stop(proxy)
    assert proxy.process.returncode == 0, proxy.output
    acc = accounting(db)
    acc.check(answered=answered)
    assert acc.requests_lost == 0
    found = rows(db, "SELECT skip_reason, count(*) FROM exchanges GROUP BY ALL")
    by_reason = {reason: int(n) for reason, n in found}
    dropped = by_reason.pop(f"dropped: worker memory budget full ({BUDGET} bytes)", 0)
    # A copy holds its 64 KiB request until the slow candidate answers: about
    # BUDGET / POST_BODY fit at once, the rest of the burst is skipped.
    assert 1 <= dropped <= BURST - 1, found
    assert by_reason == {None: BURST - dropped}, found
    assert acc.copies_dropped == dropped
    assert len(copies) == BURST - dropped  # skipped copies never reach the candidate
