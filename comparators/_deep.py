"""The one place deepdiff is called, with our defaults, and its tree turned into plain data.

Nothing deepdiff-made leaves this module: results are `RawDiff` tuples of JSON
values and concrete path steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from deepdiff import DeepDiff
from deepdiff.helper import notpresent

from comparators.model import Kind
from comparators.paths import Path

# deepdiff's `max_diffs` counts compared pairs (every dict key visited, see
# `DeepDiff._count_diff`), not reported differences: with max_diffs=200 it would
# silently stop on any object of more than 200 keys. So it gets a work budget,
# spent only on the pruned skeleton (see `prune_equal`) where every node visited
# leads to a difference, and we cap the reported differences ourselves.
VISITS_PER_DIFF = 20  # allows differences ~10 levels deep before the budget runs out
MIN_BUDGET = 1000


def budget_for(max_diffs: int) -> int:
    """deepdiff work budget that finds `max_diffs` differences in ordinary documents."""
    return max(MIN_BUDGET, VISITS_PER_DIFF * max_diffs)


_KINDS: dict[str, Kind] = {
    "values_changed": Kind.VALUE_CHANGED,
    "type_changes": Kind.TYPE_CHANGED,
    "dictionary_item_added": Kind.ADDED,
    "dictionary_item_removed": Kind.REMOVED,
    "iterable_item_added": Kind.ADDED,
    "iterable_item_removed": Kind.REMOVED,
    # The rest cannot arise from parsed JSON with our options, but are mapped
    # rather than dropped so nothing is ever lost.
    "attribute_added": Kind.ADDED,
    "attribute_removed": Kind.REMOVED,
    "set_item_added": Kind.ADDED,
    "set_item_removed": Kind.REMOVED,
    "iterable_item_moved": Kind.VALUE_CHANGED,
    "repetition_change": Kind.VALUE_CHANGED,
    "unprocessed": Kind.VALUE_CHANGED,
}


class RawDiff(NamedTuple):
    """One difference with a concrete path (tuple of keys and indexes)."""

    path: Path
    kind: Kind
    primary: Any
    candidate: Any


class DeepResult(NamedTuple):
    """Differences found and whether deepdiff stopped early on its work budget."""

    diffs: list[RawDiff]
    exhausted: bool


def _plain(value: Any) -> Any:
    return None if value is notpresent else value


def _steps(level: Any, use_t2: bool) -> Path:
    steps = level.path(output_format="list", use_t2=use_t2)
    # JSON paths only hold str keys and int indexes; anything else (never
    # expected from parsed JSON) is shown as text rather than lost.
    return tuple(
        s if isinstance(s, str | int) and not isinstance(s, bool) else str(s) for s in steps
    )


def prune_equal(primary: Any, candidate: Any) -> tuple[Any, Any, bool]:
    """Both values with every part that is strictly equal on both sides cut away.

    Returns the pruned pair and whether the values were equal. Equal dict keys
    are dropped from both sides; lists of equal length become `{index: item}`
    dicts of the differing positions, so deepdiff still reports `[index]` paths
    but walks only what differs (it costs ~40 us per node it visits). Lists of
    different lengths are left whole for deepdiff to align. "Strictly": 1, 1.0
    and True stay different, as deepdiff reports them.
    """
    kind = type(primary)
    if kind is not type(candidate):
        return primary, candidate, False
    if kind is dict or issubclass(kind, dict):  # aligned trees hold KeyedList dicts too
        pa: dict[Any, Any] = {}
        pb: dict[Any, Any] = {}
        for key, value in primary.items():
            if key not in candidate:
                pa[key] = value
            else:
                va, vb, equal = prune_equal(value, candidate[key])
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
        for index, (x, y) in enumerate(zip(primary, candidate, strict=True)):
            va, vb, equal = prune_equal(x, y)
            if not equal:
                la[index], lb[index] = va, vb
        return la, lb, not la
    return primary, candidate, bool(primary == candidate)


def deep_diff(primary: Any, candidate: Any, budget: int, prune: bool = True) -> DeepResult:
    """Differences between two JSON values, primary-side paths (candidate's for ADDED).

    deepdiff stops after `budget` visits; `DeepResult.exhausted` then says so.
    """
    if prune:
        primary, candidate, equal = prune_equal(primary, candidate)
        if equal:
            return DeepResult([], False)
    tree = DeepDiff(
        primary,
        candidate,
        view="tree",
        # 0: else deepdiff reports a whole parent dict as changed when few keys are shared.
        threshold_to_diff_deeper=0,
        max_diffs=budget,
        # Order-free lists are sorted by our normalizer, never by deepdiff.
        ignore_order=False,
        verbose_level=2,
    )
    out: list[RawDiff] = []
    for report_type, levels in tree.items():
        kind = _KINDS.get(report_type, Kind.VALUE_CHANGED)
        for level in levels:
            out.append(
                RawDiff(_steps(level, kind is Kind.ADDED), kind, _plain(level.t1), _plain(level.t2))
            )
    exhausted = bool(tree.get_stats().get("MAX DIFF LIMIT REACHED"))
    return DeepResult(out, exhausted)
