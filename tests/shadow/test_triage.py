"""shadow.triage: rules suggested from a real DuckDB store, and accepted differences."""

from __future__ import annotations

import json
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from comparators import Comparison, Difference, Kind, Payload, Verdict, parse_rules
from shadow.config import parse_config
from shadow.errors import StoreError
from shadow.model import BackendResponse, Exchange, Request
from shadow.records import cluster_path, difference_rows, exchange_row
from shadow.store import Run, StoreWriter
from shadow.triage import (
    Suggestion,
    _ceil_one_digit,
    suggest_rules,
    suggestions_to_toml,
)

JSON = (("content-type", "application/json"),)
ANALYSIS = "GET /api/analysis/{id}"
REPORTS = "GET /api/reports"
INSIGHTS = "GET /api/insights"
FEW = "GET /api/few"
N = 20


@dataclass
class Ex:
    endpoint: str
    diffs: list[Difference] = field(default_factory=list)
    primary: Any = None
    candidate: Any = None
    noise: dict[str, str] = field(default_factory=dict)  # path -> kind, primary vs secondary
    noise_status: set[str] = field(default_factory=set)  # differences marked 'noise'
    accepted: set[str] = field(default_factory=set)
    run_id: str = "r1"
    body_cap: int = 64 * 1024


def vc(path: str, p: Any, c: Any) -> Difference:
    return Difference(path, Kind.VALUE_CHANGED, p, c)


def reorder_diffs(base: str, p: list[Any], c: list[Any]) -> list[Difference]:
    """Differences a positional compare reports for two orderings of one list."""
    out = []
    for i, (a, b) in enumerate(zip(p, c, strict=True)):
        if isinstance(a, dict):
            out += [vc(f"{base}[{i}].{k}", a[k], b[k]) for k in a if a[k] != b[k]]
        elif a != b:
            out.append(vc(f"{base}[{i}]", a, b))
    return out


def analysis(i: int) -> Ex:
    """Planted: a noisy path, a request id, drift, a reordered list, and real regressions."""
    tags_p, tags_c = ["a", "b", "c"], ["c", "a", "b"]
    diffs = [
        vc("$.requestId", str(uuid.uuid4()), str(uuid.uuid4())),  # volatile, never repeats
        vc("$.meta.servedBy", "node-a", "node-b"),  # noise (primary vs secondary too)
        vc("$.total", 100 + i, 150 + i),  # real: far beyond 1 %
        vc("$.metrics.count", 100, 103),  # real: 3 % drift
        Difference("$.createdAt", Kind.TYPE_CHANGED, "2024-05-02", 1714608000),  # real
        vc("$.traceId", uuid.uuid4().hex, uuid.uuid4().hex),  # volatile, but removed once
        vc("$.meta.region", "eu", "us"),  # noise, but a type change once
        Difference("$status", Kind.STATUS, 200, 500),
        Difference("$header.content-type", Kind.HEADER, "application/json", "text/plain"),
        vc("$.legacyId", f"lg_{uuid.uuid4().hex[:12]}", f"lg_{uuid.uuid4().hex[:12]}"),
        *reorder_diffs("$.tags", tags_p, tags_c),
    ]
    if i < 8:
        diffs.append(vc("$.metrics.avgOrderValue", 204.63, 204.62))  # 0.005 % drift
        diffs.append(vc("$.metrics.ratio", 1.0, 1.001))
    if i == 8:
        diffs.append(vc("$.metrics.ratio", 1.0, 1.5))  # the same path, once far off
    if i == 3:
        diffs[5] = Difference("$.traceId", Kind.REMOVED, uuid.uuid4().hex, None)
        diffs.append(Difference("$.meta.region", Kind.TYPE_CHANGED, "eu", 1))
    body_p = {"id": i, "tags": tags_p, "total": 100 + i}
    body_c = {"id": i, "tags": tags_c, "total": 150 + i}
    return Ex(
        ANALYSIS,
        diffs,
        body_p,
        body_c,
        noise={
            "$.meta.servedBy": "value_changed",
            "$status": "status",
            "$.meta.region": "added",
            "$.meta.cacheAge": "value_changed",  # candidate happened to agree every time
        }
        if i % 4 == 0
        else {},
        noise_status={"$.meta.servedBy"} if i % 4 == 0 else set(),
        accepted={"$.legacyId"},
    )


