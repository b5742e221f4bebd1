"""Adversarial review of the scale features: `shadow sink`, shards read as one, and
`shadow proxy --processes N`, with real processes on 127.0.0.1.

Tests that fail expose a defect (each one's docstring says what); the others pin down
behaviour that held under the same attack. Every load loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.conftest import ROOT, free_port, run_proxy, serve, shadow_cmd, wait_port, wait_until
from tests.integration.sink_helpers import json_app, run_sink
from tests.store_builder import Call, write_store

pytestmark = pytest.mark.integration


# --- helpers -------------------------------------------------------------------------------

_HOLDER = r"""
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _shadow(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shadow_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _one_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in result.stderr, lines


def _run(db: Path, run_id: str | None = None) -> tuple[Any, ...]:
    where = "" if run_id is None else f"WHERE run_id = '{run_id}'"
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(
            "SELECT requests, exchanges, requests_shed, requests_lost, ended_at IS NOT NULL, "
            f"(SELECT count(*) FROM exchanges e WHERE e.run_id = runs.run_id) FROM runs {where}"
        ).fetchone()
    assert row is not None
    return row


def _raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        return s.recv(200)


def _recording(seen: list[dict[str, Any]], name: str) -> Any:
    """An ASGI app answering JSON that records what reached it (raw path, headers, body)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append(
            {
                "by": name,
                "method": scope["method"],
                "raw_path": scope["raw_path"],
                "query": scope["query_string"],
                "headers": {k.decode("latin-1"): v for k, v in scope["headers"]},
                "body": body,
            }
        )
        out = b'{"ok": true}' if scope["method"] != "HEAD" else b""
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    return app


def _rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def _children(pid: int) -> list[int]:
    """The proxy processes a `--processes` parent spawned (not its resource tracker)."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(x) for x in fh.read().split()]
        except OSError:
            continue
    out = []
    for child in found:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    out.append(child)
        except OSError:
            continue
    return out


# --- shadow sink: defects ------------------------------------------------------------------


def test_sink_a_client_gone_mid_body_is_shed_not_lost(tmp_path: Path) -> None:
    """Found in review (medium), fixed since (the test now passes).

    a mirror connection that closes before its body is complete (a
    mirror's timeout, a reset) raises ConnectionResetError in Sink._body: a traceback in
    the log, the request counted in `requests` but neither stored nor shed, so the run
    says requests_lost 1 and the sink exits 7 ("requests were lost") after a clean stop."""
    db = tmp_path / "sink.duckdb"
    with (
        serve(json_app()) as primary,
        serve(json_app()) as candidate,
        run_sink(primary.url, candidate.url, db, "--run-id", "gone") as sink,
    ):
        with socket.create_connection(("127.0.0.1", sink.port)) as s:
            s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            time.sleep(0.3)
        assert _raw(sink.port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 204")
        time.sleep(1)
        code = sink.stop()
    requests, rows, shed, lost, _, _ = _run(db)
    assert (requests, rows + shed, lost) == (2, 2, 0), sink.output
    assert "Traceback" not in sink.output
    assert code == 0, sink.output


def test_sink_stop_during_a_slow_upload_loses_nothing(tmp_path: Path) -> None:
    """Found in review (medium), fixed since (the test now passes).

    SIGTERM while a mirrored body is still arriving: the server's
    shutdown cancels the handler after 2 s, the request was counted but is neither
    stored nor shed, so a clean stop ends with requests_lost 1 and exit code 7."""
    db = tmp_path / "sink.duckdb"
    with (
        serve(json_app()) as primary,
        serve(json_app()) as candidate,
        run_sink(primary.url, candidate.url, db, "--drain-timeout", "5") as sink,
        socket.create_connection(("127.0.0.1", sink.port)) as slow,
    ):
        slow.sendall(b"PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        time.sleep(0.3)
        sink.process.send_signal(signal.SIGTERM)
        sink.output, _ = sink.process.communicate(timeout=60)
    requests, rows, shed, lost, ended, _ = _run(db)
    assert ended
    assert (requests, rows + shed, lost) == (1, 1, 0), sink.output
    assert sink.process.returncode == 0, sink.output


def test_sink_backlog_bounds_the_bodies_it_holds(tmp_path: Path) -> None:
    """Found in review (medium), fixed since (the test now passes).

    --backlog is checked only after a body was read whole, and a body
    has no read timeout: with --backlog 1, 30 mirrored uploads still arriving make the
    sink hold 30 x 6 MiB (RSS grows by ~180 MiB; N uploads: N x --max-body). Slow or many
    concurrent large-bodied requests exhaust memory whatever --backlog says."""
    db = tmp_path / "sink.duckdb"
    chunk = b"x" * (1 << 20)
    with (
        serve(json_app()) as primary,
        serve(json_app()) as candidate,
        run_sink(primary.url, candidate.url, db, "--backlog", "1") as sink,
    ):
        time.sleep(1)
        before = _rss_mib(sink.process.pid)
        held = []
        try:
            for _ in range(30):
                s = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
                held.append(s)
                s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n")
                for _ in range(6):
                    s.sendall(chunk)
            time.sleep(1)
            grown = _rss_mib(sink.process.pid) - before
        finally:
            for s in held:
                s.close()
    assert grown < 64, f"with --backlog 1 the sink holds {grown} MiB of unfinished bodies"


def test_sink_answers_expect_100_continue(tmp_path: Path) -> None:
    """Found in review (low), fixed since (the test now passes).

    the sink uses aiohttp's low-level server, which does not answer
    `Expect: 100-continue`; a client that waits for the 100 (curl waits 1 s per request,
    others wait for good) gets nothing. ("answers 204 at once" does not hold for it.)"""
    db = tmp_path / "sink.duckdb"
    with (
        serve(json_app()) as primary,
        serve(json_app()) as candidate,
        run_sink(primary.url, candidate.url, db) as sink,
        socket.create_connection(("127.0.0.1", sink.port), timeout=5) as s,
    ):
        s.sendall(
            b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        s.settimeout(2)
        try:
            first = s.recv(100)
        except TimeoutError:
            first = b""
        s.sendall(b"hello")
    assert first.startswith((b"HTTP/1.1 100", b"HTTP/1.1 204")), first


def test_sink_expect_100_continue_from_a_client_gone_is_shed_not_lost(tmp_path: Path) -> None:
    """Found in review (medium; in the fix of the Expect defect): the sink now writes the 100
    Continue itself, but outside the try that sheds bodies that cannot be read, so a
    client that sent `Expect: 100-continue` and reset the connection makes the write
    raise ClientConnectionResetError: a traceback, the request counted but neither
    stored nor shed (requests_lost), exit 7 after a clean stop."""
    db = tmp_path / "sink.duckdb"
    with (
        serve(json_app()) as primary,
        serve(json_app()) as candidate,
        run_sink(primary.url, candidate.url, db, "--mirror-unsafe", "*") as sink,
    ):
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", sink.port))
            s.sendall(
                b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # a reset, at once
        time.sleep(1.5)
        code = sink.stop()
    requests, rows, shed, lost, _, _ = _run(db)
    assert requests == rows + shed and lost == 0, (requests, rows, shed, lost, sink.output)
    assert "Traceback" not in sink.output
    assert code == 0, sink.output


def test_sink_drops_the_headers_its_connection_header_names(tmp_path: Path) -> None:
    """Found in review (low), fixed since (the test now passes).

    RFC 9110 7.6.1: the fields a Connection header names are hop-by-hop
    and must not be forwarded; the sink drops only its fixed list, so `Connection:
    keep-alive, X-Hop` + `X-Hop: ...` reaches the primary and the candidate."""
    seen: list[dict[str, Any]] = []
    db = tmp_path / "sink.duckdb"
    with (
        serve(_recording(seen, "primary")) as primary,
        serve(_recording(seen, "candidate")) as candidate,
        run_sink(primary.url, candidate.url, db) as sink,
    ):
        request = (
            b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: for-me\r\n\r\n"
        )
        assert _raw(sink.port, request).startswith(b"HTTP/1.1 204")
        wait_until("both backends called", lambda: len(seen) >= 2, 10)
        assert sink.stop() == 0
    for call in seen:
        assert "x-hop" not in call["headers"], call


def test_sink_that_cannot_listen_leaves_no_store(tmp_path: Path) -> None:
    """Found in review (low), fixed since (the test now passes).

    a busy port or an unknown --listen host is refused in one line (exit
    6), but only after ensure_writable created the store: an empty `--db` file (by
    default `sink-<host>-<port>.duckdb` in the working directory) is left behind, and a
    later `shadow report --db <dir>` takes it as one more shard."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        db = tmp_path / "busy.duckdb"
        result = _shadow(
            "sink", "--primary", "http://127.0.0.1:9", "--candidate", "http://127.0.0.1:9",
            "--listen", f"127.0.0.1:{port}", "--db", str(db),
        )  # fmt: skip
    _one_line(result, 6, "cannot listen there")
    assert not db.exists()


# --- shadow sink: what held ----------------------------------------------------------------


def test_sink_passes_requests_on_faithfully_and_stores_no_secret(tmp_path: Path) -> None:
    """Encoded paths and query strings untouched, HEAD and OPTIONS shadowed, a chunked
    body (with --mirror-unsafe) re-sent whole, non-UTF-8 header bytes kept, the Envoy
    `-shadow` suffix stripped, Authorization redacted in the store, DELETE sent nowhere."""
    seen: list[dict[str, Any]] = []
    db = tmp_path / "sink.duckdb"
    with (
        serve(_recording(seen, "primary")) as primary,
        serve(_recording(seen, "candidate")) as candidate,
        run_sink(primary.url, candidate.url, db, "--mirror-unsafe", "PUT") as sink,
    ):
        requests = [
            b"GET /a%2Fb/c%20d?x=1&y=%20z HTTP/1.1\r\nHost: shop-shadow:8080\r\n"
            b"Authorization: Bearer SECRET-TOKEN-123\r\nX-Bin: caf\xe9\xff\r\n\r\n",
            b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS /o HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PUT /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"DELETE /d HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for request in requests:
            assert _raw(sink.port, request).startswith(b"HTTP/1.1 204")
        wait_until("the four shadowed requests reach both", lambda: len(seen) >= 8, 10)
        time.sleep(0.5)
        assert sink.stop() == 0, sink.output
    got = {(c["by"], c["method"], c["raw_path"], c["query"], c["body"]) for c in seen}
    for by in ("primary", "candidate"):
        assert (by, "GET", b"/a%2Fb/c%20d", b"x=1&y=%20z", b"") in got
        assert (by, "HEAD", b"/h", b"", b"") in got
        assert (by, "OPTIONS", b"/o", b"", b"") in got
        assert (by, "PUT", b"/chunk", b"", b"hello world") in got
    assert not [c for c in seen if c["method"] == "DELETE"]
    get = next(c for c in seen if c["method"] == "GET" and c["by"] == "primary")
    assert get["headers"]["x-bin"] == b"caf\xe9\xff"
    assert "transfer-encoding" not in next(c for c in seen if c["method"] == "PUT")["headers"]
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT method, request_headers, verdict FROM exchanges").fetchall()
        text = " ".join(str(r) for r in con.execute("SELECT * FROM exchanges").fetchall())
    assert "SECRET-TOKEN-123" not in text
    headers = next(h for m, h, _ in stored if m == "GET")
    assert '["Host", "shop:8080"]' in headers and "[REDACTED]" in headers
    assert ("DELETE", '[["Host", "x"]]', "skipped") in stored
    assert _run(db)[:4] == (5, 5, 0, 0)


def test_sink_with_a_hanging_primary_and_a_dead_candidate_stops_on_time(tmp_path: Path) -> None:
    db = tmp_path / "sink.duckdb"
    dead = f"http://127.0.0.1:{free_port()}"
    with (
        serve(json_app(delay=30)) as primary,
        run_sink(
            primary.url, dead, db, "--timeout", "20", "--drain-timeout", "2", "--run-id", "hang"
        ) as sink,
    ):
        with httpx.Client(timeout=5) as client:
            t0 = time.monotonic()
            for i in range(5):
                assert client.get(f"http://127.0.0.1:{sink.port}/x/{i}").status_code == 204
            assert time.monotonic() - t0 < 2, "answered at once, whatever the primary does"
        t0 = time.monotonic()
        assert sink.stop() == 0, sink.output
        stopped = time.monotonic() - t0
    assert stopped < 15, stopped
    requests, rows, shed, lost, ended, stored = _run(db)
    assert (requests, rows, shed, lost, ended, stored) == (5, 5, 0, 0, True, 5)
    with duckdb.connect(str(db), read_only=True) as con:
        reasons = {r for (r,) in con.execute("SELECT skip_reason FROM exchanges").fetchall()}
    assert reasons == {"shutdown: the primary had not answered"}


def test_sink_under_load_with_a_small_backlog_and_sigterm_accounts_for_all(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sink.duckdb"
    results: list[Any] = []
    answered = [0]

    async def load(port: int) -> None:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:

            async def one(i: int) -> Any:
                try:
                    code = (await client.get(f"http://127.0.0.1:{port}/x/{i}")).status_code
                except httpx.HTTPError as exc:
                    return type(exc).__name__
                answered[0] += code == 204
                return code

            results.extend(await asyncio.gather(*(one(i) for i in range(400))))

    with (
        serve(json_app(delay=0.3)) as primary,
        serve(json_app(delay=0.2)) as candidate,
        run_sink(primary.url, candidate.url, db, "--backlog", "5", "--drain-timeout", "5") as sink,
    ):
        thread = threading.Thread(target=lambda: asyncio.run(load(sink.port)), daemon=True)
        thread.start()
        wait_until("mid-load", lambda: answered[0] >= 50, 30)
        sink.process.send_signal(signal.SIGTERM)
        sink.output, _ = sink.process.communicate(timeout=60)
        thread.join(60)
    assert sink.process.returncode == 0, sink.output
    requests, rows, shed, lost, ended, stored = _run(db)
    assert shed > 0 and rows > 0, (requests, rows, shed)
    assert requests == rows + shed and lost == 0 and ended and stored == rows
    assert requests >= results.count(204) >= 50


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("--listen", "nope"), 2, "expected HOST:PORT"),
        (("--backlog", "0"), 2, "--backlog 0: expected at least 1"),
        (("--max-body", "0"), 2, "--max-body '0'"),
        (("--candidate", "ftp://x"), 2, "is not an http(s)://host[:port] URL"),
    ],
)
def test_sink_bad_input_is_one_line(
    tmp_path: Path, args: tuple[str, ...], code: int, text: str
) -> None:
    base = {"--primary": "http://127.0.0.1:9", "--candidate": "http://127.0.0.1:9"}
    extra = list(args)
    for flag, value in base.items():
        if flag not in extra:
            extra += [flag, value]
    result = _shadow("sink", "--db", str(tmp_path / "s.duckdb"), *extra)
    _one_line(result, code, text)
    assert not (tmp_path / "s.duckdb").exists()


def test_sink_run_id_reused_is_one_line(tmp_path: Path) -> None:
    db = write_store(tmp_path / "s.duckdb", [Call("GET /a/{id}", {"x": 1}, {"x": 1}, run_id="u")])
    result = _shadow(
        "sink", "--primary", "http://127.0.0.1:9", "--candidate", "http://127.0.0.1:9",
        "--listen", f"127.0.0.1:{free_port()}", "--db", db, "--run-id", "u",
    )  # fmt: skip
    _one_line(result, 2, "--run-id u: a run of that name is already in")


# --- shards read as one: end to end ----------------------------------------------------------


def test_shards_of_running_sinks_are_read_under_load(tmp_path: Path) -> None:
    """Found in review (high), fixed since (the test now passes).

    `shadow check --db shards/` while the sinks work fails (exit 3,
    "cannot merge 2 stores: TransactionContext Error: Current transaction is aborted")
    because a shard whose writer holds it aborts the merge's transaction at the first
    ATTACH (see tests/shadow/store/test_shards_review.py). Read alone, each shard works."""
    folder = tmp_path / "shards"
    folder.mkdir()
    stop = threading.Event()
    sent = [0]

    def load(ports: list[int]) -> None:
        with httpx.Client(timeout=5) as client:
            end = time.monotonic() + 30
            i = 0
            while not stop.is_set() and time.monotonic() < end and i < 3000:
                client.get(f"http://127.0.0.1:{ports[i % 2]}/x/{i}")
                sent[0] = i = i + 1
                time.sleep(0.005)

    with (
        serve(json_app()) as primary,
        serve(json_app(differ_on="/x/1")) as candidate,
        run_sink(primary.url, candidate.url, folder / "a.duckdb", "--run-id", "r") as a,
        run_sink(primary.url, candidate.url, folder / "b.duckdb", "--run-id", "r") as b,
    ):
        thread = threading.Thread(target=load, args=([a.port, b.port],), daemon=True)
        thread.start()
        try:
            wait_until("traffic flows", lambda: sent[0] > 100, 20)
            single = _shadow("check", "--db", str(folder / "a.duckdb"))
            merged = _shadow("check", "--db", str(folder))
        finally:
            stop.set()
            thread.join(30)
    assert single.returncode in (0, 1), single.stderr
    assert merged.returncode in (0, 1), merged.stderr


def test_report_takes_a_baseline_from_shards_too(tmp_path: Path) -> None:
    """Found in review (low), fixed since (the test now passes).

    `--db` takes shards, `--baseline-db` does not: a directory is
    refused by click ("is a directory", exit 2) and a glob by the report ("baseline
    database ... does not exist", exit 3), so yesterday's sink shards cannot be the
    baseline of today's."""
    for day in ("yesterday", "today"):
        (tmp_path / day).mkdir()
        for k in range(2):
            call = Call("GET /a/{id}", {"x": 1}, {"x": k}, run_id=day, path=f"/a/{k}")
            write_store(tmp_path / day / f"s{k}.duckdb", [call])
        with duckdb.connect(str(tmp_path / day / "s1.duckdb")) as con:
            for table in ("exchanges", "differences"):
                con.execute(f"UPDATE {table} SET exchange_id = exchange_id || '-b'")
    out = str(tmp_path / "r.html")
    today = str(tmp_path / "today")
    ok = _shadow("report", "--db", today, "-o", out)
    assert ok.returncode == 0, ok.stderr
    for base in (str(tmp_path / "yesterday"), str(tmp_path / "yesterday" / "*.duckdb")):
        result = _shadow("report", "--db", today, "--baseline-db", base, "-o", out)
        assert result.returncode == 0, result.stderr


# --- shadow proxy --processes: defects -----------------------------------------------------


@pytest.mark.parametrize("run_id", ["../../victim", "ABS", "..", "."])
def test_processes_run_id_cannot_escape_the_shard_folder(tmp_path: Path, run_id: str) -> None:
    """Found in review (critical, data loss; fixed since: such a --run-id is
    refused with --processes): the shard folder was os.path.join(f"{db}.shards",
    run_id) with the --run-id unchecked, and fold() ended with shutil.rmtree on it:
    `--run-id ../../victim` deleted <tmp>/victim and every file in it; an absolute
    --run-id (/home/me) named its directory outright, and the fold merged every *.duckdb
    found there into --db first."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("not shadow's to delete")
    work = tmp_path / "work"
    work.mkdir()
    db = work / "parity.duckdb"
    if run_id == "ABS":
        run_id = str(victim)
    elif run_id in ("..", "."):
        db = victim / "parity.duckdb"  # <db>.shards/.. is the victim itself
    theirs = write_store(
        victim / "p0.duckdb", [Call("GET /mine/{id}", {"x": 1}, {"x": 2}, run_id="mine")]
    )
    with open(theirs, "rb") as fh:
        before = fh.read()
    port = free_port()
    with serve(json_app()) as primary, serve(json_app()) as candidate:
        proc = subprocess.Popen(
            shadow_cmd(
                "proxy", "--primary", primary.url, "--candidate", candidate.url,
                "--listen", f"127.0.0.1:{port}", "--db", str(db), "--confdir",
                str(tmp_path / "mitm"), "--quiet", "--processes", "2", "--run-id", run_id,
            ),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            up = wait_until(
                "the proxy listens or refuses",
                lambda: "exited" if proc.poll() is not None else _listening(port),
                60,
            )
            if up != "exited":
                time.sleep(3)
                for i in range(6):
                    with httpx.Client(timeout=10) as client:
                        assert client.get(f"http://127.0.0.1:{port}/x/{i}").status_code == 200
                proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    if up == "exited":  # refused at start: right, in one line, nothing written
        assert proc.returncode == 2, out
        assert "--run-id" in out and "Traceback" not in out, out
    assert (victim / "precious.txt").exists(), "a directory outside <db>.shards was removed"
    assert os.path.exists(theirs), "a store outside <db>.shards was deleted"
    with open(theirs, "rb") as fh:
        assert fh.read() == before, "a store outside <db>.shards was written to"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def test_processes_stop_during_start_up_is_clean(tmp_path: Path) -> None:
    """Found in review (medium), fixed since (the test now passes).

    SIGTERM (or Ctrl-C) to the parent while some of its processes
    are still starting (the port answers as soon as the first one listens): the parent
    forwards SIGINT to children that have not yet installed their handler, they die with
    a KeyboardInterrupt traceback (exit 1) or by the signal (-2, which the parent counts
    as "lost"), and the run ends with exit 1 or 7 though nothing was received."""
    db = tmp_path / "parity.duckdb"
    with (
        serve(json_app()) as primary,
        serve(json_app()) as candidate,
        run_proxy(
            primary.url, candidate.url, db, tmp_path, "--processes", "4", "--run-id", "early"
        ) as proxy,
    ):
        proxy.process.send_signal(signal.SIGTERM)
        out, _ = proxy.process.communicate(timeout=120)
    assert "Traceback" not in out, out
    assert proxy.process.returncode == 0, out
    assert _run(db, "early")[:4] == (0, 0, 0, 0)


def test_processes_a_killed_child_leaves_its_loss_in_the_store(tmp_path: Path) -> None:
    """Found in review (medium), fixed since (the test now passes).

    SIGKILL of one proxy process under load: the parent stops the
    others and exits 7, but the folded run says requests_lost 0 and counts fewer
    requests than the proxies answered: what the killed process had not yet handed to
    its worker (its last batch, its queue) vanishes from the accounting, so `shadow
    check` and the report show a clean run. The parent knows the child was killed but
    settles nothing for its shard (nor its ended_at)."""
    db = tmp_path / "parity.duckdb"
    answered = [0]
    stop = threading.Event()

    def load(url: str) -> None:
        end = time.monotonic() + 30
        i = 0
        while not stop.is_set() and time.monotonic() < end and i < 2000:
            i += 1
            try:
                with httpx.Client(timeout=5) as client:  # a new connection: spread by the kernel
                    if client.get(f"{url}/x/{i}").status_code == 200:
                        answered[0] += 1
            except httpx.HTTPError:
                pass

    with (
        serve(json_app()) as primary,
        serve(json_app(delay=0.5)) as candidate,
        run_proxy(
            primary.url, candidate.url, db, tmp_path, "--processes", "2", "--run-id", "kill",
            "--drain-timeout", "5",
        ) as proxy,
    ):  # fmt: skip
        kids = wait_until(
            "both proxy processes", lambda: (k := _children(proxy.process.pid))[1:] and k, 30
        )
        time.sleep(3)  # both listen
        thread = threading.Thread(target=load, args=(proxy.url,), daemon=True)
        thread.start()
        wait_until("traffic flows", lambda: answered[0] > 30, 20)
        os.kill(kids[0], signal.SIGKILL)
        time.sleep(0.5)
        stop.set()
        thread.join(30)
        out = proxy.stop(timeout=180)
    assert proxy.process.returncode == 7, out  # (held: a killed process is a loss)
    requests, rows, shed, lost, ended, stored = _run(db, "kill")
    assert ended and stored == rows
    if requests is None:  # unknown, and said so: honest
        assert "unknown" in out, out
    else:
        assert requests == rows + shed + lost
        assert lost > 0 or requests >= answered[0], (
            f"{answered[0]} requests answered through the proxies, the run counts {requests} "
            f"and says {lost} lost"
        )


def _serving(pids: list[int], port: int) -> int | None:
    """Which of `pids` holds an established connection on local `port` (/proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.read().splitlines()[1:]:
            f = line.split()
            if int(f[1].split(":")[1], 16) == port and f[3] == "01":
                inodes.add(f"socket:[{f[9]}]")
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _all_children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
            out += [int(x) for x in fh.read().split()]
    return out


def test_processes_a_killed_process_s_worker_is_waited_for(tmp_path: Path) -> None:
    """Found in review, fixed: SIGKILL of one proxy process leaves its worker alive: it sees
    its parent gone and drains the copies it holds (up to --drain-timeout) into its
    shard. The parent does not wait for it: once the other processes stopped it folds
    the shard as it is and deletes it, and the worker's last rows go to a shard that is
    gone (lost) or to a new stray one no one folds. Here all 10 requests reached the
    killed process's worker before the kill; --db ends with none of their rows."""
    db = tmp_path / "parity.duckdb"
    worker_pids: list[int] = []
    try:
        with (
            serve(json_app()) as primary,
            serve(json_app(delay=8)) as candidate,
            run_proxy(
                primary.url, candidate.url, db, tmp_path, "--processes", "2", "--run-id", "o",
                "--timeout", "20", "--drain-timeout", "20",
            ) as proxy,
        ):  # fmt: skip
            kids = wait_until(
                "both proxy processes", lambda: (k := _children(proxy.process.pid))[1:] and k, 30
            )
            time.sleep(3)  # both listen
            with httpx.Client(timeout=10) as client:  # one connection: one process
                for i in range(10):
                    assert client.get(f"{proxy.url}/x/{i}").status_code == 200
                victim = _serving(kids, proxy.port)
                assert victim is not None
                time.sleep(0.5)  # every request handed to its worker (batches of 20 ms)
                worker_pids = _all_children(victim)
                os.kill(victim, signal.SIGKILL)
            out = proxy.stop(timeout=180)
        assert proxy.process.returncode == 7, out
        # the orphaned worker finishes its drain (8 s copies) in any case
        wait_until(
            "the orphaned worker ends", lambda: not [p for p in worker_pids if _alive(p)], 60, 0.5
        )
    finally:
        for pid in worker_pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    stray = (
        [str(p) for p in Path(f"{db}.shards").rglob("*.duckdb")]
        if Path(f"{db}.shards").exists()
        else []
    )
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM exchanges WHERE run_id = 'o'").fetchone()[0]
    assert not stray, f"rows left in shards no one folds: {stray}"
    assert rows == 10, f"the killed process's worker stored 10 rows; --db has {rows}\n{out}"


def test_processes_fold_that_cannot_happen_says_where_the_run_is(tmp_path: Path) -> None:
    """Found in review, fixed: when the fold cannot take --db (another process holds it: a report
    being written with a writer's lock, a `duckdb` shell), the parent waits 30 s and
    exits 3 with "<db> is locked by another process" only. The run is safe in
    <db>.shards/<run>, but the line does not say so, nor how to read or fold it later
    (no command folds leftover shards; a rerun with that --run-id is refused by the
    processes and then folds them as a side effect)."""
    db = tmp_path / "parity.duckdb"
    folder = Path(f"{db}.shards") / "f"
    holder = None
    with (
        serve(json_app()) as primary,
        serve(json_app()) as candidate,
        run_proxy(
            primary.url, candidate.url, db, tmp_path, "--processes", "2", "--run-id", "f"
        ) as proxy,
    ):
        time.sleep(3)
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{proxy.url}/x/1").status_code == 200
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(db), "120"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            out = proxy.stop(timeout=180)
        finally:
            holder.kill()
            holder.wait(10)
    assert proxy.process.returncode == 3, out
    assert sorted(os.listdir(folder)) == ["p0.duckdb", "p1.duckdb"], "the run is kept"
    errors = [line for line in out.splitlines() if line.startswith("shadow: error:")]
    assert len(errors) == 1, out
    assert str(folder) in errors[0], errors[0]


# --- shadow proxy --processes: what held ---------------------------------------------------


def test_processes_sigterm_and_ctrl_c_fold_one_run_and_keep_older_runs(tmp_path: Path) -> None:
    """SIGTERM to the parent, and Ctrl-C to the whole process group (every child gets
    SIGINT twice: from the terminal and from the parent): exit 0, one run, every
    request counted once; runs already in --db are kept as they were."""
    with serve(json_app()) as primary, serve(json_app(delay=0.2)) as candidate:
        for how in ("sigterm", "group"):
            db = tmp_path / f"{how}.duckdb"
            write_store(db, [Call("GET /old/{id}", {"x": 1}, {"x": 2}, run_id="before")])
            with duckdb.connect(str(db)) as con:
                before = con.execute("SELECT * FROM runs").fetchall()
            port = free_port()
            proc = subprocess.Popen(
                shadow_cmd(
                    "proxy", "--primary", primary.url, "--candidate", candidate.url,
                    "--listen", f"127.0.0.1:{port}", "--db", str(db), "--confdir",
                    str(tmp_path / "mitm"), "--quiet", "--processes", "3", "--run-id", how,
                ),
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )  # fmt: skip
            try:
                wait_port(port, 30)
                time.sleep(5)  # every process listens
                for i in range(15):
                    with httpx.Client(timeout=10) as client:
                        assert client.get(f"http://127.0.0.1:{port}/x/{i}").status_code == 200
                if how == "sigterm":
                    proc.send_signal(signal.SIGTERM)
                else:
                    os.killpg(proc.pid, signal.SIGINT)
                out, _ = proc.communicate(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            assert proc.returncode == 0, out
            assert "Traceback" not in out
            assert _run(db, how) == (15, 15, 0, 0, True, 15)
            assert not Path(f"{db}.shards").exists()
            with duckdb.connect(str(db), read_only=True) as con:
                assert con.execute("SELECT * FROM runs WHERE run_id = 'before'").fetchall() == (
                    before
                )


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("--processes", "65"), 2, "--processes 65: at most 64"),
        (("--processes", "-1"), 2, "--processes -1: expected at least 1"),
        (("--processes", "2", "--record", "x.har"), 2, "--record with --processes > 1"),
    ],
)
def test_processes_bad_options_are_one_line(
    tmp_path: Path, args: tuple[str, ...], code: int, text: str
) -> None:
    db = tmp_path / "p.duckdb"
    result = _shadow(
        "proxy", "--primary", "http://127.0.0.1:9", "--candidate", "http://127.0.0.1:9",
        "--db", str(db), "--confdir", str(tmp_path / "mitm"), *args,
    )  # fmt: skip
    _one_line(result, code, text)
    assert not db.exists()


def test_processes_busy_port_is_one_line(legacy: Any, candidate: Any, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _shadow(
            "proxy", "--primary", legacy.url, "--candidate", candidate.url,
            "--listen", f"127.0.0.1:{busy.getsockname()[1]}", "--processes", "2",
            "--db", str(tmp_path / "p.duckdb"), "--confdir", str(tmp_path / "mitm"),
        )  # fmt: skip
    _one_line(result, 6, "cannot listen there")
    assert not Path(f"{tmp_path / 'p.duckdb'}.shards").exists()
