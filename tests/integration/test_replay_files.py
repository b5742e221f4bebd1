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
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server
from tests.integration.helpers import replay as _replay
from tests.integration.helpers import rows as _rows
from tests.integration.helpers import verdicts as _verdicts

pytestmark = pytest.mark.integration

TRAFFIC = ROOT / "tests" / "data" / "traffic"


def _diff_paths(db: Path, run_id: str) -> set[tuple[str, str]]:
    rows = _rows(db, "SELECT DISTINCT endpoint, path FROM differences WHERE run_id = ?", [run_id])
    return {(str(e), str(p)) for e, p in rows}


# What the 12 requests of chromium.har give between the example backends, for the
# slips that no comparator normalisation may hide (status codes, a renamed field).
# Endpoints whose verdict depends on comparator defaults (timestamps spelled
# differently, list order) are checked only for presence and count.
CHROMIUM_STABLE = {
    ("GET /api/health", "match"): 2,
    ("GET /api/insights", "match"): 1,  # gzip on both sides: decoded before comparing
    ("GET /api/analysis/abc", "differ"): 1,  # 400 vs 422
    ("GET /api/insights/{id}", "differ"): 2,  # 2: confidenceScore; 42: 400 vs 404
    ("GET /api/process-updates", "match"): 1,
    ("POST /api/start-analysis", "skipped"): 1,  # unsafe: sent nowhere
}
CHROMIUM_ENDPOINTS = {
    "GET /api/health": 2,
    "GET /api/insights": 1,
    "GET /api/analysis/{id}": 3,  # 3, 9 and the unknown 999
    "GET /api/analysis/abc": 1,
    "GET /api/insights/{id}": 2,
    "GET /api/process-updates": 1,
    "GET /api/reports": 1,
    "POST /api/start-analysis": 1,
}


def test_browser_har_from_chromium(legacy: Server, candidate: Server, tmp_path: Path) -> None:
    """Both modes: with --primary, and with the recorded answers standing for the primary's."""
    db = tmp_path / "p.duckdb"
    har = TRAFFIC / "chromium.har"
    for run, primary in (("prim", ["--primary", legacy.url]), ("rec", [])):
        r = _replay(
            str(har), "--candidate", candidate.url, *primary, "--db", str(db), "--run-id", run
        )
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        assert "read 12 entries: sent 11, skipped 1" in r.stdout
    verdicts = _verdicts(db, "prim")
    assert _verdicts(db, "rec") == verdicts  # the recording stands in for the primary
    for key, n in CHROMIUM_STABLE.items():
        assert verdicts.get(key) == n, (key, verdicts)
    per_endpoint: dict[str, int] = {}
    for (endpoint, verdict), n in verdicts.items():
        per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + n
        assert not verdict.endswith("error"), (endpoint, verdict)
    assert per_endpoint == CHROMIUM_ENDPOINTS
    diffs = _diff_paths(db, "prim")
    assert diffs == _diff_paths(db, "rec")
    assert ("GET /api/insights/{id}", "$status") in diffs
    assert ("GET /api/analysis/abc", "$status") in diffs
    assert ("GET /api/insights/{id}", "$.confidenceScore") in diffs
    # the browser's secrets never reach the store, and the skipped POST was sent nowhere
    dump = json.dumps(_rows(db, "SELECT * FROM exchanges"), default=str)
    assert "browser-secret" not in dump and "browser-cookie-secret" not in dump
    assert "[REDACTED]" in dump
    skipped = _rows(
        db, "SELECT candidate_status, primary_status, skip_reason FROM exchanges "
        "WHERE verdict = 'skipped'",
    )  # fmt: skip
    assert len(skipped) == 2
    for cand_status, prim_status, reason in skipped:
        assert cand_status is None and prim_status == 201  # the recorded answer, for reference
        assert "unsafe" in str(reason)
    runs = _rows(
        db,
        "SELECT run_id, source, primary_url, candidate_url, options, ended_at, exchanges "
        "FROM runs ORDER BY run_id",
    )
    assert [r[0] for r in runs] == ["prim", "rec"]
    for run_id, source, primary_url, candidate_url, options, ended, n in runs:
        assert source == f"replay:{har}"
        assert primary_url == (legacy.url if run_id == "prim" else None)
        assert candidate_url == candidate.url
        assert json.loads(options)["fmt"] == "har"
        assert ended is not None and n == 12


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
def test_mitmproxy_dump_and_mitmproxy_har(
    name: str, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    """The proxy's own dump and mitmproxy's HAR export of it, in both modes."""
    db = tmp_path / "m.duckdb"
    for run, primary in (("prim", ["--primary", legacy.url]), ("rec", [])):
        r = _replay(
            str(TRAFFIC / name), "--candidate", candidate.url, *primary, "--db", str(db),
            "--run-id", run,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    verdicts = _verdicts(db, "prim")
    assert _verdicts(db, "rec") == verdicts
    assert sum(verdicts.values()) == 40
    # from the demo traffic: agreeing endpoints match, the slips differ, POSTs are skipped
    assert set(verdicts) >= {
        ("GET /api/health", "match"),
        ("GET /api/insights", "match"),
        ("GET /api/analysis/{id}", "differ"),  # requestId is random in both apps
        ("GET /api/insights/{id}", "differ"),
        ("POST /api/start-analysis", "skipped"),
    }
    assert not any(v.endswith("error") for _e, v in verdicts)
    assert ("GET /api/analysis/{id}", "$.requestId") in _diff_paths(db, "rec")
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


@pytest.mark.parametrize(("name", "fmt"), [("goreplay.gor", "gor"), ("sample.jsonl", "jsonl")])
def test_goreplay_and_json_lines_files(
    name: str, fmt: str, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    """Both small fixtures (3 entries each, one an unsafe POST) replay in both modes."""
    db = tmp_path / "g.duckdb"
    for run, primary in (("prim", ["--primary", legacy.url]), ("rec", [])):
        r = _replay(
            str(TRAFFIC / name), "--candidate", candidate.url, *primary, "--db", str(db),
            "--run-id", run,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "read 3 entries:" in r.stdout and "unsafe method 1" in r.stdout
    assert _rows(db, "SELECT count(*) FROM exchanges WHERE run_id = 'prim'")[0][0] >= 2
    for (options,) in _rows(db, "SELECT options FROM runs"):
        assert json.loads(options)["fmt"] == fmt
