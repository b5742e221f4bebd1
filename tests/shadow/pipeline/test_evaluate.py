"""shadow.pipeline.evaluate: provisional verdicts, direct noise evidence, accepted differences.

The read-time verdicts (statistics over all exchanges) are tested on stores in
tests/shadow/store/test_outcomes.py.
"""

from __future__ import annotations

import json
import time

from comparators.model import Payload
from shadow.config.loader import parse_config
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline.evaluate import evaluate, is_cheap


def _resp(body: dict[str, object], status: int = 200) -> BackendResponse:
    payload = Payload(status, (("content-type", "application/json"),), json.dumps(body).encode())
    return BackendResponse(payload, elapsed_ms=1.0)


def _exchange(
    primary: dict[str, object],
    candidate: dict[str, object],
    secondary: dict[str, object] | None = None,
    i: int = 0,
) -> Exchange:
    return Exchange(
        id=f"x{i}",
        request=Request("GET", "/api/analysis/1"),
        primary=_resp(primary),
        candidate=_resp(candidate),
        endpoint="GET /api/analysis/{id}",
        started_at=time.time(),
        secondary=_resp(secondary) if secondary is not None else None,
    )


def _statuses(result: object) -> dict[str, str]:
    return {row.path: row.status for row in result.differences}  # type: ignore[attr-defined]


def test_direct_noise_is_marked_and_does_not_make_a_difference() -> None:
    config = parse_config({})
    ex = _exchange(
        {"requestId": "a", "v": 1}, {"requestId": "b", "v": 1}, {"requestId": "c", "v": 1}
    )
    result = evaluate(ex, config, "r", 1000)
    assert result.verdict == "match"
    assert _statuses(result) == {"$.requestId": "noise"}
    assert [r.path for r in result.noise] == ["$.requestId"]


def test_real_difference_next_to_noise_still_differs() -> None:
    config = parse_config({})
    ex = _exchange(
        {"requestId": "a", "createdAt": "2024-01-01T00:00:00.000Z"},
        {"requestId": "b", "createdAt": "2024-01-01 00:00:00"},
        {"requestId": "c", "createdAt": "2024-01-01T00:00:00.000Z"},
    )
    result = evaluate(ex, config, "r", 1000)
    assert result.verdict == "differ"
    assert _statuses(result) == {"$.requestId": "noise", "$.createdAt": "real"}


def test_only_the_same_kind_of_change_is_direct_evidence() -> None:
    """A dropped volatile field is real although its value differs primary-vs-secondary."""
    config = parse_config({})
    ex = _exchange({"requestId": "a", "v": 1}, {"v": 1}, {"requestId": "c", "v": 1})
    result = evaluate(ex, config, "r", 1000)
    assert result.verdict == "differ"
    assert _statuses(result) == {"$.requestId": "real"}
    assert [(r.path, r.kind) for r in result.noise] == [("$.requestId", "value_changed")]


def test_status_and_headers_are_never_noise() -> None:
    config = parse_config({"compare": {"headers": ["x-trace"]}})
    p = BackendResponse(Payload(200, (("x-trace", "1"),), b"{}"), 1.0)
    c = BackendResponse(Payload(200, (("x-trace", "2"),), b"{}"), 1.0)
    s = BackendResponse(Payload(200, (("x-trace", "3"),), b"{}"), 1.0)
    ex = Exchange("h", Request("GET", "/a"), p, c, "GET /a", time.time(), secondary=s)
    result = evaluate(ex, config, "r", 1000)
    assert result.verdict == "differ"
    assert _statuses(result) == {"$header.x-trace": "real"}


def test_a_secondary_with_another_status_is_no_evidence() -> None:
    """Primary 200, secondary 503, candidate 500: a broken candidate, not noise."""
    config = parse_config({})
    ex = Exchange(
        "s",
        Request("GET", "/api/analysis/1"),
        _resp({"id": 1}),
        _resp({"error": "boom"}, 500),
        "GET /api/analysis/{id}",
        time.time(),
        secondary=_resp({"error": "unavailable"}, 503),
    )
    result = evaluate(ex, config, "r", 1000)
    assert result.verdict == "differ"
    assert "noise" not in _statuses(result).values()
    assert result.noise == []  # nothing stored as evidence either


def test_accepted_difference_is_marked_with_its_reason() -> None:
    config = parse_config(
        {
            "accepted": [
                {
                    "endpoint": "GET /api/analysis/{id}",
                    "path": "$.createdAt",
                    "reason": "clients parse both forms",
                }
            ]
        }
    )
    ex = _exchange({"createdAt": "x", "n": 1}, {"createdAt": "y", "n": 2})
    result = evaluate(ex, config, "r", 1000)
    assert result.verdict == "differ"  # $.n is still real
    rows = {row.path: (row.status, row.reason) for row in result.differences}
    assert rows["$.createdAt"] == ("accepted", "clients parse both forms")
    assert rows["$.n"] == ("real", None)
    only = evaluate(_exchange({"createdAt": "x"}, {"createdAt": "y"}), config, "r", 1000)
    assert only.verdict == "match"


def test_is_cheap() -> None:
    same = _exchange({"a": 1}, {"a": 1})
    assert is_cheap(same)
    assert not is_cheap(_exchange({"a": 1}, {"a": 2}))
    assert not is_cheap(_exchange({"a": 1}, {"a": 1}, {"a": 1}))  # secondary: always evaluated
    failed = _exchange({"a": 1}, {"a": 1})
    failed = Exchange(
        failed.id, failed.request, failed.primary, failed.candidate, failed.endpoint,
        failed.started_at, secondary=_resp({"a": 1}, 503),
    )  # fmt: skip
    assert is_cheap(failed)  # an unusable secondary is no evidence: nothing more to compare


def test_truncated_comparison_never_becomes_a_match() -> None:
    """Differences cut by max_diffs may be real ones: accepted ones alone cannot clear it."""
    from comparators.model import Comparison, Difference, Kind, Verdict
    from shadow.pipeline.evaluate import classify

    config = parse_config(
        {"accepted": [{"endpoint": "GET /api/analysis/{id}", "path": "$.ts", "reason": "ok"}]}
    )
    ex = _exchange({"ts": 1}, {"ts": 2})
    cut = Comparison(
        Verdict.DIFFER, (Difference("$.ts", Kind.VALUE_CHANGED, 1, 2),), truncated=True
    )
    verdict = classify(ex, cut, config)[0].verdict
    assert verdict is Verdict.DIFFER
