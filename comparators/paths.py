"""JSONPath-like patterns (a small subset) and the paths we print.

A concrete path is a tuple of steps: `str` for an object key, `int` for a list
index; `()` is the root. Patterns accept

    $.a.b   $.items[*].updated_at   $.*.id   $..request_id   $["odd key"]   $.items[0]

where `*` matches any single key or index and `..` lets any number of steps
(zero included) come before the next one. A leading `$` is optional.

A list whose records are matched by key (see `comparators.align`) has
`KeyIndex` steps instead of indexes, printed `$.items[id=42]` (the key value as
JSON: `[id=42]`, `[id="a-1"]`); lists of different lengths lined up item by item
have `SeqIndex` steps, printed as indexes. Only `*` matches either in a pattern.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Step = str | int
Path = tuple[Step, ...]
States = frozenset[tuple[int, int]]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NAME = re.compile(r"[^.\[\]\s'\"]+")
_INDEX = re.compile(r"\[\s*(-?\d+|\*)\s*\]")
_DQ = re.compile(r'\[\s*("(?:[^"\\]|\\.)*")\s*\]')
_SQ = re.compile(r"\[\s*'((?:[^'\\]|\\.)*)'\s*\]")


class KeyIndex(str):
    """Step to the record of a keyed list whose `field` equals `value`.

    A `str` (its text is the printed step, `[id=42]`) so that it can be a dict key
    in aligned trees and travel through deepdiff's paths; `order` is the record's
    position in its list, used to sort differences in document order.
    """

    field: str
    value: str | int
    order: int

    def __new__(cls, field: str, value: str | int, order: int = 0) -> KeyIndex:
        name = field if _IDENT.match(field) else json.dumps(field, ensure_ascii=False)
        text = str(value) if type(value) is int else json.dumps(value, ensure_ascii=False)
        self = super().__new__(cls, f"[{name}={text}]")
        self.field, self.value, self.order = field, value, order
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (KeyIndex, (self.field, self.value, self.order))


class SeqIndex(str):
    """Step to an item of a list lined up with another of a different length.

    Printed `[index]` (the index on its own side: the candidate's for an added
    item, the primary's otherwise); its text is unique within the aligned list.
    """

    position: int
    order: int

    def __new__(cls, position: int, added: bool = False) -> SeqIndex:
        self = super().__new__(cls, f"+{position}" if added else str(position))
        self.position = self.order = position
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (SeqIndex, (self.position, str.startswith(self, "+")))


class PatternError(ValueError):
    """A path pattern does not parse; the message says where."""


class _Any:
    """Wildcard step: matches any key or index."""

    def __repr__(self) -> str:
        return "*"

    def __reduce__(self) -> str:
        # Unpickle to the module's singleton: matching relies on `is ANY`.
        return "ANY"


ANY = _Any()


@dataclass(frozen=True, slots=True)
class PatternStep:
    """One step of a pattern; `descend` means `..` came before it."""

    match: str | int | _Any
    descend: bool = False

    def accepts(self, step: Step) -> bool:
        """Does a concrete step satisfy this pattern step?"""
        if self.match is ANY:
            return True
        # bool is an int subclass, but a JSON key is never a bool; keep str/int apart.
        return type(self.match) is type(step) and self.match == step


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed pattern: its source text and its steps."""

    source: str
    steps: tuple[PatternStep, ...]


def parse_pattern(text: str) -> Pattern:
    """Parse a pattern; raises PatternError with the position of the problem."""
    src = text.strip()
    if not src:
        raise PatternError("empty path pattern")
    if src.startswith("$"):
        rest = src[1:]
    elif src.startswith((".", "[")):
        rest = src
    else:
        rest = "." + src
    offset = len(src) - len(rest)
    steps: list[PatternStep] = []
    pos = 0
    while pos < len(rest):
        descend = False
        if rest.startswith("..", pos):
            descend, pos = True, pos + 2
        elif rest[pos] == ".":
            pos += 1
        elif rest[pos] != "[":
            raise PatternError(f"unexpected {rest[pos]!r} at position {pos + offset}")
        if pos >= len(rest):
            raise PatternError("pattern ends after '.'")
        match: str | int | _Any
        if rest[pos] == "[":
            if m := _INDEX.match(rest, pos):
                match = ANY if m.group(1) == "*" else int(m.group(1))
                if isinstance(match, int) and match < 0:
                    raise PatternError(f"negative index at position {pos + offset}")
            elif m := _DQ.match(rest, pos):
                try:
                    match = json.loads(m.group(1))
                except ValueError as exc:
                    raise PatternError(f"bad string escape at position {pos + offset}") from exc
            elif m := _SQ.match(rest, pos):
                match = re.sub(r"\\(.)", r"\1", m.group(1))
            else:
                raise PatternError(f"bad or unclosed '[' at position {pos + offset}")
        elif m := _NAME.match(rest, pos):
            match = ANY if m.group(0) == "*" else m.group(0)
        else:
            raise PatternError(f"expected a key at position {pos + offset}")
        steps.append(PatternStep(match, descend))
        pos = m.end()
    return Pattern(src, tuple(steps))


class PathSet:
    """Several patterns matched together, one step at a time, while walking a tree.

    A state `(i, n)` means "pattern i has matched its first n steps". Walking
    carries states down the tree instead of re-matching whole paths at each node.
    """

    __slots__ = ("patterns",)

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns: tuple[Pattern, ...] = tuple(patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def start(self) -> States:
        """States at the root."""
        return frozenset((i, 0) for i in range(len(self.patterns)))

    def step(self, states: States, step: Step) -> States:
        """States after descending by `step`."""
        out: set[tuple[int, int]] = set()
        for i, n in states:
            steps = self.patterns[i].steps
            if n == len(steps):
                continue
            pstep = steps[n]
            if pstep.descend:
                out.add((i, n))  # `..` may swallow this step too
            if pstep.accepts(step):
                out.add((i, n + 1))
        return frozenset(out)

    def matched(self, states: States) -> list[int]:
        """Indexes of the patterns that match the current node exactly."""
        return [i for i, n in states if n == len(self.patterns[i].steps)]

    def matches(self, path: Sequence[Step], subtree: bool = False) -> list[int]:
        """Indexes of the patterns that match a whole concrete path, in order.

        With `subtree`, a pattern matching an ancestor of `path` counts too.
        """
        states = self.start()
        hits = set(self.matched(states)) if subtree else set()
        for step in path:
            states = self.step(states, step)
            if subtree:
                hits.update(self.matched(states))
            if not states:
                break
        if not subtree:
            hits = set(self.matched(states))
        return sorted(hits)


def format_path(path: Sequence[Step], root: str = "$") -> str:
    """`$.items[3].name`, with keys that are not identifiers as `$["a b"]`."""
    parts = [root]
    for step in path:
        if isinstance(step, KeyIndex):
            parts.append(str.__str__(step))
        elif isinstance(step, SeqIndex):
            parts.append(f"[{step.position}]")
        elif isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENT.match(step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{json.dumps(step, ensure_ascii=False)}]")
    return "".join(parts)


def path_sort_key(path: Sequence[Step]) -> tuple[tuple[int, int, str], ...]:
    """Sort key putting paths in document-like order (indexes numerically)."""
    return tuple(
        (0, s.order, "")
        if isinstance(s, KeyIndex | SeqIndex)
        else (0, s, "")
        if isinstance(s, int)
        else (1, 0, s)
        for s in path
    )


# List steps: positions `[3]` and record keys `[id=42]`, `[code="R1"]` (not `["key"]`).
_INDEX_RE = re.compile(r"\[(?:\d+|[A-Za-z_][\w-]*=(?:\"(?:[^\"\\]|\\.)*\"|[^\]]*))\]")


def cluster_path(path: str) -> str:
    """A difference path with list indices as [*], so differences group into clusters."""
    return _INDEX_RE.sub("[*]", path)
