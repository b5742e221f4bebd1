"""`shadow proxy --metrics`: one scrape of both processes, agreeing with the store.

Real parts only: `shadow proxy` as a subprocess between uvicorn backends whose
verdicts are known (tests/integration/prom_helpers.py), scraped over HTTP; the
store read with `reading()` while the proxy runs. No secondary and no config, so
the provisional verdict the worker counts is the final one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions
from prometheus_client.parser import text_string_to_metric_families

from shadow.live.addon import Shadow
from tests.conftest import ROOT, Server, free_port, shadow_cmd
from tests.integration.prom_helpers import (
    MetricsProxy,
    backends,
    by,
    get,
    metrics_proxy,
    mixed_traffic,
    query,
    samples,
    scrape,
    send,
    wait_stored,
    wait_until,
    worker_pid,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # ldap3/passlib via mitmproxy.master
    from mitmproxy.test import taddons

pytestmark = pytest.mark.integration

ITEMS = 300  # distinct raw ids of /api/item/{id}: one route label, never 300


@dataclass
class Run:
    proxy: MetricsProxy
    text: str  # one scrape after every row was stored
    readyz: list[tuple[int, str]] = field(default_factory=list)  # answers from the start on
    healthz: tuple[int, str] = (0, "")


def _watch_readyz(port: int, seen: list[tuple[int, str]], stop: threading.Event) -> None:
    """Ask /readyz from before the proxy starts until it says ready (bounded)."""
    deadline = time.monotonic() + 90
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            status, body = get(port, "/readyz", timeout=1)
        except OSError:  # not listening, or bound but not served yet
            time.sleep(0.05)
            continue
        seen.append((status, body))
        if status == 200:
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("metrics")
    port = free_port()
    readyz: list[tuple[int, str]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_readyz, args=(port, readyz, stop), daemon=True)
    watcher.start()
    try:
        with (
            backends() as (primary, candidate),
            metrics_proxy(primary, candidate, tmp, port=port) as proxy,
        ):
            wait_until("/readyz says ready", lambda: readyz and readyz[-1][0] == 200, 90)
            traffic = mixed_traffic(items=ITEMS)
            send(proxy.url, traffic)
            wait_stored(proxy, len(traffic))
            yield Run(proxy, scrape(port), readyz, get(port, "/healthz"))
    finally:
        stop.set()
        watcher.join(5)


def _endpoint(labels: tuple[str, ...]) -> str:
    return " ".join(labels)


def test_one_scrape_sees_the_proxy_and_the_worker(run: Run) -> None:
    text = run.text
    assert samples(text, "shadow_proxy_requests_total")[()] >= len(mixed_traffic(items=ITEMS))
    assert samples(text, "shadow_worker_up") == {(): 1.0}
    assert samples(text, "shadow_worker_restarts_total") == {(): 0.0}
    assert sum(samples(text, "shadow_requests_total").values()) == len(mixed_traffic(ITEMS))
    assert samples(text, "shadow_store_up") == {(): 1.0}
    processes = {dict(k)["process"] for k in samples(text, "shadow_process_cpu_seconds_total")}
    assert {"proxy", "worker"} <= processes
    assert run.healthz == (200, "ok\n")
    assert get(run.proxy.metrics_port, "/readyz") == (200, "ready\n")


def test_readyz_says_why_before_the_worker_is_ready(run: Run) -> None:
    # The server answers from the proxy's start; the worker (a spawned process) takes
    # seconds to import and open the store, so the first answers are 503 with a reason.
    statuses = [s for s, _ in run.readyz]
    assert statuses[-1] == 200
    assert statuses[0] == 503, run.readyz
    assert set(statuses[:-1]) == {503}, run.readyz
    for _, body in run.readyz[:-1]:
        assert body.startswith("not ready: ") and len(body.strip()) > len("not ready:"), body


def test_exposition_parses_without_duplicate_families(run: Run) -> None:
    families = list(text_string_to_metric_families(run.text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    types = [line.split()[2] for line in run.text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    for f in families:
        if f.name.startswith("shadow_"):
            assert f.documentation, f.name


def test_verdict_counters_equal_the_stored_rows(run: Run) -> None:
    p = run.proxy
    stored = query(
        p.db,
        "SELECT endpoint, provisional_verdict, count(*) FROM shadow_exchange_outcomes(?) "
        "GROUP BY ALL",
        [p.run_id],
    )
    want = {(*str(e).split(" ", 1), str(v)): float(n) for e, v, n in stored}
    got = by(samples(run.text, "shadow_verdicts_total"), "method", "route", "verdict")
    assert {k: v for k, v in got.items() if v} == want
    # a route's series all exist from its first request, at 0: increase() sees the first one
    for method, route in {(m, r) for m, r, _ in want}:
        assert {v for m, r, v in got if (m, r) == (method, route)} == {
            "match",
            "differ",
            "candidate_error",
            "primary_error",
            "skipped",
        }
    # every kind of outcome is there: the comparison is not vacuous
    assert {v for _, _, v in want} == {"match", "differ", "candidate_error", "skipped"}
    # no secondary, no accepted entries: the stored verdict is the final one
    moved = query(
        p.db,
        "SELECT count(*) FROM shadow_exchange_outcomes(?) WHERE verdict <> provisional_verdict",
        [p.run_id],
    )
    assert moved == [(0,)]


def test_request_counters_equal_the_stored_rows_by_who_answered(run: Run) -> None:
    p = run.proxy
    stored = query(
        p.db,
        "SELECT endpoint, coalesce(served_by, 'primary'), count(*) FROM exchanges "
        "WHERE run_id = ? GROUP BY ALL",
        [p.run_id],
    )
    want = {(*str(e).split(" ", 1), str(s)): float(n) for e, s, n in stored}
    got = by(samples(run.text, "shadow_requests_total"), "method", "route", "served_by")
    assert {k: v for k, v in got.items() if v} == want
    # both who-answered series of a route exist from its first request (0 until used)
    assert {s for _, _, s in got} == {"primary", "candidate"}


def test_backend_error_counters_equal_the_stored_failures(run: Run) -> None:
    p = run.proxy
    stored = query(
        p.db,
        "SELECT endpoint, count(*) FROM shadow_exchange_outcomes(?) "
        "WHERE provisional_verdict <> 'skipped' "
        "AND shadow_candidate_failed(candidate_status, candidate_error) GROUP BY ALL",
        [p.run_id],
    )
    want = {("candidate", *str(e).split(" ", 1)): float(n) for e, n in stored}
    got = by(samples(run.text, "shadow_backend_errors_total"), "backend", "method", "route")
    assert {k: v for k, v in got.items() if v} == want
    # both kinds: cut short (a transport error) and 500
    assert want[("candidate", "GET", "/api/flaky/{id}")] > 0


def test_latency_histograms_count_the_fair_pairs(run: Run) -> None:
    p = run.proxy
    stored = query(
        p.db,
        "SELECT endpoint, latency_pairs, latency_excluded, compared "
        "FROM shadow_endpoint_outcomes(?)",
        [p.run_id],
    )
    counts = samples(run.text, "shadow_latency_seconds_count")
    excluded = by(samples(run.text, "shadow_latency_excluded_total"), "method", "route")
    for endpoint, pairs, left_out, compared in stored:
        method, route = str(endpoint).split(" ", 1)
        for backend in ("primary", "candidate"):
            key = (("backend", backend), ("method", method), ("route", route))
            assert counts.get(key, 0.0) == pairs, (endpoint, backend)
        assert excluded.get((method, route), 0.0) == left_out, endpoint
        # every compared exchange is a fair pair or left out (how many of each: the load)
        assert pairs + left_out == compared, endpoint
    assert sum(int(c) for *_, c in stored) > 0
    # no series for an endpoint the store has no row of
    endpoints = {str(e) for e, *_ in stored}
    for labels in counts:
        d = dict(labels)
        assert f"{d['method']} {d['route']}" in endpoints
    # the +Inf bucket is the count
    buckets = samples(run.text, "shadow_latency_seconds_bucket")
    for labels, n in counts.items():
        assert buckets[tuple(sorted((*labels, ("le", "+Inf"))))] == n


def test_route_labels_are_templates_never_raw_paths(run: Run) -> None:
    routes: set[str] = set()
    for family in text_string_to_metric_families(run.text):
        for s in family.samples:
            if "route" in s.labels:
                routes.add(s.labels["route"])
    assert routes == {"/api/item/{id}", "/api/flaky/{id}", "/api/health", "/api/submit"}
    requests = by(samples(run.text, "shadow_requests_total"), "route")
    assert requests[("/api/item/{id}",)] == ITEMS
    assert samples(run.text, "shadow_route_labels_overflow_total") == {(): 0.0}


# --- bad input: one line, exit 2, no traceback -------------------------------------------


def _proxy_cmd(legacy: Server, candidate: Server, tmp: Path, metrics: str) -> list[str]:
    return shadow_cmd(
        "proxy", "--primary", legacy.url, "--candidate", candidate.url,
        "--listen", f"127.0.0.1:{free_port()}", "--db", str(tmp / "x.duckdb"),
        "--confdir", str(tmp / "mitm"), "--quiet", "--metrics", metrics,
    )  # fmt: skip


def _refused(cmd: list[str]) -> tuple[str, str]:
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    both = done.stdout + done.stderr
    assert "Traceback" not in both, both
    assert done.returncode == 2, both
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "--metrics" in lines[0], lines[0]
    return lines[0], done.stdout


def test_a_busy_metrics_port_is_one_line_and_exit_2(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line, _ = _refused(_proxy_cmd(legacy, candidate, tmp_path, f"127.0.0.1:{port}"))
    assert f"127.0.0.1:{port}" in line and "cannot listen" in line


def test_metrics_on_the_listen_address_is_one_line_and_exit_2(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    # Both free when checked one after the other; the proxy cannot have both.
    port = free_port()
    cmd = _proxy_cmd(legacy, candidate, tmp_path, f"127.0.0.1:{port}")
    cmd[cmd.index("--listen") + 1] = f"127.0.0.1:{port}"
    line, _ = _refused(cmd)
    assert str(port) in line


@pytest.mark.parametrize(
    ("value", "needle"),
    [("nonsense", "HOST:PORT"), ("127.0.0.1:70000", "70000"), ("127.0.0.1:0", "port 0")],
)
def test_a_bad_metrics_address_is_one_line_and_exit_2(
    legacy: Server, candidate: Server, tmp_path: Path, value: str, needle: str
) -> None:
    line, _ = _refused(_proxy_cmd(legacy, candidate, tmp_path, value))
    assert needle in line


@pytest.fixture
def addon(tmp_path: Path) -> Iterator[tuple[Any, Shadow]]:
    shadow = Shadow()
    with taddons.context(shadow) as tctx:
        yield tctx, shadow


def _configure(addon: tuple[Any, Shadow], tmp_path: Path, metrics: str) -> None:
    tctx, shadow = addon
    tctx.configure(
        shadow,
        shadow_candidate="http://127.0.0.1:9",
        shadow_db=str(tmp_path / "x.duckdb"),
        shadow_metrics=metrics,
    )


@pytest.mark.parametrize("value", ["nonsense", "127.0.0.1:70000", "my host:9464"])
def test_the_addon_refuses_a_bad_shadow_metrics(
    addon: tuple[Any, Shadow], tmp_path: Path, value: str
) -> None:
    with pytest.raises(exceptions.OptionsError, match="shadow_metrics") as info:
        _configure(addon, tmp_path, value)
    assert len(str(info.value).strip().splitlines()) == 1
    assert not addon[1].enabled


def test_the_addon_refuses_a_busy_port_and_releases_a_good_one(
    addon: tuple[Any, Shadow], tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(exceptions.OptionsError, match=r"shadow_metrics.*cannot listen"):
            _configure(addon, tmp_path, f"127.0.0.1:{port}")
    good = free_port()
    _configure(addon, tmp_path, f"127.0.0.1:{good}")
    assert addon[1].enabled
    with socket.socket() as probe, pytest.raises(OSError):
        probe.bind(("127.0.0.1", good))  # the addon holds it from configure on
    _configure(addon, tmp_path, "")  # metrics off: the port is let go
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", good))


# --- the worker dying -------------------------------------------------------------------


def test_a_dead_worker_leaves_the_proxys_part_and_says_so(tmp_path: Path) -> None:
    with backends() as (primary, candidate), metrics_proxy(primary, candidate, tmp_path) as p:
        port = p.metrics_port
        wait_until("ready", lambda: get(port, "/readyz", timeout=5)[0] == 200, 90)
        traffic = mixed_traffic(items=6, flaky=6)
        send(p.url, traffic)
        wait_stored(p, len(traffic))
        before = scrape(port)
        assert samples(before, "shadow_worker_up") == {(): 1.0}
        assert sum(samples(before, "shadow_requests_total").values()) == len(traffic)

        pid = worker_pid(p.pid)
        assert pid is not None, f"no worker among the children of {p.pid}"
        os.kill(pid, signal.SIGKILL)

        # Down: the proxy still answers, with its own families and worker_up 0.
        def down() -> str | None:
            text = scrape(port)
            return text if samples(text, "shadow_worker_up") == {(): 0.0} else None

        text = wait_until("shadow_worker_up 0", down, 10, every=0.05)
        assert samples(text, "shadow_proxy_requests_total")[()] >= len(traffic)
        assert not samples(text, "shadow_requests_total")  # the worker's part is gone
        status, body = get(port, "/readyz")
        assert status == 503 and body.startswith("not ready: "), (status, body)
        assert get(port, "/healthz") == (200, "ok\n")

        # Back: the restarted worker answers; the restart is counted.
        def up() -> str | None:
            text = scrape(port)
            return text if samples(text, "shadow_worker_up") == {(): 1.0} else None

        text = wait_until("the worker restarted", up, 90, every=0.2)
        assert samples(text, "shadow_worker_restarts_total") == {(): 1.0}
        assert worker_pid(p.pid) not in (None, pid)
        wait_until("ready again", lambda: get(port, "/readyz")[0] == 200, 30)
        send(p.url, [("GET", "/api/health")] * 2)
        wait_until(
            "the new worker counts",
            lambda: sum(samples(scrape(port), "shadow_requests_total").values()) == 2,
            30,
        )
