"""Normalizers: make volatile or order-free parts of a body equal before diffing.

One walk over the parsed JSON drops `ignore_paths`, applies masks to strings and
sorts `ignore_order` lists (children first, so nested sorts are settled before
their parents use them as sort keys). Everything is pure, builds new containers
and is idempotent: normalizing a normalized value changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from comparators.canonical import canonical_json
from comparators.masks import Mask
from comparators.paths import PathSet, Pattern, States, Step

# Ignored list items are replaced, not removed: removing would shift the items
# after them, so `$.items[0]` would match a different item on the next pass.
IGNORED = "<ignored>"
# Inside an ignore_order list positions mean nothing; this step matches only `*`.
_UNORDERED_INDEX = -1

NoteKey = tuple[str, str]  # (what was done, to what) -> count, rendered by `render_notes`
_Masks = tuple[States | None, ...]  # per path-restricted mask: states, or None once active
_MAX_CHILDREN = 4096  # cached transitions per state; beyond, they are computed each time


class _State:
    """Where a walk stands w.r.t. every pattern: an interned state of a lazy automaton.

    Rules are reused for many bodies with the same shape, so transitions are
    cached on the state: walking a node is then one dict lookup.
    """

    __slots__ = ("children", "dead", "ignore", "masks", "order", "sort_label", "str_masks")

    def __init__(
        self,
        ignore: States,
        order: States,
        masks: _Masks,
        sort_label: str | None,
        str_masks: tuple[Mask, ...],
    ) -> None:
        self.ignore, self.order, self.masks = ignore, order, masks
        self.sort_label = sort_label  # pattern source if this node is an order-free list
        self.str_masks = str_masks  # masks that apply to a string at this node, in order
        # Nothing below depends on the path any more: only str_masks remain to apply.
        self.dead = not ignore and not order and all(m is None or not m for m in masks)
        self.children: dict[Step, tuple[_State, str | None]] = {}


class Normalizer:
    """Compiled normalizers of one Rules object."""

    __slots__ = ("_ignore", "_interned", "_mask_sets", "_masks", "_order", "_root", "_sort_key")

    def __init__(
        self,
        ignore_paths: Sequence[Pattern] = (),
        ignore_order: Sequence[Pattern] = (),
        masks: Sequence[Mask] = (),
        sort_key: Callable[[Any], bytes] = canonical_json,
    ) -> None:
        # Order-free lists are sorted by `sort_key` (canonical bytes: C speed on the
        # fast path; the Aligner sorts them again by semantic form when bodies differ).
        self._sort_key = sort_key
        self._ignore = PathSet(ignore_paths)
        self._order = PathSet(ignore_order)
        self._masks = tuple(masks)
        # Path-restricted masks get a PathSet; the others (None) apply everywhere.
        self._mask_sets = tuple(PathSet(m.paths) if m.paths else None for m in self._masks)
        self._interned: dict[tuple[States, States, _Masks], _State] = {}
        root_masks = tuple(s.start() if s else None for s in self._mask_sets)
        self._root = self._state(self._ignore.start(), self._order.start(), root_masks)

    def __bool__(self) -> bool:
        """False when normalizing would change nothing at all."""
        return bool(self._ignore or self._order or self._masks)

    def text(self, text: str, counts: Counter[NoteKey] | None = None) -> str:
        """Apply the masks that are not restricted to paths to a whole text body."""
        masks = [m for m in self._masks if not m.paths]
        return _apply(masks, text, Counter() if counts is None else counts)

    def json(self, value: Any, counts: Counter[NoteKey] | None = None) -> Any:
        """Normalized copy of a parsed JSON value."""
        if not self:
            return value
        return self._walk(value, self._root, Counter() if counts is None else counts)

    def _state(self, ignore: States, order: States, masks: _Masks) -> _State:
        key = (ignore, order, masks)
        state = self._interned.get(key)
        if state is None:
            # A mask whose path matched stays active (None) for the whole subtree.
            masks = tuple(
                None if st is None or (ps is not None and ps.matched(st)) else st
                for ps, st in zip(self._mask_sets, masks, strict=True)
            )
            sorted_by = self._order.matched(order)
            label = self._order.patterns[sorted_by[0]].source if sorted_by else None
            str_masks = tuple(m for m, st in zip(self._masks, masks, strict=True) if st is None)
            state = self._interned[key] = _State(ignore, order, masks, label, str_masks)
        return state

    def _child(self, state: _State, step: Step) -> tuple[_State, str | None]:
        """The state below `step`, and the ignore pattern that drops it (or None)."""
        hit = state.children.get(step)
        if hit is not None:
            return hit
        ignore = self._ignore.step(state.ignore, step) if state.ignore else state.ignore
        dropped = self._ignore.matched(ignore)
        masks = tuple(
            st if st is None or ps is None else ps.step(st, step)
            for ps, st in zip(self._mask_sets, state.masks, strict=True)
        )
        order = self._order.step(state.order, step) if state.order else state.order
        hit = (
            self._state(ignore, order, masks),
            self._ignore.patterns[dropped[0]].source if dropped else None,
        )
        if len(state.children) < _MAX_CHILDREN:
            state.children[step] = hit
        return hit

    def _walk(self, value: Any, state: _State, counts: Counter[NoteKey]) -> Any:
        if state.dead:
            return _mask_all(value, state.str_masks, counts) if state.str_masks else value
        if isinstance(value, str):
            return _apply(state.str_masks, value, counts)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                child, dropped = self._child(state, key)
                if dropped is not None:
                    counts["ignored", dropped] += 1
                else:
                    out[key] = self._walk(item, child, counts)
            return out
        if isinstance(value, list):
            items: list[Any] = []
            for index, item in enumerate(value):
                step = index if state.sort_label is None else _UNORDERED_INDEX
                child, dropped = self._child(state, step)
                if dropped is not None:
                    counts["ignored", dropped] += 1
                    items.append(IGNORED)
                else:
                    items.append(self._walk(item, child, counts))
            if state.sort_label is not None:
                items.sort(key=self._sort_key)
                counts["sorted", state.sort_label] += 1
            return items
        return value


def _apply(masks: Sequence[Mask], text: str, counts: Counter[NoteKey]) -> str:
    for mask in masks:
        text, n = mask.apply(text)
        if n:
            counts["masked", mask.name] += n
    return text


def _mask_all(value: Any, masks: tuple[Mask, ...], counts: Counter[NoteKey]) -> Any:
    """Masks applied to every string below `value` (no path bookkeeping)."""
    if isinstance(value, str):
        return _apply(masks, value, counts)
    if isinstance(value, dict):
        return {k: _mask_all(v, masks, counts) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v, masks, counts) for v in value]
    return value


def render_notes(counts: Counter[NoteKey]) -> list[str]:
    """Short human notes, e.g. "masked 2 iso_timestamp values", in a stable order."""
    notes = []
    for (action, what), n in sorted(counts.items()):
        if action == "masked":
            notes.append(f"masked {n} {what} value{'s' if n != 1 else ''}")
        elif action == "ignored":
            notes.append(f"ignored {n} value{'s' if n != 1 else ''} at {what}")
        elif action == "sorted":
            notes.append(f"sorted {n} list{'s' if n != 1 else ''} at {what} (ignore_order)")
        else:
            notes.append(f"{action} {n} {what}")
    return notes
