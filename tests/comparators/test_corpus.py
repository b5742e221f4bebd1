"""Precision and recall of compare() on the labelled corpus (`pytest -s` prints the table)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from corpus import CASES, DEFAULTS, RECOMMENDED, RULE_SETS, evaluate, report

MIN_PRECISION = 0.95
MIN_RECALL = 0.95


def test_corpus_is_big_and_varied_enough() -> None:
    assert len(CASES) >= 60
    categories = {c.category for c in CASES}
    assert categories >= {
        "timestamps", "request ids", "reordering", "numbers", "renamed keys", "long lists",
        "value changes", "type changes", "status", "combos",
    }  # fmt: skip
    long_lists = [c for c in CASES if c.category == "long lists"]
    assert len(long_lists) >= 5
    assert all(_longest_list(orjson.loads(c.primary.body)) >= 200 for c in long_lists)
    assert sum(bool(c.expected) for c in CASES) >= 30  # positives
    assert sum(not c.expected for c in CASES) >= 20  # pure noise
    assert len({c.name for c in CASES}) == len(CASES)


def _longest_list(value: Any) -> int:
    if isinstance(value, dict):
        return max(map(_longest_list, value.values()), default=0)
    if isinstance(value, list):
        return max([len(value), *map(_longest_list, value)])
    return 0


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    scores = [evaluate(table, name) for name, table in RULE_SETS.items()]
    with capsys.disabled():
        print("\n" + report(scores))


def test_recommended_rules_reach_the_targets() -> None:
    s = evaluate(RECOMMENDED, "recommended")
    misses = "\n".join(s.misses)
    assert s.verdict_precision >= MIN_PRECISION, misses
    assert s.verdict_recall >= MIN_RECALL, misses
    assert s.path_precision >= MIN_PRECISION, misses
    assert s.path_recall >= MIN_RECALL, misses
    assert s.noise_rate >= 0.9, misses
    # Only the labelled known limits are allowed to be wrong.
    assert all(m.startswith("known limits/") for m in s.misses), misses


def test_default_normalizers_never_hide_a_real_difference() -> None:
    s = evaluate(DEFAULTS, "defaults")
    assert s.verdict_recall == 1.0 and s.path_recall >= MIN_RECALL, "\n".join(s.misses)
