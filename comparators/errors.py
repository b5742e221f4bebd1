"""Exceptions raised by comparators.

    ComparatorError (ValueError)
     ├── RuleError    - a `[compare]` table is malformed (unknown key, wrong type, bad regex...)
     └── DecodeError  - a body's Content-Encoding cannot be undone

Both subclass `ValueError` so callers that only know "bad input" can catch that.
"""

from __future__ import annotations


class ComparatorError(ValueError):
    """Base class of every error comparators raise."""


class RuleError(ComparatorError):
    """A comparison rule is invalid; the message names the offending key and value."""


class DecodeError(ComparatorError):
    """A body could not be decoded (corrupt or unsupported Content-Encoding)."""
