"""`shadow proxy --record FILE`: what passed through, secrets redacted, in three formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from comparators import decode_body
from shadow.sources import read_traffic
from tests.conftest import ROOT, free_port, run_proxy, serve, shadow_cmd

pytestmark = pytest.mark.integration

SECRETS = (
    "req-auth-secret",
    "req-cookie-secret",
    "apikey-secret",
    "query-secret",
    "body-password-secret",
    "set-cookie-secret",
    "resp-token-secret",
)


def _app() -> Starlette:
    async def login(request: Request) -> Response:
        body = await request.body()
        data = {
            "user": "ada",
            "access_token": "resp-token-secret",
            "got": len(body),
            "padding": "x" * 600,  # above the gzip threshold: recorded compressed
        }
        resp = Response(json.dumps(data), media_type="application/json")
        resp.headers["set-cookie"] = "sid=set-cookie-secret; HttpOnly"
        return resp

    return Starlette(
        routes=[Route("/login", login, methods=["GET", "POST"])],
        middleware=[Middleware(GZipMiddleware, minimum_size=100)],
    )


@pytest.mark.parametrize("ext", ["mitm", "har", "jsonl"])
def test_recording_redacts_secrets_and_keeps_the_rest(ext: str, tmp_path: Path) -> None:
    record = tmp_path / f"rec.{ext}"
    app = _app()
    with serve(app) as primary, serve(app) as cand:
        db = tmp_path / "r.duckdb"
        with run_proxy(primary.url, cand.url, db, tmp_path, "--record", str(record)) as proxy:
            headers = {
                "authorization": "Bearer req-auth-secret",
                "cookie": "sid=req-cookie-secret",
                "x-api-key": "apikey-secret",
                "accept-encoding": "gzip",
            }
            with httpx.Client(base_url=proxy.url, timeout=10) as client:
                got = client.get("/login?api_key=query-secret&page=2", headers=headers)
                # the client's answer is untouched: recording redacts only its copy
                assert got.headers["set-cookie"] == "sid=set-cookie-secret; HttpOnly"
                assert got.json()["access_token"] == "resp-token-secret"
                posted = client.post(
                    "/login",
                    headers={**headers, "content-type": "application/json"},
                    content=json.dumps({"user": "ada", "password": "body-password-secret"}),
                )
                assert posted.status_code == 200
            proxy.stop()
        assert proxy.process.returncode == 0, proxy.output

    raw = record.read_bytes()
    entries = sorted(read_traffic(str(record)), key=lambda r: r.request.method)
    assert [e.request.method for e in entries] == ["GET", "POST"]
    seen: list[str] = [raw.decode("latin-1")]
    for e in entries:
        req, resp = e.request, e.response
        assert resp is not None and resp.status == 200
        seen += [req.query, json.dumps(req.headers), req.body.decode(), e.url]
        seen += [json.dumps(resp.headers), decode_body(resp.headers, resp.body).decode()]
        names = {k.lower(): v for k, v in req.headers}
        assert names["authorization"] == names["cookie"] == names["x-api-key"] == "[REDACTED]"
        assert dict((k.lower(), v) for k, v in resp.headers)["set-cookie"] == "[REDACTED]"
        body = json.loads(decode_body(resp.headers, resp.body))
        assert body["user"] == "ada" and body["access_token"] == "[REDACTED]"
    get, post = entries
    assert get.request.path == "/login" and "page=2" in get.request.query
    assert "api_key=[REDACTED]" in get.request.query
    assert json.loads(post.request.body) == {"user": "ada", "password": "[REDACTED]"}
    text = "\n".join(seen)
    for secret in SECRETS:
        assert secret not in text, secret


def test_record_to_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "rec.mitm"
    with serve(_app()) as backend:
        args = [
            "proxy", "--primary", backend.url, "--candidate", backend.url,
            "--listen", f"127.0.0.1:{free_port()}", "--db", str(tmp_path / "x.duckdb"),
            "--confdir", str(tmp_path / "m"), "--quiet", "--record", str(target),
        ]  # fmt: skip
        r = subprocess.run(
            shadow_cmd(*args),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("shadow: error:")]
    assert len(errors) == 1 and str(target) in errors[0] and "does not exist" in errors[0]
