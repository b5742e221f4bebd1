"""Real `shadow sink` processes and a real nginx mirroring to them, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, shadow_cmd, wait_port


@dataclass
class RunningSink:
    port: int
    db: Path
    process: subprocess.Popen[str]
    output: str = ""

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode


@contextlib.contextmanager
def run_sink(primary: str, candidate: str, db: Path, *extra: str) -> Iterator[RunningSink]:
    """`shadow sink` as a real subprocess; stopped with SIGINT on exit."""
    port = free_port()
    cmd = shadow_cmd(
        "sink", "--primary", primary, "--candidate", candidate,
        "--listen", f"127.0.0.1:{port}", "--db", str(db), *extra,
    )  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    sink = RunningSink(port, db, proc)
    try:
        try:
            wait_port(port, 30)
        except TimeoutError:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError(f"sink did not start:\n{out}") from None
        yield sink
    finally:
        if proc.poll() is None:
            sink.stop()


def nginx_binary() -> str:
    """nginx from PATH or /usr/sbin; a skip (a failure under CI=true) when missing."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else ""
    )
    if not found:
        reason = "nginx is not installed (Debian package nginx; scripts/ensure-services)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


NGINX_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream primary {{ server 127.0.0.1:{primary}; keepalive 8; }}
    upstream shadow_sinks {{ {sinks} keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            mirror /_shadow;
            mirror_request_body on;
            proxy_pass http://primary;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /_shadow {{
            internal;
            proxy_pass http://shadow_sinks$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_connect_timeout 200ms;
            proxy_read_timeout 2s;
        }}
    }}
}}
"""


@contextlib.contextmanager
def run_nginx(tmp: Path, primary_port: int, sink_ports: list[int]) -> Iterator[int]:
    """A real nginx serving the primary and mirroring every request to the sinks."""
    binary = nginx_binary()
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            # As root nginx's workers would switch to nobody, who cannot enter pytest's tmp.
            user="user root;" if os.geteuid() == 0 else "",
            tmp=tmp,
            primary=primary_port,
            sinks=" ".join(f"server 127.0.0.1:{p};" for p in sink_ports),
            port=port,
        )
    )
    proc = subprocess.Popen(
        [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log"),
         "-g", "daemon off;"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        try:
            wait_port(port, 15)
        except TimeoutError:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError(f"nginx did not start:\n{out}") from None
        yield port
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: finishes the mirrors in flight
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def json_app(delay: float = 0.0, differ_on: str = "") -> Any:
    """An ASGI app answering JSON that names the path; `differ_on` paths answer otherwise."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if delay:
            await asyncio.sleep(delay)
        path = scope["path"]
        engine = "candidate" if differ_on and path.startswith(differ_on) else "legacy"
        body = f'{{"path": "{path}", "engine": "{engine}", "ok": true}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
