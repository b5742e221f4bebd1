"""Normalizers: ignore_paths, ignore_order and masks over parsed JSON."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from comparators_strategies import json_values
from hypothesis import given
from hypothesis import strategies as st

from comparators import canonical_json, parse_rules
from comparators.normalize import IGNORED, NoteKey, render_notes

TS = "2024-05-01T10:00:00Z"


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: unlike ==, tells 1 from 1.0 and True, and sees list order."""
    return canonical_json(a) == canonical_json(b)


@pytest.mark.parametrize(
    ("patterns", "value", "expected"),
    [
        (["$.a"], {"a": 1, "b": 2}, {"b": 2}),
        (["a"], {"a": 1, "b": 2}, {"b": 2}),
        (["$.a.b"], {"a": {"b": 1, "c": 2}}, {"a": {"c": 2}}),
        (["$.missing"], {"a": 1}, {"a": 1}),
        (
            ["$.items[*].updated_at"],
            {"items": [{"updated_at": 1, "n": 1}, {"n": 2}]},
            {"items": [{"n": 1}, {"n": 2}]},
        ),
        (
            ["$.*.id"],
            {"u": {"id": 1, "n": 1}, "v": {"id": 2}, "id": 3},
            {"u": {"n": 1}, "v": {}, "id": 3},
        ),
        (
            ["$..request_id"],
            {"request_id": 1, "a": [{"request_id": 2, "k": {"request_id": 3}}]},
            {"a": [{"k": {}}]},
        ),
        (['$["odd key"]'], {"odd key": 1, "odd": 2}, {"odd": 2}),
        (["$.items[0]"], {"items": [1, 2, 3]}, {"items": [IGNORED, 2, 3]}),
        (["$[1]"], [1, 2, 3], [1, IGNORED, 3]),
        (["$.a", "$.b"], {"a": 1, "b": 2, "c": 3}, {"c": 3}),
        (["$.a"], [{"a": 1}], [{"a": 1}]),  # root is a list: $.a is not there
    ],
)
def test_ignore_paths(patterns: list[str], value: Any, expected: Any) -> None:
    normalizer = parse_rules({"ignore_paths": patterns}).normalizer
    assert _same(normalizer.json(value), expected)


@pytest.mark.parametrize(
    ("patterns", "value", "expected"),
    [
        (["$"], [3, 1, 2], [1, 2, 3]),
        (
            ["$.tags"],
            {"tags": ["b", "a"], "other": ["b", "a"]},
            {"tags": ["a", "b"], "other": ["b", "a"]},
        ),
        (["$.items"], {"items": [{"id": 2}, {"id": 1}]}, {"items": [{"id": 1}, {"id": 2}]}),
        (
            ["$.items"],
            {"items": [{"b": 1, "a": 2}, {"a": 1, "b": 2}]},
            {"items": [{"a": 1, "b": 2}, {"b": 1, "a": 2}]},
        ),
        # Nested order-free lists are sorted before their parent uses them as keys.
        (["$", "$[*]"], [[2, 1], [1, 0]], [[0, 1], [1, 2]]),
        (
            ["$..tags"],
            {"a": {"tags": [2, 1]}, "tags": [4, 3]},
            {"a": {"tags": [1, 2]}, "tags": [3, 4]},
        ),
        (["$.tags"], {"tags": "not a list"}, {"tags": "not a list"}),
        (["$"], [1, "1", None, True, 1.0], ["1", 1, 1.0, None, True]),  # by canonical bytes
    ],
)
def test_ignore_order(patterns: list[str], value: Any, expected: Any) -> None:
    normalizer = parse_rules({"ignore_order": patterns}).normalizer
    assert _same(normalizer.json(value), expected)


