"""Canonical JSON bytes: one spelling per value, so equal values compare equal fast."""

from __future__ import annotations

import hashlib
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
