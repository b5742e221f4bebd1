"""The pytest plugin seen from a user's test suite: shadow_pair, the marker, the backends.

Every test runs an inner pytest session (pytester) whose tests use the plugin's
fixtures against the example apps (`examples/README.md`, "The deliberate slips"),
in process, as real servers, as a tiny WSGI app, or as an object from a conftest.
"""

from __future__ import annotations

import importlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.shadow.testing.inner_runs import deciding_reports

ROOT = Path(__file__).resolve().parents[3]
LEGACY = "examples.legacy.app:http_app"
CANDIDATE = "examples.candidate.app:http_app"
BOTH = ("--shadow-primary", LEGACY, "--shadow-candidate", CANDIDATE)


# Imported before any pytester exists, these stay in sys.modules across the inner sessions
# (pytester drops only what a session imported after it started): no inner run pays for
# importing FastAPI and the plugin's parts again.
# duckdb too: its native module aborts the process when imported a second time.
PREIMPORT = ("duckdb", "examples.legacy.app", "examples.candidate.app", "shadow.testing.pair",
             "shadow.testing.backends", "shadow.config.loader")  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _imported_once() -> None:
    for name in PREIMPORT:
        importlib.import_module(name)


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose in-process sessions can import `examples` (the repo root)."""
    pytester.syspathinsert(ROOT)
    return pytester


def reports(result: pytest.RunResult) -> dict[str, pytest.TestReport]:
    return deciding_reports(result)


def section(rep: pytest.TestReport) -> str | None:
    """The text of a report's "shadow parity" section (None when there is none)."""
    texts = [text for title, text in rep.sections if title == "shadow parity"]
    assert len(texts) <= 1, rep.sections
    return texts[0] if texts else None


def one_liner(rep: pytest.TestReport) -> list[str]:
    return rep.longreprtext.strip().splitlines()


PARITY = """
    def test_health(shadow_pair):
        assert shadow_pair.get("/api/health").matches()

    def test_insight(shadow_pair):
        assert shadow_pair.get("/api/insights/2").matches()

    def test_result_api(shadow_pair):
        result = shadow_pair.get("/api/insights/2")
        assert result.verdict == "differ"
        assert not result.matches()
        rows = {(d.path, d.kind, d.status) for d in result.differences}
        assert rows == {("$.confidenceScore", "removed", "real"),
                        ("$.confidence", "added", "real")}
        assert result.json("primary")["confidenceScore"] == 0.82
        assert result.json("candidate")["confidence"] == 0.82
        health = shadow_pair.get("/api/health")
        assert health.verdict == "match" and health.matches() and not health.differences
"""


def test_passing_and_failing_parity(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_parity=PARITY)
    result = inner.runpytest(*BOTH)
    result.assert_outcomes(passed=2, failed=1)
    # The assert line carries the one-line summary; the section lists each path.
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: assert GET /api/insights/2 differs: "
            "$.confidence (added), $.confidenceScore (removed)",
            "*- shadow parity -*",
            "GET /api/insights/2 (GET /api/insights/{id}): 2 differences, primary != candidate",
            "  $.confidence: <absent> != 0.82 (added)",
            "  $.confidenceScore: 0.82 != <absent> (removed)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["FAILED test_parity.py::test_insight - AssertionError: assert GET /api/insight*"]
    )
    found = reports(result)
    assert found["test_health"].passed and section(found["test_health"]) is None
    text = section(found["test_insight"])
    assert text is not None
    assert text.splitlines() == [
        "GET /api/insights/2 (GET /api/insights/{id}): 2 differences, primary != candidate",
        "  $.confidence: <absent> != 0.82 (added)",
        "  $.confidenceScore: 0.82 != <absent> (removed)",
    ]


