"""Normalizers: make volatile or order-free parts of a body equal before diffing.

One walk over the parsed JSON drops `ignore_paths`, applies masks to strings and
sorts `ignore_order` lists (children first, so nested sorts are settled before
their parents use them as sort keys). Everything is pure, builds new containers
and is idempotent: normalizing a normalized value changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
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


class Normalizer:
    """Compiled normalizers of one Rules object."""

    __slots__ = ("_global_masks", "_ignore", "_mask_sets", "_order", "_path_masks")

    def __init__(
        self,
        ignore_paths: Sequence[Pattern] = (),
        ignore_order: Sequence[Pattern] = (),
        masks: Sequence[Mask] = (),
    ) -> None:
        self._ignore = PathSet(ignore_paths)
        self._order = PathSet(ignore_order)
        self._global_masks = tuple(m for m in masks if not m.paths)
        self._path_masks = tuple(m for m in masks if m.paths)
        self._mask_sets = tuple(PathSet(m.paths) for m in self._path_masks)

    def __bool__(self) -> bool:
        """False when normalizing would change nothing at all."""
        return bool(self._ignore or self._order or self._global_masks or self._path_masks)

    def text(self, text: str, counts: Counter[NoteKey] | None = None) -> str:
        """Apply the masks that are not restricted to paths to a whole text body."""
        for mask in self._global_masks:
            text, n = mask.apply(text)
            if n and counts is not None:
                counts["masked", mask.name] += n
        return text

    def json(self, value: Any, counts: Counter[NoteKey] | None = None) -> Any:
        """Normalized copy of a parsed JSON value."""
        if not self:
            return value
        if counts is None:
            counts = Counter()
        mstates = self._step_masks(tuple(s.start() for s in self._mask_sets), None)
        return self._walk(value, self._ignore.start(), self._order.start(), mstates, counts)

    def _step_masks(self, mstates: _Masks, step: Step | None) -> _Masks:
        out: list[States | None] = []
        for pset, states in zip(self._mask_sets, mstates, strict=True):
            if states is not None and step is not None:
                states = pset.step(states, step)
            # Once a mask's path matched, it stays active for the whole subtree.
            out.append(None if states is None or pset.matched(states) else states)
        return tuple(out)

    def _mask_str(self, text: str, mstates: _Masks, counts: Counter[NoteKey]) -> str:
        text = self.text(text, counts)
        for mask, states in zip(self._path_masks, mstates, strict=True):
            if states is None:
                text, n = mask.apply(text)
                if n:
                    counts["masked", mask.name] += n
        return text

    def _walk(
        self, value: Any, ign: States, order: States, mstates: _Masks, counts: Counter[NoteKey]
    ) -> Any:
        if isinstance(value, str):
            return self._mask_str(value, mstates, counts)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                child_ign = self._ignore.step(ign, key) if ign else ign
                hit = self._ignore.matched(child_ign)
                if hit:
                    counts["ignored", self._ignore.patterns[hit[0]].source] += 1
                    continue
                child_order = self._order.step(order, key) if order else order
                child_masks = self._step_masks(mstates, key)
                out[key] = self._walk(item, child_ign, child_order, child_masks, counts)
            return out
        if isinstance(value, list):
            unordered = self._order.matched(order) if order else []
            items: list[Any] = []
            for index, item in enumerate(value):
                step = _UNORDERED_INDEX if unordered else index
                child_ign = self._ignore.step(ign, step) if ign else ign
                hit = self._ignore.matched(child_ign)
                if hit:
                    counts["ignored", self._ignore.patterns[hit[0]].source] += 1
                    items.append(IGNORED)
                    continue
                child_order = self._order.step(order, step) if order else order
                child_masks = self._step_masks(mstates, step)
                items.append(self._walk(item, child_ign, child_order, child_masks, counts))
            if unordered:
                items.sort(key=canonical_json)
                counts["sorted", self._order.patterns[unordered[0]].source] += 1
            return items
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
