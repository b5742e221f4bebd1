"""Body comparison: classify each side (json, text, binary, empty), normalize, diff.

`compare_bodies` has two implementations of one result. `fast=False` is the
reference: both bodies are parsed, normalized, serialized, aligned and pruned
whole. The default takes shortcuts that cannot change the result:

- the same body bytes, read under the same Content-Encoding and Content-Type,
  give the same `Side` and, since normalizing is deterministic, no difference:
  one side is parsed and normalized (its note counts doubled);
- whether canonical JSON can be written at all (orjson refuses deep nesting) is
  learnt while parsing (`_nesting`), not by serializing a body to find out;
- differing JSON bodies are walked only where they differ (`_skeleton`):
  deepdiff gets the very skeleton the reference builds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from comparators import _deep, _nesting
from comparators._skeleton import align_skeleton, prune_differing
from comparators.align import canonical_aligned, plain
from comparators.canonical import canonical_json, digest
from comparators.decode import (
    DEFAULT_DECODED_LIMIT,
    body_text,
    content_encodings,
    decode_body,
    header_values,
    is_binary_media_type,
    is_json_media_type,
    media_type,
)
from comparators.errors import DecodeError
from comparators.model import Difference, Kind, Payload
from comparators.normalize import NoteKey, render_notes
from comparators.paths import format_path, path_sort_key
from comparators.rules import Rules

BODY = "$body"
TEXT_LIMIT = 2000  # chars of each text kept in a `$body` difference
_TEXT_CONTEXT = 200  # chars shown before the first differing one, when cut
_TOO_DEEP = "JSON nested too deeply to diff: compared raw bytes"


@dataclass(slots=True)
class Side:
    """One body as understood: its kind and content (`value` for json, `text` for text)."""

    kind: str  # "json" | "text" | "binary" | "empty"
    raw: bytes = b""  # decoded bytes
    value: Any = None
    text: str = ""  # for json too, when the bytes decode as text
    error: str | None = None  # decoding failed; `raw` then holds the wire bytes
    shallow: bool = False  # json: known to nest no deeper than orjson writes


def _plain_parse(src: str | bytes) -> tuple[Any, bool]:
    return orjson.loads(src), False


@dataclass(slots=True)
class BodyResult:
    """What the body comparison found."""

    kind: str
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exhausted: bool = False  # deepdiff stopped on its work budget


def load_side(
    payload: Payload,
    max_decoded: int = DEFAULT_DECODED_LIMIT,
    parse: Callable[[str | bytes], tuple[Any, bool]] = _plain_parse,
) -> Side:
    """Decode and classify a payload's body (no normalization yet).

    A body that would decode past `max_decoded` bytes (a decompression bomb) is kept
    as its wire bytes with the reason as its error. `parse` is orjson.loads that also
    tells whether the value is `Side.shallow` (`_nesting.parse`).
    """
    try:
        raw = decode_body(payload.headers, payload.body, max_decoded)
    except DecodeError as exc:
        return Side("binary", payload.body, error=str(exc))
    if not raw:
        return Side("empty")
    mtype = media_type(payload.headers)
    text = body_text(payload.headers, raw)
    if is_json_media_type(mtype) or (not mtype and text is not None):
        try:
            value, shallow = parse(raw if text is None else text)
            return Side("json", raw, value=value, text=text or "", shallow=shallow)
        except orjson.JSONDecodeError:
            pass  # mislabelled or broken JSON: compare it as text (or bytes)
    if text is None or is_binary_media_type(mtype):
        return Side("binary", raw)
    return Side("text", raw, text=text)


def _as_json(side: Side) -> Side:
    if side.kind != "text":
        return side
    try:
        return Side("json", side.raw, value=orjson.loads(side.text), text=side.text)
    except orjson.JSONDecodeError:
        return side


def first_difference(a: str, b: str) -> int:
    """Index of the first character where `a` and `b` differ (their length if equal)."""
    start, chunk, end = 0, 4096, max(len(a), len(b))
    # Compare whole chunks first: slicing runs in C, a per-character loop would not.
    while start < end and a[start : start + chunk] == b[start : start + chunk]:
        start += chunk
    pairs = zip(a[start : start + chunk], b[start : start + chunk], strict=False)
    return start + next(
        (i for i, (x, y) in enumerate(pairs) if x != y), min(len(a), len(b)) - start
    )


def _cut(a: str, b: str, first: int) -> tuple[str, str]:
    """Both texts cut to TEXT_LIMIT, starting a little before their first difference."""
    start = max(0, first - _TEXT_CONTEXT) if first >= TEXT_LIMIT - _TEXT_CONTEXT else 0
    prefix = "…" if start else ""
    return prefix + a[start : start + TEXT_LIMIT], prefix + b[start : start + TEXT_LIMIT]


def _fingerprint(p: Payload) -> dict[str, Any]:
    # The whole body's length and digest, whether it was cut or not: the same bytes
    # held whole on one side and cut on the other are equal.
    if p.cut:
        return {"length": p.full_size, "sha256": p.sha256}
    return digest(p.body)


def _compare_cut(primary: Payload, candidate: Payload) -> BodyResult:
    """Bodies over the harness's size limit: equal or not, by length and SHA-256."""
    result = BodyResult("binary")
    a, b = _fingerprint(primary), _fingerprint(candidate)
    if a != b:
        result.differences.append(Difference(BODY, Kind.VALUE_CHANGED, a, b))
    result.notes.append("body over the size limit: compared by length and SHA-256 only")
    return result