def test_marker_ignore_paths_makes_the_renamed_field_pass(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_marker="""
        import pytest

        @pytest.mark.shadow(ignore_paths=["$.confidenceScore", "$.confidence"])
        def test_renamed_on_purpose(shadow_pair):
            assert shadow_pair.get("/api/insights/2").matches()

        @pytest.mark.shadow(ignore_paths=["$.confidence"])
        def test_half_ignored(shadow_pair):
            assert shadow_pair.get("/api/insights/2").matches()

        def test_unmarked(shadow_pair):
            assert shadow_pair.get("/api/insights/2").matches()
        """
    )
    result = inner.runpytest(*BOTH)
    found = reports(result)
    assert found["test_renamed_on_purpose"].passed
    assert found["test_unmarked"].failed
    half = found["test_half_ignored"]
    assert half.failed
    assert "differs: $.confidenceScore (removed)" in half.longreprtext
    assert "$.confidence (added)" not in half.longreprtext
    assert section(half) == (
        "GET /api/insights/2 (GET /api/insights/{id}): 1 difference, primary != candidate\n"
        "  $.confidenceScore: 0.82 != <absent> (removed)"
    )


def test_marker_route_names_the_endpoint_and_brings_its_rules(inner: pytest.Pytester) -> None:
    inner.makefile(
        ".toml",
        shadow="""
        [[endpoints]]
        route = "/api/renamed/{insight}"
        compare = { ignore_paths = ["$.confidenceScore", "$.confidence"] }
        """,
    )
    inner.makepyfile(
        test_route="""
        import pytest

        @pytest.mark.shadow(route="/api/insights/{insight}")
        def test_named(shadow_pair):
            assert shadow_pair.get("/api/insights/2").matches()

        @pytest.mark.shadow(route="/api/renamed/{insight}")
        def test_rules_of_the_route(shadow_pair):
            result = shadow_pair.get("/api/insights/2")
            assert result.endpoint == "GET /api/renamed/{insight}"
            assert result.matches()

        def test_inferred(shadow_pair):
            assert shadow_pair.get("/api/insights/2").matches()
        """
    )
    result = inner.runpytest(*BOTH, "--shadow-config", "shadow.toml")
    found = reports(result)
    named = section(found["test_named"])
    assert named is not None
    assert named.splitlines()[0] == (
        "GET /api/insights/2 (GET /api/insights/{insight}): 2 differences, primary != candidate"
    )
    inferred = section(found["test_inferred"])
    assert inferred is not None
    assert inferred.splitlines()[0].startswith("GET /api/insights/2 (GET /api/insights/{id}): ")
    assert found["test_rules_of_the_route"].passed, found["test_rules_of_the_route"].longreprtext


def test_a_bad_marker_fails_its_test_with_one_line(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_bad_marker="""
        import pytest

        @pytest.mark.shadow(no_such_rule=1)
        def test_bad_key(shadow_pair):
            assert shadow_pair.get("/api/health").matches()

        @pytest.mark.shadow("/api/health")
        def test_positional(shadow_pair):
            assert shadow_pair.get("/api/health").matches()

        def test_fine(shadow_pair):
            assert shadow_pair.get("/api/health").matches()
        """
    )
    result = inner.runpytest(*BOTH)
    found = reports(result)
    assert found["test_fine"].passed
    assert found["test_positional"].failed
    assert one_liner(found["test_positional"]) == [
        "@pytest.mark.shadow takes keywords only (route=..., ignore_paths=[...])"
    ]
    bad = found["test_bad_key"]
    assert bad.failed
    assert "Traceback" not in result.stdout.str()
    # One line: the rule error, not chained under the exception pytest.fail was raised in.
    assert one_liner(bad) == ["@pytest.mark.shadow: unknown key 'no_such_rule' in [compare]"]


