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


COLUMNS = ("verdict P", "verdict R", "path P", "path R", "noise noted", "ms/pair")


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed table describes the corpus, has one row per rule set showing its scores,
    and tells the story the normalizers are for: each rule set that normalizes more is at
    least as precise, and the recommended one meets the targets as printed."""
    scores = [evaluate(table, name) for name, table in RULE_SETS.items()]
    text = report(scores)
    with capsys.disabled():
        print("\n" + text)
    head, columns, *lines = text.splitlines()
    real = sum(len(c.expected) for c in CASES)
    categories = len({c.category for c in CASES})
    assert head == f"corpus: {len(CASES)} pairs, {real} real differences, {categories} categories"
    assert columns.split()[0] == "rules" and all(name in columns for name in COLUMNS)
    rows: dict[str, dict[str, float]] = {}
    for line in lines:
        name, cells = line[:28].strip(), line[28:].split()
        assert len(cells) == len(COLUMNS), line
        rows[name] = dict(zip(COLUMNS, map(float, cells), strict=True))
    assert list(rows) == list(RULE_SETS)  # every rule set, once, in order
    for s in scores:
        shown = rows[s.rules_name]
        exact = (s.verdict_precision, s.verdict_recall, s.path_precision, s.path_recall)
        assert [shown[c] for c in COLUMNS[:4]] == [round(x, 3) for x in exact], s.rules_name
        assert shown["noise noted"] == round(s.noise_rate, 3), s.rules_name
        assert all(0.0 <= shown[c] <= 1.0 for c in COLUMNS[:5]) and shown["ms/pair"] > 0
    ladder = [rows["recommended"], rows["defaults"], rows["baseline (normalizers off)"]]
    for column in ("verdict P", "path P", "noise noted"):
        figures = [row[column] for row in ladder]
        assert figures == sorted(figures, reverse=True), (column, figures)
    assert rows["recommended"]["verdict P"] > rows["baseline (normalizers off)"]["verdict P"]
    recommended = rows["recommended"]
    assert min(recommended["verdict P"], recommended["path P"]) >= MIN_PRECISION, text
    assert min(recommended["verdict R"], recommended["path R"]) >= MIN_RECALL, text


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
