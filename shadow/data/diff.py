"""One table diff: segment the key range, compare checksums, bisect, read what differs.

The key range is cut into `segments` parts (by value for a single integer key, by
the old side's quantiles otherwise). Each database counts and checksums every
part in one query; a part whose count and checksum agree on both sides is done.
A part that differs is cut again (into as many parts) until it holds at most
`threshold` rows, and only then are its rows read, from both sides, and paired
and compared (`shadow.data.rows`). With `bisect=False` no checksum is trusted:
every part is read and compared, which gives the same result, slower (a test
holds both to that).

Memory is bounded by `threshold` rows per side (a part that cannot be cut, one key
held by many rows, is refused by the duplicate check before any reading), and the
stored differences by `max_rows` rows: the others are counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

import orjson

from comparators import Rules
from shadow.data.plan import Plan
from shadow.data.rows import (
    RowDifference,
    SegmentComparer,
    duplicate_differences,
    key_label,
    null_key_difference,
)
from shadow.data.side import Key, Range, Side, Sums
from shadow.errors import ConfigError, DatabaseError

SEGMENTS = 32  # reladiff's bisection factor
THRESHOLD = 16384  # rows: at most this many are read per side and segment (reladiff's)
MAX_ROWS = 1000  # differing rows whose differences are stored; the rest are counted
MAX_DUPLICATES = 100  # keys held twice or more: past this the key is no key
SEGMENT_BYTES = 256 * 1024 * 1024  # text and bytes one side's part may hold when read
T = TypeVar("T")


@dataclass
class TableResult:
    """What one table diff found and what it cost (stored as one run's facts)."""

    name: str
    old_table: str
    new_table: str
    keys: tuple[str, ...]
    old_url: str
    new_url: str
    bisect: bool
    segments: int
    threshold: int
    cutoff: datetime | None = None
    since: str | None = None
    old_rows: int = 0
    new_rows: int = 0
    missing_rows: int = 0  # only in old
    extra_rows: int = 0  # only in new
    changed_rows: int = 0
    duplicate_keys: int = 0
    in_flight: int = 0  # rows changed after the cutoff, old + new (their keys are skipped)
    rows_read_old: int = 0
    rows_read_new: int = 0
    segments_checked: int = 0
    segments_read: int = 0
    rows_dropped: int = 0  # differing rows past max_rows: counted, not stored
    elapsed_s: float = 0.0
    only_old: tuple[str, ...] = ()
    only_new: tuple[str, ...] = ()
    differences: list[RowDifference] = field(default_factory=list)
    column_rows: Counter[str] = field(default_factory=Counter)

    @property
    def differing_rows(self) -> int:
        return self.missing_rows + self.extra_rows + self.changed_rows + self.duplicate_keys


def _key_text(key: Key) -> str:
    try:
        return orjson.dumps(list(key)).decode()
    except TypeError:  # bytes: a SQLite text key that is not UTF-8
        raise ConfigError(
            f"a key holds bytes that are not UTF-8 text ({key!r:.60}): it cannot be compared"
        ) from None


def integer_cuts(lo: int, hi: int, parts: int) -> list[Key]:
    """Cut [lo, hi) into up to `parts` equal integer ranges: the inner boundaries."""
    width = hi - lo
    cuts = sorted({lo + (width * i) // parts for i in range(1, parts)} - {lo})
    return [(c,) for c in cuts if lo < c < hi]


class TableDiff:
    """Walks one table's key range (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        old: Side,
        new: Side,
        rules: Rules,
        *,
        segments: int = SEGMENTS,
        threshold: int = THRESHOLD,
        bisect: bool = True,
        max_rows: int = MAX_ROWS,
        max_duplicates: int = MAX_DUPLICATES,
    ) -> None:
        self.plan, self.old, self.new = plan, old, new
        self.parts = max(2, segments)
        self.threshold = max(1, threshold)
        self.bisect = bisect
        self.max_rows = max_rows
        self.max_duplicates = max_duplicates
        t = plan.table
        self.result = TableResult(
            name=t.name, old_table=t.old, new_table=t.new,
            keys=tuple(k.name for k in plan.new.keys), old_url=old.shown, new_url=new.shown,
            bisect=bisect, segments=self.parts, threshold=self.threshold,
            cutoff=plan.old.cutoff, since=t.since if plan.old.cutoff else None,
            only_old=plan.only_old, only_new=plan.only_new,
        )  # fmt: skip
        self.comparer = SegmentComparer(plan.new.keys, plan.new.columns, rules)
        self._duplicated: set[str] = set()
        self._rows_stored = 0
        self.segment_bytes = SEGMENT_BYTES
        self._repeated: tuple[Key, ...] = ()
        self._nulls = (0, 0)
        # both databases work at once: each query runs in its own server (or SQLite scan)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="shadow-data")

    def _both(self, ask: Callable[[Side], T]) -> tuple[T, T]:
        """`ask` each side, the two at the same time."""
        later = self._pool.submit(ask, self.new)
        try:
            first = ask(self.old)
        finally:
            second = later.result()
        return first, second

    def run(self) -> TableResult:
        started = time.monotonic()
        try:
            self.old.prepare(self.plan.old)
            self.new.prepare(self.plan.new)
            self._duplicates()
            self._walk()
        finally:
            self.comparer.close()
            self._pool.shutdown(wait=True)
        r = self.result
        r.rows_read_old, r.rows_read_new = self.old.rows_read, self.new.rows_read
        r.elapsed_s = time.monotonic() - started
        return r

    # --- duplicates -------------------------------------------------------------------------

    def _duplicates(self) -> None:
        """Keys held by more than one row, and rows without a key: reported, not compared."""
        names = list(self.result.keys)
        found: dict[str, tuple[Key, int | None, int | None]] = {}

        def ask(side: Side) -> tuple[list[tuple[Key, int]], int, int]:
            nulls = side.null_keys()
            if side.unique_key():  # a unique index says it: no scan of the key column
                return [], 0, nulls
            keys, total = side.duplicates(self.max_duplicates + 1)
            return keys, total, nulls

        answers = self._both(ask)
        sides = ((self.old, self.plan.table.old), (self.new, self.plan.table.new))
        for (side, table), (keys, total, _) in zip(sides, answers, strict=True):
            if total > self.max_duplicates:
                raise ConfigError(
                    f"table {self.plan.table.name}: the key ({', '.join(names)}) is not unique "
                    f"in {side.label} {table}: {total} keys are held by more than one row "
                    f"(e.g. {key_label(names, keys[0][0])}); choose a unique key (--key)"
                )
            for key, n in keys:
                text = _key_text(key)
                prev = found.get(text, (key, None, None))
                found[text] = (key, n, prev[2]) if side is self.old else (key, prev[1], n)
        self._duplicated = set(found)
        self.result.duplicate_keys = len(found)
        if found:
            # left out of every count, checksum and read: one key cannot be cut into parts
            self._repeated = tuple(key for key, _, _ in found.values())
            self.old.prepare(replace(self.plan.old, excluded=self._repeated))
            self.new.prepare(replace(self.plan.new, excluded=self._repeated))
        differences = duplicate_differences(names, sorted(found.values(), key=_first_key))
        nulls = self._nulls = (answers[0][2], answers[1][2])
        if any(nulls):
            # rows no key identifies: compared with nothing, reported as one key
            self.result.duplicate_keys += 1
            differences.insert(0, null_key_difference(names, nulls[0], nulls[1]))
        for d in differences:
            self._record([d])

    # --- the walk ---------------------------------------------------------------------------

    def _walk(self) -> None:
        r = self.result
        if self.plan.integer_key:
            (lo_o, hi_o, _), (lo_n, hi_n, _) = self._both(lambda side: side.bounds())
            lows = [v for v in (lo_o, lo_n) if isinstance(v, int)]
            highs = [v for v in (hi_o, hi_n) if isinstance(v, int)]
            if not lows:  # both empty (or no integer keys at all): one part
                lo, hi = 0, 1
            else:
                lo, hi = min(lows), max(highs) + 1
            cuts = integer_cuts(lo, hi, self.parts)
            limits: tuple[int, int] | None = (lo, hi)
        else:
            whole = self._both(lambda side: side.segments(Range(), [], False)[0].count)
            whole_old, whole_new = whole
            side, count = (self.old, whole_old) if whole_old >= whole_new else (self.new, whole_new)
            cuts = _distinct(side.quantiles(Range(), count, self.parts))
            limits = None
        sa, sb = self._both(lambda side: side.segments(Range(), cuts, self.bisect))
        # the rows compared, and those of keys held twice (reported, not walked) and of
        # NULL keys: every row with its key settled
        aside = self._both(lambda side: side.count_keys(self._repeated) if self._repeated else 0)
        r.old_rows = sum(s.count for s in sa) + aside[0] + self._nulls[0]
        r.new_rows = sum(s.count for s in sb) + aside[1] + self._nulls[1]
        # counted in each database: the same figure however many parts were read
        flying = self._both(lambda side: side.in_flight())
        r.in_flight = flying[0] + flying[1]
        for rng, lim, a, b in _parts(Range(), limits, cuts, sa, sb):
            self._visit(rng, lim, a, b)

    def _visit(self, rng: Range, limits: tuple[int, int] | None, a: Sums, b: Sums) -> None:
        self.result.segments_checked += 1
        if a.count == 0 and b.count == 0:
            return
        if self.bisect and a.count == b.count and a.checksum == b.checksum:
            return
        n = max(a.count, b.count)
        cuts: list[Key] = []
        if n > self.threshold:
            if limits is not None:
                cuts = integer_cuts(limits[0], limits[1], self.parts)
            else:
                side, count = (self.old, a.count) if a.count >= b.count else (self.new, b.count)
                cuts = _distinct(side.quantiles(rng, count, self.parts), rng)
        if not cuts:
            self._read(rng)
            return
        sa, sb = self._both(lambda side: side.segments(rng, cuts, self.bisect))
        for sub, lim, x, y in _parts(rng, limits, cuts, sa, sb):
            self._visit(sub, lim, x, y)

    def _read(self, rng: Range) -> None:
        """Read one segment from both sides, pair the rows, record what differs."""
        r = self.result
        r.segments_read += 1
        flying: set[str] = set()
        old_rows: list[tuple[Key, tuple[Any, ...]]] = []
        new_rows: list[tuple[Key, tuple[Any, ...]]] = []
        read = self._both(lambda side: self._bounded(side, rng))
        for rows, into in zip(read, (old_rows, new_rows), strict=True):
            for key, values, in_flight in rows:
                text = _key_text(key)
                if in_flight:
                    flying.add(text)
                elif text not in self._duplicated:
                    into.append((key, values))
        if flying:
            old_rows = [(k, v) for k, v in old_rows if _key_text(k) not in flying]
            new_rows = [(k, v) for k, v in new_rows if _key_text(k) not in flying]
        for i, j in self.comparer.pairs(old_rows, new_rows):
            key = old_rows[i][0] if i is not None else new_rows[j][0]  # type: ignore[index]
            diffs = self.comparer.differences(
                key,
                old_rows[i][1] if i is not None else None,
                new_rows[j][1] if j is not None else None,
            )
            if not diffs:
                continue  # equal once the rules are applied
            if i is None:
                r.extra_rows += 1
            elif j is None:
                r.missing_rows += 1
            else:
                r.changed_rows += 1
                r.column_rows.update({d.column for d in diffs if d.column})
            self._record(diffs)

    def _bounded(self, side: Side, rng: Range) -> list[tuple[Key, tuple[Any, ...], bool]]:
        """One side's rows of a part, refused (not half-read) past SEGMENT_BYTES of values."""
        rows = []
        size = 0
        for row in side.fetch(rng):
            size += sum(len(v) for v in row[1] if type(v) in (str, bytes))
            if size > self.segment_bytes:
                raise DatabaseError(
                    f"table {self.plan.table.name}: a part of {self.threshold} rows holds "
                    f"more than {self.segment_bytes // 2**20} MB in {side.label}; "
                    "lower --bisection-threshold"
                )
            rows.append(row)
        return rows

    def _record(self, diffs: list[RowDifference]) -> None:
        """Keep one row's differences, or count the row once `max_rows` rows are kept."""
        if self._rows_stored >= self.max_rows:
            self.result.rows_dropped += 1
            return
        self.result.differences.extend(diffs)
        self._rows_stored += 1


def _first_key(found: tuple[Key, int | None, int | None]) -> str:
    return _key_text(found[0])


def _distinct(cuts: list[Key], rng: Range | None = None) -> list[Key]:
    """Strictly increasing cuts inside the range (quantiles may repeat a key)."""
    out: list[Key] = []
    for c in cuts:
        _key_text(c)  # a key of bytes cannot cut a range
        if rng is not None and rng.lo is not None and not c > rng.lo:
            continue
        if rng is not None and rng.hi is not None and not c < rng.hi:
            continue
        if not out or c > out[-1]:
            out.append(c)
    return out


def _parts(
    rng: Range,
    limits: tuple[int, int] | None,
    cuts: list[Key],
    sa: list[Sums],
    sb: list[Sums],
) -> list[tuple[Range, tuple[int, int] | None, Sums, Sums]]:
    bounds: list[Key | None] = [rng.lo, *cuts, rng.hi]
    out = []
    for i in range(len(cuts) + 1):
        lo, hi = bounds[i], bounds[i + 1]
        lim = None
        if limits is not None:
            a = lo[0] if lo is not None else limits[0]
            b = hi[0] if hi is not None else limits[1]
            lim = (int(a), int(b))
        out.append((Range(lo, hi), lim, sa[i], sb[i]))
    return out


__all__ = [
    "MAX_DUPLICATES",
    "MAX_ROWS",
    "SEGMENTS",
    "THRESHOLD",
    "TableDiff",
    "TableResult",
    "integer_cuts",
]
