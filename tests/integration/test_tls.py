"""TLS on every leg: private-CA backends, client certificates, a name mismatch, TLS and
HTTP/2 clients, --keep-host and an outbound proxy for the copies (real servers, a real
throwaway CA from trustme, the real `shadow proxy` and `shadow replay`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import ROOT, Server, free_port, run_proxy, serve, shadow_cmd, wait_port
from tests.integration.helpers import replay, rows

NAME = "app.example.test"  # the name a name-routing ingress would answer to


def _app(seen: list[str]) -> Starlette:
    async def item(request: Request) -> JSONResponse:
        seen.append(request.headers.get("host", ""))
        return JSONResponse({"id": request.path_params["n"], "kind": "item", "tags": ["a", "b"]})

    return Starlette(routes=[Route("/api/items/{n}", item)])


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PEM files: the CA, server certificates (right name, wrong name), a client pair."""
    d = tmp_path_factory.mktemp("tls")
    out = {"ca": str(d / "ca.pem")}
    ca.cert_pem.write_to_path(out["ca"])
    for label, names in (("good", ["127.0.0.1", NAME]), ("wrong", ["other.example.test"])):
        cert = ca.issue_cert(*names)
        out[f"{label}_cert"] = str(d / f"{label}.pem")
        out[f"{label}_key"] = str(d / f"{label}.key")
        cert.cert_chain_pems[0].write_to_path(out[f"{label}_cert"])
        cert.private_key_pem.write_to_path(out[f"{label}_key"])
    client = ca.issue_cert("client@example.test")
    out["client_cert"], out["client_key"] = str(d / "client.pem"), str(d / "client.key")
    client.cert_chain_pems[0].write_to_path(out["client_cert"])
    client.private_key_pem.write_to_path(out["client_key"])
    return out


@contextlib.contextmanager
def https(
    files: dict[str, str], label: str = "good", mtls: bool = False
) -> Iterator[tuple[Server, list[str]]]:
    seen: list[str] = []
    ssl_args: dict[str, Any] = {
        "ssl_certfile": files[f"{label}_cert"],
        "ssl_keyfile": files[f"{label}_key"],
    }
    if mtls:
        ssl_args.update(ssl_ca_certs=files["ca"], ssl_cert_reqs=ssl.CERT_REQUIRED)
    with serve(_app(seen), **ssl_args) as server:
        yield server, seen


def _get_all(url: str, n: int = 6, **client: Any) -> list[httpx.Response]:
    with httpx.Client(timeout=10, trust_env=False, **client) as c:
        return [c.get(f"{url}/api/items/{i}") for i in range(n)]


