"""Plain `mitmdump -s shadow/live/addon.py` with a secondary: noise caught without any rule."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shadow.store.writer import reading
from tests.conftest import ROOT, Server, free_port, serve, wait_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secondary() -> Iterator[Server]:
    from examples.legacy.app import app

    with serve(app) as s:
        yield s


@contextlib.contextmanager
def mitmdump(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    exe = Path(sys.executable).with_name("mitmdump")
    cmd = [str(exe), "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port), *args]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_port(port, 30)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_secondary_marks_request_id_as_noise_and_keeps_real_slip(
    legacy: Server, candidate: Server, secondary: Server, tmp_path: Path
) -> None:
    db = tmp_path / "noise.duckdb"
    config = tmp_path / "shadow.toml"  # keep the datetime slip visible (see examples/)
    config.write_text("[compare]\nnormalize = { iso_instants = false }\n")
    args = [
        "-s", str(ROOT / "shadow" / "live" / "addon.py"),
        "--mode", f"reverse:{legacy.url}",
        "--set", f"confdir={tmp_path / 'mitm'}",
        "--set", f"shadow_candidate={candidate.url}",
        "--set", f"shadow_secondary={secondary.url}",
        "--set", f"shadow_db={db}",
        "--set", f"shadow_config={config}",
    ]  # fmt: skip
    with mitmdump(*args) as (url, proc), httpx.Client(timeout=10) as client:
        for i in range(30):
            r = client.get(f"{url}/api/analysis/{i % 40 + 1}")
            assert r.status_code == 200
            assert client.get(f"{url}/api/health").status_code == 200
    assert proc.returncode == 0
    with reading(str(db)) as con:  # the judged statuses and verdicts, as readers see them
        statuses = dict(
            con.execute(
                "SELECT path, string_agg(DISTINCT status, ',') "
                "FROM shadow_difference_outcomes(NULL) "
                "WHERE endpoint = 'GET /api/analysis/1' OR endpoint LIKE 'GET /api/analysis/%' "
                "GROUP BY path"
            ).fetchall()
        )
        noise = con.execute(
            "SELECT DISTINCT cluster_path FROM noise_differences WHERE path = '$.requestId'"
        ).fetchall()
        verdicts = dict(
            con.execute(
                "SELECT endpoint, string_agg(DISTINCT verdict, ',') "
                "FROM shadow_exchange_outcomes(NULL) GROUP BY 1"
            ).fetchall()
        )
        secondary_seen = con.execute(
            "SELECT count(*) FROM exchanges WHERE secondary_status = 200"
        ).fetchone()
    assert statuses["$.requestId"] == "noise"  # nondeterministic in the legacy itself
    assert statuses["$.createdAt"] == "real"  # the seeded migration slip stays real
    assert noise == [("$.requestId",)]
    assert verdicts["GET /api/health"] == "match"
    assert "differ" in next(v for k, v in verdicts.items() if k.startswith("GET /api/analysis"))
    assert secondary_seen is not None and secondary_seen[0] == 60
