"""A real nginx mirrors to two real `shadow sink`s: every request compared exactly once."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import ROOT, serve, shadow_cmd
from tests.integration.sink_helpers import json_app, nginx_binary, run_nginx, run_sink

pytestmark = pytest.mark.integration

N = 40
SLOW = 0.6  # seconds the candidate takes: a client of nginx must never wait for it


def test_nginx_mirrors_to_two_sinks_each_request_compared_once(tmp_path: Path) -> None:
    nginx_binary()
    shards = tmp_path / "shards"
    shards.mkdir()
    with (
        serve(json_app()) as primary,
        serve(json_app(delay=SLOW, differ_on="/api/b/")) as candidate,
        run_sink(primary.url, candidate.url, shards / "a.duckdb", "--run-id", "mirror-1") as a,
        run_sink(primary.url, candidate.url, shards / "b.duckdb", "--run-id", "mirror-1") as b,
        run_nginx(tmp_path / "nginx", primary.port, [a.port, b.port]) as port,
    ):
        slowest = 0.0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for i in range(N):
                kind = "b" if i % 4 == 0 else "a"
                t0 = time.monotonic()
                r = client.get(f"/api/{kind}/{i}", params={"n": i})
                slowest = max(slowest, time.monotonic() - t0)
                assert r.status_code == 200 and r.json()["engine"] == "legacy"
        # The client got the primary's answer without waiting for the slow candidate.
        assert slowest < SLOW, f"a client waited {slowest:.2f} s: nginx waited for the sink"
        time.sleep(SLOW * 2)  # the last copies reach the candidate
        assert a.stop() == 0, a.output
        assert b.stop() == 0, b.output
    per_shard = []
    for shard in ("a", "b"):
        with duckdb.connect(str(shards / f"{shard}.duckdb"), read_only=True) as con:
            per_shard.append(con.execute("SELECT query FROM exchanges").fetchall())
    assert all(per_shard), "round robin: both sinks got some of the mirrored requests"
    queries = sorted(q for rows in per_shard for (q,) in rows)
    assert queries == sorted(f"n={i}" for i in range(N)), "each request once, across shards"

    # The readers take both shards as one store: one run, every request compared once.
    check = subprocess.run(
        shadow_cmd("check", "--db", str(shards / "*.duckdb"), "--min-samples", "1",
                   "--min-parity", "0", "--max-candidate-errors", "100"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "GET /api/a/" in check.stdout or "GET /api/a/{id}" in check.stdout, check.stdout
    report = subprocess.run(
        shadow_cmd("report", "--db", str(shards), "-o", str(tmp_path / "r.html")),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    strict = subprocess.run(
        shadow_cmd("check", "--db", str(shards), "--min-samples", "1"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert strict.returncode == 1, "the /api/b/ answers differ: parity below 100 %"
    from shadow.store.writer import reading

    with reading(str(shards)) as con:
        runs = con.execute("SELECT run_id, requests, exchanges, requests_shed FROM runs").fetchall()
        verdicts = dict(
            con.execute(
                "SELECT verdict, count(*) FROM shadow_exchange_outcomes(NULL) GROUP BY ALL"
            ).fetchall()
        )
    assert runs == [("mirror-1", N, N, 0)]
    assert verdicts == {"match": N - N // 4, "differ": N // 4}
