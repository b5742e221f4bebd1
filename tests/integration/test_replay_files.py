"""`shadow replay` of real traffic files from several producers against the example backends.

Fixtures in tests/data/traffic/ and where they come from:

- chromium.har: recorded by a real headless Chromium 156 (Playwright's HAR
  recorder, `record_har_content="embed"`) loading the legacy example app and
  fetching 11 API URLs (gzip lists, error paths, a POST, an Authorization
  header and a session cookie) from the page.
- chrome.har: Chrome DevTools "Export HAR" shape (HTTP/2 pseudo-headers,
  `_initiator`, a data: URL, a `status: 0` entry) for another site.
- shadow_proxy.mitm: written by `shadow proxy --record` while 40 requests of
  `examples.traffic.demo_requests(40, seed=11)` went through it.
- mitmproxy_savehar.har: mitmproxy 11's SaveHar addon export of that dump
  (`mitmdump -n -r shadow_proxy.mitm --set hardump=mitmproxy_savehar.har`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import ROOT, Server, shadow_cmd

pytestmark = pytest.mark.integration

TRAFFIC = ROOT / "tests" / "data" / "traffic"


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shadow_cmd("replay", *args, "--no-progress"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _verdicts(db: Path, run_id: str) -> dict[tuple[str, str], int]:
    rows = _rows(
        db,
        "SELECT endpoint, verdict, count(*) FROM exchanges WHERE run_id = ? GROUP BY ALL",
        [run_id],
    )
    return {(str(e), str(v)): int(n) for e, v, n in rows}


def _diff_paths(db: Path, run_id: str) -> set[tuple[str, str]]:
    rows = _rows(db, "SELECT DISTINCT endpoint, path FROM differences WHERE run_id = ?", [run_id])
    return {(str(e), str(p)) for e, p in rows}


# What the 12 requests of chromium.har give between the example backends.
CHROMIUM_VERDICTS = {
    ("GET /api/health", "match"): 2,
    ("GET /api/insights", "match"): 1,  # gzip on both sides: decoded before comparing
    ("GET /api/analysis/{id}", "differ"): 2,  # 3 and 9: createdAt, requestId
    ("GET /api/analysis/{id}", "match"): 1,  # 999: the same 404 on both
    ("GET /api/analysis/abc", "differ"): 1,  # 400 vs 422
    ("GET /api/insights/{id}", "differ"): 2,  # 2: confidenceScore; 42: 400 vs 404
    ("GET /api/process-updates", "match"): 1,
    ("GET /api/reports", "differ"): 1,  # list order
    ("POST /api/start-analysis", "skipped"): 1,  # unsafe: sent nowhere
}


@pytest.mark.parametrize("with_primary", [True, False], ids=["primary", "recorded"])
def test_browser_har_from_chromium(
    with_primary: bool, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    db = tmp_path / "p.duckdb"
    har = TRAFFIC / "chromium.har"
    primary = ["--primary", legacy.url] if with_primary else []
    r = _replay(str(har), "--candidate", candidate.url, *primary, "--db", str(db), "--run-id", "b")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert _verdicts(db, "b") == CHROMIUM_VERDICTS
    diffs = _diff_paths(db, "b")
    assert ("GET /api/analysis/{id}", "$.createdAt") in diffs
    assert ("GET /api/insights/{id}", "$status") in diffs
    assert ("GET /api/analysis/abc", "$status") in diffs
    assert ("GET /api/insights/{id}", "$.confidenceScore") in diffs
    # the browser's secrets never reach the store, and the skipped POST was not sent anywhere
    dump = json.dumps(_rows(db, "SELECT * FROM exchanges"), default=str)
    assert "browser-secret" not in dump and "browser-cookie-secret" not in dump
    assert "[REDACTED]" in dump
    (skipped,) = _rows(
        db, "SELECT candidate_status, primary_status, skip_reason FROM exchanges "
        "WHERE verdict = 'skipped'",
    )  # fmt: skip
    assert skipped[0] is None and skipped[1] == 201  # the recorded answer, for reference
    assert "unsafe" in str(skipped[2])
    ((source, primary_url, candidate_url, options, ended, n),) = _rows(
        db, "SELECT source, primary_url, candidate_url, options, ended_at, exchanges FROM runs"
    )
    assert source == f"replay:{har}"
    assert primary_url == (legacy.url if with_primary else None)
    assert candidate_url == candidate.url
    assert json.loads(options)["fmt"] == "har"
    assert ended is not None and n == 12
    assert "read 12 entries: sent 11, skipped 1" in r.stdout


def test_devtools_shaped_har(legacy: Server, candidate: Server, tmp_path: Path) -> None:
    """HTTP/2 pseudo-headers dropped, data: URL passed over, status 0 = no recorded answer."""
    db = tmp_path / "c.duckdb"
    har = TRAFFIC / "chrome.har"
    r = _replay(str(har), "--candidate", candidate.url, "--db", str(db), "--run-id", "rec")
    assert r.returncode == 0, r.stderr
    # 4 http(s) entries: 2 GETs sent, the POST skipped (stored), the ping has no answer
    assert "read 4 entries: sent 2, skipped 2 (unsafe method 1, no recorded response 1)" in (
        r.stdout
    )
    r = _replay(
        str(har), "--candidate", candidate.url, "--primary", legacy.url,
        "--db", str(db), "--run-id", "prim",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "read 4 entries: sent 3, skipped 1 (unsafe method 1" in r.stdout  # ping goes out
    paths = _rows(db, "SELECT run_id, method, path, query, request_headers FROM exchanges")
    assert {(str(a), str(b), str(c)) for a, b, c, _q, _h in paths} == {
        ("rec", "GET", "/api/items"), ("rec", "GET", "/static/logo.png"),
        ("rec", "POST", "/api/items"), ("prim", "GET", "/api/items"),
        ("prim", "GET", "/static/logo.png"), ("prim", "POST", "/api/items"),
        ("prim", "GET", "/ping"),
    }  # fmt: skip
    for _run, _m, path, query, headers in paths:
        assert not any(name.startswith(":") for name, _v in json.loads(headers)), headers
        if path == "/api/items" and _m == "GET":
            assert query == "page=2&sort=name"


@pytest.mark.parametrize("name", ["shadow_proxy.mitm", "mitmproxy_savehar.har"])
@pytest.mark.parametrize("with_primary", [True, False], ids=["primary", "recorded"])
def test_mitmproxy_dump_and_mitmproxy_har(
    name: str, with_primary: bool, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    """The proxy's own dump and mitmproxy's HAR export of it replay to the same verdicts."""
    db = tmp_path / "m.duckdb"
    primary = ["--primary", legacy.url] if with_primary else []
    r = _replay(
        str(TRAFFIC / name), "--candidate", candidate.url, *primary, "--db", str(db),
        "--run-id", "m",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    verdicts = _verdicts(db, "m")
    assert sum(verdicts.values()) == 40
    # from the demo traffic: agreeing endpoints match, the slips differ, POSTs are skipped
    assert set(verdicts) >= {
        ("GET /api/health", "match"),
        ("GET /api/insights", "match"),
        ("GET /api/analysis/{id}", "differ"),
        ("GET /api/reports", "differ"),
        ("POST /api/start-analysis", "skipped"),
    }
    assert not any(v.endswith("error") for _e, v in verdicts)
    assert ("GET /api/analysis/{id}", "$.createdAt") in _diff_paths(db, "m")
    fmt = json.loads(_rows(db, "SELECT options FROM runs")[0][0])["fmt"]
    assert fmt == ("mitm" if name.endswith(".mitm") else "har")


def test_dump_and_its_har_export_agree(candidate: Server, tmp_path: Path) -> None:
    """Two producers, one traffic: per-endpoint verdict counts are equal."""
    db = tmp_path / "a.duckdb"
    for run, name in (("dump", "shadow_proxy.mitm"), ("har", "mitmproxy_savehar.har")):
        r = _replay(
            str(TRAFFIC / name), "--candidate", candidate.url, "--db", str(db), "--run-id", run
        )
        assert r.returncode == 0, r.stderr
    assert _verdicts(db, "dump") == _verdicts(db, "har")
