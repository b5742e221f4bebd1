"""The primary dies mid-run: clients get 502s or closed connections, nothing hangs.

Each request the proxy saw is accounted; those it answered with an error are rows
carrying the primary's error.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.conftest import UvicornThread, free_port, run_proxy, serve, wait_port
from tests.faults.faultkit import (
    Load,
    accounting,
    app,
    stop,
    stored_paths,
    wait_ready,
)
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

RATE = 40.0
LOAD_SECONDS = 5.0
DIES_AFTER = 2.0  # seconds into the load
SLOWEST = 5.0  # seconds any request may take: a refused primary is answered 502 at once


async def _item(request: Request) -> JSONResponse:
    return JSONResponse({"n": int(request.path_params["n"]), "kind": "item"})


APP = app({"/api/item/{n:int}": _item})


def test_primary_dying_mid_load_is_accounted_and_nothing_hangs(tmp_path: Path) -> None:
    db = tmp_path / "dies.duckdb"
    port = free_port()
    primary = UvicornThread(APP, port)
    primary.start()
    wait_port(port)
    try:
        with (
            serve(APP) as cand,
            run_proxy(f"http://127.0.0.1:{port}", cand.url, db, tmp_path) as proxy,
        ):
            wait_ready(db)
            load = Load(proxy.url, RATE, int(RATE * LOAD_SECONDS), LOAD_SECONDS).start()
            time.sleep(max(0.0, load.t0 + DIES_AFTER - time.monotonic()))
            primary.stop()  # uvicorn's shutdown: no more connections, answers in flight end
            t_dead = time.monotonic()
            sent = load.join(LOAD_SECONDS + 30)
            elapsed = stop(proxy)
    finally:
        primary.stop()
    answered = [s for s in sent if s.answered]
    bad_gateway = [s for s in answered if s.status == 502]
    print(
        f"primary died: {len(sent)} sent, {len(answered)} answered, {len(bad_gateway)} 502s, "
        f"stop {elapsed:.1f} s"
    )
    assert proxy.process.returncode == 0, proxy.output
    # Nothing hangs: neither the clients nor the proxy's stop.
    assert max(s.ended - s.started for s in sent) < SLOWEST
    assert elapsed < 30, elapsed
    assert {s.status for s in answered} <= {200, 502}
    assert all(s.status == 200 for s in answered if s.ended < t_dead - 1.0)
    after = [s for s in sent if s.started > t_dead + 0.5]
    assert len(after) >= RATE  # the load went on after the primary died...
    # ...and got errors: a 502 on a connection the proxy had open, then closed
    # connections (mitmproxy connects to the primary as a client connects: refused,
    # it closes the client's connection before reading a request).
    assert all(s.status in (502, None) for s in after)
    assert bad_gateway

    acc = accounting(db)
    acc.check()
    assert acc.requests_lost == 0, acc
    # Every answered request was counted, and nothing that no client sent.
    assert len(answered) <= acc.requests <= len(sent), (acc, len(answered), len(sent))
    assert {s.path for s in answered} <= stored_paths(db)
    # A 502 the proxy made is stored with the primary's error (and no primary status).
    failed = {
        str(path)
        for path, status in rows(
            db, "SELECT path, primary_status FROM exchanges WHERE primary_error IS NOT NULL"
        )
        if status is None
    }
    assert {s.path for s in bad_gateway} <= failed
    assert len(failed) <= len(sent) - len(answered) + len(bad_gateway)
