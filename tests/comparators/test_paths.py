"""Path patterns: parsing, matching, and the paths we print."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comparators.paths import (
    ANY,
    PathSet,
    PatternError,
    PatternStep,
    format_path,
    parse_pattern,
    path_sort_key,
)


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("$", ()),
        ("$.a.b", (PatternStep("a"), PatternStep("b"))),
        ("a.b", (PatternStep("a"), PatternStep("b"))),
        ("request_id", (PatternStep("request_id"),)),
        (
            "$.items[*].updated_at",
            (PatternStep("items"), PatternStep(ANY), PatternStep("updated_at")),
        ),
        ("$.*.id", (PatternStep(ANY), PatternStep("id"))),
        ("$..request_id", (PatternStep("request_id", descend=True),)),
        ("..request_id", (PatternStep("request_id", descend=True),)),
        ("$..[0]", (PatternStep(0, descend=True),)),
        ('$["odd key"]', (PatternStep("odd key"),)),
        ("$['odd key']", (PatternStep("odd key"),)),
        ("$['it\\'s']", (PatternStep("it's"),)),
        ('$["a.b"][2]', (PatternStep("a.b"), PatternStep(2))),
        ("$.items[0]", (PatternStep("items"), PatternStep(0))),
        ("[0]", (PatternStep(0),)),
        ("$.content-type", (PatternStep("content-type"),)),
        ("  $.a  ", (PatternStep("a"),)),
    ],
)
def test_parse_pattern(text: str, steps: tuple[PatternStep, ...]) -> None:
    assert parse_pattern(text).steps == steps


@pytest.mark.parametrize(
    "text", ["", "$.", "$.a.", "$[", "$[1", "$['a]", "$.a b", "$x", "$[-1]", '$["\\q"]', "$...a"]
)
def test_bad_patterns_raise(text: str) -> None:
    with pytest.raises(PatternError):
        parse_pattern(text)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("$", (), True),
        ("$", ("a",), False),
        ("$.a.b", ("a", "b"), True),
        ("$.a.b", ("a",), False),
        ("$.a.b", ("a", "b", "c"), False),
        ("$.items[*].updated_at", ("items", 3, "updated_at"), True),
        ("$.items[*].updated_at", ("items", "x", "updated_at"), True),
        ("$.items[*].updated_at", ("items", 3, "created_at"), False),
        ("$.*.id", ("user", "id"), True),
        ("$.*.id", ("id",), False),
        ("$..request_id", ("request_id",), True),
        ("$..request_id", ("a", 0, "b", "request_id"), True),
        ("$..request_id", ("a", "request_id", "x"), False),
        ("$.a..id", ("a", "id"), True),
        ("$.a..id", ("b", "id"), False),
        ("$..*", ("anything", 1), True),
        ('$["odd key"]', ("odd key",), True),
        ("$.items[0]", ("items", 0), True),
        ("$.items[0]", ("items", 1), False),
        ("$.items[0]", ("items", "0"), False),  # a key "0" is not index 0
        ("$.a[*]", ("a", -1), True),  # -1: position inside an order-free list
        ("$.a[0]", ("a", -1), False),
    ],
)
def test_pattern_matches(pattern: str, path: tuple[str | int, ...], expected: bool) -> None:
    assert bool(PathSet([parse_pattern(pattern)]).matches(path)) is expected


def test_pathset_reports_every_matching_pattern() -> None:
    pset = PathSet(parse_pattern(p) for p in ["$.a", "$..a", "$.b"])
    assert sorted(pset.matches(("a",))) == [0, 1]
    assert pset.matches(("x", "a")) == [1]
    assert pset.matches(("c",)) == []


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "$"),
        (("items", 3, "name"), "$.items[3].name"),
        (("a b",), '$["a b"]'),
        (("content-type",), '$["content-type"]'),
        (("1st",), '$["1st"]'),
        (("_x1",), "$._x1"),
        (('q"uote',), '$["q\\"uote"]'),
        (("é",), '$["é"]'),
        (("",), '$[""]'),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_path_sort_key_orders_indexes_numerically() -> None:
    paths: list[tuple[str | int, ...]] = [("a", 10), ("a", 2), ("a", "k"), ("a",)]
    assert sorted(paths, key=path_sort_key) == [("a",), ("a", 2), ("a", 10), ("a", "k")]


_steps = st.lists(st.integers(min_value=0, max_value=10**6) | st.text(max_size=8), max_size=6).map(
    tuple
)


@given(_steps)
def test_printed_paths_parse_back_to_themselves(path: tuple[str | int, ...]) -> None:
    """Every path we print can be pasted into a rule and matches exactly that path."""
    pattern = parse_pattern(format_path(path))
    assert pattern.steps == tuple(PatternStep(step) for step in path)
    assert PathSet([pattern]).matches(path) == [0]


@pytest.mark.parametrize(
    ("path", "exact", "subtree"),
    [
        ((), [], []),
        (("a",), [0], [0]),
        (("a", "b"), [1], [0, 1]),
        (("a", "b", "c"), [], [0, 1]),
        (("x", "b"), [], []),
    ],
)
def test_matches_subtree(path: tuple[str | int, ...], exact: list[int], subtree: list[int]) -> None:
    pset = PathSet(parse_pattern(p) for p in ["$.a", "$.a.b"])
    assert pset.matches(path) == exact
    assert pset.matches(path, subtree=True) == subtree
