"""`shadow proxy --processes N`: N real mitmproxy processes on one port, one run, one store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import httpx
import pytest

from shadow.store.writer import reading
from tests.conftest import ROOT, Server, run_proxy, shadow_cmd, wait_until

pytestmark = pytest.mark.integration

N = 40


def test_two_processes_share_the_port_and_fold_into_one_run(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    db = tmp_path / "parity.duckdb"
    folder = Path(f"{db}.shards") / "two"  # shadow.live.processes.shard_folder
    with run_proxy(
        legacy.url, candidate.url, db, tmp_path, "--processes", "2", "--run-id", "two"
    ) as proxy:
        for i in range(N):
            # A new connection each time: the kernel spreads connections, not requests.
            with httpx.Client(timeout=10) as client:
                r = client.get(f"{proxy.url}/api/health", params={"n": i})
            assert r.status_code == 200

        def stored() -> list[int]:
            counts = []
            for k in (0, 1):
                shard = folder / f"p{k}.duckdb"
                if not shard.exists():
                    return []
                with reading(str(shard)) as con:
                    counts.append(con.execute("SELECT count(*) FROM exchanges").fetchone()[0])
            return counts if sum(counts) == N else []

        per_process = wait_until("every copy stored in a shard", stored, 30, every=0.5)
        assert all(per_process), f"both processes took connections: {per_process}"
        # Read live, the shards are one store already.
        with reading(str(folder)) as con:
            assert con.execute("SELECT count(*) FROM exchanges").fetchone()[0] == N
        out = proxy.stop()
        assert proxy.process.returncode == 0, out
    assert not os.path.exists(folder), "the shards are folded into --db and removed"
    with duckdb.connect(str(db), read_only=True) as con:
        runs = con.execute("SELECT run_id, requests, exchanges, requests_lost FROM runs").fetchall()
        queries = sorted(q for (q,) in con.execute("SELECT query FROM exchanges").fetchall())
    assert runs == [("two", N, N, 0)]
    assert queries == sorted(f"n={i}" for i in range(N))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--processes", "0"), "--processes 0: expected at least 1"),
        (("--processes", "2", "--metrics", "127.0.0.1:9464"), "--metrics with --processes > 1"),
    ],
)
def test_bad_process_options_are_one_line(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        shadow_cmd("proxy", "--primary", "http://127.0.0.1:9", "--candidate",
                   "http://127.0.0.1:9", "--db", str(tmp_path / "p.duckdb"), *args),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
