"""Builtin and custom masks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comparators.masks import BUILTIN_REGEXES, builtin, parse_mask


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("iso_timestamp", "2024-05-01T10:00:00Z", "<iso_timestamp>"),
        ("iso_timestamp", "2024-05-01T10:00:00.123456+02:00", "<iso_timestamp>"),
        ("iso_timestamp", "2024-05-01T10:00:00,5-0530", "<iso_timestamp>"),
        ("iso_timestamp", "2024-05-01 10:00:00", "<iso_timestamp>"),
        ("iso_timestamp", "2024-05-01T10:00", "<iso_timestamp>"),
        ("iso_timestamp", "2024-05-01t10:00:00z", "<iso_timestamp>"),
        ("iso_timestamp", "20240501T100000Z", "<iso_timestamp>"),
        (
            "iso_timestamp",
            "at 2024-05-01T10:00:00Z and 2024-05-02T11:00:00Z.",
            "at <iso_timestamp> and <iso_timestamp>.",
        ),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "<uuid>"),
        ("uuid", "ID:123E4567-E89B-12D3-A456-426614174000!", "ID:<uuid>!"),
        ("uuid", "req-123e4567-e89b-12d3-a456-426614174000", "req-<uuid>"),
        ("hex_id", "deadbeefdeadbeef", "<hex_id>"),
        ("hex_id", "sha=0123456789ABCDEF0123", "sha=<hex_id>"),
        ("hex_id", "abc_0123456789abcdef", "abc_<hex_id>"),
    ],
)
def test_builtin_masks_replace(name: str, text: str, expected: str) -> None:
    assert builtin(name).apply(text)[0] == expected


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("iso_timestamp", "2024-05-01"),  # a bare date is data, not a volatile stamp
        ("iso_timestamp", "version 1.2.3"),
        ("iso_timestamp", "12024-05-01T10:00:00Z"),  # embedded in a longer number
        ("uuid", "123e4567-e89b-12d3-a456-42661417400"),  # last group too short
        ("uuid", "x123e4567-e89b-12d3-a456-426614174000"),  # glued to a word
        ("hex_id", "deadbeefdeadbee"),  # 15 chars
        ("hex_id", "deadbeefdeadbeefx"),  # glued to a non-hex letter
        ("hex_id", "ghijklmnopqrstuvwxyz"),
    ],
)
def test_builtin_masks_leave_other_text(name: str, text: str) -> None:
    assert builtin(name).apply(text) == (text, 0)


def test_custom_mask_replacement_is_literal() -> None:
    mask = parse_mask({"name": "r", "regex": "req-[0-9]+", "replace": r"<\1 \g<0>>"}, "m")
    assert mask.apply("a req-12 b req-3") == (r"a <\1 \g<0>> b <\1 \g<0>>", 2)


_VOLATILE = st.sampled_from(
    ["2024-05-01T10:00:00Z", "123e4567-e89b-12d3-a456-426614174000", "deadbeefdeadbeef01", "x"]
)


@given(st.lists(_VOLATILE | st.text(max_size=10), max_size=8).map(" ".join))
def test_builtin_masks_are_idempotent(text: str) -> None:
    for name in BUILTIN_REGEXES:
        mask = builtin(name)
        once = mask.apply(text)[0]
        assert mask.apply(once) == (once, 0)
