"""shadow.review.triage: rules suggested from a real DuckDB store, and accepted differences."""

from __future__ import annotations

import copy
import random
import tomllib
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from comparators import parse_rules
from shadow.config.loader import Accepted, parse_config
from shadow.errors import StoreError
from shadow.review.triage import (
    Suggestion,
    _ceil_one_digit,
    suggest_rules,
    suggestions_to_toml,
)
from tests.store_builder import Call, write_store

ANALYSIS = "GET /api/analysis/{id}"
REPORTS = "GET /api/reports"
INSIGHTS = "GET /api/insights"
FEW = "GET /api/few"
N = 20
LEGACY_ID = {"endpoint": ANALYSIS, "path": "$.legacyId", "reason": "known"}
CONFIG = {"accepted": [LEGACY_ID]}  # the config the runs started with

_rng = random.Random(20240502)


def uid() -> str:
    return str(uuid.UUID(int=_rng.getrandbits(128), version=4))


def hexid(n: int = 32) -> str:
    return uuid.UUID(int=_rng.getrandbits(128)).hex[:n]


def analysis(i: int) -> Call:
    """Planted: a noisy path, a request id, drift, a reordered list, and real regressions.

    Every exchange also asks a second legacy instance (the secondary), with the same
    request id (both instances echo it). In every 4th it answers from another node
    with another cache age and region: primary-vs-secondary evidence of noise.
    """
    primary = {
        "id": i,
        "requestId": uid(),  # volatile: the candidate makes its own, never repeated
        "meta": {"servedBy": "node-a", "region": "eu", "cacheAge": 5},
        "total": 100 + i,
        "metrics": {"count": 100, "avgOrderValue": 204.63, "ratio": 1.0},
        "createdAt": "2024-05-02",
        "traceId": hexid(),
        "legacyId": f"lg_{hexid(12)}",
        "tags": ["a", "b", "c"],
    }
    candidate: dict[str, Any] = {
        "id": i,
        "requestId": uid(),
        "meta": {"servedBy": "node-b", "region": "us", "cacheAge": 5},  # servedBy: noise
        "total": 150 + i,  # real: far beyond 1 %
        "metrics": {"count": 103, "avgOrderValue": 204.63, "ratio": 1.0},  # count: 3 % drift
        "createdAt": 1714608000,  # real: type change
        "traceId": hexid(),  # volatile, but removed once
        "legacyId": f"lg_{hexid(12)}",  # volatile, but accepted by the config
        "tags": ["c", "a", "b"],  # the same items in another order
    }
    if i < 8:
        candidate["metrics"]["avgOrderValue"] = 204.62  # 0.005 % drift
        candidate["metrics"]["ratio"] = 1.001
    if i == 8:
        candidate["metrics"]["ratio"] = 1.5  # the same path, once far off
    if i == 3:
        del candidate["traceId"]
        candidate["meta"]["region"] = 1  # region differs in value, but once in type
    secondary = copy.deepcopy(primary)
    if i % 4 == 0:
        # cacheAge: the candidate happened to agree every time
        secondary["meta"] = {"servedBy": "node-c", "region": "eu-west", "cacheAge": 7}
    return Call(ANALYSIS, primary, candidate, secondary, candidate_status=500)


def reports(i: int, pad: int = 0) -> Call:
    """A list of objects (no id: compared by position) in another order.

    Its items' values then look like drift (10.0 vs 10.05) and volatile values.
    `pad`: characters of padding, to make bodies too big to store whole.
    """
    p = [
        {"sku": f"r{i}a", "price": 10.0, "at": uid()},
        {"sku": f"r{i}b", "price": 10.05, "at": uid()},
    ]
    c = list(reversed(p))
    extra = {"pad": "x" * pad} if pad else {}
    return Call(REPORTS, {"items": p, **extra}, {"items": c, **extra})


def insights(i: int) -> Call:
    """`$.scores` reordered in some exchanges and changed in others; `$.ids` only changed."""
    if i % 2:
        sp, sc = [1, 2, 3], [3, 2, 1]
    else:
        sp, sc = [1, 2, 3], [1, 2, 4]
    return Call(INSIGHTS, {"scores": sp, "ids": [1, 2]}, {"scores": sc, "ids": [1, 3]})


def few(i: int) -> Call:
    """Volatile values, but too few exchanges to say so."""
    return Call(FEW, {"nonce": uid()}, {"nonce": uid()})


