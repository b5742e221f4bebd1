"""shadow.config.endpoints: grouping requests into 'METHOD /route/{id}' endpoints."""

from __future__ import annotations

import pytest

from shadow.config.endpoints import EndpointMatcher, RoutePattern, auto_template, is_id_like

ID_SEGMENTS = [
    "1",
    "42",
    "000123",
    "550e8400-e29b-41d4-a716-446655440000",  # UUID
    "550E8400E29B41D4A716446655440000",  # UUID without dashes, upper case
    "5f9c1a2b3c4d5e6f7a8b9c0d",  # Mongo object id
    "0123abcdef",  # short hex with digits
    "usr_a1b2c3",  # prefixed ids
    "ord-9f8e7d6c",
    "cus_Nf3kZp9xQ2",
    "dGhpc0lzQVRva2VuMTIz",  # base64-ish tokens
    "aGVsbG8gd29ybGQxMjM0NTY=",
    "Ab_cdEf-GhIjKlMnOp",
    "2024-05-01",  # dates in paths
]

NAME_SEGMENTS = [
    "api",
    "v1",
    "v2",
    "users",
    "analysis",
    "insights",
    "start-analysis",
    "process-updates",
    "process_results",
    "very-long-kebab-case-name",
    "deadbeef",  # hex letters only: a word, not an id
    "health",
    "ab12",
]


@pytest.mark.parametrize("segment", ID_SEGMENTS)
def test_id_like_segments(segment: str) -> None:
    assert is_id_like(segment)


@pytest.mark.parametrize("segment", NAME_SEGMENTS)
def test_names_are_not_ids(segment: str) -> None:
    assert not is_id_like(segment)


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/analysis/1", "/api/analysis/{id}"),
        ("/api/v1/users/usr_a1b2c3/orders/42", "/api/v1/users/{id}/orders/{id}"),
        (
            "/files/550e8400-e29b-41d4-a716-446655440000/meta",
            "/files/{id}/meta",
        ),
        ("/t/dGhpc0lzQVRva2VuMTIz", "/t/{id}"),
        ("/api/start-analysis", "/api/start-analysis"),
        ("/api/process-updates", "/api/process-updates"),
        ("/", "/"),
        ("/api/insights/", "/api/insights/"),
    ],
)
def test_auto_template(path: str, template: str) -> None:
    assert auto_template(path) == template


def test_matcher_without_patterns_uses_auto_template() -> None:
    m = EndpointMatcher()
    assert m.endpoint("get", "/api/analysis/17") == "GET /api/analysis/{id}"
    assert m.endpoint("POST", "/api/start-analysis") == "POST /api/start-analysis"


def test_query_string_never_splits_an_endpoint() -> None:
    m = EndpointMatcher([RoutePattern.parse("/api/process-updates")])
    a = m.endpoint("GET", "/api/process-updates?since=2024-05-01T00:00:00Z")
    b = m.endpoint("GET", "/api/process-updates")
    c = m.endpoint("GET", "/api/process-updates?x=1&y=2")
    assert a == b == c == "GET /api/process-updates"
    auto = EndpointMatcher()
    assert auto.endpoint("GET", "/api/items/9?page=2") == "GET /api/items/{id}"
    assert auto.endpoint("GET", "?a=1") == "GET /"


def test_configured_pattern_wins_over_auto_template() -> None:
    # "report-summary" is not id-like, so the auto template would keep it literal
    m = EndpointMatcher([RoutePattern.parse("/api/reports/{name}")])
    assert m.endpoint("GET", "/api/reports/report-summary") == "GET /api/reports/{name}"
    assert m.endpoint("GET", "/api/reports/7") == "GET /api/reports/{name}"
    # a path the pattern does not match falls back to the auto template
    assert m.endpoint("GET", "/api/other/7") == "GET /api/other/{id}"


def test_path_parameter_spans_slashes() -> None:
    m = EndpointMatcher([RoutePattern.parse("/files/{path:path}")])
    assert m.endpoint("GET", "/files/a/b/c.txt") == "GET /files/{path:path}"
    single = EndpointMatcher([RoutePattern.parse("/files/{name}")])
    assert single.endpoint("GET", "/files/a/b/c.txt") == "GET /files/a/b/c.txt"


def test_literal_beats_parameter_whatever_the_order() -> None:
    for order in (1, -1):
        pats = [RoutePattern.parse("/api/analysis/{id}"), RoutePattern.parse("/api/analysis/new")]
        m = EndpointMatcher(pats[::order])
        assert m.endpoint("GET", "/api/analysis/new") == "GET /api/analysis/new"
        assert m.endpoint("GET", "/api/analysis/5") == "GET /api/analysis/{id}"
        assert m.pattern_for("GET", "/api/analysis/new") is next(
            p for p in pats if p.template == "/api/analysis/new"
        )


def test_trailing_slash_matches_configured_route() -> None:
    m = EndpointMatcher([RoutePattern.parse("/api/insights")])
    assert m.endpoint("GET", "/api/insights/") == "GET /api/insights"


def test_methods_filter() -> None:
    post_only = RoutePattern.parse("/api/things/{thing}", ["post"])
    assert post_only.methods == frozenset({"POST"})
    m = EndpointMatcher([post_only])
    assert m.endpoint("POST", "/api/things/abc") == "POST /api/things/{thing}"
    assert m.endpoint("post", "/api/things/abc") == "POST /api/things/{thing}"
    # GET is not in the pattern's methods: auto template ("abc" is a plain word)
    assert m.endpoint("GET", "/api/things/abc") == "GET /api/things/abc"
    assert m.pattern_for("GET", "/api/things/abc") is None
    assert m.pattern_for("post", "/api/things/abc") is post_only


def test_pattern_without_methods_matches_any_method() -> None:
    p = RoutePattern.parse("/x/{id}")
    assert p.methods is None
    assert all(p.matches(meth, "/x/1") for meth in ("GET", "POST", "DELETE", "patch"))
    assert not p.matches("GET", "/x/1/2")
    assert not p.matches("GET", "/x/")


def test_regex_special_characters_in_template_are_literal() -> None:
    p = RoutePattern.parse("/a.b/{id}")
    assert p.matches("GET", "/a.b/1")
    assert not p.matches("GET", "/aXb/1")


@pytest.mark.parametrize(
    "route",
    ["api/items/{id}", "", "/api/items/{id", "/api/items/id}", "/api/{1bad}", "/api/{}"],
)
def test_malformed_route_raises_value_error(route: str) -> None:
    with pytest.raises(ValueError, match="route"):
        RoutePattern.parse(route)
