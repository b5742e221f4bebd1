"""ShadowPair: requests built by httpx, judged by the pipeline's evaluate, explained by path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from comparators import RuleError
from comparators.model import Payload
from shadow.config.loader import parse_config
from shadow.model import BackendResponse, Request
from shadow.testing.explain import ABSENT, MAX_LINES, explain
from shadow.testing.pair import ShadowPair, build_request, with_marker

JSON = (("content-type", "application/json"),)


class Fixed:
    """A backend answering one JSON body (or failing), whatever the request."""

    def __init__(self, body: Any = None, status: int = 200, error: str | None = None) -> None:
        self.label = "fixed"
        self.body, self.status, self.error = body, status, error
        self.seen: list[Request] = []

    def send(self, request: Request) -> BackendResponse:
        self.seen.append(request)
        if self.error:
            return BackendResponse.failed(self.error)
        return BackendResponse(Payload(self.status, JSON, json.dumps(self.body).encode()), 1.0)


def _pair(primary: Any, candidate: Any, config: dict[str, Any] | None = None, **kw: Any) -> Any:
    return ShadowPair(primary, candidate, parse_config(config or {}), **kw)


def test_build_request_encodes_like_httpx() -> None:
    req = build_request("post", "api/x", params={"a": [1, 2]}, json={"k": "v"})
    assert (req.method, req.path, req.query) == ("POST", "/api/x", "a=1&a=2")
    assert req.body == b'{"k":"v"}' and req.header("content-type") == "application/json"
    with pytest.raises(ValueError, match="give a path"):
        build_request("GET", "http://elsewhere/x")


def test_match_and_differences_by_path_with_absent_sides() -> None:
    same = _pair(Fixed({"a": 1}), Fixed({"a": 1})).get("/x")
    assert same.verdict == "match" and same.matches()
    diff = _pair(Fixed({"a": 1, "gone": "x"}), Fixed({"a": 2, "new": None})).get("/api/items/7")
    parity = diff.matches()
    assert not parity and diff.endpoint == "GET /api/items/{id}"
    text = str(parity)
    assert "  $.a: 1 != 2 (value_changed)" in text
    assert f'  $.gone: "x" != {ABSENT} (removed)' in text
    assert f"  $.new: {ABSENT} != null (added)" in text
    assert repr(parity).startswith("GET /api/items/7 differs: ") and "\n" not in repr(parity)


def test_secondary_evidence_makes_a_volatile_field_noise_and_only_for_safe_methods() -> None:
    class Counter(Fixed):
        n = 0

        def send(self, request: Request) -> BackendResponse:
            Counter.n += 1
            self.body = {"id": Counter.n}
            return super().send(request)

    primary, candidate = Counter(), Counter()
    pair = _pair(primary, candidate, secondary=primary)
    result = pair.get("/x")
    assert result.verdict == "match" and [d.status for d in result.differences] == ["noise"]
    posted = pair.post("/x", json={})
    assert posted.verdict == "differ"  # never sent to the secondary: no evidence
    assert len(primary.seen) == 3  # GET twice (primary, secondary), POST once


def test_errors_name_the_side_that_failed() -> None:
    result = _pair(Fixed({}), Fixed(error="connection refused")).get("/x")
    assert result.verdict == "candidate_error" and not result.matches()
    assert "the candidate failed: connection refused" in repr(result.matches())
    result = _pair(Fixed(error="timeout"), Fixed({})).get("/x")
    assert result.verdict == "primary_error"


def test_marker_rules_and_route() -> None:
    base = parse_config({"endpoints": [{"route": "/api/a/{id}", "compare": {"max_diffs": 5}}]})
    config = with_marker(base, "/api/things/{thing}", {"ignore_paths": ["$.t"]})
    pair = ShadowPair(Fixed({"t": 1, "u": 1}), Fixed({"t": 2, "u": 1}), config)
    result = pair.get("/api/things/abc")
    assert result.verdict == "match" and result.endpoint == "GET /api/things/{thing}"
    assert with_marker(base, None, {}) is base
    with pytest.raises(RuleError):
        with_marker(base, None, {"no_such_rule": 1})
    with pytest.raises(ValueError):
        with_marker(base, "not-a-route", {})


def test_secrets_are_redacted_in_what_a_failure_shows() -> None:
    result = _pair(Fixed({"password": "hunter2"}), Fixed({"password": "other"})).get("/x")
    text = str(result.matches())
    assert "hunter2" not in text and "other" not in text and "[REDACTED]" in text


def test_many_differences_are_listed_up_to_the_cap() -> None:
    big = {f"k{i}": i for i in range(MAX_LINES + 10)}
    result = _pair(Fixed(big), Fixed({k: v + 1 for k, v in big.items()})).get("/x")
    lines = explain(result).lines
    assert len([ln for ln in lines if "(value_changed)" in ln]) == MAX_LINES
    assert lines[-1] == "  ... and 10 more"


def test_event_streams_are_compared_event_by_event() -> None:
    sse = (("content-type", "text/event-stream"),)

    class Stream:
        label = "s"

        def __init__(self, text: str) -> None:
            self.text = text

        def send(self, request: Request) -> BackendResponse:
            return BackendResponse(Payload(200, sse, self.text.encode()), 1.0)

    a = 'event: p\ndata: {"n": 1}\n\nevent: done\ndata: {}\n\n'
    b = 'event: p\ndata: {"n": 1}\n\n'
    result = ShadowPair(Stream(a), Stream(b), parse_config({})).get("/s")
    assert result.verdict == "differ"
    assert [d.path for d in result.differences] == ["$sse[1]"]


def test_a_token_in_the_query_is_never_shown() -> None:
    result = _pair(Fixed({"a": 1}), Fixed({"a": 2})).get("/x?access_token=SECRETQ&page=2")
    assert "SECRETQ" not in str(result.matches()) + repr(result.matches()) + repr(result)
    assert "page=2" in str(result.matches())


def test_generated_requests_keep_no_secret_in_their_curl_and_failures_are_one_key() -> None:
    from shadow.pipeline.redact import redactor_for
    from shadow.testing.openapi_items import curl, difference_keys

    req = build_request(
        "POST", "/echo", params={"access_token": "SECRETQ"}, json={"password": "SECRETB"}
    )
    text = curl(req, None, "CANDIDATE", redactor_for(parse_config({}).redact))
    assert "SECRETQ" not in text and "SECRETB" not in text and "[REDACTED]" in text
    slow = [_pair(Fixed({}), Fixed(error=f"timeout after {ms} ms (x)")).get("/") for ms in (3, 41)]
    assert (
        difference_keys(slow[0])
        == difference_keys(slow[1])
        == ["candidate failed: timeout after N ms"]
    )
    status = _pair(Fixed({"a": 1}), Fixed({"b": 2}, status=404)).get("/")
    assert difference_keys(status) == ["$status (status)"]


def test_integers_without_bounds_are_narrowed_for_half_the_requests() -> None:
    from shadow.testing.openapi_items import SMALL_INTS, narrowed

    doc = {
        "a": {"type": "integer"},
        "b": {"type": "integer", "maximum": 5},
        "c": [{"type": "string"}],
    }
    out = narrowed(doc)
    assert out["a"] == {"type": "integer", "minimum": 0, "maximum": SMALL_INTS}
    assert out["b"] == {"type": "integer", "maximum": 5} and out["c"] == doc["c"]
    assert doc["a"] == {"type": "integer"}  # a copy: the document itself is untouched


def test_each_sides_json_body_and_why_one_has_none() -> None:
    result = _pair(Fixed({"a": 1}), Fixed(error="connection refused")).get("/x")
    assert result.json("primary") == {"a": 1}
    with pytest.raises(ValueError, match="the candidate failed: connection refused"):
        result.json("candidate")
