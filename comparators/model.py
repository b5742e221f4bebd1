"""Plain data that comparators take and give back.

Nothing here knows about mitmproxy, HTTP clients or storage: a `Payload` is
what one backend answered (raw bytes as on the wire, still content-encoded),
and a `Comparison` is what `compare()` concluded about two of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Headers = tuple[tuple[str, str], ...]


class Verdict(StrEnum):
    """The outcome of one exchange."""

    MATCH = "match"
    DIFFER = "differ"
    CANDIDATE_ERROR = "candidate_error"
    PRIMARY_ERROR = "primary_error"
    SKIPPED = "skipped"


class Kind(StrEnum):
    """What sort of difference a `Difference` is."""

    VALUE_CHANGED = "value_changed"
    TYPE_CHANGED = "type_changed"
    ADDED = "added"
    REMOVED = "removed"
    STATUS = "status"
    HEADER = "header"
    # An object key spelled otherwise (camelCase vs snake_case), with the
    # `normalize.key_case` rule: path is the primary's, values the two key names.
    RENAMED = "renamed"
    # The same records of a keyed list in another order: one difference at the list;
    # values are the first record keys in each order.
    REORDERED = "reordered"


@dataclass(frozen=True, slots=True)
class Payload:
    """One backend's response: status, headers in wire order, raw body bytes.

    A body longer than the harness's limit is kept cut (`body` holds its first
    bytes) with the whole body's length in `full_size` and its SHA-256 in
    `sha256`, so two cut bodies are still compared honestly (by digest).
    """

    status: int
    headers: Headers = ()
    body: bytes = b""
    full_size: int | None = None  # set only when `body` was cut
    sha256: str = ""  # hex digest of the whole body, set only when `body` was cut
    # "websocket" | "sse": the body is a conversation (comparators.envelope), not bytes
    # as sent; "" for a plain HTTP answer.
    stream: str = ""

    @property
    def cut(self) -> bool:
        """True when `body` holds only the first bytes of a longer body."""
        return self.full_size is not None

    def same_body(self, other: Payload) -> bool:
        """Whether the two whole bodies are byte-for-byte equal (by digest when cut)."""
        return (self.body, self.full_size, self.sha256) == (
            other.body,
            other.full_size,
            other.sha256,
        )

    def header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive), or None."""
        return first_header(self.headers, name)


def first_header(headers: Headers, name: str) -> str | None:
    """First value of header `name` in `headers` (case-insensitive), or None."""
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the candidate answered otherwise than the primary.

    `path` is JSONPath-like (`$.items[3].name`; `$status`, `$header.content-type`
    and `$body` for the non-JSON parts). `primary` and `candidate` are plain JSON
    values; `None` together with kind ADDED/REMOVED means "absent on that side".
    Records of lists matched by key are addressed `$.items[id=42]`; a RENAMED
    difference holds the old and the new key name (`createdAt`, `created_at`).
    """

    path: str
    kind: Kind
    primary: Any = None
    candidate: Any = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """Result of comparing two payloads under a set of rules."""

    verdict: Verdict
    differences: tuple[Difference, ...] = ()
    body_kind: str = "empty"  # "json" | "text" | "binary" | "empty"
    truncated: bool = False  # more differences existed than max_diffs
    notes: tuple[str, ...] = field(default=())  # what normalizers changed, for the record
