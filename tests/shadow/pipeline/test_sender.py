"""shadow.pipeline.sender: the copy's headers, raw bodies, and failures turned into responses."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shadow.model import BackendResponse, Request
from shadow.pipeline.sender import ERROR_TEXT_CAP, MARK_HEADER, Sender, outgoing_headers
from tests.conftest import Server, free_port, serve


async def echo(request: StarletteRequest) -> Response:
    body = await request.body()
    data = {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
        "body": body.decode("latin-1"),
    }
    if request.query_params.get("gzip"):
        raw = json.dumps(data).encode()
        return Response(
            gzip.compress(raw),
            status_code=203,
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )
    return JSONResponse(data, status_code=201, headers={"x-echo": "yes"})


ECHO = Starlette(routes=[Route("/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE"])])


@pytest.fixture(scope="module")
def echo_server() -> Iterator[Server]:
    with serve(ECHO) as server:
        yield server


def run_send(
    base_url: str,
    request: Request,
    mark: str | None = "1",
    timeout: float = 5.0,
) -> BackendResponse:
    async def go() -> BackendResponse:
        sender = Sender(4)
        try:
            return await sender.send(base_url, request, mark, timeout)
        finally:
            await sender.aclose()

    return asyncio.run(go())


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [k.lower() for k, _ in headers]


def test_outgoing_headers_drop_hop_by_hop_set_host_and_mark() -> None:
    req = Request(
        "GET",
        "/a",
        headers=(
            ("Host", "primary.example:3000"),
            ("Connection", "keep-alive, x-foo"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "x-t"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic abc"),
            ("Content-Length", "12"),
            ("Accept", "application/json"),
            ("Authorization", "Bearer t"),
            ("X-Custom", "1"),
        ),
    )
    out = outgoing_headers(req, "http://127.0.0.1:8000/prefix", "1")
    assert out == [
        ("host", "127.0.0.1:8000"),
        ("Accept", "application/json"),
        ("Authorization", "Bearer t"),
        ("X-Custom", "1"),
        (MARK_HEADER, "1"),
    ]


def test_outgoing_headers_without_mark() -> None:
    out = outgoing_headers(Request("GET", "/", headers=(("a", "b"),)), "https://h.example", None)
    assert out == [("host", "h.example"), ("a", "b")]
    assert MARK_HEADER not in names(out)


def test_outgoing_headers_overrides_replace_same_name() -> None:
    req = Request(
        "GET", "/", headers=(("Authorization", "[REDACTED]"), ("authorization", "x"), ("a", "b"))
    )
    out = outgoing_headers(req, "http://c:1", "1", (("AUTHORIZATION", "Bearer real"),))
    assert out == [
        ("host", "c:1"),
        ("a", "b"),
        ("AUTHORIZATION", "Bearer real"),
        (MARK_HEADER, "1"),
    ]


def test_send_forwards_request_and_returns_headers(echo_server: Server) -> None:
    req = Request(
        "POST",
        "/api/things",
        "a=1&b=two",
        (
            ("Host", "primary:3000"),
            ("Content-Length", "999"),  # stale: the client sets the real length
            ("Content-Type", "text/plain"),
            ("Connection", "close"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic abc"),
            ("X-Custom", "kept"),
        ),
        b"hello body",
    )
    resp = run_send(echo_server.url, req)
    assert resp.error is None
    assert resp.payload is not None
    assert resp.payload.status == 201
    assert resp.payload.header("x-echo") == "yes"
    assert resp.elapsed_ms is not None and resp.elapsed_ms > 0
    seen = json.loads(resp.payload.body)
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/api/things", "a=1&b=two")
    assert seen["body"] == "hello body"
    got = {k.lower(): v for k, v in seen["headers"]}
    assert got["host"] == f"127.0.0.1:{echo_server.port}"
    assert got[MARK_HEADER] == "1"
    assert got["x-custom"] == "kept"
    assert got["content-length"] == str(len(b"hello body"))
    assert "proxy-authorization" not in got
    assert "te" not in got
    assert [k.lower() for k, _ in seen["headers"]].count("host") == 1


def test_send_without_mark(echo_server: Server) -> None:
    resp = run_send(echo_server.url, Request("GET", "/x"), mark=None)
    assert resp.payload is not None
    seen = json.loads(resp.payload.body)
    assert MARK_HEADER not in {k.lower() for k, _ in seen["headers"]}


def test_send_returns_raw_gzip_body(echo_server: Server) -> None:
    req = Request("GET", "/zipped", "gzip=1", (("Accept-Encoding", "gzip"),))
    resp = run_send(echo_server.url, req)
    assert resp.error is None
    assert resp.payload is not None
    assert resp.payload.status == 203
    assert resp.payload.header("content-encoding") == "gzip"
    assert resp.payload.body[:2] == b"\x1f\x8b"  # still gzip on the wire
    seen = json.loads(gzip.decompress(resp.payload.body))
    assert seen["path"] == "/zipped"


def test_send_to_base_url_with_prefix(echo_server: Server) -> None:
    resp = run_send(echo_server.url + "/v2/", Request("GET", "/items", "q=1"))
    assert resp.payload is not None
    seen = json.loads(resp.payload.body)
    assert (seen["path"], seen["query"]) == ("/v2/items", "q=1")


def test_connection_refused_is_a_failed_response() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    resp = run_send(url, Request("GET", "/api/health"))
    assert time.monotonic() - start < 5
    assert resp.payload is None
    assert resp.error
    assert resp.elapsed_ms is not None


def test_connection_refused_is_not_reported_as_timeout() -> None:
    resp = run_send(f"http://127.0.0.1:{free_port()}", Request("GET", "/api/health"))
    assert resp.error is not None
    assert "timeout" not in resp.error.split(" (")[0].lower()  # the headline; the detail
    # names the transport's own exception types (ConnectTimeout for a refusal)


def test_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # accepts connections (kernel backlog), never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        resp = run_send(url, Request("GET", "/slow"), timeout=0.5)
        took = time.monotonic() - start
    assert resp.payload is None
    assert resp.error is not None and resp.error.startswith("timeout after")
    assert 0.4 < took < 2.5
    assert resp.elapsed_ms is not None and 400 < resp.elapsed_ms < 2500


def test_total_timeout_caps_a_server_that_trickles() -> None:
    """A server sending a byte now and then never trips a per-read timeout; the total cap does."""
    stop = False

    def trickle(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        while not stop:
            try:
                conn.sendall(b"x")
            except OSError:
                break
            time.sleep(0.2)
        conn.close()

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        thread = threading.Thread(target=trickle, args=(listener,), daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        resp = run_send(url, Request("GET", "/slow"), timeout=0.5)
        took = time.monotonic() - start
        stop = True
        thread.join(5)
    assert resp.error is not None and resp.error.startswith("timeout after")
    assert 1.2 < took < 3.0  # timeout + 1 s total cap


def _misbehaving(behave: Any) -> tuple[str, socket.socket, threading.Thread]:
    """A raw TCP server on 127.0.0.1 answering every connection (a client may retry) with
    `behave(conn)`, until its listener is closed (at most 5 connections)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(5)

    def serve() -> None:
        for _ in range(5):
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by the test
            with conn:
                conn.recv(65536)
                behave(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", listener, thread


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _half_answer(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")


def _garbage(conn: socket.socket) -> None:
    conn.sendall(b"\x00\xffNOT HTTP AT ALL " * 2000)


@pytest.mark.parametrize(
    ("behave", "starts"),
    [
        (_reset, "connection reset"),
        (_half_answer, "connection closed before the answer was complete"),
        (_garbage, "bad answer"),
    ],
)
def test_failures_are_named_for_what_they_are(behave: Any, starts: str) -> None:
    url, listener, _ = _misbehaving(behave)
    with listener:
        resp = run_send(url, Request("GET", "/x"), timeout=2.0)
    # its thread ends at the listener's own timeout (accept is not woken by close)
    assert resp.payload is None and resp.error is not None
    assert resp.error.startswith(starts), resp.error
    assert "timeout" not in resp.error.split("(")[0]
    assert len(resp.error) <= ERROR_TEXT_CAP


def test_refused_is_named_refused() -> None:
    resp = run_send(f"http://127.0.0.1:{free_port()}", Request("GET", "/x"))
    assert resp.error is not None and resp.error.startswith("connection refused")


def test_raw_bytes_in_path_and_headers_go_out_as_bytes(echo_server: Server) -> None:
    """A path or header with bytes that are not UTF-8 (kept as surrogates) is still sent."""
    from shadow.pipeline.sender import wire_target, wire_value

    raw = b"/echo/\xff\xfe".decode("utf-8", "surrogateescape")
    assert wire_target(raw) == "/echo/%FF%FE" and wire_target("/a?b=1") == "/a?b=1"
    assert wire_value("a\udcffb") == b"a\xffb" and wire_value("é") == b"\xe9"
    assert wire_value("€") == "€".encode()
    resp = run_send(echo_server.url, Request("GET", raw, "", (("x-raw", "a\udcffb"),)))
    assert resp.error is None and resp.payload is not None


def test_keep_host_sends_the_client_host() -> None:
    from shadow.pipeline.sender import outgoing_headers

    req = Request("GET", "/x", headers=(("Host", "app.example.test"), ("Accept", "*/*")))
    kept = outgoing_headers(req, "https://10.0.0.5:8443", "1", keep_host=True)
    own = outgoing_headers(req, "https://10.0.0.5:8443", "1")
    assert kept[0] == ("host", "app.example.test") and own[0] == ("host", "10.0.0.5:8443")
    assert ("x-shadow-copy", "1") in [(k.lower(), v) for k, v in kept]


def test_outbound_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from shadow.pipeline.sender import proxy_for

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,.svc.local")
    assert proxy_for("https://api.example.com/x") == "http://proxy.corp:3128"
    assert proxy_for("https://a.svc.local/x") is None
    assert proxy_for("https://internal.example/x") is None
    assert proxy_for("https://127.0.0.1:8000/x") is None  # loopback never
    assert proxy_for("https://api.example.com/x", "") is None  # --copy-proxy none
    assert proxy_for("https://127.0.0.1/x", "http://p:1") == "http://p:1"  # explicit wins
    assert proxy_for("http://api.example.com/x") is None  # no HTTP_PROXY set


def test_no_proxy_with_cidrs_ports_and_all_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from shadow.pipeline.sender import proxy_for

    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("ALL_PROXY", "http://all.corp:3128")
    monkeypatch.setenv("NO_PROXY", "10.0.0.0/8,api.internal:8443")
    assert proxy_for("https://10.1.2.3/x") is None
    assert proxy_for("https://11.1.2.3/x") == "http://all.corp:3128"
    assert proxy_for("https://api.internal:8443/x") is None
    assert proxy_for("https://api.internal:9443/x") == "http://all.corp:3128"