def _summary(side: Side) -> Any:
    """A short stand-in for a side's body inside a `$body` difference."""
    if side.error is not None:
        return {"decode_error": side.error, **digest(side.raw)}
    if side.kind in ("json", "text"):
        # What was sent, not a re-serialization: it is what a reader will recognise.
        return (side.text or side.raw[:TEXT_LIMIT].decode("utf-8", "replace"))[:TEXT_LIMIT]
    if side.kind == "binary":
        return digest(side.raw)
    return ""


def _json_diffs(
    a: Any,
    b: Any,
    rules: Rules,
    result: BodyResult,
    extra: list[_deep.RawDiff],
    prune: bool = True,
) -> None:
    # prune=False: `a` and `b` are already the pruned skeleton (and not equal).
    found = _deep.deep_diff(a, b, _deep.budget_for(rules.max_diffs), prune)
    result.exhausted = found.exhausted
    tolerated = 0
    kept = list(extra)
    for diff in found.diffs:
        if diff.kind is Kind.VALUE_CHANGED and rules.has_tolerance and _within(diff, rules):
            tolerated += 1
            continue
        kept.append(diff)
    if tolerated:
        result.notes.append(f"tolerated {tolerated} numeric difference{'s' * (tolerated != 1)}")
    kept.sort(key=lambda d: path_sort_key(d.path))
    result.differences = [
        Difference(format_path(d.path), d.kind, plain(d.primary), plain(d.candidate)) for d in kept
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _within(diff: _deep.RawDiff, rules: Rules) -> bool:
    if not (_is_number(diff.primary) and _is_number(diff.candidate)):
        return False
    return bool(abs(diff.primary - diff.candidate) <= rules.tolerance_at(diff.path))


def _compare_json(
    a: Side, b: Side, rules: Rules, result: BodyResult, counts: Counter[NoteKey]
) -> None:
    va, vb = rules.normalizer.json(a.value, counts), rules.normalizer.json(b.value, counts)
    ca, cb = canonical_json(va), canonical_json(vb)
    if ca == cb:
        return  # fast path: equal canonical forms, nothing more to do
    renames: list[_deep.RawDiff] = []
    too_big = max(len(a.raw), len(b.raw)) > rules.max_body_bytes_for_diff
    if rules.aligner and not too_big:
        # Pair-aware normalizers (int_float, iso_instants, keyed lists, ...) run
        # only when the bodies differ; deepdiff only if they still differ after.
        aligned = rules.aligner.align(va, vb)
        va, vb, renames = aligned.primary, aligned.candidate, aligned.renames
        result.notes.extend(aligned.notes)
        ca, cb = canonical_aligned(va), canonical_aligned(vb)
        if ca == cb:
            _renames_only(renames, result)
            return
    if too_big:
        # Neither aligned (a walk in Python) nor diffed: the bytes decide.
        result.notes.append("body over max_body_bytes_for_diff: compared by hash only")
        result.differences.append(
            Difference(BODY, Kind.VALUE_CHANGED, digest(ca, 16), digest(cb, 16))
        )
    else:
        _json_diffs(va, vb, rules, result, renames)


def _compare_json_fast(
    a: Side, b: Side, rules: Rules, result: BodyResult, counts: Counter[NoteKey]
) -> None:
    """`_compare_json`, walking only the parts of the bodies that differ."""
    va, vb = rules.normalizer.json(a.value, counts), rules.normalizer.json(b.value, counts)
    # orjson.dumps raises for deep nesting, as canonical_json would; equal bytes mean
    # equal values.
    if not (_shallow(a) and _shallow(b)) and orjson.dumps(va) == orjson.dumps(vb):
        return
    ca = cb = b""
    # Python's == (C speed) never calls equal what canonical forms tell apart (parsed
    # JSON has no NaN); only what it calls equal needs serializing to be sure.
    if va == vb:
        ca, cb = canonical_json(va), canonical_json(vb)
        if ca == cb:
            return
    too_big = max(len(a.raw), len(b.raw)) > rules.max_body_bytes_for_diff
    if rules.aligner and not too_big:
        skeleton = align_skeleton(rules.aligner, va, vb)
        result.notes.extend(skeleton.notes)
        if skeleton.equal:
            # The reference's canonical_aligned check or its deepdiff run on an empty
            # skeleton: either way the renames are all that is left.
            _renames_only(skeleton.renames, result)
        else:
            _json_diffs(
                skeleton.primary, skeleton.candidate, rules, result, skeleton.renames, False
            )
    elif too_big:
        if not ca:
            ca, cb = canonical_json(va), canonical_json(vb)
        result.notes.append("body over max_body_bytes_for_diff: compared by hash only")
        result.differences.append(
            Difference(BODY, Kind.VALUE_CHANGED, digest(ca, 16), digest(cb, 16))
        )
    else:
        pa, pb, equal = prune_differing(va, vb)
        if not equal:
            _json_diffs(pa, pb, rules, result, [], False)


def _shallow(side: Side) -> bool:
    """Is a JSON side known to nest no deeper than canonical_json writes?

    Normalizing never nests deeper, so its normalized value is known shallow too.
    """
    # Parsed from the text when there is one, else from the (UTF-8) bytes.
    return side.shallow or _nesting.few_brackets(side.text or side.raw)


def _same_side(primary: Payload, candidate: Payload) -> bool:
    """Would `load_side` read both payloads alike (same bytes, same decoding headers)?"""
    if primary.body != candidate.body:
        return False
    if primary.headers == candidate.headers:
        return True
    # What load_side reads of the headers: the encodings and the first Content-Type.
    ha, hb = primary.headers, candidate.headers
    return (
        content_encodings(ha) == content_encodings(hb)
        and header_values(ha, "content-type")[:1] == header_values(hb, "content-type")[:1]
    )


def _compare_same(side: Side, rules: Rules) -> BodyResult:
    """`compare_bodies` of two payloads that both load as `side`."""
    result = BodyResult(side.kind)
    if side.error is not None:
        result.notes.append("body could not be decoded: compared raw bytes")
        return result
    normalizer = rules.normalizer
    counts: Counter[NoteKey] | None = Counter() if normalizer else None
    if side.kind == "json":
        try:
            value = normalizer.json(side.value, counts) if counts is not None else side.value
            if not _shallow(side):
                orjson.dumps(value)  # raises for deep nesting, as canonical_json would
        except (RecursionError, orjson.JSONEncodeError):
            counts = None
            result.notes.append(_TOO_DEEP)
    elif side.kind == "text" and counts is not None:
        normalizer.text(side.text, counts)
    if counts:
        # The other side is normalized alike: every count happens twice.
        result.notes[:0] = render_notes(Counter({key: 2 * n for key, n in counts.items()}))
    return result


def _renames_only(renames: list[_deep.RawDiff], result: BodyResult) -> None:
    """Differences when the aligned bodies are equal: the renamed keys only."""
    renames = sorted(renames, key=lambda d: path_sort_key(d.path))
    result.differences = [
        Difference(format_path(d.path), d.kind, d.primary, d.candidate) for d in renames
    ]


def compare_bodies(
    primary: Payload, candidate: Payload, rules: Rules, *, fast: bool = True
) -> BodyResult:
    """Compare two bodies under `rules`; never raises on bad content.

    `fast=False`: the reference implementation (same result, slower; see the
    module docstring).
    """
    if primary.cut or candidate.cut:
        return _compare_cut(primary, candidate)
    if fast and _same_side(primary, candidate):
        return _compare_same(load_side(primary, rules.max_decoded_bytes, _nesting.parse), rules)
    parse = _nesting.parse if fast else _plain_parse
    a, b = (load_side(p, rules.max_decoded_bytes, parse) for p in (primary, candidate))
    result = BodyResult(a.kind)
    if a.error is not None or b.error is not None:
        # The same undecodable bytes on both sides are still parity.
        if a.raw != b.raw:
            result.differences.append(
                Difference(BODY, Kind.VALUE_CHANGED, _summary(a), _summary(b))
            )
        result.notes.append("body could not be decoded: compared raw bytes")
        return result
    if {a.kind, b.kind} == {"json", "text"}:
        # A content-type mismatch is already a header difference; still diff the
        # JSON structurally when the text side parses as JSON.
        a, b = _as_json(a), _as_json(b)
    counts: Counter[NoteKey] = Counter()
    normalizer = rules.normalizer
    if a.kind == b.kind == "json":
        try:
            (_compare_json_fast if fast else _compare_json)(a, b, rules, result, counts)
        except (RecursionError, orjson.JSONEncodeError):
            # orjson refuses nesting deeper than 254 levels and deep recursion can
            # overflow Python's stack: fall back to comparing the decoded bytes.
            counts.clear()
            result.differences = []
            result.notes.clear()
            result.notes.append(_TOO_DEEP)
            if a.raw != b.raw:
                result.differences.append(
                    Difference(BODY, Kind.VALUE_CHANGED, digest(a.raw), digest(b.raw))
                )
    elif a.kind == b.kind == "text":
        ta, tb = normalizer.text(a.text, counts), normalizer.text(b.text, counts)
        if ta != tb:
            first = first_difference(ta, tb)
            result.notes.append(f"text bodies first differ at character {first}")
            result.differences.append(Difference(BODY, Kind.VALUE_CHANGED, *_cut(ta, tb, first)))
    elif a.kind == b.kind and a.raw == b.raw:
        pass  # equal binary (or both empty)
    else:
        if a.kind != b.kind:
            result.notes.append(f"body kinds differ: {a.kind} vs {b.kind}")
        result.differences.append(Difference(BODY, Kind.VALUE_CHANGED, _summary(a), _summary(b)))
    result.notes[:0] = render_notes(counts)
    return result
