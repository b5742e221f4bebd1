"""Helpers of the metrics tests: backends with known verdicts, scrapes, a real Prometheus.

    with backends() as (primary, candidate), metrics_proxy(primary, candidate, tmp) as p:
        send(p.url, TRAFFIC)
        stored_count(p.db, p.run_id)            # rows of the run (reading(): the proxy runs)
        scrape(p.metrics_port)                  # (status, body) of /metrics
        with PrometheusServer(tmp, [target]) as prom:
            prom.value('sum(shadow_requests_total)')

Without `prometheus` the tests that need it skip with the reason, except in CI
(CI=true), where they fail: there they must run (scripts/ensure-services installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import RunningProxy, Server, free_port, run_proxy, serve, wait_until

# --- backends whose verdicts are known in advance ---------------------------------------
#   GET /api/item/{id}   candidate differs (price) when id % 3 == 0, else matches
#   GET /api/flaky/{id}  the candidate cuts its answer short when id % 4 == 0 (a transport
#                        error: candidate_error), answers 500 when id % 5 == 0 (differ,
#                        and a candidate 5xx), else matches
#   GET /api/health      always matches
#   POST /api/submit     not copied (unsafe method): skipped


class _CutShort(Exception):
    """Raised after the headers went out: the server drops the connection mid-answer."""


def _app(candidate: bool) -> Any:
    async def item(request: Request) -> Response:
        n = int(request.path_params["id"])
        price = 11 if candidate and n % 3 == 0 else 10
        return JSONResponse({"id": n, "name": f"item {n}", "price": price})

    async def flaky(request: Request) -> Response:
        n = int(request.path_params["id"])
        if candidate and n % 5 == 0:
            return JSONResponse({"error": "boom"}, status_code=500)
        return JSONResponse({"id": n, "ok": True})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def submit(request: Request) -> Response:
        return JSONResponse({"accepted": True}, status_code=201)

    app = Starlette(
        routes=[
            Route("/api/item/{id:int}", item),
            Route("/api/flaky/{id:int}", flaky),
            Route("/api/health", health),
            Route("/api/submit", submit, methods=["POST"]),
        ]
    )
    if not candidate:
        return app

    async def cutting(scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        head, _, last = path.rpartition("/")
        if head == "/api/flaky" and last.isdigit() and int(last) % 4 == 0:
            headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"id": ', "more_body": True})
            raise _CutShort(path)
        await app(scope, receive, send)

    return cutting


@contextlib.contextmanager
def backends() -> Iterator[tuple[Server, Server]]:
    """(primary, candidate): real uvicorn servers of `_app` on 127.0.0.1."""
    with serve(_app(candidate=False)) as primary, serve(_app(candidate=True)) as candidate:
        yield primary, candidate


def mixed_traffic(items: int = 24, flaky: int = 40) -> list[tuple[str, str]]:
    """(method, path): matches, differences, candidate errors and skipped requests."""
    out = [("GET", f"/api/item/{i}") for i in range(1, items + 1)]
    out += [("GET", f"/api/flaky/{i}") for i in range(1, flaky + 1)]
    out += [("GET", "/api/health")] * 6
    out += [("POST", "/api/submit")] * 3
    return out


def send(base: str, requests: Iterable[tuple[str, str]], threads: int = 4) -> None:
    """Send each request through the proxy; the client must get the primary's answer."""

    def one(client: httpx.Client, method: str, path: str) -> None:
        resp = client.request(method, base + path, json={"x": 1} if method == "POST" else None)
        assert resp.status_code in (200, 201), (method, path, resp.status_code, resp.text)

    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(one, client, m, p) for m, p in requests]:
            f.result()


# --- the proxy with --metrics ----------------------------------------------------------


@dataclass
class MetricsProxy:
    proxy: RunningProxy
    metrics_port: int
    run_id: str

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def db(self) -> Path:
        return self.proxy.db

    @property
    def pid(self) -> int:
        return self.proxy.process.pid