def _start(primary: str, candidate: str, db: Path, tmp: Path, *extra: str) -> Any:
    port = free_port()
    cmd = shadow_cmd(
        "proxy", "--primary", primary, "--candidate", candidate, "--listen", f"127.0.0.1:{port}",
        "--db", str(db), "--confdir", str(tmp / "mitm"), "--quiet", *extra,
    )  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_private_ca_backends_work_with_the_ca_option(files: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "ca.duckdb"
    ca = files["ca"]
    with https(files) as (primary, _), https(files) as (cand, _):
        with run_proxy(
            primary.url, cand.url, db, tmp_path, "--primary-ca", ca, "--candidate-ca", ca
        ) as proxy:
            via = _get_all(proxy.url)
            direct = _get_all(primary.url, verify=ssl.create_default_context(cafile=ca))
            assert [r.content for r in via] == [r.content for r in direct]
            assert all(r.status_code == 200 for r in via)
            proxy.stop()
        assert proxy.process.returncode == 0, proxy.output
    assert rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY ALL") == [("match", 6)]


@pytest.mark.parametrize(
    ("leg", "needle"),
    [("primary", "--primary-ca FILE"), ("candidate", "--candidate-ca FILE")],
)
def test_without_the_ca_the_proxy_says_which_option_fixes_it(
    files: dict[str, str], tmp_path: Path, leg: str, needle: str
) -> None:
    ca = files["ca"]
    given = ["--candidate-ca", ca] if leg == "primary" else ["--primary-ca", ca]
    with https(files) as (primary, _), https(files) as (cand, _):
        r = _start(primary.url, cand.url, tmp_path / "x.duckdb", tmp_path, *given)
    assert r.returncode == 4, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert f"{leg} https://127.0.0.1" in lines[0] and "certificate verify failed" in lines[0]
    assert needle in lines[0] and "unknown CA" in lines[0]


def test_mtls_backend_works_with_the_client_certificate(
    files: dict[str, str], tmp_path: Path
) -> None:
    ca = files["ca"]
    with https(files) as (primary, _), https(files, mtls=True) as (cand, _):
        refused = _start(primary.url, cand.url, tmp_path / "r.duckdb", tmp_path,
                         "--primary-ca", ca, "--candidate-ca", ca)  # fmt: skip
        assert refused.returncode == 4 and "--candidate-cert" in refused.stderr, refused.stderr
        db = tmp_path / "m.duckdb"
        with run_proxy(
            primary.url, cand.url, db, tmp_path, "--primary-ca", ca, "--candidate-ca", ca,
            "--candidate-cert", files["client_cert"], "--candidate-key", files["client_key"],
        ) as proxy:  # fmt: skip
            assert all(r.status_code == 200 for r in _get_all(proxy.url))
            proxy.stop()
    assert rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY ALL") == [("match", 6)]


def test_mtls_primary_works_through_mitmproxy(files: dict[str, str], tmp_path: Path) -> None:
    ca = files["ca"]
    db = tmp_path / "p.duckdb"
    with https(files, mtls=True) as (primary, _), https(files) as (cand, _), run_proxy(
        primary.url, cand.url, db, tmp_path, "--primary-ca", ca, "--candidate-ca", ca,
        "--primary-cert", files["client_cert"], "--primary-key", files["client_key"],
    ) as proxy:  # fmt: skip
        via = _get_all(proxy.url, 3)
        proxy.stop()
    assert [r.status_code for r in via] == [200, 200, 200]
    assert rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY ALL") == [("match", 3)]


def test_hostname_mismatch_is_named_and_insecure_is_recorded(
    files: dict[str, str], tmp_path: Path
) -> None:
    ca = files["ca"]
    with https(files) as (primary, _), https(files, "wrong") as (cand, _):
        r = _start(primary.url, cand.url, tmp_path / "h.duckdb", tmp_path, "--primary-ca", ca,
                   "--candidate-ca", ca)  # fmt: skip
        assert r.returncode == 4 and "hostname mismatch" in r.stderr, r.stderr
        db = tmp_path / "i.duckdb"
        with run_proxy(
            primary.url, cand.url, db, tmp_path, "--primary-ca", ca, "--insecure-candidate"
        ) as proxy:
            assert all(x.status_code == 200 for x in _get_all(proxy.url, 3))
            proxy.stop()
    assert "NOT verified" in proxy.output  # said loudly
    (options,) = rows(db, "SELECT options FROM runs")[0]
    assert json.loads(options)["tls"]["candidate"] == {"insecure": True}
    assert rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY ALL") == [("match", 3)]


def _curl_http2(url: str, ca: str, *extra: str) -> tuple[str, bytes]:
    """(HTTP version, body) of a GET by curl offering h2 and http/1.1, as browsers do."""
    import os
    import shutil

    curl = shutil.which("curl")
    if curl is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("curl (with HTTP/2) is needed under CI")
        pytest.skip("curl is not installed")
    out = subprocess.run(
        [curl, "-sS", "--http2", "--cacert", ca, *extra, "-o", "-", "-w", "\n%{http_version}", url],
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, version = out.rpartition(b"\n")
    return version.decode(), body


def test_tls_and_http2_clients_get_the_primary_answer_byte_for_byte(
    files: dict[str, str], tmp_path: Path
) -> None:
    ca = files["ca"]
    db = tmp_path / "c.duckdb"
    verify = ssl.create_default_context(cafile=ca)
    with https(files) as (primary, _), https(files) as (cand, _), run_proxy(
        primary.url, cand.url, db, tmp_path, "--primary-ca", ca, "--candidate-ca", ca,
        "--listen-cert", files["good_cert"], "--listen-key", files["good_key"],
    ) as proxy:  # fmt: skip
        url = proxy.url.replace("http://", "https://")
        via = _get_all(url, 4, verify=verify)  # HTTP/1.1 over TLS
        h2 = [_curl_http2(f"{url}/api/items/{i}", ca) for i in range(4)]
        direct = _get_all(primary.url, 4, verify=verify)
        proxy.stop()
    assert [r.http_version for r in via] == ["HTTP/1.1"] * 4
    assert f"listening on https://127.0.0.1:{proxy.port}" in proxy.output
    assert [r.content for r in via] == [r.content for r in direct]
    assert [r.headers["content-type"] for r in via] == [r.headers["content-type"] for r in direct]
    assert [v for v, _ in h2] == ["2"] * 4
    assert [b for _, b in h2] == [r.content for r in direct]
    assert rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY ALL") == [("match", 8)]


@pytest.mark.parametrize("legs", ["primary,candidate", "candidate"])
def test_keep_host_sends_the_client_host_and_name(
    files: dict[str, str], tmp_path: Path, legs: str
) -> None:
    ca = files["ca"]
    db = tmp_path / "k.duckdb"
    with https(files) as (primary, p_seen), https(files) as (cand, c_seen), run_proxy(
        primary.url, cand.url, db, tmp_path, "--primary-ca", ca, "--candidate-ca", ca,
        "--keep-host", legs,
    ) as proxy:  # fmt: skip
        with httpx.Client(timeout=10, trust_env=False) as c:
            answers = [
                c.get(f"{proxy.url}/api/items/{i}", headers={"host": NAME}) for i in range(3)
            ]
        proxy.stop()
    assert [a.status_code for a in answers] == [200, 200, 200]
    # Without "primary" in LEGS the primary keeps its own Host.
    own = NAME if "primary" in legs else f"127.0.0.1:{primary.port}"
    assert p_seen == [own] * 3
    assert c_seen == [NAME] * 3  # and its TLS name: the certificate was checked for NAME
    assert rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY ALL") == [("match", 3)]


def test_keep_host_from_http2_clients(files: dict[str, str], tmp_path: Path) -> None:
    # An HTTP/2 request has no Host header, only :authority: it is what is kept.
    ca = files["ca"]
    with https(files) as (primary, p_seen), https(files) as (cand, c_seen), run_proxy(
        primary.url, cand.url, tmp_path / "k2.duckdb", tmp_path, "--primary-ca", ca,
        "--candidate-ca", ca, "--keep-host", "primary,candidate",
        "--listen-cert", files["good_cert"], "--listen-key", files["good_key"],
    ) as proxy:  # fmt: skip
        url = proxy.url.replace("http://", "https://") + "/api/items/1"
        version, _ = _curl_http2(url, ca, "-H", f"Host: {NAME}")
        proxy.stop()
    assert version == "2"
    assert p_seen == [NAME] and c_seen == [NAME]


class _ConnectProxy:
    """A tiny HTTP CONNECT proxy on 127.0.0.1 that counts the tunnels it opened."""

    def __init__(self) -> None:
        self.port = free_port()
        self.tunnels: list[str] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        wait_port(self.port)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ")[1].decode()
        self.tunnels.append(target)
        host, _, port = target.rpartition(":")
        up_r, up_w = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_copies_go_through_the_outbound_proxy(files: dict[str, str], tmp_path: Path) -> None:
    ca = files["ca"]
    db = tmp_path / "o.duckdb"
    outbound = _ConnectProxy()
    try:
        with https(files) as (primary, _), https(files) as (cand, _), run_proxy(
            primary.url, cand.url, db, tmp_path, "--primary-ca", ca, "--candidate-ca", ca,
            "--copy-proxy", f"http://127.0.0.1:{outbound.port}",
        ) as proxy:  # fmt: skip
            assert all(r.status_code == 200 for r in _get_all(proxy.url, 3))
            proxy.stop()
    finally:
        outbound.close()
    assert outbound.tunnels and set(outbound.tunnels) == {f"127.0.0.1:{cand.port}"}
    assert rows(db, "SELECT verdict, count(*) FROM exchanges GROUP BY ALL") == [("match", 3)]


def test_replay_to_private_ca_backends(files: dict[str, str], tmp_path: Path) -> None:
    ca = files["ca"]
    traffic = tmp_path / "t.jsonl"
    traffic.write_text(
        "".join(
            json.dumps({"method": "GET", "url": f"http://x/api/items/{i}"}) + "\n" for i in range(3)
        ),
        encoding="utf-8",
    )
    with https(files) as (primary, _), https(files) as (cand, _):
        both = ("--primary", primary.url, "--candidate", cand.url, "--primary-ca", ca)
        ok = replay(str(traffic), *both, "--db", str(tmp_path / "ok.duckdb"), "--candidate-ca", ca)
        bad = replay(str(traffic), *both, "--db", str(tmp_path / "bad.duckdb"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert bad.returncode == 0, bad.stdout + bad.stderr  # copies failed: recorded, not fatal
    good = rows(tmp_path / "ok.duckdb", "SELECT verdict, count(*) FROM exchanges GROUP BY ALL")
    assert good == [("match", 3)]
    errors = rows(tmp_path / "bad.duckdb", "SELECT verdict, candidate_error FROM exchanges")
    assert len(errors) == 3
    assert all(v == "candidate_error" and "certificate verify failed" in e for v, e in errors)
