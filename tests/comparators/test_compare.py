"""compare(): status, headers, JSON bodies, rules, limits, and the fast path."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from comparators_strategies import json_scalars, json_values
from hypothesis import given
from hypothesis import strategies as st

from comparators import (
    DEFAULT_RULES,
    Comparison,
    Difference,
    Kind,
    Payload,
    Verdict,
    _deep,
    compare,
    parse_rules,
)
from comparators.model import Headers

JSON: Headers = (("Content-Type", "application/json"),)


def _json(value: Any, status: int = 200, headers: Headers = JSON) -> Payload:
    return Payload(status, headers, orjson.dumps(value))


def _diffs(result: Comparison) -> list[tuple[str, Kind, Any, Any]]:
    return [(d.path, d.kind, d.primary, d.candidate) for d in result.differences]


def test_equal_payloads_match() -> None:
    result = compare(_json({"a": 1}), _json({"a": 1}), DEFAULT_RULES)
    assert result == Comparison(Verdict.MATCH, (), "json", False, ())


def test_header_normalizations_are_noted() -> None:
    result = compare(
        Payload(200, (("Content-Type", "application/json; charset=utf-8"), ("ETag", "1"))),
        Payload(200, (("content-type", "application/json"), ("etag", "1"))),
        parse_rules({"headers": ["content-type", "etag"]}),
    )
    assert result.verdict is Verdict.MATCH
    assert result.notes == (
        "media_type_params: $header.content-type",
        "header_name_case: $header.content-type",
        "header_name_case: $header.etag",
    )


def test_rules_default_to_default_rules() -> None:
    assert compare(_json(1), _json(2)).verdict is Verdict.DIFFER


@pytest.mark.parametrize(
    ("rules", "statuses", "expected"),
    [
        ({}, (200, 404), [("$status", Kind.STATUS, 200, 404)]),
        ({}, (200, 200), []),
        ({"compare_status": False}, (200, 500), []),
    ],
)
def test_status(rules: dict[str, Any], statuses: tuple[int, int], expected: list[Any]) -> None:
    result = compare(_json(1, statuses[0]), _json(1, statuses[1]), parse_rules(rules))
    assert _diffs(result) == expected
    assert result.verdict is (Verdict.DIFFER if expected else Verdict.MATCH)


@pytest.mark.parametrize(
    ("rules", "primary", "candidate", "expected"),
    [
        # content-type is compared by media type only
        (
            {},
            [("Content-Type", "application/json; charset=utf-8")],
            [("content-type", "Application/JSON")],
            [],
        ),
        (
            {},
            [("Content-Type", "application/json")],
            [("Content-Type", "application/problem+json")],
            [("$header.content-type", Kind.HEADER, "application/json", "application/problem+json")],
        ),
        (
            {},
            [("Content-Type", "application/json")],
            [],
            [("$header.content-type", Kind.HEADER, "application/json", None)],
        ),
        (
            {},
            [],
            [("Content-Type", "application/json")],
            [("$header.content-type", Kind.HEADER, None, "application/json")],
        ),
        # volatile headers are not compared by default
        ({}, [("Date", "Mon"), ("Server", "a")], [("Date", "Tue"), ("Server", "b")], []),
        (
            {"headers": ["ETag"]},
            [("etag", "1")],
            [("ETag", "2")],
            [("$header.etag", Kind.HEADER, "1", "2")],
        ),
        ({"headers": ["x-a"]}, [("x-a", " 1 ")], [("X-A", "1")], []),
        ({"headers": ["x-a"]}, [("x-a", "1"), ("x-a", "2")], [("x-a", "1, 2")], []),
        (
            {"headers": ["x-a"]},
            [("x-a", "v")],
            [("x-a", "V")],
            [("$header.x-a", Kind.HEADER, "v", "V")],
        ),
        # media_type_params (on): charset dropped from other media-type headers too
        (
            {"headers": ["x-ct"]},
            [("x-ct", "Text/Plain; Charset=UTF-8; q=1")],
            [("x-ct", "text/plain;q=1")],
            [],
        ),
        (
            {"headers": ["x-ct"]},
            [("x-ct", "text/plain; q=1")],
            [("x-ct", "text/plain; q=2")],
            [("$header.x-ct", Kind.HEADER, "text/plain;q=1", "text/plain;q=2")],
        ),
        # media_type_params off: content-type parameters count (normalized)
        (
            {"normalize": {"media_type_params": False}},
            [("Content-Type", 'application/json; charset="UTF-8"')],
            [("content-type", "Application/JSON;charset=utf-8")],
            [],
        ),
        (
            {"normalize": {"media_type_params": False}},
            [("Content-Type", "application/json; charset=utf-8")],
            [("Content-Type", "application/json")],
            [
                (
                    "$header.content-type",
                    Kind.HEADER,
                    "application/json;charset=utf-8",
                    "application/json",
                )
            ],
        ),
        # header_name_case off: names compared as spelled
        (
            {"headers": ["etag"], "normalize": {"header_name_case": False}},
            [("ETag", "1")],
            [("etag", "1")],
            [("$header.etag", Kind.HEADER, "ETag: 1", "etag: 1")],
        ),
        (
            {"headers": ["etag"], "normalize": {"header_name_case": False}},
            [("etag", "1")],
            [("etag", "1")],
            [],
        ),
        (
            {"headers": ["content-type", "x-b"], "ignore_headers": ["Content-Type"]},
            [("content-type", "a/b"), ("x-b", "1")],
            [("content-type", "c/d"), ("x-b", "2")],
            [("$header.x-b", Kind.HEADER, "1", "2")],
        ),
    ],
)
def test_headers(
    rules: dict[str, Any],
    primary: list[tuple[str, str]],
    candidate: list[tuple[str, str]],
    expected: list[Any],
) -> None:
    result = compare(
        Payload(200, tuple(primary)), Payload(200, tuple(candidate)), parse_rules(rules)
    )
    assert _diffs(result) == expected


@pytest.mark.parametrize(
    ("primary", "candidate", "expected"),
    [
        ({"a": 1}, {"a": 2}, [("$.a", Kind.VALUE_CHANGED, 1, 2)]),
        ({"a": "x"}, {"a": "y"}, [("$.a", Kind.VALUE_CHANGED, "x", "y")]),
        ({"a": 1}, {"a": 1.5}, [("$.a", Kind.TYPE_CHANGED, 1, 1.5)]),  # int vs float counts
        ({"a": True}, {"a": 1}, [("$.a", Kind.TYPE_CHANGED, True, 1)]),
        ({"a": None}, {"a": 0}, [("$.a", Kind.TYPE_CHANGED, None, 0)]),
        ({"a": "1"}, {"a": 1}, [("$.a", Kind.TYPE_CHANGED, "1", 1)]),
        ({"a": {"b": 1}}, {"a": [1]}, [("$.a", Kind.TYPE_CHANGED, {"b": 1}, [1])]),
        ({}, {"n": [1]}, [("$.n", Kind.ADDED, None, [1])]),
        ({"g": 1}, {}, [("$.g", Kind.REMOVED, 1, None)]),
        (
            {"a": {"x": 1, "y": 2}},
            {"a": {"z": 3}},  # no shared keys: still reported key by key
            [
                ("$.a.x", Kind.REMOVED, 1, None),
                ("$.a.y", Kind.REMOVED, 2, None),
                ("$.a.z", Kind.ADDED, None, 3),
            ],
        ),
        ([1, 2], [1, 2, 3], [("$[2]", Kind.ADDED, None, 3)]),
        ([1, 2, 3], [1, 3], [("$[1]", Kind.REMOVED, 2, None)]),
        (
            {"items": [{"name": "a"}] * 3 + [{"name": "b"}]},
            {"items": [{"name": "a"}] * 3 + [{"name": "c"}]},
            [("$.items[3].name", Kind.VALUE_CHANGED, "b", "c")],
        ),
        ({"a b": 1}, {"a b": 2}, [('$["a b"]', Kind.VALUE_CHANGED, 1, 2)]),
        (
            {"x": {"k-1": [0, {"é": 1}]}},
            {"x": {"k-1": [0, {"é": 2}]}},
            [('$.x["k-1"][1]["é"]', Kind.VALUE_CHANGED, 1, 2)],
        ),
        (1, "1", [("$", Kind.TYPE_CHANGED, 1, "1")]),
        (
            [[1, 2], [3]],
            [[1, 2, 5], [3, 4]],
            [("$[0][2]", Kind.ADDED, None, 5), ("$[1][1]", Kind.ADDED, None, 4)],
        ),
        # Differences come in document order, indexes numerically.
        (
            {"b": 1, "a": [0] * 11},
            {"b": 2, "a": [0] * 2 + [1] + [0] * 7 + [1]},
            [
                ("$.a[2]", Kind.VALUE_CHANGED, 0, 1),
                ("$.a[10]", Kind.VALUE_CHANGED, 0, 1),
                ("$.b", Kind.VALUE_CHANGED, 1, 2),
            ],
        ),
    ],
)
def test_json_differences(primary: Any, candidate: Any, expected: list[Any]) -> None:
    result = compare(_json(primary), _json(candidate), DEFAULT_RULES)
    assert _diffs(result) == expected
    assert result.verdict is Verdict.DIFFER
    assert result.body_kind == "json"


def test_differences_hold_plain_values_only() -> None:
    result = compare(_json({"a": [1, {"b": 2}], "c": 1}), _json({"a": [1, {"b": 3}, 4]}))
    for diff in result.differences:
        assert type(diff) is Difference
        for value in (diff.primary, diff.candidate):
            orjson.dumps(value)  # raises on anything that is not plain JSON data
            assert type(value).__module__ == "builtins"


@pytest.mark.parametrize(
    ("rules", "primary", "candidate", "expected_paths"),
    [
        ({"tolerance": 0.01}, {"a": 1.0}, {"a": 1.005}, []),
        ({"tolerance": 0.01}, {"a": 1.0}, {"a": 1.02}, ["$.a"]),
        ({"tolerance": 1}, {"a": 10}, {"a": 11}, []),  # ints too
        ({"tolerance": 1}, {"a": 1}, {"a": 1.5}, ["$.a"]),  # a type change is never tolerated
        ({"tolerance": 1}, {"a": True}, {"a": False}, ["$.a"]),  # bools are not numbers
        ({"tolerance": 1}, {"a": "1"}, {"a": "2"}, ["$.a"]),
        ({"tolerances": {"$.p": 0.5}}, {"p": 1.0, "q": 1.0}, {"p": 1.4, "q": 1.4}, ["$.q"]),
        (
            {"tolerance": 0.5, "tolerances": {"$.p": 0}},
            {"p": 1.0, "q": 1.0},
            {"p": 1.4, "q": 1.4},
            ["$.p"],
        ),
        (
            {"tolerances": {"$.items[*].price": 0.1}},
            {"items": [{"price": 1.0}]},
            {"items": [{"price": 1.05}]},
            [],
        ),
    ],
)
def test_tolerance(
    rules: dict[str, Any], primary: Any, candidate: Any, expected_paths: list[str]
) -> None:
    result = compare(_json(primary), _json(candidate), parse_rules(rules))
    assert [d.path for d in result.differences] == expected_paths
    if len(expected_paths) == 0:
        assert any(n.startswith("tolerated") for n in result.notes)


def test_rules_are_applied_and_noted() -> None:
    rules = parse_rules(
        {
            "ignore_paths": ["$..request_id"],
            "ignore_order": ["$.tags"],
            "masks": ["iso_timestamp", "uuid"],
        }
    )
    primary = {
        "request_id": 1,
        "at": "2024-01-01T00:00:00Z",
        "tags": ["a", "b"],
        "id": "123e4567-e89b-12d3-a456-426614174000",
        "n": 1,
    }
    candidate = {
        "request_id": 2,
        "at": "2024-02-02T10:00:00.5+01:00",
        "tags": ["b", "a"],
        "id": "00000000-0000-0000-0000-000000000000",
        "n": 1,
    }
    result = compare(_json(primary), _json(candidate), rules)
    assert result.verdict is Verdict.MATCH
    assert result.notes == (
        "ignored 2 values at $..request_id",
        "masked 2 iso_timestamp values",
        "masked 2 uuid values",
        "sorted 2 lists at $.tags (ignore_order)",
    )


def test_fast_path_does_not_call_deepdiff(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("deepdiff called on the fast path")

    monkeypatch.setattr(_deep, "deep_diff", boom)
    rules = parse_rules({"ignore_paths": ["$.t"], "ignore_order": ["$.l"]})
    # Equal after normalization, with keys in another order: canonical forms are equal.
    result = compare(
        _json({"a": 1, "t": 1, "l": [1, 2]}), _json({"l": [2, 1], "t": 2, "a": 1}), rules
    )
    assert result.verdict is Verdict.MATCH
    # And the patch is effective: a real difference does reach the wrapper.
    with pytest.raises(AssertionError, match="deepdiff called"):
        compare(_json({"a": 1}), _json({"a": 2}), rules)


def test_max_diffs_truncates() -> None:
    rules = parse_rules({"max_diffs": 3})
    result = compare(
        _json(list(range(10))),
        _json(list(range(100, 110))),
        rules,
    )
    assert len(result.differences) == 3
    assert result.truncated is True
    assert "kept 3 of 10 differences (max_diffs)" in result.notes
    assert compare(_json([1]), _json([2]), rules).truncated is False


def test_many_keys_are_all_compared() -> None:
    """deepdiff's own max_diffs counts visited keys; ours must not hide a late change."""
    primary = {f"k{i:04}": i for i in range(2000)}
    candidate = {**primary, "k1999": -1}
    result = compare(_json(primary), _json(candidate), parse_rules({"max_diffs": 5}))
    assert _diffs(result) == [("$.k1999", Kind.VALUE_CHANGED, 1999, -1)]
    assert result.truncated is False


