"""shadow.evaluate: verdicts, noise from a secondary, accepted differences."""

from __future__ import annotations

import json
import time

from comparators.model import Payload
from shadow.config import parse_config
from shadow.evaluate import evaluate, is_cheap
from shadow.model import BackendResponse, Exchange, Request
from shadow.noise import NoiseModel


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
    return {row[3]: row[7] for row in result.differences}  # type: ignore[attr-defined]


def test_direct_noise_is_marked_and_does_not_make_a_difference() -> None:
    config = parse_config({})
    ex = _exchange(
        {"requestId": "a", "v": 1}, {"requestId": "b", "v": 1}, {"requestId": "c", "v": 1}
    )
    result = evaluate(ex, config, "r", 1000, noise=NoiseModel())
    assert result.verdict == "match"
    assert _statuses(result) == {"$.requestId": "noise"}
    assert [r[3] for r in result.noise] == ["$.requestId"]


def test_real_difference_next_to_noise_still_differs() -> None:
    config = parse_config({})
    ex = _exchange(
        {"requestId": "a", "createdAt": "2024-01-01T00:00:00.000Z"},
        {"requestId": "b", "createdAt": "2024-01-01 00:00:00"},
        {"requestId": "c", "createdAt": "2024-01-01T00:00:00.000Z"},
    )
    result = evaluate(ex, config, "r", 1000, noise=NoiseModel())
    assert result.verdict == "differ"
    assert _statuses(result) == {"$.requestId": "noise", "$.createdAt": "real"}


def test_learned_noise_applies_when_this_exchange_shows_none() -> None:
    """A field random only some of the time is still recognised from the statistics."""
    config = parse_config({})
    model = NoiseModel()
    for i in range(30):
        sec = {"coin": i % 2}
        evaluate(_exchange({"coin": 0}, {"coin": i % 2}, sec, i), config, "r", 0, noise=model)
    # this time the secondary agrees with the primary, the candidate does not
    result = evaluate(
        _exchange({"coin": 0}, {"coin": 1}, {"coin": 0}, 99), config, "r", 0, noise=model
    )
    assert result.verdict == "match"
    assert _statuses(result) == {"$.coin": "noise"}
    assert "primary-vs-secondary" in result.differences[0][9]


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
    rows = {row[3]: (row[7], row[9]) for row in result.differences}
    assert rows["$.createdAt"] == ("accepted", "clients parse both forms")
    assert rows["$.n"] == ("real", None)
    only = evaluate(_exchange({"createdAt": "x"}, {"createdAt": "y"}), config, "r", 1000)
    assert only.verdict == "match"


def test_is_cheap() -> None:
    same = _exchange({"a": 1}, {"a": 1})
    assert is_cheap(same)
    assert not is_cheap(_exchange({"a": 1}, {"a": 2}))
    assert not is_cheap(_exchange({"a": 1}, {"a": 1}, {"a": 1}))  # secondary: always evaluated


def test_truncated_comparison_never_becomes_a_match() -> None:
    """Differences cut by max_diffs may be real ones: accepted ones alone cannot clear it."""
    from comparators.model import Comparison, Difference, Kind, Verdict
    from shadow.evaluate import classify

    config = parse_config(
        {"accepted": [{"endpoint": "GET /api/analysis/{id}", "path": "$.ts", "reason": "ok"}]}
    )
    ex = _exchange({"ts": 1}, {"ts": 2})
    cut = Comparison(
        Verdict.DIFFER, (Difference("$.ts", Kind.VALUE_CHANGED, 1, 2),), truncated=True
    )
    verdict = classify(ex, cut, config, NoiseModel())[0].verdict
    assert verdict is Verdict.DIFFER
