"""`shadow status` against a real `shadow proxy --metrics` and its store, and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shadow.store.writer import reading
from tests.conftest import ROOT, Server, free_port, run_proxy, shadow_cmd, wait_until

pytestmark = pytest.mark.integration

CONFIG = str(ROOT / "examples" / "shadow.toml")  # no [[accepted]], no secondary: the
# worker's provisional verdicts are the final ones
PATHS = ["/api/health", "/api/analysis/1", "/api/analysis/7", "/api/analysis/abc",
         "/api/insights", "/api/insights/3", "/api/reports"]  # fmt: skip


def _status(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shadow_cmd("status", *args), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _json(*args: str) -> dict[str, Any]:
    r = _status(*args, "--once", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def _wait(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    return wait_until(what, check, timeout, every=0.2)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _by_endpoint(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['method']} {r['route']}": r for r in doc["routes"]}


def _stored(db: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """The store's own figures (the outcome definition) per endpoint."""
    sql = (
        "SELECT endpoint, requests, sent, compared, matched, parity, candidate_error_pct, "
        "skipped, latency_pairs, primary_q, candidate_q FROM shadow_endpoint_outcomes(?)"
    )
    with reading(str(db)) as con:
        found = con.execute(sql, [run_id]).fetchall()
    names = ("requests", "sent", "compared", "matched", "parity", "candidate_error_pct",
             "skipped", "latency_pairs", "primary_q", "candidate_q")  # fmt: skip
    return {str(r[0]): dict(zip(names, r[1:], strict=True)) for r in found}


SAME = ("requests", "sent", "compared", "matched", "skipped", "latency_pairs")


def test_status_agrees_with_the_store(legacy: Server, candidate: Server, tmp_path: Path) -> None:
    db, port = tmp_path / "status.duckdb", free_port()
    metrics = f"127.0.0.1:{port}"
    sent = 0
    with run_proxy(
        legacy.url, candidate.url, db, tmp_path, "--config", CONFIG, "--metrics", metrics
    ) as proxy:
        _wait("the proxy to be ready", lambda: _ready(port))
        stop = threading.Event()

        def traffic() -> None:  # requests while `status` takes its two scrapes
            nonlocal sent
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    for path in PATHS:
                        client.get(proxy.url + path)
                        sent += 1
                    time.sleep(0.02)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        try:
            _wait("traffic", lambda: sent >= 20)
            during = _json("--metrics", metrics, "--interval", "2")
        finally:
            stop.set()
            thread.join(30)
        assert during["source"] == "metrics"
        assert during["rate_window_s"] == pytest.approx(2.0, abs=0.5)
        assert during["totals"]["requests_per_s"] > 0
        assert during["header"]["worker_up"] is True
        assert during["header"]["flags_stale"] is False
        assert set(during["header"]["queue_depth"]) >= {"proxy", "copies", "rows"}

        # every request sent is stored (and counted) before the figures are compared
        def all_stored() -> dict[str, Any] | None:
            doc = _json("--metrics", metrics, "--interval", "0.2")
            return doc if doc["totals"]["requests"] == sent else None

        final = _wait("the worker to store every request", all_stored)
        live_db = _json("--db", str(db))  # the proxy's writer lets go while it is read
        out = proxy.stop()
    assert proxy.process.returncode == 0, out
    run_id = final["run_id"]
    assert run_id and live_db["run_id"] == run_id
    stored = _stored(db, run_id)
    rows = _by_endpoint(final)
    assert set(rows) == set(stored) >= {"GET /api/health", "GET /api/analysis/{id}"}
    assert sum(s["requests"] for s in stored.values()) == sent
    for endpoint, s in stored.items():
        row = rows[endpoint]
        for name in SAME:
            assert row[name] == s[name], (endpoint, name)
        assert row["parity"] == pytest.approx(s["parity"]), endpoint
        assert row["candidate_error_pct"] == pytest.approx(s["candidate_error_pct"]), endpoint
    assert rows["GET /api/health"]["parity"] == 100.0  # both sides agree there
    assert rows["GET /api/analysis/{id}"]["parity"] < 100.0  # the rewrite differs there
    assert rows["GET /api/analysis/{id}"]["mode"] == "shadow"  # a configured route
    assert final["totals"]["dropped"] == 0
    assert final["totals"]["requests"] == sent

    # --db on the finished store: the outcome definition's own figures
    after = _json("--db", str(db), "--run", run_id)
    assert after["source"] == "store" and after["header"]["ended"] is True
    by_db = _by_endpoint(after)
    assert set(by_db) == set(stored)
    for endpoint, s in stored.items():
        row = by_db[endpoint]
        for name in SAME:
            assert row[name] == s[name], (endpoint, name)
        assert row["parity"] == pytest.approx(s["parity"])
        p95 = (s["primary_q"] or [None, None])[1]
        assert row["primary_p95_ms"] == (pytest.approx(p95) if p95 is not None else None)
        assert row["mode"] == "shadow"
    assert after["totals"]["parity"] == pytest.approx(final["totals"]["parity"])
    assert after["totals"]["requests"] == sent
    assert sum(r["requests"] for r in live_db["routes"]) <= sent

    # the table once, without --json
    table = _status("--db", str(db), "--once")
    assert table.returncode == 0, table.stderr
    assert "/api/analysis/{id}" in table.stdout and run_id in table.stdout


