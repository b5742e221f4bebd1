"""The deepdiff wrapper returns plain data only."""

from __future__ import annotations

import copy
from typing import Any

from comparators_strategies import json_values
from hypothesis import assume, given
from hypothesis import strategies as st

from comparators._deep import MIN_BUDGET, RawDiff, budget_for, deep_diff, prune_equal
from comparators.model import Kind

BUDGET = 1_000_000


def test_converts_tree_to_raw_diffs() -> None:
    result = deep_diff(
        {"a": [1, 2], "b": 1, "c": {"d": None}},
        {"a": [1], "b": 1.0, "c": {"d": None, "e": "x"}},
        BUDGET,
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
    assert deep_diff(value, copy.deepcopy(value), BUDGET).diffs == []


_NEAR = st.sampled_from([0, 1, 1.0, True, None, "a", [], {}, [1], {"a": 1}])


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    """A value and a lightly mutated copy, so that pruning has equal parts to cut."""
    value = draw(json_values)

    def mutate(v: Any) -> Any:
        if draw(st.integers(0, 5)) == 0:
            return draw(_NEAR | json_values)
        if isinstance(v, dict):
            return {k: mutate(x) for k, x in v.items() if draw(st.integers(0, 9))}
        if isinstance(v, list):
            return [mutate(x) for x in v]
        return v

    return value, mutate(value)


@given(st.one_of(_pairs(), st.tuples(json_values, json_values)))
def test_pruning_does_not_change_results(pair: tuple[Any, Any]) -> None:
    a, b = pair
    # Unpruned, deepdiff lines up a list's items by Python equality: [None, False] against
    # [0, 0] pairs False with 0 and reports the None as removed, where pruning reports
    # type changes. The sets then differ in form, not in substance: such pairs are left
    # out (found by Hypothesis).
    assume(not _loose_in_lists(a, b))
    pruned, whole = deep_diff(a, b, BUDGET).diffs, deep_diff(a, b, BUDGET, prune=False).diffs
    # Unpruned, deepdiff's list alignment takes values Python calls equal for the same
    # (False == 0, 0 == 0.0) and misses that type change; pruning compares strictly.
    # Everything else is the same.
    extra = set(map(repr, pruned)) - set(map(repr, whole))
    assert set(map(repr, whole)) <= set(map(repr, pruned))
    assert all(_equal_in_python(d) for d in pruned if repr(d) in extra)


def _list_items(v: Any) -> list[Any]:
    """The scalars found directly in any list within `v`."""
    out: list[Any] = []
    if isinstance(v, dict):
        for x in v.values():
            out += _list_items(x)
    elif isinstance(v, list):
        for x in v:
            out += _list_items(x) if isinstance(x, dict | list) else [x]
    return out


def _loose_in_lists(a: Any, b: Any) -> bool:
    """Whether list items of `a` and `b` are equal in Python but not in type (False, 0)."""
    left, right = _list_items(a), _list_items(b)
    return any(x == y and type(x) is not type(y) for x in left for y in right)


def _equal_in_python(diff: RawDiff) -> bool:
    return diff.kind is Kind.TYPE_CHANGED and diff.primary == diff.candidate


def test_prune_equal_keeps_only_differences() -> None:
    a = {"same": {"x": [1, 2]}, "int": 1, "list": [{"k": 1}, {"k": 2}], "gone": 0}
    b = {"same": {"x": [1, 2]}, "int": 1.0, "list": [{"k": 1}, {"k": 3}], "new": 1}
    pa, pb, equal = prune_equal(a, b)
    assert equal is False
    assert pa == {"int": 1, "list": {1: {"k": 2}}, "gone": 0}
    assert pb == {"int": 1.0, "list": {1: {"k": 3}}, "new": 1}
    assert type(pb["int"]) is float  # 1 and 1.0 are not strictly equal
    assert prune_equal([1, 2], [1, 2, 3]) == ([1, 2], [1, 2, 3], False)
    assert prune_equal(a, copy.deepcopy(a))[2] is True


def test_budget_grows_with_max_diffs() -> None:
    assert budget_for(1) == MIN_BUDGET
    assert budget_for(200) >= 200 * 10  # room for differences ~10 levels deep
