"""`pytest --shadow-openapi SOURCE`: differential tests generated from an OpenAPI document.

The example candidate serves its document at /openapi.json; requests generated from
it go to both example apps (in process), and each distinct difference is reported
once, with the smallest request that shows it as a curl command.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.shadow.testing.inner_runs import deciding_reports

ROOT = Path(__file__).resolve().parents[3]
BOTH = (
    "--shadow-primary", "examples.legacy.app:http_app",
    "--shadow-candidate", "examples.candidate.app:http_app",
)  # fmt: skip
# examples/shadow.toml, the parts that matter here: the datetime slips shown, the two
# POST routes generated (the example apps keep no state), their per-request ids ignored.
SHADOW_TOML = """
[compare]
normalize = { iso_instants = false }

[[endpoints]]
route = "/api/analysis/{id}"

[[endpoints]]
route = "/api/insights/{id}"

[[endpoints]]
route = "/api/start-analysis"
methods = ["POST"]
mirror_unsafe = true
compare = { ignore_paths = ["$.requestId"] }

[[endpoints]]
route = "/api/process-results"
methods = ["POST"]
mirror_unsafe = true
compare = { ignore_paths = ["$.requestId"] }
"""
OPERATIONS = {
    "GET /api/health",
    "GET /api/analysis/{analysis_id}",
    "POST /api/start-analysis",
    "POST /api/process-results",
    "GET /api/process-updates",
    "GET /api/insights",
    "GET /api/insights/{insight_id}",
    "GET /api/reports",
}
EXPECTED = {
    "$.cost (type_changed)",
    "$.processedAt (value_changed)",
    "$.createdAt (value_changed)",
    "$.completedAt (added)",
    "$.metrics.avgOrderValue (value_changed)",
    "$.priority (removed)",
    "$.confidenceScore (removed)",
    "$status (status)",
    "$.reports (reordered)",
}
KEY_LINE = re.compile(r"^(\S.*): in (\d+) of the generated requests; smallest:$")
SKIPPED_POST = "POST is not generated (allow it with --shadow-unsafe or the route's mirror_unsafe)"
# duckdb too (reports.curl imports it): its native module cannot be imported twice.
PREIMPORT = ("duckdb", "reports", "examples.legacy.app", "examples.candidate.app",
             "schemathesis", "shadow.testing.openapi_items", "shadow.config.loader")  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _imported_once() -> None:
    """Modules imported before any pytester exists stay in sys.modules across the inner
    sessions (pytester drops only what a session imported after it started): no inner
    run pays for importing FastAPI and schemathesis again, and duckdb's native module,
    which aborts the process when imported a second time, is imported once."""
    for name in PREIMPORT:
        importlib.import_module(name)


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert(ROOT)
    return pytester


def reports(result: pytest.RunResult) -> dict[str, pytest.TestReport]:
    return deciding_reports(result, last=True)


def shown(lines: list[str]) -> dict[str, list[str]]:
    """Each reported difference key and the lines under it (its curl and its rows)."""
    out: dict[str, list[str]] = {}
    key = None
    for line in lines:
        m = KEY_LINE.match(line)
        if m:
            key = m.group(1)
            out[key] = []
        elif key is not None and line.startswith("  "):
            out[key].append(line)
        else:
            key = None
    return out


def test_differential_run_over_the_candidates_document(inner: pytest.Pytester) -> None:
    inner.makefile(".toml", shadow=SHADOW_TOML)
    result = inner.runpytest(
        "--shadow-openapi", "/openapi.json", *BOTH, "--shadow-secondary", "primary",
        "--shadow-config", "shadow.toml",
    )  # fmt: skip
    found = reports(result)
    assert set(found) == OPERATIONS
    assert found["GET /api/health"].passed, found["GET /api/health"].longreprtext
    assert found["GET /api/insights"].passed, found["GET /api/insights"].longreprtext
    for op in ("GET /api/analysis/{analysis_id}", "POST /api/start-analysis",
               "POST /api/process-results", "GET /api/insights/{insight_id}",
               "GET /api/reports"):  # fmt: skip
        assert found[op].failed, op
        head = found[op].longreprtext.splitlines()[0]
        assert re.fullmatch(
            re.escape(op) + r": \d+ distinct differences? in \d+ generated requests; "
            r"each with the smallest request that shows it:",
            head,
        ), head
    assert "Traceback" not in result.stdout.str()

    # Each distinct (path, kind) is reported once per operation, however many requests
    # showed it, with the smallest request as a curl command and its rows.
    blocks: dict[str, dict[str, list[str]]] = {}
    for op, rep in found.items():
        lines = rep.longreprtext.splitlines() if rep.failed else []
        counts = Counter(m.group(1) for line in lines if (m := KEY_LINE.match(line)))
        assert all(n == 1 for n in counts.values()), (op, counts)
        blocks[op] = shown(lines)
        assert set(blocks[op]) == set(counts)
        # The per-request id is noise (GET: the secondary) or ignored (POST: the config).
        assert not any(key.startswith("$.requestId") for key in counts), (op, counts)
    where = {key: sorted(op for op, keys in blocks.items() if key in keys) for key in EXPECTED}
    assert where == {
        "$.createdAt (value_changed)": [
            "GET /api/analysis/{analysis_id}",
            "POST /api/start-analysis",
        ],
        "$.completedAt (added)": ["GET /api/analysis/{analysis_id}"],
        "$.metrics.avgOrderValue (value_changed)": ["GET /api/analysis/{analysis_id}"],
        "$.priority (removed)": ["POST /api/start-analysis"],
        "$.confidenceScore (removed)": ["GET /api/insights/{insight_id}"],
        # (process-results: the legacy rejects an analysisId sent as 1.0 or 0.0, valid
        # JSON Schema integers, with 400; another status is one difference, not one per field)
        "$status (status)": ["GET /api/insights/{insight_id}", "POST /api/process-results"],
        "$.reports (reordered)": ["GET /api/reports"],
        "$.cost (type_changed)": ["POST /api/process-results"],
        "$.processedAt (value_changed)": ["POST /api/process-results"],
    }
    # The same lines are what the user sees, once each per operation.
    out = Counter(m.group(1) for line in result.outlines if (m := KEY_LINE.match(line)))
    assert out == sum((Counter(list(keys)) for keys in blocks.values()), Counter())

    insights = blocks["GET /api/insights/{insight_id}"]
    curl_insight = re.compile(r'  curl -sS "\$\{CANDIDATE\}"/api/insights/\d+')
    assert curl_insight.fullmatch(insights["$.confidenceScore (removed)"][0])
    assert re.fullmatch(
        r"  \$\.confidenceScore: 0\.\d+ != <absent> \(removed\)",
        insights["$.confidenceScore (removed)"][1],
    )
    assert curl_insight.fullmatch(insights["$status (status)"][0])
    assert insights["$status (status)"][1] == "  $status: 400 != 404 (status)"
    reordered = blocks["GET /api/reports"]["$.reports (reordered)"]
    assert reordered[0] == '  curl -sS "${CANDIDATE}"/api/reports'
    added = blocks["GET /api/analysis/{analysis_id}"]["$.completedAt (added)"]
    assert re.fullmatch(r'  curl -sS "\$\{CANDIDATE\}"/api/analysis/\d+', added[0])
    assert added[1] == "  $.completedAt: <absent> != null (added)"
    post = blocks["POST /api/start-analysis"]["$.priority (removed)"]
    assert post[0] == '  curl -sS -X POST "${CANDIDATE}"/api/start-analysis \\'
    assert "-H 'Content-Type: application/json'" in post[1]
    assert post[2].strip().startswith("--data-raw '{") and '"datasetId"' in post[2]
    assert post[3] == '  $.priority: "normal" != <absent> (removed)'
    # The smallest request is small: the shrunk body holds the required fields only.
    body = json.loads(post[2].strip().removeprefix("--data-raw '").removesuffix("'"))
    assert set(body) == {"name", "datasetId"}


def _document(inner: pytest.Pytester, suffix: str) -> str:
    from examples.candidate.app import http_app

    doc = http_app.openapi()
    path = inner.path / f"openapi{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(doc))
    else:
        import yaml

        path.write_text(yaml.safe_dump(doc))
    return path.name


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_document_file(inner: pytest.Pytester, suffix: str) -> None:
    name = _document(inner, suffix)
    result = inner.runpytest(
        "--shadow-openapi", name, *BOTH, "--shadow-examples", "3",
        "--shadow-route", "/api/health", "--shadow-route", "/api/reports",
    )  # fmt: skip
    found = reports(result)
    assert set(found) == {"GET /api/health", "GET /api/reports"}
    assert found["GET /api/health"].passed
    text = found["GET /api/reports"].longreprtext.splitlines()
    # (no parameters: one or two distinct requests, the document's and its narrowed twin's)
    assert any(
        KEY_LINE.match(line) and line.startswith("$.reports (reordered): in ") for line in text
    ), text
    assert '  curl -sS "${CANDIDATE}"/api/reports' in text


def test_post_operations_are_skipped_unless_allowed(inner: pytest.Pytester) -> None:
    result = inner.runpytest(
        "--shadow-openapi", "/openapi.json", *BOTH, "--shadow-examples", "3",
        "--shadow-method", "POST",
    )  # fmt: skip
    found = reports(result)
    assert set(found) == {"POST /api/start-analysis", "POST /api/process-results"}
    for op, rep in found.items():
        assert rep.skipped, op
        assert isinstance(rep.longrepr, tuple)
        assert rep.longrepr[2] == f"Skipped: {SKIPPED_POST}"
