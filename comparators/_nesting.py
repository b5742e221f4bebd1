"""Will orjson write it? Nesting limits, checked without serializing.

orjson reads JSON nested up to ~1024 containers deep but writes only ~254 (its
`dumps` raises beyond, so `canonical_json` does, and a body that deep is compared
by its bytes). Knowing that a parsed body is shallow enough spares a whole
`orjson.dumps` just to find out:

- a small text is shallow when it has few brackets at all (`few_brackets`);
- a big one is parsed inside `READ_LIMIT - WRITE_LIMIT` extra list levels
  (`parse`): that parse fails on depth exactly when the body is deeper than
  orjson writes. Any other failure falls back to the plain parse, so what
  parses, and what raises, is what `orjson.loads` alone gives.

Both limits are measured on the installed orjson when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

_PROBE_UP_TO = 4096
_COUNT_UP_TO = 32 * 1024  # characters worth counting brackets in (more: parse wrapped)


def _deepest(ok: Callable[[int], bool]) -> int:
    """The largest n in [0, _PROBE_UP_TO] with ok(n), ok being true up to some n."""
    lo, hi = 0, _PROBE_UP_TO + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _reads(depth: int) -> bool:
    try:
        orjson.loads("[" * depth + "]" * depth)
    except orjson.JSONDecodeError:
        return False
    return True


def _writes(depth: int) -> bool:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


WRITE_LIMIT = _deepest(_writes)  # containers deep orjson.dumps writes (254)
READ_LIMIT = _deepest(_reads)  # containers deep orjson.loads reads (1024)
_WRAP = READ_LIMIT - WRITE_LIMIT if READ_LIMIT < _PROBE_UP_TO else 0
_OPEN, _CLOSE = "[" * _WRAP, "]" * _WRAP
_OPEN_B, _CLOSE_B = _OPEN.encode(), _CLOSE.encode()


def few_brackets(src: str | bytes) -> bool:
    """Too few brackets in a small JSON text for it to nest deeper than orjson writes."""
    if len(src) > _COUNT_UP_TO:
        return False
    if isinstance(src, str):
        return src.count("[") + src.count("{") <= WRITE_LIMIT
    return src.count(b"[") + src.count(b"{") <= WRITE_LIMIT  # UTF-8: these bytes only


def parse(src: str | bytes) -> tuple[Any, bool]:
    """`orjson.loads(src)`, and whether orjson.dumps can write it back (False: unknown).

    Raises what `orjson.loads(src)` raises.
    """
    if _WRAP <= 0 or len(src) <= _COUNT_UP_TO:
        return orjson.loads(src), few_brackets(src)
    try:
        wrapped = orjson.loads(
            _OPEN + src + _CLOSE if isinstance(src, str) else _OPEN_B + src + _CLOSE_B
        )
    except orjson.JSONDecodeError:
        return orjson.loads(src), False  # too deep to write back, or not JSON at all
    # `src` might close and reopen the wrapping lists (`1],[2`): only a chain of
    # single-item lists shows that it was one JSON value.
    value = wrapped
    for _ in range(_WRAP):
        if type(value) is not list or len(value) != 1:
            return orjson.loads(src), False
        value = value[0]
    return value, True
