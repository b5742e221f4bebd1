"""Canonical JSON."""

from __future__ import annotations

from typing import Any

import pytest
from comparators_strategies import json_values
from hypothesis import given

from comparators import canonical_json
from comparators.canonical import digest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [2, {"d": 1, "c": 0}]}, b'{"a":[2,{"c":0,"d":1}],"b":1}'),
        (1, b"1"),
        (1.0, b"1.0"),
        (True, b"true"),
        ("é", '"é"'.encode()),
    ],
)
def test_canonical_json(value: Any, expected: bytes) -> None:
    assert canonical_json(value) == expected


@given(json_values)
def test_key_order_does_not_matter(value: Any) -> None:
    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: reverse(v[k]) for k in reversed(list(v))}
        if isinstance(v, list):
            return [reverse(x) for x in v]
        return v

    assert canonical_json(reverse(value)) == canonical_json(value)


def test_integers_beyond_64_bits_raise() -> None:
    with pytest.raises(TypeError):
        canonical_json(2**64)


def test_digest() -> None:
    assert digest(b"abc") == {
        "length": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
    assert digest(b"abc", 16)["sha256"] == "ba7816bf8f01cfea"
