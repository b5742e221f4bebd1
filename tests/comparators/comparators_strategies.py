"""Hypothesis strategies for JSON values as orjson would parse them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import strategies as st

# orjson parses integers outside 64 bits as floats and cannot serialize them.
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_floats = st.floats(allow_nan=False, allow_infinity=False)
# Lone surrogates are not valid in JSON text.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)

json_scalars: st.SearchStrategy[Any] = st.none() | st.booleans() | _ints | _floats | _text
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=25,
)

# Values shaped like API payloads: records with unique ids, instants, numbers, nulls,
# camelCase keys, so that every migration-aware normalizer has something to act on.
_instants = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2030, 1, 1),
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + "Z")
_keys = st.sampled_from(["id", "name", "createdAt", "updated_at", "total", "userId", "tags", "x"])
api_scalars: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.integers(-1000, 1000).map(float)
    | st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 2))
    | _instants
    | st.sampled_from(["a", "b", "", "1", "2024-01-01"])
)


def _records(children: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Lists of objects with unique int ids."""
    return st.lists(
        st.dictionaries(_keys.filter(lambda k: k != "id"), children, max_size=3),
        max_size=5,
    ).map(lambda items: [{"id": i * 7 + 1, **item} for i, item in enumerate(items)])


api_values: st.SearchStrategy[Any] = st.recursive(
    api_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_keys, children, max_size=4)
        | _records(children)
    ),
    max_leaves=20,
)
