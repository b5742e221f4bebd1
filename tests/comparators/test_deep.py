"""The deepdiff wrapper returns plain data only."""

from __future__ import annotations

import copy
from typing import Any

from comparators_strategies import json_values
from hypothesis import given

from comparators._deep import RawDiff, deep_diff
from comparators.model import Kind


def test_converts_tree_to_raw_diffs() -> None:
    result = deep_diff(
        {"a": [1, 2], "b": 1, "c": {"d": None}}, {"a": [1], "b": 1.0, "c": {"d": None, "e": "x"}}
    )
    assert sorted(result.diffs) == sorted(
        [
            RawDiff(("a", 1), Kind.REMOVED, 2, None),
            RawDiff(("b",), Kind.TYPE_CHANGED, 1, 1.0),
            RawDiff(("c", "e"), Kind.ADDED, None, "x"),
        ]
    )
    assert result.exhausted is False


def test_work_budget_exhaustion_is_reported() -> None:
    result = deep_diff(
        {f"k{i}": i for i in range(50)}, {f"k{i}": -i - 1 for i in range(50)}, budget=5
    )
    assert result.exhausted is True
    assert 0 < len(result.diffs) < 50


@given(json_values)
def test_equal_values_have_no_differences(value: Any) -> None:
    assert deep_diff(value, copy.deepcopy(value)).diffs == []