def test_big_bodies_are_compared_by_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_deep, "deep_diff", None)  # must not be reached
    rules = parse_rules({"max_body_bytes_for_diff": 10})
    result = compare(_json({"a": "x" * 20}), _json({"a": "y" * 20}), rules)
    ((path, kind, primary, candidate),) = _diffs(result)
    assert (path, kind) == ("$body", Kind.VALUE_CHANGED)
    assert primary["length"] == candidate["length"] == 28
    assert len(primary["sha256"]) == 16 and primary["sha256"] != candidate["sha256"]
    assert "body over max_body_bytes_for_diff: compared by hash only" in result.notes
    assert compare(_json({"a": "x" * 20}), _json({"a": "x" * 20}), rules).verdict is Verdict.MATCH


# --- properties -------------------------------------------------------------------------


def _strict_equal(a: Any, b: Any) -> bool:
    """JSON equality where 1, 1.0 and True all differ (but -0.0 == 0.0, as in deepdiff)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_strict_equal, a, b))
    return bool(a == b)


# Every migration-aware normalizer off: only strictly equal JSON matches.
STRICT = parse_rules(
    {
        "normalize": {
            "int_float": False,
            "iso_instants": False,
            "null_absent": False,
            "key_case": False,
            "auto_list_key": False,
        }
    }
)


@given(json_values, json_values)
def test_match_exactly_when_strictly_equal(a: Any, b: Any) -> None:
    result = compare(_json(a), _json(b), STRICT)
    assert (result.verdict is Verdict.MATCH) is _strict_equal(a, b)
    assert (result.differences == ()) is _strict_equal(a, b)


def test_int_float_is_noted_under_defaults_and_a_difference_when_strict() -> None:
    result = compare(_json({"a": 1}), _json({"a": 1.0}))
    assert (result.verdict, result.notes) == (Verdict.MATCH, ("int_float: $.a",))
    assert _diffs(compare(_json({"a": 1}), _json({"a": 1.0}), STRICT)) == [
        ("$.a", Kind.TYPE_CHANGED, 1, 1.0)
    ]


@given(json_values)
def test_compare_with_itself_finds_nothing(value: Any) -> None:
    result = compare(_json(value), _json(value), DEFAULT_RULES)
    assert result.verdict is Verdict.MATCH
    assert result.differences == ()


_ORDER_FREE = parse_rules({"ignore_order": ["$.items"]})


@given(st.lists(json_values, max_size=8), st.randoms(use_true_random=False))
def test_shuffled_list_under_ignore_order_finds_nothing(
    items: list[Any], rnd: random.Random
) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    result = compare(_json({"items": items}), _json({"items": shuffled}), _ORDER_FREE)
    assert result.verdict is Verdict.MATCH


@given(st.lists(json_values, min_size=1, max_size=8), st.randoms(use_true_random=False), st.data())
def test_changed_element_under_ignore_order_still_differs(
    items: list[Any], rnd: random.Random, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(items) - 1))
    old = items[index]
    replacement = data.draw(json_scalars.filter(lambda v: not _strict_equal(v, old)))
    changed = list(items)
    changed[index] = replacement
    rnd.shuffle(changed)
    # Strict rules: under the default normalizers 0 and 0.0 (or two forms of one instant)
    # are equal on purpose, and a replacement by such a twin is no change.
    rules = STRICT.merged({"ignore_order": ["$.items"]})
    result = compare(_json({"items": items}), _json({"items": changed}), rules)
    assert result.verdict is Verdict.DIFFER


def test_many_differences_stop_early_and_say_so() -> None:
    primary = {"items": [{"price": i} for i in range(3000)]}
    candidate = {"items": [{"price": i + 1} for i in range(3000)]}
    result = compare(_json(primary), _json(candidate), parse_rules({"max_diffs": 10}))
    assert len(result.differences) == 10
    assert result.truncated is True
    assert result.differences[0].path == "$.items[0].price"
    assert "deepdiff stopped on its work budget: differences may be missing" in result.notes


def test_deep_differences_within_max_diffs_are_all_found() -> None:
    deep: Any = 1
    for _ in range(15):
        deep = {"level": deep}
    primary = {f"k{i}": deep for i in range(20)}
    candidate = orjson.loads(orjson.dumps(primary).replace(b":1}", b":2}"))
    result = compare(_json(primary), _json(candidate), parse_rules({"max_diffs": 20}))
    assert len(result.differences) == 20
    assert result.truncated is False


def test_public_names() -> None:
    import comparators

    assert set(comparators.__all__) >= {
        "compare", "parse_rules", "Rules", "DEFAULT_RULES", "RuleError", "DecodeError",
        "decode_body", "body_text", "media_type", "canonical_json", "Payload", "Difference",
        "Comparison", "Verdict", "Kind",
    }  # fmt: skip
    assert all(hasattr(comparators, name) for name in comparators.__all__)
    assert issubclass(comparators.RuleError, ValueError)
    assert issubclass(comparators.DecodeError, ValueError)