@contextlib.contextmanager
def metrics_proxy(
    primary: Server, candidate: Server, tmp: Path, run_id: str = "metrics-run", port: int = 0
) -> Iterator[MetricsProxy]:
    """`shadow proxy --metrics 127.0.0.1:<port or a free one>` (no config: no accepted
    entries, no secondary: the stored and the final verdicts agree)."""
    port = port or free_port()
    db = tmp / "shadow.duckdb"
    extra = ("--metrics", f"127.0.0.1:{port}", "--run-id", run_id)
    with run_proxy(primary.url, candidate.url, db, tmp, *extra) as proxy:
        yield MetricsProxy(proxy, port, run_id)


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def scrape(port: int) -> str:
    status, body = get(port, "/metrics")
    assert status == 200, body
    return body


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Values of the samples called `name` (e.g. shadow_requests_total), by sorted labels."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def by(
    values: dict[tuple[tuple[str, str], ...], float], *keys: str
) -> dict[tuple[str, ...], float]:
    """Sum `values` over every label but `keys` (PromQL's sum by (keys))."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in values.items():
        d = dict(labels)
        k = tuple(d.get(key, "") for key in keys)
        out[k] = out.get(k, 0.0) + value
    return out


# --- the store, read while the proxy runs ----------------------------------------------


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of `sql` on the store with the outcome macros (the writer lets go meanwhile)."""
    from shadow.store.writer import reading

    with reading(str(db)) as con:
        return con.execute(sql, params or []).fetchall()


def stored_count(db: Path, run_id: str) -> int:
    if not db.exists():
        return 0
    try:
        found = query(db, "SELECT count(*) FROM exchanges WHERE run_id = ?", [run_id])
    except Exception:  # not written yet (no schema): nothing stored
        return 0
    return int(found[0][0])


def wait_stored(proxy: MetricsProxy, n: int, timeout: float = 60) -> None:
    wait_until(f"{n} rows stored", lambda: stored_count(proxy.db, proxy.run_id) >= n, timeout, 0.5)
    assert stored_count(proxy.db, proxy.run_id) == n


# --- processes -------------------------------------------------------------------------


def worker_pid(proxy_pid: int) -> int | None:
    """The proxy's worker: its child started by multiprocessing's spawn (not the tracker)."""
    from shadow.monitoring.procstat import children

    for pid in children(proxy_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            return pid
    return None


def binary(name: str) -> str:
    """The path of `name`; skips the test (fails it in CI) when it is not installed."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None
    )
    if found:
        return found
    reason = f"{name} is not installed (apt-get install prometheus; see scripts/ensure-services)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


# --- a real Prometheus server ----------------------------------------------------------


class PrometheusServer:
    """One `prometheus` scraping `targets` every second, its TSDB in a tmp dir."""

    def __init__(self, tmp: Path, targets: list[str]) -> None:
        self.binary = binary("prometheus")
        self.dir = tmp
        self.port = free_port()
        self.targets = targets
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        targets = ", ".join(f'"{t}"' for t in self.targets)
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: shadow\n    scrape_interval: 1s\n"
            f"    scrape_timeout: 1s\n    static_configs:\n      - targets: [{targets}]\n"
        )
        cmd = [
            self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ]  # fmt: skip
        log = open(self.dir / "prometheus.log", "ab")  # noqa: SIM115  (the child keeps it open)
        with log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not start on {self.port}:\n{self.log()}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        path = self.dir / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of `promql` now: [{"metric": {...}, "value": [t, "1.5"]}]."""
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", (promql, body)
        assert body["data"]["resultType"] == "vector", body
        return list(body["data"]["result"])

    def value(self, promql: str) -> float | None:
        """The single value of `promql` (None: an empty result)."""
        result = self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else None

    def values(self, promql: str, label: str) -> dict[str, float]:
        """Values of `promql` by the value of `label` in each series."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
