"""Our own delay in a copy's latency: loop stalls (LoopLag) and copies paced and marked."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from comparators.model import Payload
from shadow.model import BackendResponse, Request
from shadow.pipeline.core import Pipeline, PipelineSettings
from shadow.pipeline.lag import TICK, LoopLag
from tests.conftest import serve
from tests.shadow.pipeline.test_pipeline import query

OK = BackendResponse(Payload(200, (("content-type", "application/json"),), b'{"ok":true}'), 1.0)


def test_a_stall_during_a_flight_is_seen_and_one_before_it_is_not() -> None:
    async def go() -> tuple[float, float, float]:
        lag = LoopLag()
        lag.start()
        await asyncio.sleep(3 * TICK)
        time.sleep(0.25)  # blocks the loop: a stall before the flight below starts
        await asyncio.sleep(0.1)  # the monitor notes it
        start = time.monotonic()
        await asyncio.sleep(0.05)
        quiet = lag.worst(start)
        start = time.monotonic()
        time.sleep(0.2)  # a stall while "in flight"
        during = lag.worst(start)  # measured before the monitor could wake: still counted
        await asyncio.sleep(0)  # the monitor wakes in the iteration that reads an answer
        await asyncio.sleep(0)
        after = lag.worst(start)
        lag.stop()
        return quiet, during, after

    quiet, during, after = asyncio.run(go())
    assert quiet < 0.2  # the 250 ms stall before the flight is not charged to it
    assert during >= 0.19
    assert after >= 0.19


def test_a_stall_while_the_backend_works_is_not_charged() -> None:
    """Only the ends of a timing can be held back by us: the write after `sent`, and the
    read of the answer. A stall in between delays neither."""

    async def go() -> tuple[float, float]:
        lag = LoopLag()
        lag.start()
        await asyncio.sleep(3 * TICK)
        sent = time.monotonic()
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # mid-flight
        await asyncio.sleep(0.1)
        middle = lag.worst(sent)
        sent = time.monotonic()
        time.sleep(0.15)  # right after the send: the write waited for it
        await asyncio.sleep(0.1)
        at_send = lag.worst(sent)
        lag.stop()
        return middle, at_send

    middle, at_send = asyncio.run(go())
    assert middle < 0.15
    assert at_send >= 0.14


def test_the_recent_worst_stall_is_read_by_any_number_of_readers() -> None:
    """The gauge is the worst stall of a recent window: reading it changes nothing, so a
    second scraper (`shadow status` beside Prometheus) sees the same figure."""

    async def go() -> tuple[float, float, float]:
        lag = LoopLag()
        lag.start()
        await asyncio.sleep(2 * TICK)
        time.sleep(0.1)
        await asyncio.sleep(3 * TICK)
        first, again = lag.stalls.worst(5.0), lag.stalls.worst(5.0)
        await asyncio.sleep(0.2)
        later = lag.stalls.worst(0.1)  # the stall is older than this window
        lag.stop()
        return first, again, later

    first, again, later = asyncio.run(go())
    assert first >= 0.09
    assert again == first
    assert later < 0.09


def _recording_app() -> tuple[Starlette, list[tuple[str, float]]]:
    seen: list[tuple[str, float]] = []

    async def handle(request: StarletteRequest) -> JSONResponse:
        seen.append((request.path_params["n"], time.time()))
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/x/{n}", handle)]), seen


def test_copies_keep_the_clients_spacing_and_late_ones_are_marked(tmp_path: Path) -> None:
    """Requests handed over in one batch go out `pace` after they reached the proxy, as
    spaced as they came; one handed over long after its time goes out at once, and its
    lag says so (and keeps it out of latency comparisons)."""
    app, seen = _recording_app()
    db = tmp_path / "p.duckdb"
    with serve(app) as cand:

        async def go() -> float:
            p = Pipeline(
                PipelineSettings(
                    db=str(db), candidate=cand.url, run_id="p1", compare_processes=0, pace=0.3
                )
            )
            await p.start()
            now = time.time()
            # One batch: three requests that reached the proxy 0.1 s apart (the last just
            # now), and one that
            # reached it 2 s ago (the worker was behind).
            for i in range(3):
                p.on_request(f"k{i}", Request("GET", f"/x/{i}"), now - 0.2 + 0.1 * i)
            p.on_request("late", Request("GET", "/x/late"), now - 2.0)
            await asyncio.sleep(0.8)
            for key in ("k0", "k1", "k2", "late"):
                p.on_primary(key, OK)
            await p.close()
            return now

        t0 = asyncio.run(go())
    arrived = dict(seen)
    assert arrived["late"] - t0 < 0.25  # not held back: it was due long ago
    gaps = [arrived[str(i + 1)] - arrived[str(i)] for i in range(2)]
    assert all(0.07 < g < 0.2 for g in gaps), gaps  # the clients' spacing, not a burst
    assert arrived["0"] - t0 > 0.05  # sent `pace` after it reached the proxy, not at once
    lags = dict(query(db, "SELECT path, lag_ms FROM exchanges"))
    assert lags["/x/late"] >= 1650  # 2 s ago, due 0.3 s after: 1.7 s late
    usable = dict(query(db, "SELECT path, shadow_latency_usable(lag_ms) FROM exchanges"))
    assert usable["/x/late"] is False
    assert all(lags[f"/x/{i}"] is not None for i in range(3))


def test_replays_are_not_paced(tmp_path: Path) -> None:
    """Without `pace` (a replay) a copy goes out at once, whatever its recorded time."""
    app, seen = _recording_app()
    db = tmp_path / "r.duckdb"
    with serve(app) as cand:

        async def go() -> float:
            p = Pipeline(
                PipelineSettings(db=str(db), candidate=cand.url, run_id="r1", compare_processes=0)
            )
            await p.start()
            now = time.time()
            p.on_request("old", Request("GET", "/x/old"), time.time() - 3600)
            p.on_request("new", Request("GET", "/x/new"), time.time() + 5)
            await asyncio.sleep(0.3)
            p.on_primary("old", OK)
            p.on_primary("new", OK)
            await p.close()
            return now

        t0 = asyncio.run(go())
    assert all(t - t0 < 0.3 for _, t in seen), seen
    lags = [r[0] for r in query(db, "SELECT lag_ms FROM exchanges")]
    assert all(lag is not None and lag < 3600_000 for lag in lags)  # stalls only, no lateness


def test_a_slow_upload_is_not_our_delay(tmp_path: Path) -> None:
    """The copy is paced from when the proxy passed the request on (`sent_at`), not from
    when the client began to send it: a body that took 2 s to arrive is not lag."""
    app, _ = _recording_app()
    db = tmp_path / "u.duckdb"
    with serve(app) as cand:

        async def go() -> None:
            p = Pipeline(
                PipelineSettings(
                    db=str(db), candidate=cand.url, run_id="u1", compare_processes=0, pace=0.05
                )
            )
            await p.start()
            now = time.time()
            p.on_request("slow", Request("GET", "/x/slow"), now - 2.0, sent_at=now)
            p.on_request("old", Request("GET", "/x/old"), now - 2.0)  # no sent_at: as before
            await asyncio.sleep(0.3)
            p.on_primary("slow", OK)
            p.on_primary("old", OK)
            await p.close()

        asyncio.run(go())
    lags = dict(query(db, "SELECT path, lag_ms FROM exchanges"))
    assert lags["/x/slow"] < 100
    assert lags["/x/old"] > 1500
