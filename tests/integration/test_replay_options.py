"""`shadow replay` control options, the run it stores and the summary it prints.

The backends here are small Starlette apps on real uvicorn servers that log
every request they get (time, method, path, body, headers) and how many were
in flight at once, so each option is checked where it acts: at the backends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from comparators.model import Payload
from shadow.model import Request
from shadow.pipeline.recording import RedactingRecorder, open_recorder
from tests.conftest import ROOT, Server, serve, shadow_cmd
from tests.integration.helpers import replay as _replay
from tests.integration.helpers import rows as _rows

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    at: float


@dataclass
class Backend:
    server: Server
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self) -> None:
        self.seen.clear()
        self.max_in_flight = 0


def _answer(method: str, path: str) -> bytes:
    return json.dumps({"method": method, "path": path}).encode()


def _app(backend: Backend, delay: float, tokens: tuple[str, ...]) -> Starlette:
    async def handle(request: StarletteRequest) -> Response:
        backend.in_flight += 1
        backend.max_in_flight = max(backend.max_in_flight, backend.in_flight)
        body = await request.body()
        backend.seen.append(
            Seen(
                request.method,
                request.url.path,
                body,
                dict(request.headers),
                time.monotonic(),
            )
        )
        try:
            if request.url.path.startswith("/slow/"):
                await asyncio.sleep(delay)
            private = request.url.path.startswith("/private/")
            if private and request.headers.get("authorization") not in tokens:
                return Response(b'{"error": "no"}', 401, media_type="application/json")
            return Response(
                _answer(request.method, request.url.path), media_type="application/json"
            )
        finally:
            backend.in_flight -= 1

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
    return Starlette(routes=[Route("/{p:path}", handle, methods=methods)])


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[Backend, Backend]]:
    """(primary, candidate): each accepts its own token on /private/..."""
    primary = Backend(Server("", 0))
    cand = Backend(Server("", 0))
    with (
        serve(_app(primary, 0.1, ("Bearer primary-token",))) as p,
        serve(_app(cand, 0.1, ("Bearer candidate-token",))) as c,
    ):
        primary.server, cand.server = p, c
        yield primary, cand


@pytest.fixture
def primary(backends: tuple[Backend, Backend]) -> Backend:
    backends[0].reset()
    return backends[0]


@pytest.fixture
def cand(backends: tuple[Backend, Backend]) -> Backend:
    backends[1].reset()
    return backends[1]


def _line(method: str, path: str, body: str | None = None, answer: bytes | None = None) -> str:
    """One JSON Lines entry whose recorded answer is what the backends answer (or `answer`)."""
    obj: dict[str, Any] = {
        "method": method,
        "url": f"http://recorded.example{path}",
        "headers": [["accept", "application/json"]],
        "response": {
            "status": 200,
            "headers": [["content-type", "application/json"]],
            "body": (answer or _answer(method, path.partition("?")[0])).decode(),
        },
    }
    if body is not None:
        obj["body"] = body
        obj["headers"].append(["content-type", "application/json"])
    return json.dumps(obj)


def _traffic(tmp: Path, lines: list[str], name: str = "t.jsonl") -> Path:
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _ok(*args: str) -> subprocess.CompletedProcess[str]:
    r = _replay(*args)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    return r


# -- pacing ------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("with_primary", [False, True], ids=["recorded", "primary"])
def test_concurrency_bounds_requests_in_flight(
    concurrency: int, with_primary: bool, primary: Backend, cand: Backend, tmp_path: Path
) -> None:
    path = _traffic(tmp_path, [_line("GET", f"/slow/{i}") for i in range(16)])
    extra = ["--primary", primary.url] if with_primary else []
    db = str(tmp_path / "c.duckdb")
    r = _ok(
        str(path), "--candidate", cand.url, *extra, "--db", db, "--concurrency", str(concurrency)
    )
    assert len(cand.seen) == 16
    assert cand.max_in_flight == concurrency  # reached, never passed
    if with_primary:
        assert len(primary.seen) == 16 and primary.max_in_flight == concurrency
    else:
        assert primary.seen == []  # recorded answers stand for the primary's
    assert "compared 16: matched 16, differed 0" in r.stdout


def test_rate_spreads_requests_over_time(cand: Backend, tmp_path: Path) -> None:
    path = _traffic(tmp_path, [_line("GET", f"/fast/{i}") for i in range(20)])
    db = str(tmp_path / "r.duckdb")
    t0 = time.monotonic()
    _ok(str(path), "--candidate", cand.url, "--db", db, "--rate", "20")
    took = time.monotonic() - t0
    arrivals = [s.at for s in cand.seen]
    assert len(arrivals) == 20
    spread = max(arrivals) - min(arrivals)
    assert spread >= 0.9, spread  # 20 requests at 20/s: the 20th 0.95 s after the first
    assert spread < 3.0 and took < 30, (spread, took)  # bounded
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    assert gaps[len(gaps) // 2] >= 0.03, gaps  # evenly paced, not a burst then a wait

    cand.reset()
    _ok(str(path), "--candidate", cand.url, "--db", db, "--concurrency", "20")
    arrivals = [s.at for s in cand.seen]
    assert max(arrivals) - min(arrivals) < 0.5  # without --rate: as fast as it goes


# -- selection ---------------------------------------------------------------------------


def test_sample_is_a_seeded_fraction(cand: Backend, tmp_path: Path) -> None:
    path = _traffic(tmp_path, [_line("GET", f"/item/{i}") for i in range(200)])
    db = tmp_path / "s.duckdb"
    picked: dict[str, set[str]] = {}
    for run, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        r = _ok(
            str(path), "--candidate", cand.url, "--db", str(db), "--run-id", run,
            "--sample", "0.25", "--seed", seed,
        )  # fmt: skip
        rows = _rows(db, "SELECT path FROM exchanges WHERE run_id = ?", [run])
        picked[run] = {str(p) for (p,) in rows}
        n = len(picked[run])
        assert 25 <= n <= 75, n
        assert f"sent {n}," in r.stdout and f"filtered out {200 - n}," in r.stdout
    assert len(cand.seen) == sum(len(p) for p in picked.values())
    assert picked["a"] == picked["b"]  # same seed, same requests
    assert picked["a"] != picked["c"]


def test_method_path_and_limit(cand: Backend, tmp_path: Path) -> None:
    lines = []
    for i in range(10):
        lines += [
            _line("GET", f"/api/a/{i}?q={i}"),
            _line("GET", f"/api/b/{i}"),
            _line("HEAD", f"/api/a/h{i}"),
            _line("DELETE", f"/api/a/{i}"),
        ]
    lines.append('{"method": "GET", "this entry": "is bad, but after the limit"}')
    path = _traffic(tmp_path, lines)
    db = str(tmp_path / "m.duckdb")
    r = _ok(
        str(path), "--candidate", cand.url, "--db", db, "--run-id", "lim",
        "--method", "get", "--method", "HEAD", "--path", "/api/a/*", "--limit", "5",
    )  # fmt: skip
    got = [(s.method, s.path) for s in cand.seen]
    assert sorted(got) == sorted(
        [("GET", "/api/a/0"), ("HEAD", "/api/a/h0"), ("GET", "/api/a/1"),
         ("HEAD", "/api/a/h1"), ("GET", "/api/a/2")]
    )  # fmt: skip
    assert "sent 5," in r.stdout
    # the globs match the path only; several --path options add up
    cand.reset()
    _ok(
        str(path), "--candidate", cand.url, "--db", db, "--method", "GET",
        "--path", "/api/b/[0-2]", "--path", "/api/a/9", "--limit", "100", "--skip-bad",
    )  # fmt: skip
    assert sorted(s.path for s in cand.seen) == ["/api/a/9", "/api/b/0", "/api/b/1", "/api/b/2"]
    # --limit 0 sends nothing and does not even read the file
    cand.reset()
    r = _ok(str(path), "--candidate", cand.url, "--db", db, "--limit", "0")
    assert cand.seen == [] and "read 0 entries: sent 0" in r.stdout


# -- unsafe methods ----------------------------------------------------------------------


def _unsafe_traffic(tmp: Path) -> Path:
    return _traffic(
        tmp,
        [
            _line("GET", "/w/1"),
            _line("POST", "/w/2", body='{"n": 2}'),
            _line("PUT", "/w/3", body='{"n": 3}'),
            _line("DELETE", "/w/4"),
        ],
    )


def test_unsafe_methods_are_sent_nowhere_by_default(
    primary: Backend, cand: Backend, tmp_path: Path
) -> None:
    path = _unsafe_traffic(tmp_path)
    db = tmp_path / "u.duckdb"
    r = _ok(str(path), "--candidate", cand.url, "--primary", primary.url, "--db", str(db))
    assert [(s.method, s.path) for s in cand.seen] == [("GET", "/w/1")]
    assert [(s.method, s.path) for s in primary.seen] == [("GET", "/w/1")]  # not even there
    assert "skipped 3 (unsafe method 3" in r.stdout
    rows = _rows(db, "SELECT method, verdict, skip_reason FROM exchanges ORDER BY path")
    assert [(m, v) for m, v, _ in rows] == [
        ("GET", "match"), ("POST", "skipped"), ("PUT", "skipped"), ("DELETE", "skipped")
    ]  # fmt: skip
    assert all("unsafe" in str(reason) for _m, v, reason in rows if v == "skipped")


def test_mirror_unsafe_and_endpoint_config_allow_them(
    primary: Backend, cand: Backend, tmp_path: Path
) -> None:
    path = _unsafe_traffic(tmp_path)
    db = tmp_path / "u.duckdb"
    config = tmp_path / "shadow.toml"
    config.write_text('[[endpoints]]\nroute = "/w/{id}"\nmethods = ["PUT"]\nmirror_unsafe = true\n')
    r = _ok(
        str(path), "--candidate", cand.url, "--primary", primary.url, "--db", str(db),
        "--mirror-unsafe", "POST", "--config", str(config),
    )  # fmt: skip
    for backend in (primary, cand):
        got = sorted((s.method, s.path, s.body) for s in backend.seen)
        assert got == [
            ("GET", "/w/1", b""), ("POST", "/w/2", b'{"n": 2}'), ("PUT", "/w/3", b'{"n": 3}')
        ]  # fmt: skip
    assert "sent 3, skipped 1 (unsafe method 1" in r.stdout  # DELETE: still not allowed
    verdicts = dict(_rows(db, "SELECT method, verdict FROM exchanges"))
    assert verdicts == {"GET": "match", "POST": "match", "PUT": "match", "DELETE": "skipped"}
    options = json.loads(_rows(db, "SELECT options FROM runs")[0][0])
    assert options["mirror_unsafe"] == ["POST"]


# -- headers -----------------------------------------------------------------------------


def test_headers_replace_a_redacted_authorization(
    primary: Backend, cand: Backend, tmp_path: Path
) -> None:
    # a recording as the proxy writes it: the real token is gone
    path = tmp_path / "rec.jsonl"
    recorder = RedactingRecorder(open_recorder(str(path)), "http://legacy.internal")
    for i in range(3):
        req = Request("GET", f"/private/{i}", "", (("Authorization", "Bearer user-token"),))
        recorder.add(req, Payload(200, (), _answer("GET", f"/private/{i}")), None, 1.0)
    recorder.close()
    assert b"user-token" not in path.read_bytes()

    db = tmp_path / "h.duckdb"
    _ok(str(path), "--candidate", cand.url, "--primary", primary.url, "--db", str(db),
        "--run-id", "plain")  # fmt: skip
    assert {s.headers["authorization"] for s in cand.seen} == {"[REDACTED]"}
    assert _rows(db, "SELECT DISTINCT primary_status, candidate_status FROM exchanges") == [
        (401, 401)
    ]

    cand.reset()
    primary.reset()
    r = _ok(
        str(path), "--candidate", cand.url, "--primary", primary.url, "--db", str(db),
        "--run-id", "auth", "--candidate-header", "Authorization: Bearer candidate-token",
        "--primary-header", "authorization: Bearer primary-token",
    )  # fmt: skip
    assert "compared 3: matched 3" in r.stdout
    for backend, token in ((cand, "Bearer candidate-token"), (primary, "Bearer primary-token")):
        assert len(backend.seen) == 3
        for s in backend.seen:
            assert s.headers["authorization"] == token  # replaced, not added beside it
    rows = _rows(
        db,
        "SELECT primary_status, candidate_status, request_headers FROM exchanges "
        "WHERE run_id = 'auth'",
    )
    assert {(p, c) for p, c, _ in rows} == {(200, 200)}
    # the override values are never stored; the run keeps only their names
    everything = json.dumps(_rows(db, "SELECT * FROM exchanges"), default=str) + json.dumps(
        _rows(db, "SELECT * FROM runs"), default=str
    )
    assert "candidate-token" not in everything and "primary-token" not in everything
    options = json.loads(_rows(db, "SELECT options FROM runs WHERE run_id = 'auth'")[0][0])
    assert options["candidate_header_names"] == ["Authorization"]
    assert options["primary_header_names"] == ["authorization"]


# -- the run and the summary -------------------------------------------------------------


def test_run_row_and_summary(cand: Backend, tmp_path: Path) -> None:
    lines = [_line("GET", f"/s/{i}") for i in range(6)]
    lines[2] = _line("GET", "/s/2", answer=_answer("GET", "/other"))  # will differ
    lines.append(_line("POST", "/s/post", body="{}"))
    path = _traffic(tmp_path, lines, "summary.jsonl")
    db = tmp_path / "run.duckdb"
    before = time.time()
    r = _ok(
        str(path), "--candidate", cand.url, "--db", str(db), "--run-id", "sum1",
        "--concurrency", "3", "--rate", "100", "--timeout", "7",
    )  # fmt: skip
    after = time.time()
    out = r.stdout
    for word in ("sent 6", "compared 6", "matched 5", "differed 1", "errors 0", "skipped 1"):
        assert word in out, (word, out)
    assert out.strip().splitlines()[-1] == (
        f"run sum1 stored in {db}; next: shadow report --db {db} --run sum1"
    )
    ((source, started, ended, prim, candidate_url, options, n),) = _rows(
        db,
        "SELECT source, epoch(started_at), epoch(ended_at), primary_url, candidate_url, "
        "options, exchanges FROM runs",
    )
    assert source == f"replay:{path}"
    assert before - 1 <= started <= ended <= after + 1
    assert prim is None and candidate_url == cand.url and n == 7
    opts = json.loads(options)
    assert opts["path"] == str(path) and opts["fmt"] == "jsonl"
    assert (opts["concurrency"], opts["rate"], opts["timeout"]) == (3, 100.0, 7.0)
    assert (opts["sample"], opts["limit"], opts["methods"], opts["paths"]) == (1.0, None, [], [])
    # the command it suggests works
    report = tmp_path / "report.html"
    rep = subprocess.run(
        shadow_cmd("report", "--db", str(db), "--run", "sum1", "-o", str(report)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rep.returncode == 0, rep.stderr
    assert report.stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sample", "0"], "--sample"),
        (["--sample", "1.5"], "--sample"),
        (["--concurrency", "0"], "--concurrency"),
        (["--rate", "0"], "--rate"),
        (["--limit", "-1"], "--limit"),
        (["--candidate-header", "NoColonHere"], "--candidate-header"),
        (["--mirror-unsafe", "PO ST"], "not an HTTP method"),
        (["--candidate", "ftp://x"], "--candidate"),
    ],
)
def test_bad_options(args: list[str], needle: str, cand: Backend, tmp_path: Path) -> None:
    path = _traffic(tmp_path, [_line("GET", "/x")])
    base = ["--candidate", cand.url]
    if "--candidate" in args:
        base = []
    r = _replay(str(path), *base, *args, "--db", str(tmp_path / "o.duckdb"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("shadow: error:") and needle in lines[0]
    assert cand.seen == []


def test_run_id_already_used(cand: Backend, tmp_path: Path) -> None:
    path = _traffic(tmp_path, [_line("GET", "/x")])
    db = str(tmp_path / "o.duckdb")
    _ok(str(path), "--candidate", cand.url, "--db", db, "--run-id", "same")
    r = _replay(str(path), "--candidate", cand.url, "--db", db, "--run-id", "same")
    assert r.returncode == 2 and "--run-id same" in r.stderr and "already" in r.stderr
    assert _rows(Path(db), "SELECT count(*) FROM exchanges") == [(1,)]


def test_interrupt_keeps_what_was_sent(cand: Backend, tmp_path: Path) -> None:
    import signal

    path = _traffic(tmp_path, [_line("GET", f"/i/{i}") for i in range(100)])
    db = tmp_path / "i.duckdb"
    args = ["--db", str(db), "--run-id", "int", "--rate", "10", "--no-progress"]
    proc = subprocess.Popen(
        shadow_cmd("replay", str(path), "--candidate", cand.url, *args),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(cand.seen) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    ((n, ended, counted),) = _rows(
        db,
        "SELECT (SELECT count(*) FROM exchanges), ended_at, exchanges FROM runs "
        "WHERE run_id = 'int'",
    )
    assert ended is not None and n == counted == len(cand.seen) and 10 <= n < 100
