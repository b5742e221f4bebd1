"""Body kinds: text, binary, empty, mixed and undecodable bodies."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from comparators import DEFAULT_RULES, Kind, Payload, Verdict, compare, parse_rules
from comparators.body import TEXT_LIMIT, first_difference, load_side
from comparators.canonical import digest
from comparators.model import Headers

TEXT: Headers = (("Content-Type", "text/plain; charset=utf-8"),)
PNG: Headers = (("Content-Type", "image/png"),)
JSON: Headers = (("Content-Type", "application/json"),)


@pytest.mark.parametrize(
    ("headers", "body", "kind"),
    [
        (JSON, b'{"a": 1}', "json"),
        ((("Content-Type", "application/vnd.api+json"),), b"[1]", "json"),
        ((("Content-Type", "text/json"),), b"[1]", "json"),
        ((), b'{"a": 1}', "json"),  # no media type: sniffed
        ((), b"123", "json"),
        ((), b"hello", "text"),
        ((), b"\x89PNG\r\n\x1a\n\x00", "binary"),
        (JSON, b"{broken", "text"),  # mislabelled or broken JSON falls back to text
        (JSON, b"\xff\xfe{", "binary"),
        (TEXT, b'{"a": 1}', "text"),  # labelled text stays text
        ((("Content-Type", "text/html"),), b"<p>hi</p>", "text"),
        (PNG, b"ascii-looking png", "binary"),
        (JSON, b"", "empty"),
        ((("Content-Encoding", "gzip"), *JSON), gzip.compress(b"[1, 2]", mtime=0), "json"),
        ((("Content-Encoding", "gzip"),), b"not gzip", "binary"),
    ],
)
def test_load_side_kind(headers: Headers, body: bytes, kind: str) -> None:
    assert load_side(Payload(200, headers, body)).kind == kind


def test_json_in_another_charset() -> None:
    headers: Headers = (("Content-Type", "application/json; charset=utf-16"),)
    side = load_side(Payload(200, headers, '{"é": 1}'.encode("utf-16")))
    assert (side.kind, side.value) == ("json", {"é": 1})


@pytest.mark.parametrize(
    ("rules", "a", "b", "expected"),
    [
        ({}, "same text", "same text", None),
        ({}, "hello", "hullo", ("hello", "hullo")),
        ({"masks": ["iso_timestamp"]}, "at 2024-01-01T00:00:00Z", "at 2025-06-01T12:00:00Z", None),
        (
            {"masks": ["uuid"]},
            "at 2024-01-01T00:00:00Z",
            "at 2025-06-01T12:00:00Z",
            ("at 2024-01-01T00:00:00Z", "at 2025-06-01T12:00:00Z"),
        ),
    ],
)
def test_text_bodies(
    rules: dict[str, Any], a: str, b: str, expected: tuple[str, str] | None
) -> None:
    result = compare(
        Payload(200, TEXT, a.encode()), Payload(200, TEXT, b.encode()), parse_rules(rules)
    )
    assert result.body_kind == "text"
    if expected is None:
        assert result.differences == ()
    else:
        ((diff),) = result.differences
        assert (diff.path, diff.kind, diff.primary, diff.candidate) == (
            "$body",
            Kind.VALUE_CHANGED,
            *expected,
        )


def test_long_texts_are_cut_around_the_first_difference() -> None:
    a = "x" * 5000 + "A" + "y" * 5000
    b = "x" * 5000 + "B" + "y" * 5000
    result = compare(Payload(200, TEXT, a.encode()), Payload(200, TEXT, b.encode()))
    (diff,) = result.differences
    assert len(diff.primary) <= TEXT_LIMIT + 1 and len(diff.candidate) <= TEXT_LIMIT + 1
    assert "A" in diff.primary and "B" in diff.candidate
    assert "text bodies first differ at character 5000" in result.notes


def test_short_prefix_difference_keeps_text_start() -> None:
    a, b = "A" + "x" * 3000, "B" + "x" * 3000
    (diff,) = compare(Payload(200, TEXT, a.encode()), Payload(200, TEXT, b.encode())).differences
    assert diff.primary == a[:TEXT_LIMIT] and diff.candidate == b[:TEXT_LIMIT]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("abc", "abd", 2),
        ("abc", "abcd", 3),
        ("", "a", 0),
        ("x" * 9000 + "a", "x" * 9000 + "b", 9000),
        ("ab", "ab", 2),
    ],
)
def test_first_difference(a: str, b: str, expected: int) -> None:
    assert first_difference(a, b) == expected


def test_binary_bodies() -> None:
    same = compare(Payload(200, PNG, b"\x89PNG1"), Payload(200, PNG, b"\x89PNG1"))
    assert (same.verdict, same.body_kind) == (Verdict.MATCH, "binary")
    result = compare(Payload(200, PNG, b"\x89PNG1"), Payload(200, PNG, b"\x89PNG22"))
    (diff,) = result.differences
    assert (diff.path, diff.kind) == ("$body", Kind.VALUE_CHANGED)
    assert diff.primary == digest(b"\x89PNG1") and diff.primary["length"] == 5
    assert diff.candidate == digest(b"\x89PNG22") and len(diff.candidate["sha256"]) == 64


def test_empty_bodies() -> None:
    result = compare(Payload(204), Payload(204))
    assert (result.verdict, result.body_kind, result.differences) == (Verdict.MATCH, "empty", ())


@pytest.mark.parametrize(
    ("a", "b", "expected_kind", "primary", "candidate"),
    [
        (Payload(200, JSON, b""), Payload(200, JSON, b"[1]"), "empty", "", "[1]"),
        (
            Payload(200, JSON, b'{"a":1}'),
            Payload(502, TEXT, b"Bad Gateway"),
            "json",
            '{"a":1}',
            "Bad Gateway",
        ),
    ],
)
def test_kinds_differ(
    a: Payload, b: Payload, expected_kind: str, primary: Any, candidate: Any
) -> None:
    result = compare(a, b, parse_rules({"compare_status": False, "headers": []}))
    assert result.body_kind == expected_kind
    assert [(d.path, d.primary, d.candidate) for d in result.differences] == [
        ("$body", primary, candidate)
    ]


def test_json_labelled_as_text_is_still_diffed_structurally() -> None:
    a = Payload(200, JSON, orjson.dumps({"a": 1, "b": 1}))
    b = Payload(200, TEXT, orjson.dumps({"b": 1, "a": 2}))
    result = compare(a, b)
    assert [(d.path, d.kind) for d in result.differences] == [
        ("$header.content-type", Kind.HEADER),
        ("$.a", Kind.VALUE_CHANGED),
    ]


def test_undecodable_body_is_a_difference_not_an_error() -> None:
    gz: Headers = (("Content-Encoding", "gzip"), *JSON)
    good = Payload(200, gz, gzip.compress(b"[1]", mtime=0))
    bad = Payload(200, gz, b"garbage")
    result = compare(good, bad, DEFAULT_RULES)
    (diff,) = result.differences
    assert (diff.path, diff.kind) == ("$body", Kind.VALUE_CHANGED)
    assert "corrupt gzip" in diff.candidate["decode_error"]
    assert diff.primary == "[1]"
    assert "body could not be decoded: compared raw bytes" in result.notes
    # The same broken bytes on both sides are parity.
    assert compare(bad, bad, DEFAULT_RULES).verdict is Verdict.MATCH


@pytest.mark.parametrize("depth", [300, 1000])
def test_deeply_nested_json_does_not_raise(depth: int) -> None:
    a = Payload(200, JSON, b"[" * depth + b"]" * depth)
    b = Payload(200, JSON, b"[" * depth + b"1" + b"]" * depth)
    result = compare(a, b, parse_rules({"masks": ["uuid"]}))
    assert result.verdict is Verdict.DIFFER
    assert [d.path for d in result.differences] == ["$body"]
    assert "JSON nested too deeply to diff: compared raw bytes" in result.notes
    assert compare(a, a).verdict is Verdict.MATCH
