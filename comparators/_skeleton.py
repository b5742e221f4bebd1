"""The differing skeleton of two bodies, found without walking what is equal.

deepdiff only ever sees `_deep.prune_equal(primary, candidate)`, or, when the
bodies are aligned first, `prune_equal` of `Aligner.align`'s output. Both walk
the whole of both bodies in Python. Here the same skeletons (the same dicts,
keys in the same order, the same leaves) and the same RENAMED/REORDERED
differences and notes are built by descending only into children that differ:
the children of a container that are strictly equal (`same_canonical`) are
found in bulk, at C speed, and skipped. A child that differs is processed as
`_Walk.pair` and `prune_equal` would process it, in the same order, so the
notes (which keep the first paths met) come out the same.

`_PrunedWalk.pair` is called only on values whose canonical forms differ: the
caller (or the parent, through `same_canonical`) has already checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher
from itertools import compress
from operator import itemgetter, not_
from typing import Any, NamedTuple

from comparators._deep import RawDiff
from comparators.align import (
    _MAX_MATCHING,
    AUTO_KEY,
    Aligner,
    Link,
    _head,
    _Notes,
    _renames,
    steps,
)
from comparators.canonical import same_canonical
from comparators.instants import same_instant
from comparators.model import Kind
from comparators.paths import KeyIndex, SeqIndex, States

_STR_OR_INT = frozenset((str, int))
_DICT = frozenset((dict,))


class Skeleton(NamedTuple):
    """What `prune_equal` keeps of two aligned bodies, and what aligning found."""

    primary: Any
    candidate: Any
    equal: bool  # nothing was kept: the aligned bodies are strictly equal
    renames: list[RawDiff]
    notes: list[str]


def key_values(items: Sequence[Any], field: str) -> list[Any] | None:
    """The items' `field` values when `align.keyable(items, field)`, else None (in bulk)."""
    if not items:
        return []
    if set(map(type, items)) != _DICT:
        return None
    try:
        values = list(map(itemgetter(field), items))
    except KeyError:
        return None
    if set(map(type, values)) <= _STR_OR_INT and len(set(values)) == len(values):
        return values
    return None


def keyable(items: Sequence[Any], field: str) -> bool:
    """`align.keyable`, in bulk."""
    return key_values(items, field) is not None


def _differing(xs: Sequence[Any], ys: Sequence[Any]) -> list[int]:
    """Indexes of the pairs whose canonical forms differ."""
    return list(compress(range(len(xs)), map(not_, same_canonical(xs, ys))))


def prune_differing(primary: Any, candidate: Any) -> tuple[Any, Any, bool]:
    """`_deep.prune_equal(primary, candidate)`, skipping equal children in bulk."""
    kind = type(primary)
    if kind is not type(candidate):
        return primary, candidate, False
    if kind is dict or issubclass(kind, dict):
        common = [key for key in primary if key in candidate]
        differ = {
            common[i]
            for i in _differing([primary[k] for k in common], [candidate[k] for k in common])
        }
        pa: dict[Any, Any] = {}
        pb: dict[Any, Any] = {}
        for key, value in primary.items():
            if key not in candidate:
                pa[key] = value
            elif key in differ:
                va, vb, equal = prune_differing(value, candidate[key])
                if not equal:
                    pa[key], pb[key] = va, vb
        for key, value in candidate.items():
            if key not in primary:
                pb[key] = value
        return pa, pb, not pa and not pb
    if kind is list:
        if len(primary) != len(candidate):
            return primary, candidate, False
        la: dict[int, Any] = {}
        lb: dict[int, Any] = {}
        for index in _differing(primary, candidate):
            va, vb, equal = prune_differing(primary[index], candidate[index])
            if not equal:
                la[index], lb[index] = va, vb
        return la, lb, not la
    return primary, candidate, bool(primary == candidate)


def align_skeleton(aligner: Aligner, primary: Any, candidate: Any) -> Skeleton:
    """`prune_equal` of `aligner.align(primary, candidate)`, with its renames and notes.

    The two values must differ (their canonical forms).
    """
    walk = _PrunedWalk(aligner)
    a, b, equal = walk.pair(primary, candidate, None, None, aligner.start())
    return Skeleton(a, b, equal, walk.renames, walk.notes.render())


