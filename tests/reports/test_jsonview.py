"""reports.jsonview: bodies as pretty-printed lines, differing paths marked."""

from __future__ import annotations

import json

import pytest

from comparators import DEFAULT_RULES, Payload, compare
from reports.jsonview import Line, body_lines, child_path

JSON = (("content-type", "application/json"),)

BODY = json.dumps(
    {
        "id": 1,
        "createdAt": "2024-05-02T09:25:00.000Z",
        "metrics": {"avgOrderValue": 204.63, "sampleSize": 10},
        "tags": ["a", "b", "c"],
        "empty": {},
        "none": [],
    }
)


def marked(lines: list[Line]) -> list[str]:
    return [line.text.strip() for line in lines if line.marked]


def test_pretty_prints_json_like_the_source() -> None:
    lines = body_lines(BODY, frozenset())
    assert "\n".join(line.text for line in lines) == json.dumps(json.loads(BODY), indent=2)
    assert not any(line.marked for line in lines)


def test_marks_exactly_the_lines_of_differing_paths() -> None:
    paths = frozenset({"$.createdAt", "$.metrics.avgOrderValue", "$.tags[1]"})
    lines = body_lines(BODY, paths)
    assert marked(lines) == [
        '"createdAt": "2024-05-02T09:25:00.000Z",',
        '"avgOrderValue": 204.63,',
        '"b",',
    ]


def test_marks_paths_reported_by_compare() -> None:
    a = {"id": 1, "metrics": {"avgOrderValue": 204.63}, "tags": ["x", "y"], "a b": 1}
    b = {"id": 1, "metrics": {"avgOrderValue": 204.62}, "tags": ["x", "z"], "a b": 2}
    result = compare(
        Payload(200, JSON, json.dumps(a).encode()),
        Payload(200, JSON, json.dumps(b).encode()),
        DEFAULT_RULES,
    )
    paths = frozenset(d.path for d in result.differences)
    assert paths == {"$.metrics.avgOrderValue", "$.tags[1]", '$["a b"]'}
    assert marked(body_lines(json.dumps(a), paths)) == [
        '"avgOrderValue": 204.63',
        '"y"',
        '"a b": 1',
    ]
    assert marked(body_lines(json.dumps(b), paths)) == [
        '"avgOrderValue": 204.62',
        '"z"',
        '"a b": 2',
    ]


def test_marks_non_ascii_keys_reported_by_compare() -> None:
    a, b = {"café": 1}, {"café": 2}
    result = compare(
        Payload(200, JSON, json.dumps(a).encode()),
        Payload(200, JSON, json.dumps(b).encode()),
        DEFAULT_RULES,
    )
    paths = frozenset(d.path for d in result.differences)
    assert len(paths) == 1
    assert len(marked(body_lines(json.dumps(a), paths))) == 1


def test_container_path_marks_its_brackets() -> None:
    lines = body_lines(BODY, frozenset({"$.metrics"}))
    assert marked(lines) == ['"metrics": {', "},"]


def test_non_json_body_marked_whole_when_body_differs() -> None:
    text = "line one\nline two\n<b>three</b>"
    assert [line.text for line in body_lines(text, frozenset())] == text.splitlines()
    assert all(line.marked for line in body_lines(text, frozenset({"$body"})))
    assert not any(line.marked for line in body_lines(text, frozenset({"$.x"})))


def test_none_body() -> None:
    assert body_lines(None, frozenset({"$body"})) == []


def test_max_lines() -> None:
    body = json.dumps(list(range(100)))
    lines = body_lines(body, frozenset(), max_lines=10)
    assert len(lines) == 11
    assert lines[-1] == Line("... 92 more lines")
    text = "\n".join(str(i) for i in range(50))
    assert len(body_lines(text, frozenset(), max_lines=5)) == 5


@pytest.mark.parametrize(
    ("parent", "key", "expected"),
    [
        ("$", "a", "$.a"),
        ("$.a", 3, "$.a[3]"),
        ("$", "a b", '$["a b"]'),
        ("$", "with-dash", '$["with-dash"]'),
        ("$", "_x1", "$._x1"),
        ("$", "1x", '$["1x"]'),
    ],
)
def test_child_path(parent: str, key: str | int, expected: str) -> None:
    assert child_path(parent, key) == expected