def build(tmp_path: Path, calls: Sequence[Call], config: dict[str, Any] | None = None) -> str:
    """The store, written by the real evaluator and writer, with runs r1 and r2."""
    return write_store(tmp_path / "shadow.duckdb", calls, config=config, runs=("r1", "r2"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    calls = [analysis(i) for i in range(N)]
    calls += [reports(i) for i in range(10)]
    calls.append(reports(10, pad=70 * 1024))  # bodies above the 64 KiB cap: not stored whole
    same = {"items": [{"sku": "s", "price": 1.0}]}
    calls += [Call(REPORTS, same, same) for _ in range(2)]
    calls += [insights(i) for i in range(6)] + [few(i) for i in range(3)]
    # run r2: a path that changes between primary and secondary too
    late = Call(ANALYSIS, {"onlyInRun2": "x"}, {"onlyInRun2": "y"}, {"onlyInRun2": "z"})
    late.run_id = "r2"
    calls.append(late)
    return build(tmp_path_factory.mktemp("triage"), calls, CONFIG)


@pytest.fixture(scope="module")
def suggestions(store: str) -> dict[tuple[str, str, str], Suggestion]:
    return {(s.endpoint, s.kind, s.path): s for s in suggest_rules(store, run_id="r1")}


def test_noisy_path_is_ignored_with_high_confidence(
    suggestions: dict[tuple[str, str, str], Suggestion],
) -> None:
    s = suggestions[(ANALYSIS, "ignore_path", "$.meta.servedBy")]
    assert s.confidence == "high" and s.value is None
    # 5 of the 20 r1 exchanges had primary and secondary disagree
    assert "5 of 20 (25%)" in s.evidence
    # The candidate changes it on every exchange, far more often than the legacy varies,
    # so the outcome definition calls none of it noise (candidate_worse)...
    assert "marked noise" not in s.evidence
    assert "candidate differs in 20 of 20" in s.evidence
    # ...but the legacy itself is nondeterministic there: ignoring it is still proposed.
    assert "node-a" in s.evidence
    only_noise = suggestions[(ANALYSIS, "ignore_path", "$.meta.cacheAge")]
    assert only_noise.confidence == "high" and "5 of 20 (25%)" in only_noise.evidence


def test_volatile_never_repeating_values_are_a_medium_suggestion(
    suggestions: dict[tuple[str, str, str], Suggestion],
) -> None:
    s = suggestions[(ANALYSIS, "ignore_path", "$.requestId")]
    assert s.confidence == "medium"
    assert "20 of 20 (100%)" in s.evidence


def test_numeric_drift_gives_a_tolerance_covering_the_largest_delta(
    suggestions: dict[tuple[str, str, str], Suggestion],
) -> None:
    s = suggestions[(ANALYSIS, "tolerance", "$.metrics.avgOrderValue")]
    assert s.confidence == "high"
    assert s.value == 0.01
    assert abs(204.63 - 204.62) <= s.value  # what the comparator checks
    assert "8 of 20" in s.evidence


@pytest.mark.parametrize(
    ("delta", "tolerance"),
    [(0.01, 0.01), (0.010000000000019, 0.02), (0.3, 0.3), (7.0, 7.0), (12.0, 20.0),
     (0.000123, 0.0002), (95.0, 100.0)],
)  # fmt: skip
def test_tolerance_is_the_delta_rounded_up_to_one_digit(delta: float, tolerance: float) -> None:
    assert _ceil_one_digit(delta) == tolerance
    assert delta <= _ceil_one_digit(delta)


def test_reordered_list_gets_ignore_order(
    suggestions: dict[tuple[str, str, str], Suggestion],
) -> None:
    s = suggestions[(ANALYSIS, "ignore_order", "$.tags")]
    assert s.confidence == "high"
    objects = suggestions[(REPORTS, "ignore_order", "$.items")]
    assert objects.confidence == "high"
    assert "10 exchanges with bodies, 1 without stored bodies" in objects.evidence


def test_values_inside_a_reordered_list_suggest_nothing_else(
    suggestions: dict[tuple[str, str, str], Suggestion],
) -> None:
    # misaligned items: 10.0 vs 10.05 looks like drift, the uuids look volatile
    assert [k for k in suggestions if k[0] == REPORTS] == [(REPORTS, "ignore_order", "$.items")]


def test_list_that_also_changes_items_is_medium_and_a_changed_list_is_not_suggested(
    suggestions: dict[tuple[str, str, str], Suggestion],
) -> None:
    assert suggestions[(INSIGHTS, "ignore_order", "$.scores")].confidence == "medium"
    assert (INSIGHTS, "ignore_order", "$.ids") not in suggestions


@pytest.mark.parametrize(
    "path",
    [
        "$.total",  # a real change in every exchange
        "$.metrics.count",  # 3 % drift
        "$.metrics.ratio",  # within 1 % except once
        "$.createdAt",  # type change
        "$.traceId",  # volatile but removed once
        "$.meta.region",  # noise, but a type change once
        "$status",  # only body paths are looked at
        "$.legacyId",  # already accepted
        "$.onlyInRun2",  # another run
        "$.nonce",  # volatile in only 3 exchanges
    ],
)
def test_real_regressions_and_other_runs_are_not_suggested(
    suggestions: dict[tuple[str, str, str], Suggestion], path: str
) -> None:
    assert not [k for k in suggestions if k[2] == path]


def test_exactly_the_planted_suggestions(
    suggestions: dict[tuple[str, str, str], Suggestion],
) -> None:
    assert sorted(suggestions) == sorted(
        [
            (ANALYSIS, "ignore_path", "$.meta.cacheAge"),
            (ANALYSIS, "ignore_path", "$.meta.servedBy"),
            (ANALYSIS, "ignore_path", "$.requestId"),
            (ANALYSIS, "ignore_order", "$.tags"),
            (ANALYSIS, "tolerance", "$.metrics.avgOrderValue"),
            (INSIGHTS, "ignore_order", "$.scores"),
            (REPORTS, "ignore_order", "$.items"),
        ]
    )


def test_all_runs_include_the_other_runs_noise(store: str) -> None:
    paths = {s.path for s in suggest_rules(store)}
    assert "$.onlyInRun2" in paths


def test_toml_parses_and_its_rules_are_accepted(store: str) -> None:
    text = suggestions_to_toml(suggest_rules(store, "r1"))
    data = tomllib.loads(text)
    by_route = {(e["route"], tuple(e["methods"])): e["compare"] for e in data["endpoints"]}
    analysis_rules = by_route[("/api/analysis/{id}", ("GET",))]
    assert analysis_rules == {
        "ignore_paths": ["$.meta.cacheAge", "$.meta.servedBy", "$.requestId"],
        "ignore_order": ["$.tags"],
        "tolerances": {"$.metrics.avgOrderValue": 0.01},
    }
    for compare in by_route.values():
        parse_rules(compare)
    config = parse_config(data, source="suggested.toml")
    assert len(config.endpoints) == 3
    assert config.rules_for("GET", "/api/analysis/7").tolerance_at(("metrics", "avgOrderValue"))
    # every rule line is preceded by its evidence
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith('"$'):
            assert lines[i - 1].strip().startswith("# evidence ("), line


def test_toml_of_nothing_is_only_comments() -> None:
    assert tomllib.loads(suggestions_to_toml([])) == {}


def test_missing_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        suggest_rules(str(tmp_path / "none.duckdb"))


def test_empty_database_suggests_nothing(tmp_path: Path) -> None:
    assert suggest_rules(build(tmp_path, [])) == []


def test_reordered_keyed_list_gets_a_medium_ignore_order(tmp_path: Path) -> None:
    """A `reordered` difference (keyed records in another order) is one medium proposal."""
    records = [{"id": 3}, {"id": 2}, {"id": 1}]
    call = Call("GET /api/reports", {"reports": records}, {"reports": records[::-1]})
    db = build(tmp_path, [call] * 12)
    found = [s for s in suggest_rules(db) if s.kind == "ignore_order"]
    assert [(s.endpoint, s.path, s.confidence) for s in found] == [
        ("GET /api/reports", "$.reports", "medium")
    ]
    assert "12 of 12" in found[0].evidence and "relies on the order" in found[0].evidence
    assert '"$.reports"' in suggestions_to_toml(found)


def test_a_path_accepted_by_the_readers_config_is_not_suggested(tmp_path: Path) -> None:
    db = build(tmp_path, [analysis(i) for i in range(N)])  # runs without [[accepted]]
    legacy = (ANALYSIS, "ignore_path", "$.legacyId")
    found = {(s.endpoint, s.kind, s.path): s for s in suggest_rules(db)}
    assert found[legacy].confidence == "medium"  # volatile and not accepted: suggested
    for entry in (
        Accepted(ANALYSIS, "$.legacyId", "known"),
        Accepted("GET /api/*", "$.legacyId", "known", kind="value_changed"),  # a glob
    ):
        later = {(s.endpoint, s.kind, s.path) for s in suggest_rules(db, accepted=[entry])}
        assert later == set(found) - {legacy}, entry
    # an entry for another kind of difference does not accept these value changes
    other = [Accepted(ANALYSIS, "$.legacyId", "known", kind="removed")]
    assert legacy in {(s.endpoint, s.kind, s.path) for s in suggest_rules(db, accepted=other)}


def test_the_readers_config_replaces_the_runs_entries(store: str) -> None:
    legacy = (ANALYSIS, "ignore_path", "$.legacyId")
    assert legacy in {(s.endpoint, s.kind, s.path) for s in suggest_rules(store, "r1", [])}


def test_added_field_seen_on_the_secondary_too_is_not_called_noise(tmp_path: Path) -> None:
    """Evidence is counted as the outcome definition counts it: only changed values.

    A field the secondary also adds is no sign that the candidate may add it: the
    outcome definition calls it real, so `rules suggest` must not propose ignoring it.
    """
    calls = [
        Call("GET /api/x/{id}", {"a": 1}, {"a": 1, "debug": True}, {"a": 1, "debug": True})
        for _ in range(12)
    ]
    db = write_store(tmp_path / "added.duckdb", calls)
    assert not [s for s in suggest_rules(db) if s.path == "$.debug"]
