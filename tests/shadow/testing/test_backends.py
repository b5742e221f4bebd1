"""The plugin's backends: base URLs and in-process ASGI / WSGI apps, bounded and faithful."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadow.model import Request
from shadow.testing.backends import Backend, BackendError, asgi, resolve, wsgi
from tests.conftest import free_port


def _echo_asgi(log: list[str]) -> Any:
    """An ASGI app with a lifespan that answers the request's headers as JSON."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    log.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    log.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/boom":
            raise RuntimeError("the app raised")
        if scope["path"] == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x" * 5000})
            return
        answer = {
            "headers": sorted(k.decode() for k, _ in scope["headers"]),
            "body": body.decode(),
            "query": scope["query_string"].decode(),
            "started": "startup" in log,
        }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    return app


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()]


def test_asgi_app_runs_its_lifespan_and_gets_exactly_the_request_headers() -> None:
    log: list[str] = []
    backend = Backend(_echo_asgi(log), "--shadow-candidate")
    try:
        req = Request("POST", "/echo", "a=1", (("x-test", "1"), ("host", "ignored")), b"hi")
        answer = backend.send(req)
        assert answer.payload is not None and answer.payload.status == 200
        seen = json.loads(answer.payload.body)
        # No httpx client defaults (accept-encoding, user-agent...): a replayed request
        # reaches the backend as recorded.
        assert seen["headers"] == ["content-length", "host", "x-test"]
        assert (seen["body"], seen["query"], seen["started"]) == ("hi", "a=1", True)
    finally:
        backend.close()
    assert log == ["startup", "shutdown"]


def test_an_app_that_raises_or_answers_too_much_is_bounded_and_never_a_crash() -> None:
    backend = Backend(asgi(_echo_asgi([])), "--shadow-candidate", max_body=1000)
    try:
        failed = backend.send(Request("GET", "/boom"))
        assert failed.payload is None and failed.error and "the app raised" in failed.error
        big = backend.send(Request("GET", "/big"))
        assert big.payload is not None
        assert len(big.payload.body) == 1000 and big.payload.full_size == 5000
        assert big.payload.sha256
    finally:
        backend.close()


def test_wsgi_app_in_process() -> None:
    backend = Backend(wsgi(_wsgi_app), "--shadow-primary")
    try:
        answer = backend.send(Request("GET", "/x/y"))
        assert answer.payload is not None
        assert (answer.payload.status, answer.payload.body) == (201, b"GET /x/y")
    finally:
        backend.close()
    # Told apart from ASGI by its signature when not marked
    assert resolve(_wsgi_app, "x").kind == "wsgi"  # type: ignore[union-attr]
    assert resolve(_echo_asgi([]), "x").kind == "asgi"  # type: ignore[union-attr]


def test_a_url_backend_that_refuses_is_an_error_answer() -> None:
    backend = Backend(f"http://127.0.0.1:{free_port()}", "--shadow-candidate", timeout=2)
    try:
        answer = backend.send(Request("GET", "/"))
        assert answer.payload is None and answer.error and "refused" in answer.error
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("ftp://host/x", "only http:// and https://"),
        ("http://", "has no host"),
        ("http://127.0.0.1:99999", "bad port"),
        ("http://127.0.0.1:8000/?a=1", "no query"),
        ("no_such_module_xyz:app", "cannot import no_such_module_xyz"),
        ("json:no_such_attr", "has no attribute"),
        ("json", "expected a URL"),
        ("json:decoder", "not an application"),
    ],
)
def test_bad_specs_say_what_is_wrong_in_one_line(spec: str, says: str) -> None:
    with pytest.raises(BackendError) as info:
        resolve(spec, "--shadow-candidate")
    assert says in str(info.value) and "\n" not in str(info.value)


def test_one_deadline_bounds_a_whole_answer_url_and_wsgi() -> None:
    """httpx's timeouts bound each read: a stream that trickles forever, or a WSGI app
    that sleeps, must still end at --shadow-timeout as an error answer."""
    import asyncio
    import time

    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from tests.conftest import serve

    async def forever() -> Any:
        while True:
            yield b"data: tick\n\n"
            await asyncio.sleep(0.2)

    async def trickle(request: Any) -> StreamingResponse:
        return StreamingResponse(forever(), media_type="text/event-stream")

    def sleepy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(3)
        start_response("200 OK", [])
        return [b"late"]

    with serve(Starlette(routes=[Route("/s", trickle)])) as server:
        for spec, path in ((server.url, "/s"), (wsgi(sleepy), "/")):
            backend = Backend(spec, "--shadow-candidate", timeout=0.8)
            try:
                started = time.monotonic()
                answer = backend.send(Request("GET", path))
                took = time.monotonic() - started
            finally:
                backend.close()
            assert answer.payload is None and answer.error and "timeout" in answer.error
            assert took < 2.5, took


def test_an_app_without_lifespan_support_starts_at_once() -> None:
    import time

    async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # as many hand-written apps do; uvicorn serves them
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    started = time.monotonic()
    backend = Backend(plain, "--shadow-candidate")
    try:
        answer = backend.send(Request("GET", "/"))
    finally:
        backend.close()
    assert answer.payload is not None and answer.payload.status == 204
    assert time.monotonic() - started < 5


def test_a_failed_startup_is_one_line_and_quick() -> None:
    import time

    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    started = time.monotonic()
    with pytest.raises(BackendError, match="startup failed: no database"):
        Backend(failing, "--shadow-candidate")
    assert time.monotonic() - started < 5


def test_a_base_url_password_never_reaches_the_host_header() -> None:
    from shadow.pipeline.sender import outgoing_headers

    headers = outgoing_headers(Request("GET", "/"), "http://admin:S3CRET@127.0.0.1:9/x", None)
    assert ("host", "127.0.0.1:9") in headers
    assert not any("S3CRET" in v for _, v in headers)
    backend = Backend("http://admin:S3CRET@127.0.0.1:9", "--shadow-candidate")
    try:
        assert "S3CRET" not in backend.label
    finally:
        backend.close()


def test_abandoned_wsgi_calls_take_no_thread_from_the_next_request() -> None:
    import threading
    import time

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            time.sleep(2)
        start_response("200 OK", [])
        return [b"ok"]

    backend = Backend(wsgi(app), "--shadow-candidate", timeout=0.2)
    try:
        slow = [backend.send(Request("GET", "/slow")) for _ in range(12)]
        assert all(a.error and "timeout" in a.error for a in slow)
        answer = backend.send(Request("GET", "/ok"))
        assert answer.payload is not None and answer.payload.body == b"ok"
        # The abandoned calls run in daemon threads: they never hold the process at exit.
        assert all(t.daemon for t in threading.enumerate() if t is not threading.main_thread()
                   and t.is_alive() and "run" in t.name)  # fmt: skip
    finally:
        backend.close()


def test_an_openapi_source_is_shown_without_its_secrets() -> None:
    from shadow.config.loader import Config
    from shadow.pipeline.redact import redactor_for
    from shadow.testing.openapi_items import shown_source

    hide = redactor_for(Config().redact)
    shown = shown_source("http://u:SEKPW@127.0.0.1:9/doc.json?token=SEKQ&v=1", hide)
    assert "SEKPW" not in shown and "SEKQ" not in shown and "v=1" in shown
    assert shown_source("openapi.yaml", hide) == "openapi.yaml"
