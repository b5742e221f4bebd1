"""Canonical JSON bytes: one spelling per value, so equal values compare equal fast."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import compress
from operator import eq
from typing import Any

import orjson


def canonical_json(value: Any) -> bytes:
    """`value` as compact JSON with object keys sorted (orjson).

    Raises TypeError (orjson.JSONEncodeError) for values JSON cannot hold, such as
    integers beyond 64 bits or non-string keys.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def digest(data: bytes, hex_chars: int = 64) -> dict[str, Any]:
    """A fingerprint of bytes for a difference: length and (a prefix of) the sha256 hex."""
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()[:hex_chars]}


def same_canonical(xs: Sequence[Any], ys: Sequence[Any]) -> list[bool]:
    """Per pair `(xs[i], ys[i])` of parsed JSON values: are their canonical forms equal?

    That is strict equality: `1`, `1.0` and `true` differ, and so do `-0.0` and
    `0.0`. Python's `==` (C speed, stops at the first difference) settles every
    pair it calls unequal: parsed JSON holds no NaN, so equal canonical forms
    are always `==`. The pairs it calls equal are confirmed together: canonical
    JSON is self-delimiting, so the lists of them serialize alike only when every
    pair does. Only when that fails are they serialized one pair at a time.
    """
    flags = list(map(eq, xs, ys))
    same = list(compress(range(len(flags)), flags))
    if not same:
        return flags
    if len(same) == len(flags):
        gx, gy = xs, ys
    else:
        gx, gy = [xs[i] for i in same], [ys[i] for i in same]
    # Unsorted bytes are cheaper; equal ones mean equal values. Keys in another order
    # (often the case for every record, when it is for the first) need sorting.
    if orjson.dumps(gx[0]) == orjson.dumps(gy[0]) and orjson.dumps(gx) == orjson.dumps(gy):
        return flags
    if canonical_json(gx) == canonical_json(gy):
        return flags
    for i in same:
        flags[i] = canonical_json(xs[i]) == canonical_json(ys[i])
    return flags