class _PrunedWalk:
    """`align._Walk` fused with `prune_equal`: each method returns (a, b, equal) pruned."""

    __slots__ = ("aligner", "notes", "opts", "renames")

    def __init__(self, aligner: Aligner) -> None:
        self.aligner = aligner
        self.opts = aligner.options
        self.renames: list[RawDiff] = []
        self.notes = _Notes()

    def pair(
        self, a: Any, b: Any, ppath: Link, apath: Link, states: States | None
    ) -> tuple[Any, Any, bool]:
        """`prune_equal(*align._Walk.pair(a, b, ...))` for two values known to differ."""
        ta, tb = type(a), type(b)
        if ta is tb and (ta is dict or ta is list):
            if ta is dict:
                return self._dicts(a, b, ppath, apath, states)
            return self._lists(a, b, ppath, apath, states)
        if ta is tb:
            if a == b:
                return a, a, True  # -0.0 vs 0.0
            if ta is str and self.opts.iso_instants and same_instant(a, b):
                self.notes.add("iso_instants", apath)
                return a, a, True
            return a, b, False
        if (
            self.opts.int_float
            and (ta is int or ta is float)
            and (tb is int or tb is float)
            and a == b
        ):
            self.notes.add("int_float", apath)
            return a, a, True
        return a, b, False

    def _dicts(
        self, a: dict[str, Any], b: dict[str, Any], ppath: Link, apath: Link, states: States | None
    ) -> tuple[dict[str, Any], dict[str, Any], bool]:
        opts, step = self.opts, self.aligner.step
        renamed: dict[str, str] = {}
        if opts.key_case:
            renamed = _renames([k for k in a if k not in b], [k for k in b if k not in a])
            if opts.null_absent:  # two null keys are two absent keys: nothing was renamed
                renamed = {k: n for k, n in renamed.items() if a[k] is not None or b[n] is not None}
        common = [key for key in a if key in b]
        differ = {common[i] for i in _differing([a[k] for k in common], [b[k] for k in common])}
        pa: dict[str, Any] = {}
        pb: dict[str, Any] = {}
        for key, va in a.items():
            if key in b:
                if key in differ:
                    x, y, equal = self.pair(
                        va, b[key], (ppath, key), (apath, key), step(states, key)
                    )
                    if not equal:
                        pa[key], pb[key] = x, y
            elif key in renamed:
                new = renamed[key]
                self.renames.append(RawDiff(steps((ppath, key)), Kind.RENAMED, key, new))
                self.notes.add("key_case", (ppath, key))
                x, y, equal = self._pair_any(
                    va, b[new], (ppath, key), (apath, new), step(states, new)
                )
                if not equal:
                    pa[new], pb[new] = x, y
            elif va is None and opts.null_absent:
                self.notes.add("null_absent", (apath, key))
            else:
                pa[key] = va
        targets = set(renamed.values())
        for key, vb in b.items():
            if key in a or key in targets:
                continue
            if vb is None and opts.null_absent:
                self.notes.add("null_absent", (apath, key))
            else:
                pb[key] = vb
        return pa, pb, not pa and not pb

    def _pair_any(
        self, a: Any, b: Any, ppath: Link, apath: Link, states: States | None
    ) -> tuple[Any, Any, bool]:
        """`pair` for two values that may be equal."""
        if _differing([a], [b]):
            return self.pair(a, b, ppath, apath, states)
        return a, b, True

    def _lists(
        self, a: list[Any], b: list[Any], ppath: Link, apath: Link, states: States | None
    ) -> tuple[Any, Any, bool]:
        explicit = self.aligner.key_field(states)
        if explicit is not None:
            field, source = explicit
            ka = key_values(a, field)
            kb = None if ka is None else key_values(b, field)
            if ka is not None and kb is not None:
                return self._keyed(a, b, (field, ka, kb), source, ppath, apath, states)
            self.notes.add("list_keys:position", apath)
        elif self.opts.auto_list_key and (a or b):
            ka = key_values(a, AUTO_KEY)
            kb = None if ka is None else key_values(b, AUTO_KEY)
            if ka is not None and kb is not None:
                return self._keyed(a, b, (AUTO_KEY, ka, kb), "auto_list_key", ppath, apath, states)
        step = self.aligner.step
        if self.aligner.order_free(states) and self.aligner.semantic_on:
            a, b = sorted(a, key=self.aligner.sort_key), sorted(b, key=self.aligner.sort_key)
        if len(a) == len(b):
            la: dict[int, Any] = {}
            lb: dict[int, Any] = {}
            for i in _differing(a, b):
                x, y, equal = self.pair(a[i], b[i], (ppath, i), (apath, i), step(states, i))
                if not equal:
                    la[i], lb[i] = x, y
            return la, lb, not la
        if len(a) * len(b) > _MAX_MATCHING:
            return a, b, False  # left whole, as prune_equal leaves lists of other lengths
        key = self.aligner.sort_key
        matcher = SequenceMatcher(None, [key(x) for x in a], [key(y) for y in b], autojunk=False)
        opcodes = matcher.get_opcodes()
        pairs = [
            (i, j)
            for tag, i1, i2, j1, j2 in opcodes
            if tag in ("equal", "replace")
            for i, j in zip(range(i1, i2), range(j1, j2), strict=False)
        ]
        differ = {pairs[n] for n in _differing([a[i] for i, _ in pairs], [b[j] for _, j in pairs])}
        pa: dict[str, Any] = {}
        pb: dict[str, Any] = {}
        added: dict[str, Any] = {}
        for tag, i1, i2, j1, j2 in opcodes:
            paired = min(i2 - i1, j2 - j1) if tag in ("equal", "replace") else 0
            for i, j in zip(range(i1, i1 + paired), range(j1, j1 + paired), strict=True):
                if (i, j) in differ:
                    s = SeqIndex(i)
                    x, y, equal = self.pair(a[i], b[j], (ppath, i), (apath, i), step(states, i))
                    if not equal:
                        pa[s], pb[s] = x, y
            for i in range(i1 + paired, i2):
                pa[SeqIndex(i)] = a[i]
            for j in range(j1 + paired, j2):
                added[SeqIndex(j, added=True)] = b[j]
        pb.update(added)
        return pa, pb, not pa and not pb

    def _keyed(
        self,
        a: list[Any],
        b: list[Any],
        keys: tuple[str, list[Any], list[Any]],  # the key field, its values in a and in b
        source: str,
        ppath: Link,
        apath: Link,
        states: States | None,
    ) -> tuple[dict[str, Any], dict[str, Any], bool]:
        field, keys_a, keys_b = keys
        # The same records in the same order (the usual case): pair them by position.
        same = keys_a == keys_b
        by_key = {} if same else dict(zip(keys_b, b, strict=True))
        partners = b if same else list(map(by_key.get, keys_a))  # None: not in b
        pa: dict[str, Any] = {}
        pb: dict[str, Any] = {}
        for i in _differing(a, partners):
            item, partner, value = a[i], partners[i], keys_a[i]
            kstep = KeyIndex(field, value, i)
            if partner is not None:
                x, y, equal = self.pair(
                    item, partner, (ppath, kstep), (apath, kstep), self.aligner.step(states, kstep)
                )
                if not equal:
                    pa[kstep], pb[kstep] = x, y
            else:
                pa[kstep] = item
        if same:
            return pa, pb, not pa and not pb
        in_a = set(keys_a)
        for j, value in enumerate(keys_b):
            if value not in in_a:
                pb[KeyIndex(field, value, j)] = b[j]
        common_a = [value for value in keys_a if value in by_key]
        common_b = [value for value in keys_b if value in in_a]
        if common_a != common_b:
            # Same records, other order: ONE difference at the list (see align._Walk._keyed).
            self.notes.add(source, apath)
            if not self.aligner.order_free(states):
                self.renames.append(
                    RawDiff(steps(ppath), Kind.REORDERED, _head(common_a), _head(common_b))
                )
        return pa, pb, not pa and not pb