def test_in_process_example_apps_show_their_slips(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_slips="""
        import pytest

        PATHS = ["/api/health", "/api/insights", "/api/process-updates", "/api/analysis/3",
                 "/api/analysis/999", "/api/insights/2", "/api/insights/42",
                 "/api/analysis/9", "/api/analysis/abc", "/api/reports"]

        @pytest.mark.parametrize("path", PATHS)
        def test_parity(shadow_pair, path):
            assert shadow_pair.get(path).matches()
        """
    )
    result = inner.runpytest(*BOTH, "--shadow-secondary", "primary")
    found = {name.partition("[")[2].rstrip("]"): rep for name, rep in reports(result).items()}
    assert len(found) == 10
    passing = ["/api/health", "/api/insights", "/api/process-updates", "/api/analysis/3",
               "/api/analysis/999"]  # fmt: skip
    for path in passing:
        assert found[path].passed, (path, found[path].longreprtext)
    slips = {
        "/api/insights/2": [
            "  $.confidence: <absent> != 0.82 (added)",
            "  $.confidenceScore: 0.82 != <absent> (removed)",
        ],
        "/api/insights/42": ["  $status: 400 != 404 (status)"],
        "/api/analysis/9": [
            "  $.completedAt: <absent> != null (added)",
            "  $.metrics.avgOrderValue: 53.13 != 53.12 (value_changed)",
        ],
        "/api/analysis/abc": ["  $status: 400 != 422 (status)"],
        "/api/reports": [
            '  $.reports: [49, 26, 43, 11, 38, 35, 45, 1, 4, 15, "..."] != '
            '[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "..."] (reordered)'
        ],
    }
    for path, lines in slips.items():
        rep = found[path]
        assert rep.failed, path
        assert f"assert GET {path} differs: " in rep.longreprtext
        text = section(rep)
        assert text is not None, path
        for line in lines:
            assert line in text.splitlines(), (path, text)
    # analysis 9's random requestId is noise (the primary asked twice): listed, marked.
    nine = section(found["/api/analysis/9"])
    assert nine is not None
    assert nine.splitlines()[0] == (
        "GET /api/analysis/9 (GET /api/analysis/{id}): 2 differences, primary != candidate"
    )
    noise = [line for line in nine.splitlines() if line.startswith("  $.requestId: ")]
    assert len(noise) == 1 and noise[0].endswith("(value_changed) [noise: the same change "
                                                 "also happened between primary and secondary "
                                                 "here]")  # fmt: skip
    assert "$.requestId" not in found["/api/analysis/9"].longreprtext.splitlines()[0]


def test_url_mode_against_real_servers(inner: pytest.Pytester, legacy: Any, candidate: Any) -> None:
    inner.makepyfile(
        test_inner_urls=f"""
        def test_health(shadow_pair):
            assert shadow_pair.primary.label == "{legacy.url}"
            assert shadow_pair.candidate.label == "{candidate.url}"
            assert shadow_pair.get("/api/health").matches()

        def test_insight(shadow_pair):
            assert shadow_pair.get("/api/insights/2").matches()

        def test_gzip_list(shadow_pair):
            result = shadow_pair.get("/api/insights", headers={{"accept-encoding": "gzip"}})
            assert dict(result.candidate.payload.headers)["content-encoding"] == "gzip"
            assert result.matches()
        """
    )
    result = inner.runpytest("--shadow-primary", legacy.url, "--shadow-candidate", candidate.url)
    found = reports(result)
    assert found["test_health"].passed, found["test_health"].longreprtext
    assert found["test_gzip_list"].passed, found["test_gzip_list"].longreprtext
    text = section(found["test_insight"])
    assert text is not None
    assert "  $.confidenceScore: 0.82 != <absent> (removed)" in text.splitlines()
    assert "  $.confidence: <absent> != 0.82 (added)" in text.splitlines()


TINY_WSGI = """
    import json

    def _app(version):
        def app(environ, start_response):
            path = environ["PATH_INFO"]
            if path == "/same":
                body = {"ok": True, "query": environ.get("QUERY_STRING", "")}
            elif path == "/greet":
                body = {"hello": "world", "version": version}
            else:
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b'{"error": "not found"}']
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return app

    old = _app(1)
    new = _app(2)
    """


def test_a_wsgi_app_as_backend(inner: pytest.Pytester) -> None:
    inner.makepyfile(tinywsgi=TINY_WSGI)
    inner.makepyfile(
        test_wsgi="""
        def test_same(shadow_pair):
            result = shadow_pair.get("/same", params={"q": "1"})
            assert result.json("candidate") == {"ok": True, "query": "q=1"}
            assert result.matches()

        def test_missing(shadow_pair):
            result = shadow_pair.get("/nothing")
            assert result.candidate.payload.status == 404
            assert result.matches()

        def test_greet(shadow_pair):
            assert shadow_pair.get("/greet").matches()
        """
    )
    result = inner.runpytest(
        "--shadow-primary", "tinywsgi:old", "--shadow-candidate", "tinywsgi:new"
    )
    found = reports(result)
    assert found["test_same"].passed, found["test_same"].longreprtext
    assert found["test_missing"].passed, found["test_missing"].longreprtext
    assert found["test_greet"].failed
    assert section(found["test_greet"]) == (
        "GET /greet (GET /greet): 1 difference, primary != candidate\n"
        "  $.version: 1 != 2 (value_changed)"
    )


