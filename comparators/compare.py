"""The entry point: compare two payloads under a set of rules."""

from __future__ import annotations

from comparators.body import compare_bodies
from comparators.decode import header_values, media_type
from comparators.model import Comparison, Difference, Kind, Payload, Verdict
from comparators.rules import DEFAULT_RULES, Rules


def _header_value(payload: Payload, name: str) -> str | None:
    """Normalized value of header `name`, or None when absent."""
    values = header_values(payload.headers, name)
    if not values:
        return None
    if name == "content-type":
        # Compared by media type only: `charset=utf-8` vs none is not a difference.
        return media_type(payload.headers)
    # Repeated headers mean the same as one comma-joined header (RFC 9110, 5.3).
    return ", ".join(v.strip() for v in values)


def header_differences(primary: Payload, candidate: Payload, rules: Rules) -> list[Difference]:
    """One HEADER difference per compared header whose normalized values differ."""
    out = []
    for name in sorted(rules.compared_headers):
        a, b = _header_value(primary, name), _header_value(candidate, name)
        if a != b:
            out.append(Difference(f"$header.{name}", Kind.HEADER, a, b))
    return out


def compare(primary: Payload, candidate: Payload, rules: Rules = DEFAULT_RULES) -> Comparison:
    """Compare what the primary and the candidate answered.

    Verdict is MATCH when no difference remains after the rules are applied,
    DIFFER otherwise. Bad bodies (undecodable, broken JSON) become differences
    or are compared as text/bytes; this function does not raise on content.
    """
    differences: list[Difference] = []
    if rules.compare_status and primary.status != candidate.status:
        differences.append(Difference("$status", Kind.STATUS, primary.status, candidate.status))
    differences.extend(header_differences(primary, candidate, rules))
    body = compare_bodies(primary, candidate, rules)
    differences.extend(body.differences)
    notes = list(body.notes)
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