def test_live_view_stops_cleanly_on_ctrl_c(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    db, port = tmp_path / "live.duckdb", free_port()
    with run_proxy(
        legacy.url, candidate.url, db, tmp_path, "--metrics", f"127.0.0.1:{port}"
    ) as proxy:
        _wait("the proxy to be ready", lambda: _ready(port))
        with httpx.Client(timeout=10) as client:
            for _ in range(5):
                client.get(proxy.url + "/api/health")
        for source in (["--metrics", f"127.0.0.1:{port}"], ["--db", str(db)]):
            view = subprocess.Popen(
                shadow_cmd("status", *source, "--interval", "0.2"),
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(2.5)  # several redraws
            assert view.poll() is None, view.communicate()
            view.send_signal(signal.SIGINT)
            out, err = view.communicate(timeout=30)
            assert view.returncode == 0, (out, err)
            assert "Traceback" not in err and "error" not in err, err
            assert "/api/health" in out


# --- bad input: one line on stderr, a documented exit code -----------------------------------


def _one_line_error(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("shadow: error:"), r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "give one of --metrics URL or --db FILE"),
        (["--metrics", "127.0.0.1:1", "--db", "x.duckdb"], "give one of"),
        (["--metrics", "nonsense"], "expected HOST:PORT"),
        (["--metrics", "ftp://127.0.0.1/metrics"], "expected http://"),
        (["--metrics", "127.0.0.1:9464", "--run", "r1"], "--db only"),
        (["--db", "x.duckdb", "--interval", "0"], "--interval 0.0"),
    ],
)
def test_bad_options_exit_2(args: list[str], needle: str) -> None:
    _one_line_error(_status(*args, "--once"), 2, needle)


def test_unreachable_endpoint_exits_4() -> None:
    port = free_port()  # nothing listens there
    _one_line_error(_status("--metrics", f"127.0.0.1:{port}", "--once"), 4, "cannot read")


@pytest.mark.parametrize("path", ["/metrics", "/api/health"])
def test_not_a_metrics_endpoint_exits_5(legacy: Server, path: str) -> None:
    # the legacy app: 404 on /metrics, JSON on /api/health
    r = _status("--metrics", legacy.url + path, "--once", "--json")
    _one_line_error(r, 5, legacy.url + path)
    assert r.stdout == ""


def test_bad_store_exits_3(tmp_path: Path) -> None:
    _one_line_error(
        _status("--db", str(tmp_path / "missing.duckdb"), "--once"), 3, "does not exist"
    )
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database at all" * 100)
    _one_line_error(_status("--db", str(junk), "--once"), 3, "junk.duckdb")


def test_unknown_run_exits_2(tmp_path: Path) -> None:
    from tests.store_builder import Call, write_store

    db = write_store(tmp_path / "one.duckdb", [Call("GET /api/a", {"a": 1}, {"a": 1})])
    _one_line_error(_status("--db", db, "--run", "nope", "--once"), 2, "--run nope")
    doc = _json("--db", db)
    assert doc["run_id"] == "r1" and doc["totals"]["requests"] == 1
