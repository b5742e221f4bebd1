"""The entry point: compare two payloads under a set of rules."""

from __future__ import annotations

import re
from typing import NamedTuple

from comparators.align import Normalization
from comparators.body import compare_bodies
from comparators.conversation import compare_conversations
from comparators.model import Comparison, Difference, Kind, Payload, Verdict
from comparators.rules import DEFAULT_RULES, Rules


class _Header(NamedTuple):
    """One header as compared (`value`) and as sent (`raw`, name spellings)."""

    value: str | None
    raw: str | None = None
    names: tuple[str, ...] = ()
    media: bool = False  # `value` is a normalized media type


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA = re.compile(rf"\s*{_TOKEN}/{_TOKEN}\s*(?:;|\Z)")


def _media(value: str, params: bool, drop: tuple[str, ...] = ()) -> str:
    """A media type lowercased; with `params`, its parameters normalized too.

    Parameter names are lowercased, quotes and spaces dropped and the charset
    value lowercased (RFC 9110 8.3.1: all case-insensitive); names in `drop` go.
    """
    parts = value.split(";")
    out = [parts[0].strip().lower()]
    if params:
        for param in parts[1:]:
            key, sep, val = param.partition("=")
            key, val = key.strip().lower(), val.strip().strip('"')
            if key and key not in drop:
                out.append(f"{key}={val.lower() if key == 'charset' else val}" if sep else key)
    return ";".join(out)


def _header(payload: Payload, name: str, opts: Normalization) -> _Header:
    """Header `name` of `payload` as compared under `opts` (value None when absent)."""
    pairs = [(key, value) for key, value in payload.headers if key.lower() == name]
    if not pairs:
        return _Header(None)
    names = tuple(dict.fromkeys(key for key, _ in pairs))
    # Repeated headers mean the same as one comma-joined header (RFC 9110, 5.3).
    raw = ", ".join(value.strip() for _, value in pairs)
    if name == "content-type":
        # By media type only (charset=utf-8 vs none is no difference) unless
        # media_type_params is off; then parameters count, normalized.
        value = _media(pairs[0][1], params=not opts.media_type_params)
        return _Header(value, raw, names, True)
    if opts.media_type_params and _MEDIA.match(raw):
        parts = (_media(part, params=True, drop=("charset",)) for part in raw.split(","))
        return _Header(", ".join(parts), raw, names, True)
    return _Header(raw, raw, names)


def compare_headers(
    primary: Payload, candidate: Payload, rules: Rules, *, fast: bool = True
) -> tuple[list[Difference], list[str]]:
    """HEADER differences (one per compared header that differs) and notes.

    `fast=False`: the reference implementation (same result).
    """
    if fast and primary.headers == candidate.headers:
        return [], []  # every header reads alike on both sides, names included
    opts = rules.normalize
    out: list[Difference] = []
    notes: list[str] = []
    for name in rules.sorted_compared_headers if fast else sorted(rules.compared_headers):
        path = f"$header.{name}"
        a, b = _header(primary, name, opts), _header(candidate, name, opts)
        if a.value != b.value:
            out.append(Difference(path, Kind.HEADER, a.value, b.value))
        elif a.value is None:
            continue
        elif not opts.header_name_case and a.names != b.names:
            # Names compared as spelled: the value shows the spelling.
            out.append(
                Difference(
                    path, Kind.HEADER, f"{a.names[0]}: {a.value}", f"{b.names[0]}: {b.value}"
                )
            )
        else:
            if a.media and a.raw != b.raw:
                notes.append(f"media_type_params: {path}")
            if a.names != b.names:
                notes.append(f"header_name_case: {path}")
    return out, notes


def header_differences(primary: Payload, candidate: Payload, rules: Rules) -> list[Difference]:
    """One HEADER difference per compared header whose normalized values differ."""
    return compare_headers(primary, candidate, rules)[0]


def compare(
    primary: Payload,
    candidate: Payload,
    rules: Rules = DEFAULT_RULES,
    *,
    socketio: bool = False,
    fast: bool = True,
) -> Comparison:
    """Compare what the primary and the candidate answered.

    Verdict is MATCH when no difference remains after the rules are applied,
    DIFFER otherwise. Bad bodies (undecodable, broken JSON) become differences
    or are compared as text/bytes; this function does not raise on content.
    A WebSocket conversation or an event stream (`Payload.stream`) is compared
    message by message (`compare_conversations`; `socketio` when the WebSocket
    speaks Socket.IO); `body_kind` is then "websocket" or "sse".

    `fast=False` runs the reference implementation: the same result, computed
    on both whole bodies at every step (kept to check the shortcuts against).
    """
    differences: list[Difference] = []
    if rules.compare_status and primary.status != candidate.status:
        differences.append(Difference("$status", Kind.STATUS, primary.status, candidate.status))
    headers, notes = compare_headers(primary, candidate, rules, fast=fast)
    differences.extend(headers)
    if primary.stream or candidate.stream:
        body = compare_conversations(primary, candidate, rules, socketio, fast=fast)
    else:
        body = compare_bodies(primary, candidate, rules, fast=fast)
    differences.extend(body.differences)
    notes.extend(body.notes)
    truncated = body.exhausted or len(differences) > rules.max_diffs
    if body.exhausted:
        notes.append("deepdiff stopped on its work budget: differences may be missing")
    if len(differences) > rules.max_diffs:
        notes.append(f"kept {rules.max_diffs} of {len(differences)} differences (max_diffs)")
    return Comparison(
        verdict=Verdict.DIFFER if differences else Verdict.MATCH,
        differences=tuple(differences[: rules.max_diffs]),
        body_kind=body.kind,
        truncated=truncated,
        notes=tuple(notes),
    )