def test_a_conftest_hands_over_the_candidate_app_object(inner: pytest.Pytester) -> None:
    inner.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def shadow_candidate():
            from examples.candidate.app import http_app
            return http_app
        """
    )
    inner.makepyfile(test_override=PARITY)
    result = inner.runpytest("--shadow-primary", LEGACY)  # no --shadow-candidate
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    found = reports(result)
    assert found["test_health"].passed
    assert found["test_result_api"].passed, found["test_result_api"].longreprtext
    text = section(found["test_insight"])
    assert text is not None
    assert "  $.confidenceScore: 0.82 != <absent> (removed)" in text.splitlines()


def test_a_conftest_object_that_is_no_app_fails_with_one_line(inner: pytest.Pytester) -> None:
    inner.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def shadow_candidate():
            return 42
        """
    )
    inner.makepyfile(test_override=PARITY)
    result = inner.runpytest("--shadow-primary", LEGACY)
    found = reports(result)
    rep = found["test_health"]
    assert rep.failed
    assert one_liner(rep) == [
        "shadow: --shadow-candidate builtins.int: not an application (not callable)"
    ]


def test_ini_options_name_the_backends(inner: pytest.Pytester) -> None:
    inner.makeini(
        f"""
        [pytest]
        shadow_primary = {LEGACY}
        shadow_candidate = {CANDIDATE}
        """
    )
    inner.makepyfile(test_ini=PARITY)
    result = inner.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    assert not reports(result)["test_insight"].passed


def test_secondary_primary_learns_that_request_id_is_noise(inner: pytest.Pytester) -> None:
    # The default normalizers (iso_instants on): analysis 3 is finished and its
    # avgOrderValue rounds alike, so its random requestId is its only difference.
    inner.makefile(".toml", shadow="[compare]\nnormalize = { iso_instants = true }\n")
    inner.makepyfile(
        test_noise="""
        def test_analysis_3(shadow_pair):
            result = shadow_pair.get("/api/analysis/3")
            assert result.matches()
            assert [(d.path, d.status) for d in result.differences] == [("$.requestId", "noise")]
        """
    )
    config = ("--shadow-config", "shadow.toml")
    with_secondary = inner.runpytest(*BOTH, *config, "--shadow-secondary", "primary")
    with_secondary.assert_outcomes(passed=1)
    without = inner.runpytest(*BOTH, *config)
    without.assert_outcomes(failed=1)
    rep = reports(without)["test_analysis_3"]
    assert "assert GET /api/analysis/3 differs: $.requestId (value_changed)" in rep.longreprtext
    text = section(rep)
    assert text is not None
    assert text.splitlines()[0] == (
        "GET /api/analysis/3 (GET /api/analysis/{id}): 1 difference, primary != candidate"
    )
    assert len(text.splitlines()) == 2 and text.splitlines()[1].startswith("  $.requestId: ")


def test_junit_xml_names_the_failing_test(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_parity=PARITY)
    xml = inner.path / "junit.xml"
    result = inner.runpytest(*BOTH, f"--junitxml={xml}")
    result.assert_outcomes(passed=2, failed=1)
    cases = {case.get("name"): case for case in ET.parse(xml).getroot().iter("testcase")}
    assert set(cases) == {"test_health", "test_insight", "test_result_api"}
    assert cases["test_health"].find("failure") is None
    failure = cases["test_insight"].find("failure")
    assert failure is not None
    assert cases["test_insight"].get("classname") == "test_parity"
    assert "GET /api/insights/2 differs: $.confidence (added), $.confidenceScore (removed)" in (
        failure.get("message") or ""
    )
    assert "test_parity.py:5: AssertionError" in (failure.text or "")
