"""The real proxy (`shadow proxy` subprocess) between real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import Server, free_port, run_proxy, serve, shadow_cmd
from tests.integration.helpers import rows as _rows

pytestmark = pytest.mark.integration


def _strip_request_id(body: bytes) -> object:
    try:
        value = json.loads(body)
    except ValueError:
        return body
    if isinstance(value, dict):
        value.pop("requestId", None)
    return value


PATHS = [
    "/api/health",
    "/api/analysis/1",
    "/api/analysis/7?verbose=1",
    "/api/analysis/999",
    "/api/analysis/abc",
    "/api/insights",
    "/api/insights/3",
    "/api/reports",
    "/api/process-updates?since=2024-05-01T12:00:00.000Z",
]


def test_client_gets_primary_answer_and_exchanges_are_stored(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    db = tmp_path / "parity.duckdb"
    with run_proxy(legacy.url, candidate.url, db, tmp_path) as proxy:
        with httpx.Client(timeout=10) as client:
            for path in PATHS:
                for enc in ("identity", "gzip"):
                    headers = {"accept-encoding": enc, "authorization": "Bearer s3cr3t-token"}
                    via = client.get(proxy.url + path, headers=headers)
                    direct = client.get(legacy.url + path, headers=headers)
                    assert via.status_code == direct.status_code, path
                    assert via.headers.get("content-type") == direct.headers.get("content-type")
                    assert via.headers.get("content-encoding") == direct.headers.get(
                        "content-encoding"
                    )
                    # the legacy puts a fresh requestId in some bodies; all else is identical
                    assert _strip_request_id(via.content) == _strip_request_id(direct.content)
            post = client.post(proxy.url + "/api/start-analysis", json={"name": "x"})
            assert post.status_code in (201, 400)
        proxy.stop()
    assert proxy.process.returncode == 0, proxy.output

    rows = _rows(db, "SELECT endpoint, verdict, path, query FROM exchanges")
    assert len(rows) == len(PATHS) * 2 + 1
    by_endpoint: dict[str, set[str]] = {}
    for endpoint, verdict, _path, _query in rows:
        by_endpoint.setdefault(str(endpoint), set()).add(str(verdict))
    assert by_endpoint["GET /api/health"] == {"match"}
    assert by_endpoint["GET /api/insights"] == {"match"}
    assert "differ" in by_endpoint["GET /api/analysis/{id}"]
    assert by_endpoint["POST /api/start-analysis"] == {"skipped"}  # unsafe: not copied
    # query strings do not split endpoints
    assert not any("?" in e for e in by_endpoint)
    diffs = {
        (str(e), str(p)) for e, p in _rows(db, "SELECT DISTINCT endpoint, path FROM differences")
    }
    assert ("GET /api/analysis/{id}", "$.requestId") in diffs
    assert ("GET /api/insights/{id}", "$.confidenceScore") in diffs  # renamed field
    # equal instants in another ISO form are equal by default, and say so in notes
    notes = _rows(db, "SELECT notes FROM exchanges WHERE notes LIKE '%iso_instants%'")
    assert notes
    # without a configured route, 'abc' is not id-like: its own endpoint (400 vs 422)
    assert ("GET /api/analysis/abc", "$status") in diffs
    # secrets never reach the store
    dump = json.dumps(_rows(db, "SELECT * FROM exchanges"), default=str)
    assert "s3cr3t-token" not in dump
    assert "[REDACTED]" in dump
    runs = _rows(db, "SELECT copies_dropped, exchanges, ended_at FROM runs")
    assert runs[0][0] == 0 and runs[0][1] == len(rows) and runs[0][2] is not None


class _Hang:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[str]:
    h = _Hang()
    yield f"http://127.0.0.1:{h.port}"
    h.close()


@pytest.mark.parametrize("kind", ["down", "hangs"])
def test_failing_candidate_never_delays_or_changes_client_answers(
    kind: str, legacy: Server, hanging: str, tmp_path: Path
) -> None:
    cand = f"http://127.0.0.1:{free_port()}" if kind == "down" else hanging
    db = tmp_path / "p.duckdb"
    timeout = 3.0
    with run_proxy(legacy.url, cand, db, tmp_path, "--timeout", str(timeout)) as proxy:
        durations = []
        with httpx.Client(timeout=10) as client:
            for i in range(30):
                t0 = time.perf_counter()
                via = client.get(f"{proxy.url}/api/insights/{i % 12 + 1}")
                durations.append(time.perf_counter() - t0)
                direct = client.get(f"{legacy.url}/api/insights/{i % 12 + 1}")
                assert via.status_code == direct.status_code
                assert via.content == direct.content
        proxy.stop()
    # A candidate that hangs for `timeout` seconds must not show up in client latency.
    assert max(durations) < timeout / 3, durations
    verdicts = _rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY verdict")
    assert dict(verdicts) == {"candidate_error": 30}  # type: ignore[arg-type]
    errors = _rows(db, "SELECT DISTINCT candidate_error FROM exchanges")
    assert all(e[0] for e in errors)


def _echo_app() -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        data = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "mark": request.headers.get("x-shadow-copy"),
            "host": request.headers.get("host"),
            "body": body.decode(),
        }
        return Response(json.dumps(data), media_type="application/json")

    return Starlette(routes=[Route("/{p:path}", echo, methods=["GET", "POST", "PUT", "DELETE"])])


def test_copy_carries_mark_and_candidate_host_and_unsafe_needs_permission(
    tmp_path: Path,
) -> None:
    app = _echo_app()
    with serve(app) as primary, serve(app) as cand:
        db = tmp_path / "e.duckdb"
        with run_proxy(primary.url, cand.url, db, tmp_path, "--mirror-unsafe", "PUT") as proxy:
            with httpx.Client(timeout=10) as client:
                assert client.get(proxy.url + "/a/1?x=2").json()["mark"] is None
                client.put(proxy.url + "/a/1", content=b"payload")
                client.post(proxy.url + "/a/1", content=b"payload")
            proxy.stop()
    rows = _rows(db, "SELECT method, verdict, candidate_body FROM exchanges ORDER BY method")
    by_method = {r[0]: r for r in rows}
    assert by_method["POST"][1] == "skipped"
    get_seen = json.loads(str(by_method["GET"][2]))
    assert get_seen["mark"] == "1"
    assert get_seen["host"] == cand.url.removeprefix("http://")
    assert get_seen["query"] == "x=2"
    put_seen = json.loads(str(by_method["PUT"][2]))
    assert put_seen["body"] == "payload"
    # the echo differs only in host (and mark), so they are reported as such
    assert by_method["GET"][1] == "differ"


def test_report_runs_while_proxy_is_writing(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    db = tmp_path / "live.duckdb"
    out = tmp_path / "r.html"
    with run_proxy(legacy.url, candidate.url, db, tmp_path) as proxy:

        async def load(n: int) -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                await asyncio.gather(
                    *(client.get(f"{proxy.url}/api/analysis/{i % 40 + 1}") for i in range(n))
                )

        asyncio.run(load(60))
        time.sleep(1.5)  # a flush interval
        reports = []
        for _ in range(3):
            r = subprocess.run(
                shadow_cmd("report", "--db", str(db), "-o", str(out)),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 0, r.stderr
            reports.append(r.stdout)
            asyncio.run(load(40))
        proxy.stop()
    assert proxy.process.returncode == 0, proxy.output
    assert "exchanges" in reports[0]
    assert out.read_text().count("GET /api/analysis/{id}") >= 1
    total = _rows(db, "SELECT count(*) FROM exchanges")[0][0]
    assert total == 60 + 3 * 40  # nothing lost while reports read the file
