"""Turning an exchange and its comparison into rows of the store.

Secrets are redacted here, on the only road into the database; bodies are
decoded for the reviewer and cut to a size cap, with a flag when cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from comparators import DecodeError, body_text, decode_body
from comparators.model import Comparison, Headers, Payload
from shadow.model import BackendResponse, Exchange
from shadow.redact import (
    REDACTED,
    is_secret_path,
    redact_body_text,
    redact_headers,
    redact_query,
)

DEFAULT_BODY_CAP = 64 * 1024


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def body_for_review(headers: Headers, raw: bytes, cap: int) -> tuple[str | None, bool]:
    """Decoded body text cut to `cap` bytes, and whether it was cut (cap 0: not kept)."""
    if not raw or cap <= 0:
        return None, False
    try:
        data = decode_body(headers, raw)
    except DecodeError:
        data = raw
    truncated = len(data) > cap
    data = data[:cap]
    text = body_text(headers, data)
    if text is None:
        return f"<{len(data)} bytes of binary data>", truncated
    return redact_body_text(text), truncated


def _side(resp: BackendResponse | None, cap: int) -> tuple[Any, ...]:
    if resp is None or resp.payload is None:
        return (None, None, None)
    p: Payload = resp.payload
    text, cut = body_for_review(p.headers, p.body, cap)
    return (_json(redact_headers(p.headers)), text, cut)


def exchange_row(
    ex: Exchange, comparison: Comparison, run_id: str, body_cap: int = DEFAULT_BODY_CAP
) -> tuple[Any, ...]:
    """One row of `exchanges`, in schema.EXCHANGE_COLUMNS order."""
    req = ex.request
    req_text, req_cut = body_for_review(req.headers, req.body, body_cap)
    prim, cand, sec = ex.primary, ex.candidate, ex.secondary
    return (
        ex.id,
        run_id,
        ex.started_at,
        ex.source,
        req.method,
        ex.endpoint,
        req.path,
        redact_query(req.query) or None,
        comparison.verdict.value,
        ex.skip_reason,
        prim.payload.status if prim.payload else None,
        cand.payload.status if cand and cand.payload else None,
        prim.elapsed_ms,
        cand.elapsed_ms if cand else None,
        prim.error,
        cand.error if cand else None,
        len(comparison.differences),
        comparison.truncated,
        comparison.body_kind,
        "; ".join(comparison.notes) or None,
        _json(redact_headers(req.headers)),
        req_text,
        req_cut,
        *_side(prim, body_cap),
        *_side(cand, body_cap),
        sec.payload.status if sec and sec.payload else None,
        sec.elapsed_ms if sec else None,
        sec.error if sec else None,
    )


# List steps: positions `[3]` and record keys `[id=42]`, `[code="R1"]` (not `["key"]`).
_INDEX_RE = re.compile(r"\[(?:\d+|[A-Za-z_][\w-]*=(?:\"(?:[^\"\\]|\\.)*\"|[^\]]*))\]")


def cluster_path(path: str) -> str:
    """A difference path with list indices as [*], so differences group into clusters."""
    return _INDEX_RE.sub("[*]", path)


def difference_rows(
    ex: Exchange,
    comparison: Comparison,
    run_id: str,
    status: Mapping[str, tuple[str, str | None]] | None = None,
) -> list[Sequence[Any]]:
    """Rows of `differences`; values as JSON text, secrets in header values redacted.

    `status` maps a difference path to ('noise' | 'accepted', reason); others are 'real'.
    """
    rows: list[Sequence[Any]] = []
    for d in comparison.differences:
        p, c = d.primary, d.candidate
        if d.path.startswith("$header."):
            name = d.path.removeprefix("$header.")
            p, c = (
                redact_headers([(name, str(v))])[0][1] if v is not None else None for v in (p, c)
            )
        elif is_secret_path(d.path):
            p, c = (REDACTED if v is not None else None for v in (p, c))
        elif d.path == "$body":
            p, c = (redact_body_text(v) if isinstance(v, str) else v for v in (p, c))
        state, reason = (status or {}).get(d.path, ("real", None))
        # Objects and lists may hold credential members below the difference's path.
        pj, cj = (redact_body_text(_json(v)) if isinstance(v, dict | list) else _json(v)
                  for v in (p, c))  # fmt: skip
        rows.append(
            (ex.id, run_id, ex.endpoint, d.path, d.kind.value, pj, cj,
             state, cluster_path(d.path), reason)
        )  # fmt: skip
    return rows
