"""A result's differences as text, compact like pytest's dict diff.

    GET /api/analysis/9 (GET /api/analysis/{id}): 2 differences, primary vs candidate
      $.completedAt: <absent> != null (added)
      $.metrics.avgOrderValue: 204.63 != 204.62 (value_changed)

Values are those stored (redacted, JSON), each cut to `VALUE_CHARS`; at most
`MAX_LINES` differences are listed (the rest counted). Differences that are noise
(a secondary saw the same change) or accepted ([[accepted]]) follow, marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shadow.sources._base import one_line
from shadow.store.rows import DifferenceRow

if TYPE_CHECKING:
    from shadow.testing.pair import PairResult

VALUE_CHARS = 120
MAX_LINES = 50
SUMMARY_CHARS = 200
ABSENT = "<absent>"


@dataclass(frozen=True)
class Explained:
    summary: str  # one line
    lines: tuple[str, ...]


def _value(text: str | None) -> str:
    if text is None:
        return ABSENT
    text = text.replace("\n", "\\n").replace("\r", "\\r")  # JSON text has none; bodies may
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."


def explain(result: PairResult) -> Explained:
    """The summary line and the table of `result`'s differences."""
    req = result.request
    first, second = result.backends
    target = shown_target(result)
    head = f"{req.method} {target} ({result.endpoint})"
    row = result.evaluated.row  # its error texts as stored: redacted
    if result.verdict == "candidate_error":
        text = f"{head}: the {second} failed: {row.candidate_error or result.candidate.error}"
        return Explained(one_line(text), (text,))
    if result.verdict == "primary_error":
        text = f"{head}: the {first} failed: {row.primary_error or result.primary.error}"
        return Explained(one_line(text), (text,))
    real = [d for d in result.differences if d.status == "real"]
    other = [d for d in result.differences if d.status != "real"]
    if result.verdict == "match":
        text = f"{head}: match" + (f" ({len(other)} noise or accepted)" if other else "")
        return Explained(text, (text, *rows(other, marked=True)))
    truncated = result.evaluated.row.diffs_truncated
    count = f"{len(real)}{'+' if truncated else ''} difference{'s' if len(real) != 1 else ''}"
    lines = [f"{head}: {count}, {first} != {second}", *rows(real, marked=False)]
    lines += rows(other, marked=True)
    paths = ", ".join(f"{d.path} ({d.kind})" for d in real)
    summary = f"{req.method} {target} differs: {paths or 'see the report section'}"
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 3] + "..."
    return Explained(one_line(summary), tuple(lines))


def shown_target(result: PairResult) -> str:
    """The request's path and query as stored: redacted (`?access_token=[REDACTED]`)."""
    row = result.evaluated.row
    return f"{row.path}?{row.query}" if row.query else row.path


def rows(diffs: list[DifferenceRow], marked: bool) -> list[str]:
    out = []
    for d in diffs[:MAX_LINES]:
        mark = f" [{d.status}: {d.reason}]" if marked else ""
        # An added value is absent on the primary's side, a removed one on the candidate's.
        p = ABSENT if d.kind == "added" else _value(d.primary_value)
        c = ABSENT if d.kind == "removed" else _value(d.candidate_value)
        out.append(f"  {d.path}: {p} != {c} ({d.kind}){mark}")
    if len(diffs) > MAX_LINES:
        out.append(f"  ... and {len(diffs) - MAX_LINES} more")
    return out