def reports(i: int) -> Ex:
    """A list of objects in another order; its items' values then look like drift."""
    p = [
        {"id": f"r{i}a", "price": 10.0, "at": str(uuid.uuid4())},
        {"id": f"r{i}b", "price": 10.05, "at": str(uuid.uuid4())},
    ]
    c = list(reversed(p))
    return Ex(REPORTS, reorder_diffs("$.items", p, c), {"items": p}, {"items": c})


def insights(i: int) -> Ex:
    """`$.scores` reordered in some exchanges and changed in others; `$.ids` only changed."""
    if i % 2:
        sp, sc = [1, 2, 3], [3, 2, 1]
    else:
        sp, sc = [1, 2, 3], [1, 2, 4]
    ip, ic = [1, 2], [1, 3]
    diffs = reorder_diffs("$.scores", sp, sc) + reorder_diffs("$.ids", ip, ic)
    return Ex(INSIGHTS, diffs, {"scores": sp, "ids": ip}, {"scores": sc, "ids": ic})


def few(i: int) -> Ex:
    """Volatile values, but too few exchanges to say so."""
    return Ex(FEW, [vc("$.nonce", str(uuid.uuid4()), str(uuid.uuid4()))], {}, {})


def build(tmp_path: Path, items: list[Ex], matches: dict[str, int] | None = None) -> str:
    db = str(tmp_path / "shadow.duckdb")
    writer = StoreWriter(db)
    writer.run_changed(Run("r1", "proxy", 1_714_640_000.0))
    writer.run_changed(Run("r2", "proxy", 1_714_650_000.0))
    rows = [(it, Verdict.DIFFER) for it in items]
    for endpoint, n in (matches or {}).items():
        rows += [(Ex(endpoint, primary={}, candidate={}), Verdict.MATCH)] * n
    for k, (it, verdict) in enumerate(rows):
        method, template = it.endpoint.split(" ", 1)
        secondary = BackendResponse(Payload(200, JSON, b"{}"), 1.0)
        ex = Exchange(
            id=f"ex{k:03d}",
            request=Request(method, template.replace("{id}", str(k))),
            primary=BackendResponse(Payload(200, JSON, json.dumps(it.primary).encode()), 1.0),
            candidate=BackendResponse(Payload(200, JSON, json.dumps(it.candidate).encode()), 2.0),
            endpoint=it.endpoint,
            started_at=1_714_640_000.0 + k,
            secondary=secondary,
        )
        cmp = Comparison(verdict, tuple(it.diffs), body_kind="json")
        status = {p: ("noise", "differs between primary and secondary") for p in it.noise_status}
        status.update({p: ("accepted", "known") for p in it.accepted})
        noise = [
            (ex.id, it.run_id, it.endpoint, p, cluster_path(p), kind)
            for p, kind in it.noise.items()
        ]
        writer.add(
            exchange_row(ex, cmp, it.run_id, body_cap=it.body_cap),
            difference_rows(ex, cmp, it.run_id, status),
            noise,
        )
    writer.flush()
    return db


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    items = [analysis(i) for i in range(N)]
    items += [reports(i) for i in range(10)]
    no_bodies = reports(10)
    no_bodies.body_cap = 0
    items.append(no_bodies)
    items += [insights(i) for i in range(6)] + [few(i) for i in range(3)]
    late = Ex(ANALYSIS, [vc("$.onlyInRun2", "x", "y")], {}, {}, run_id="r2")
    late.noise = {"$.onlyInRun2": "value_changed"}
    items.append(late)
    return build(tmp_path_factory.mktemp("triage"), items, matches={REPORTS: 2})


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
        "$status",
        "$header.content-type",
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
    diff = Difference("$.reports", Kind.REORDERED, [3, 2, 1], [1, 2, 3])
    db = build(tmp_path, [Ex("GET /api/reports", [diff], {"r": 1}, {"r": 2}) for _ in range(12)])
    found = [s for s in suggest_rules(db) if s.kind == "ignore_order"]
    assert [(s.endpoint, s.path, s.confidence) for s in found] == [
        ("GET /api/reports", "$.reports", "medium")
    ]
    assert "12 of 12" in found[0].evidence and "relies on the order" in found[0].evidence
    assert '"$.reports"' in suggestions_to_toml(found)
