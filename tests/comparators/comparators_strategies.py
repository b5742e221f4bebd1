"""Hypothesis strategies for JSON values as orjson would parse them."""

from __future__ import annotations

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