@pytest.mark.parametrize(
    ("masks", "value", "expected"),
    [
        (
            ["iso_timestamp"],
            {"at": TS, "n": 1, "l": [f"x {TS}"]},
            {"at": "<iso_timestamp>", "n": 1, "l": ["x <iso_timestamp>"]},
        ),
        (["iso_timestamp"], {TS: 1}, {TS: 1}),  # keys are not masked
        ([{"name": "r", "regex": "req-[0-9]+", "replace": "R"}], ["req-1", "req-22x"], ["R", "Rx"]),
        (
            [{"name": "iso_timestamp", "paths": ["$.meta"]}],
            {"meta": {"at": TS}, "at": TS},
            {"meta": {"at": "<iso_timestamp>"}, "at": TS},
        ),
        (
            [{"name": "n", "regex": "[0-9]+", "replace": "#", "paths": ["$..id"]}],
            {"id": "a1", "x": [{"id": "b22"}], "y": "c3"},
            {"id": "a#", "x": [{"id": "b#"}], "y": "c3"},
        ),
        (
            [{"name": "all", "regex": "a", "replace": "b", "paths": ["$"]}],
            ["a", {"k": "aa"}],
            ["b", {"k": "bb"}],
        ),
    ],
)
def test_masks(masks: list[Any], value: Any, expected: Any) -> None:
    assert _same(parse_rules({"masks": masks}).normalizer.json(value), expected)


def test_text_uses_only_masks_without_paths() -> None:
    rules = parse_rules({"masks": ["uuid", {"name": "iso_timestamp", "paths": ["$.a"]}]})
    text = f"id 123e4567-e89b-12d3-a456-426614174000 at {TS}"
    assert rules.normalizer.text(text) == f"id <uuid> at {TS}"


def test_counts_become_notes() -> None:
    rules = parse_rules(
        {"ignore_paths": ["$..rid"], "ignore_order": ["$.l"], "masks": ["iso_timestamp"]}
    )
    counts: Counter[NoteKey] = Counter()
    rules.normalizer.json({"rid": 1, "x": {"rid": 2}, "l": [2, 1], "t": [TS, TS]}, counts)
    assert render_notes(counts) == [
        "ignored 2 values at $..rid",
        "masked 2 iso_timestamp values",
        "sorted 1 list at $.l (ignore_order)",
    ]


def test_index_patterns_do_not_apply_inside_order_free_lists() -> None:
    """Positions mean nothing there; honouring them would break idempotence."""
    rules = parse_rules({"ignore_order": ["$"], "ignore_paths": ["$[0].a", "$[*].b"]})
    assert rules.normalizer.json([{"a": 1, "b": 1}]) == [{"a": 1}]


def test_input_is_not_mutated() -> None:
    rules = parse_rules(
        {"ignore_paths": ["$.a"], "ignore_order": ["$.l"], "masks": ["iso_timestamp"]}
    )
    value = {"a": 1, "l": [3, 2, 1], "t": TS, "d": {"a": [TS]}}
    before = copy.deepcopy(value)
    rules.normalizer.json(value)
    assert value == before


def test_no_rules_returns_value_unchanged() -> None:
    value = {"a": [1, 2]}
    assert parse_rules({}).normalizer.json(value) is value


_RULES = [
    parse_rules(
        {
            "ignore_paths": ["$..a", "$.*[0]", '$[""]'],
            "ignore_order": ["$", "$..*"],
            "masks": [
                "iso_timestamp",
                "uuid",
                "hex_id",
                {"name": "d", "regex": "[0-9]+", "replace": "#"},
            ],
        }
    ),
    parse_rules({"ignore_order": ["$..*", "$"], "ignore_paths": ["$[1]", "$.*.b"]}),
    parse_rules({"masks": [{"name": "x", "regex": "x+y", "replace": "<x>", "paths": ["$..*"]}]}),
]


@given(json_values, st.sampled_from(range(len(_RULES))))
def test_normalizing_twice_equals_normalizing_once(value: Any, which: int) -> None:
    normalizer = _RULES[which].normalizer
    once = normalizer.json(value)
    assert _same(normalizer.json(once), once)
