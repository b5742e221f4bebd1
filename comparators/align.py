"""Migration-aware normalizers that need both sides: they align the two bodies.

A legacy and a rewritten backend often say the same thing in other words: `1`
vs `1.0`, `"...Z"` vs `"...+00:00"`, a null key vs no key, `createdAt` vs
`created_at`, the same records in another order. `Aligner.align` walks both
parsed bodies together (after ignore_paths, masks and ignore_order) and

- makes equivalent values identical (the candidate's spelling is replaced by
  the primary's, so differences still show what each side sent elsewhere):
  `int_float` (an int and a float of equal value), `iso_instants` (two ISO-8601
  date-times of the same instant, see `comparators.instants`), `null_absent`
  (a key whose value is null vs no key: the null key is dropped);
- `key_case`: pairs keys left unmatched on both sides that spell the same
  snake_case name (`createdAt`, `CreatedAt`, `created-at` -> `created_at`);
  each pair is ONE `Kind.RENAMED` difference at the primary's path (values: the
  old and the new key name), and the values are compared under the new name;
- matches the records of a list by key instead of position: `list_keys`
  patterns name the key field of the lists they match; `auto_list_key` keys
  every other pair of lists whose items are all objects with a unique `id`
  (str or int, not bool). A keyed list becomes a `KeyedList` (a dict from
  `KeyIndex` steps, printed `[id=42]`, to records), so an inserted record is
  one ADDED `$.items[id=42]`, a changed field is `$.items[id=7].name`, and
  the same records in another order are ONE `Kind.REORDERED` difference at the
  list (values: the first keys in each order), not one per record. When a `list_keys` list is
  not keyable (an item without the key, a repeated key) it is compared by
  position and a note says so.

Other lists of equal lengths are compared by position (int indexes); lists of
different lengths are lined up with difflib on the `semantic` form of their
items (so equivalent items pair up, and one inserted item is one ADDED, not a
shift of every later one); they become KeyedLists of `SeqIndex` steps, printed
as indexes (the candidate's for an added item, the primary's otherwise).

Everything done is counted in notes such as "int_float: 3 values ($.a, $.b[0],
$.c)" or "iso_instants: $.createdAt": nothing is normalized silently. The
walk is pure and builds new containers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from difflib import SequenceMatcher
from typing import Any, NamedTuple

import orjson

from comparators._deep import RawDiff
from comparators.canonical import canonical_json
from comparators.instants import canonical_instant, same_instant
from comparators.model import Kind
from comparators.paths import (
    KeyIndex,
    Path,
    PathSet,
    Pattern,
    SeqIndex,
    States,
    Step,
    format_path,
)

AUTO_KEY = "id"
_MAX_NOTE_PATHS = 3
_ANY_STEP = object()
_MAX_CACHED_STEPS = 65_536
_MAX_MATCHING = 4_000_000  # len(a) * len(b) above which lists are not lined up
_SAFE_INT = 2**63  # integral floats beyond this stay floats (orjson cannot write such ints)


@dataclass(frozen=True, slots=True)
class Normalization:
    """Which migration-aware normalizers are on (`[compare.normalize]`)."""

    int_float: bool = True  # 1 == 1.0 (and 1e2 == 100)
    iso_instants: bool = True  # "...T10:00:00Z" == "...T12:00:00.000+02:00"
    null_absent: bool = False  # {"a": null} == {}
    key_case: bool = False  # createdAt vs created_at: one RENAMED difference
    # Headers: content-type by media type only, charset dropped from other media types.
    media_type_params: bool = True
    header_name_case: bool = True  # headers: "ETag: 1" == "etag: 1"
    auto_list_key: bool = True  # lists of objects with unique "id" matched by id


NORMALIZE_KEYS = tuple(f.name for f in fields(Normalization))
DEFAULT_NORMALIZATION = Normalization()
_BODY_SWITCHES = ("int_float", "iso_instants", "null_absent", "key_case", "auto_list_key")


class KeyedList(dict[str, Any]):
    """An aligned list: `KeyIndex` (records matched by key) or `SeqIndex` step -> item."""


class Alignment(NamedTuple):
    """Both bodies aligned, the RENAMED differences found, and what was done."""

    primary: Any
    candidate: Any
    renames: list[RawDiff]
    notes: list[str]


_CAMEL_WORD = re.compile(r"(.)([A-Z][a-z]+)")
_CAMEL_TAIL = re.compile(r"([a-z0-9])([A-Z])")


def snake(key: str) -> str:
    """snake_case spelling of a key: createdAt, CreatedAt, created-at -> created_at."""
    return _CAMEL_TAIL.sub(r"\1_\2", _CAMEL_WORD.sub(r"\1_\2", key)).replace("-", "_").lower()


def _key_value(item: Any, field: str) -> str | int | None:
    if type(item) is not dict:
        return None
    value = item.get(field)
    return value if type(value) is str or type(value) is int else None


def keyable(items: Sequence[Any], field: str) -> bool:
    """Are all items objects with a str/int `field`, unique across the list?"""
    seen: set[Any] = set()
    for item in items:
        value = _key_value(item, field)
        if value is None or value in seen:
            return False
        seen.add(value)
    return True


# A path while walking: (parent, step) links from the root (None), made into a tuple
# only when a note or a RENAMED difference needs it.
Link = tuple[Any, Step] | None


def steps(link: Link) -> Path:
    """The tuple of steps a Link stands for."""
    out: list[Step] = []
    while link is not None:
        link, step = link
        out.append(step)
    return tuple(reversed(out))


class _Notes:
    """Per normalizer: how many times it acted, and the first few paths."""

    __slots__ = ("counts", "paths")

    _NOUNS = {
        "null_absent": "keys",
        "key_case": "keys",
        "auto_list_key": "lists reordered",
        "list_keys": "lists reordered",
        "list_keys:position": "lists compared by position (key missing or repeated)",
    }
    _SINGLE = {
        "auto_list_key": "{} reordered (records matched by id)",
        "list_keys": "{} reordered (records matched by key)",
        "list_keys:position": "{} compared by position (key missing or repeated)",
    }

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.paths: dict[str, list[Path]] = {}

    def add(self, name: str, path: Link) -> None:
        n = self.counts.get(name, 0)
        self.counts[name] = n + 1
        if n < _MAX_NOTE_PATHS:
            self.paths.setdefault(name, []).append(steps(path))

    def render(self) -> list[str]:
        out = []
        for name in sorted(self.counts):
            n, paths = self.counts[name], [format_path(p) for p in self.paths[name]]
            label = name.split(":")[0]
            if n == 1:
                out.append(f"{label}: " + self._SINGLE.get(name, "{}").format(paths[0]))
            else:
                more = ", ..." if n > len(paths) else ""
                noun = self._NOUNS.get(name, "values")
                out.append(f"{label}: {n} {noun} ({', '.join(paths)}{more})")
        return out


class Aligner:
    """The body normalizers of one Rules object, compiled once."""

    __slots__ = ("_fields", "_keys", "_steps", "options", "semantic_on")

    def __init__(
        self,
        options: Normalization,
        list_keys: Sequence[tuple[Pattern, str]] = (),
        ignore_order: Sequence[Pattern] = (),
    ) -> None:
        self.options = options
        # One PathSet for both: `list_keys` patterns first, then the order-free lists
        # (sorted again here by their semantic form, see `_lists`).
        self._keys = PathSet([*(p for p, _ in list_keys), *ignore_order])
        self._fields = tuple(f for _, f in list_keys)
        self._steps: dict[tuple[States, Any], States] = {}  # transitions, cached
        self.semantic_on = any(getattr(options, s) for s in _BODY_SWITCHES)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.options, self._keys, self._fields, self.semantic_on)  # not the cache

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.options, self._keys, self._fields, self.semantic_on = state
        self._steps = {}

    def __bool__(self) -> bool:
        """False when aligning would change nothing."""
        return bool(self._fields) or self.semantic_on

    def semantic(self, value: Any) -> Any:
        """One side's value in a form where equivalent values are equal.

        Used to sort order-free lists and to line up lists of different lengths:
        integral floats become ints, instants their canonical spelling, null keys
        go (null_absent), keys become snake_case (key_case) and lists of records
        with unique ids are sorted by id (auto_list_key). Idempotent.
        """
        opts = self.options
        kind = type(value)
        if kind is dict:
            out = {}
            for key, item in value.items():
                if item is None and opts.null_absent:
                    continue
                out[snake(key) if opts.key_case else key] = self.semantic(item)
            return out
        if kind is list:
            items = [self.semantic(item) for item in value]
            if opts.auto_list_key and items and keyable(items, AUTO_KEY):
                items.sort(key=lambda r: canonical_json(r[AUTO_KEY]))
            return items
        if kind is float and opts.int_float and value.is_integer() and abs(value) < _SAFE_INT:
            return int(value)
        if kind is str and opts.iso_instants:
            return canonical_instant(value) or value
        return value

    def sort_key(self, value: Any) -> bytes:
        """Canonical bytes of the semantic form: equivalent items get equal keys."""
        return canonical_json(self.semantic(value) if self.semantic_on else value)

    def align(self, primary: Any, candidate: Any) -> Alignment:
        """Both values aligned (see the module docstring); the inputs are not modified."""
        walk = _Walk(self)
        a, b = walk.pair(primary, candidate, None, None, self.start())
        return Alignment(a, b, walk.renames, walk.notes.render())

    def start(self) -> States | None:
        """Pattern states at the root (None: no patterns to follow)."""
        return self._keys.start() if self._keys else None

    def key_field(self, states: States | None) -> tuple[str, str] | None:
        """(field, note name) of an explicit `list_keys` pattern matching here."""
        if not states:
            return None
        hits = [i for i in self._keys.matched(states) if i < len(self._fields)]
        return (self._fields[max(hits)], "list_keys") if hits else None

    def order_free(self, states: States | None) -> bool:
        """Does an `ignore_order` pattern match here?"""
        n = len(self._fields)
        return bool(states) and any(i >= n for i in self._keys.matched(states or frozenset()))

    def step(self, states: States | None, step: Any) -> States | None:
        """Pattern states below `step` (None: no patterns to follow)."""
        if not states:
            return states
        # Keyed and lined-up steps only ever match `*`: one cache entry for all.
        key = (states, _ANY_STEP if isinstance(step, KeyIndex | SeqIndex) else step)
        hit = self._steps.get(key)
        if hit is None:
            hit = self._keys.step(states, step)
            if len(self._steps) < _MAX_CACHED_STEPS:
                self._steps[key] = hit
        return hit


class _Walk:
    """One alignment: the pair walk, its RENAMED differences and its notes."""

    __slots__ = ("aligner", "notes", "opts", "renames")

    def __init__(self, aligner: Aligner) -> None:
        self.aligner = aligner
        self.opts = aligner.options
        self.renames: list[RawDiff] = []
        self.notes = _Notes()

    def pair(
        self, a: Any, b: Any, ppath: Link, apath: Link, states: States | None
    ) -> tuple[Any, Any]:
        """(a', b'): `ppath` is the primary's path, `apath` the aligned (new-name) one."""
        ta, tb = type(a), type(b)
        if ta is tb and (ta is dict or ta is list):
            # Serializing runs in C: much cheaper than walking an equal subtree.
            if canonical_json(a) == canonical_json(b):
                return a, b
            if ta is dict:
                return self._dicts(a, b, ppath, apath, states)
            return self._lists(a, b, ppath, apath, states)
        if ta is tb:
            if a == b:
                return a, a  # also -0.0 vs 0.0
            if ta is str and self.opts.iso_instants and same_instant(a, b):
                self.notes.add("iso_instants", apath)
                return a, a
            return a, b
        if (
            self.opts.int_float
            and (ta is int or ta is float)
            and (tb is int or tb is float)
            and a == b
        ):
            self.notes.add("int_float", apath)
            return a, a
        return a, b

    def _dicts(
        self, a: dict[str, Any], b: dict[str, Any], ppath: Link, apath: Link, states: States | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        opts, step = self.opts, self.aligner.step
        renamed: dict[str, str] = {}
        if opts.key_case:
            renamed = _renames([k for k in a if k not in b], [k for k in b if k not in a])
            if opts.null_absent:  # two null keys are two absent keys: nothing was renamed
                renamed = {k: n for k, n in renamed.items() if a[k] is not None or b[n] is not None}
        oa: dict[str, Any] = {}
        ob: dict[str, Any] = {}
        for key, va in a.items():
            if key in b:
                oa[key], ob[key] = self.pair(
                    va, b[key], (ppath, key), (apath, key), step(states, key)
                )
            elif key in renamed:
                new = renamed[key]
                self.renames.append(RawDiff(steps((ppath, key)), Kind.RENAMED, key, new))
                self.notes.add("key_case", (ppath, key))
                oa[new], ob[new] = self.pair(
                    va, b[new], (ppath, key), (apath, new), step(states, new)
                )
            elif va is None and opts.null_absent:
                self.notes.add("null_absent", (apath, key))
            else:
                oa[key] = va
        targets = set(renamed.values())
        for key, vb in b.items():
            if key in a or key in targets:
                continue
            if vb is None and opts.null_absent:
                self.notes.add("null_absent", (apath, key))
            else:
                ob[key] = vb
        return oa, ob

    def _lists(
        self, a: list[Any], b: list[Any], ppath: Link, apath: Link, states: States | None
    ) -> tuple[Any, Any]:
        explicit = self.aligner.key_field(states)
        if explicit is not None:
            field, source = explicit
            if keyable(a, field) and keyable(b, field):
                return self._keyed(a, b, field, source, ppath, apath, states)
            self.notes.add("list_keys:position", apath)
        elif self.opts.auto_list_key and (a or b) and keyable(a, AUTO_KEY) and keyable(b, AUTO_KEY):
            return self._keyed(a, b, AUTO_KEY, "auto_list_key", ppath, apath, states)
        step = self.aligner.step
        if self.aligner.order_free(states) and self.aligner.semantic_on:
            # Sorted per side by canonical bytes (the cheap fast-path order); sort
            # again by semantic form so that 1.0 and 1, or two spellings of one
            # instant, land at the same place on both sides.
            a, b = sorted(a, key=self.aligner.sort_key), sorted(b, key=self.aligner.sort_key)
        if len(a) == len(b):
            oa, ob = [], []
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                x, y = self.pair(x, y, (ppath, i), (apath, i), step(states, i))
                oa.append(x)
                ob.append(y)
            return oa, ob
        if len(a) * len(b) > _MAX_MATCHING:
            return a, b  # too big to line up: deepdiff compares them by position
        # Different lengths: line items up (difflib on their semantic forms), so that
        # one inserted item is one ADDED and not a shift of every later item.
        key = self.aligner.sort_key
        matcher = SequenceMatcher(None, [key(x) for x in a], [key(y) for y in b], autojunk=False)
        la, lb = KeyedList(), KeyedList()
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            paired = min(i2 - i1, j2 - j1) if tag in ("equal", "replace") else 0
            for i, j in zip(range(i1, i1 + paired), range(j1, j1 + paired), strict=True):
                s = SeqIndex(i)
                la[s], lb[s] = self.pair(a[i], b[j], (ppath, i), (apath, i), step(states, i))
            for i in range(i1 + paired, i2):
                la[SeqIndex(i)] = a[i]
            for j in range(j1 + paired, j2):
                lb[SeqIndex(j, added=True)] = b[j]
        return la, lb

    def _keyed(
        self,
        a: list[Any],
        b: list[Any],
        field: str,
        source: str,
        ppath: Link,
        apath: Link,
        states: States | None,
    ) -> tuple[KeyedList, KeyedList]:
        by_key = {item[field]: item for item in b}
        in_a = {item[field] for item in a}
        oa, ob = KeyedList(), KeyedList()
        for i, item in enumerate(a):
            value = item[field]
            kstep = KeyIndex(field, value, i)
            if value in by_key:
                oa[kstep], ob[kstep] = self.pair(
                    item,
                    by_key[value],
                    (ppath, kstep),
                    (apath, kstep),
                    self.aligner.step(states, kstep),
                )
            else:
                oa[kstep] = item
        for j, item in enumerate(b):
            if item[field] not in in_a:
                ob[KeyIndex(field, item[field], j)] = item
        common_a = [item[field] for item in a if item[field] in by_key]
        common_b = [item[field] for item in b if item[field] in in_a]
        if common_a != common_b:
            # Same records, other order: ONE difference at the list (clients may rely
            # on the order, e.g. newest first); `ignore_order` on the path silences it.
            self.notes.add(source, apath)
            if not self.aligner.order_free(states):
                self.renames.append(
                    RawDiff(steps(ppath), Kind.REORDERED, _head(common_a), _head(common_b))
                )
        return oa, ob


def _head(keys: list[Any], n: int = 10) -> list[Any]:
    """The first keys of a record order, enough to show how it differs."""
    return keys if len(keys) <= n else [*keys[:n], "..."]


def _renames(only_a: list[str], only_b: list[str]) -> dict[str, str]:
    """Primary key -> candidate key, for unmatched keys of one snake_case spelling each."""
    if not only_a or not only_b:
        return {}
    groups_a: dict[str, list[str]] = {}
    groups_b: dict[str, list[str]] = {}
    for key in only_a:
        groups_a.setdefault(snake(key), []).append(key)
    for key in only_b:
        groups_b.setdefault(snake(key), []).append(key)
    return {
        keys[0]: groups_b[name][0]
        for name, keys in groups_a.items()
        if len(keys) == 1 and len(groups_b.get(name, ())) == 1
    }


def canonical_aligned(value: Any) -> bytes:
    """Canonical JSON bytes of an aligned value (KeyedList keys included)."""
    # KeyIndex keys are str subclasses, which orjson writes only with OPT_NON_STR_KEYS.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def plain(value: Any) -> Any:
    """An aligned value back as plain JSON data: every KeyedList becomes a list."""
    kind = type(value)
    if kind is KeyedList:
        return [plain(v) for v in value.values()]
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    if kind is list:
        return [plain(v) for v in value]
    return value
