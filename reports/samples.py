"""Sample exchanges: request, both answers side by side, differences, curl commands.

A WebSocket conversation or an event stream is shown as a conversation table
(reports/conversation.py) instead of its two bodies, when its stored body decodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from comparators.socketio import is_socketio
from reports import queries
from reports._sql import rows
from reports.conversation import ConversationView, conversation_view
from reports.curl import curl_command, target
from reports.jsonview import Line, body_lines

BINARY_PREFIX = "<"  # the store keeps "<N bytes of binary data>" for binary bodies
MAX_LINES = 200  # of each pretty-printed body


@dataclass(frozen=True)
class Side:
    status: int | None
    ms: float | None
    error: str | None
    headers: list[tuple[str, str]]
    lines: list[Line]
    truncated: bool  # cut by the store's cap or for display


@dataclass(frozen=True)
class Sample:
    exchange_id: str
    run_id: str
    ts: datetime
    method: str
    target: str
    verdict: str  # outcome: differ | candidate_error | tolerated
    request_headers: list[tuple[str, str]]
    request_body: str | None
    request_cut: bool
    primary: Side
    candidate: Side
    differences: list[dict[str, Any]]  # path, kind, status, reason, primary_value, candidate_value
    curl_primary: str
    curl_candidate: str
    curl_caveat: str | None  # why the command may not repeat the request exactly
    # A WebSocket conversation or event stream side by side (then `lines` are empty);
    # None for an HTTP answer or a conversation whose stored body does not decode.
    conversation: ConversationView | None = None


def headers_of(text: str | None) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in json.loads(text)] if text else []


def _side(
    r: dict[str, Any],
    name: str,
    hard: frozenset[str],
    soft: frozenset[str],
    cap: int | None,
) -> Side:
    """One answer; its body as lines cut to `cap` characters (None: no body shown)."""
    body = r[f"{name}_body"]
    lines = [] if cap is None else body_lines(body and body[:cap], hard, MAX_LINES, soft)
    return Side(
        r[f"{name}_status"],
        r[f"{name}_ms"],
        r[f"{name}_error"],
        headers_of(r[f"{name}_headers"]),
        lines,
        bool(r[f"{name}_body_cut"]),
    )


def _conversation(r: dict[str, Any], differences: list[dict[str, Any]]) -> ConversationView | None:
    return conversation_view(
        r["body_kind"],
        r["primary_body"],
        r["candidate_body"],
        differences,
        socketio=is_socketio(r["path"] or "", r["query"] or ""),
        cut=(bool(r["primary_body_stored_cut"]), bool(r["candidate_body_stored_cut"])),
    )


def _caveat(r: dict[str, Any], headers: list[tuple[str, str]]) -> str | None:
    reasons = []
    if any(v == "[REDACTED]" for _, v in headers) or "[REDACTED]" in (r["query"] or ""):
        reasons.append("secrets were redacted: fill in [REDACTED] values")
    if r["request_body_cut"]:
        reasons.append("the stored request body was cut")
    body = r["request_body"]
    if body and body.startswith(BINARY_PREFIX) and body.endswith("bytes of binary data>"):
        reasons.append("the request body was binary and is not stored")
    return "; ".join(reasons) or None


def load_samples(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    endpoints: Sequence[str],
    per_endpoint: int,
    body_chars: int,
    urls: Mapping[str, tuple[str | None, str | None]],
) -> dict[str, list[Sample]]:
    """endpoint -> its samples; `urls` maps run id -> (primary_url, candidate_url)."""
    params: dict[str, Any] = {
        "run": run_id, "eps": list(endpoints), "n": per_endpoint, "cap": body_chars,
    }  # fmt: skip
    picked = rows(con, queries.SAMPLES, params)
    if not picked:
        return {}
    diffs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    ids = sorted({r["exchange_id"] for r in picked})
    for d in rows(con, queries.SAMPLE_DIFFERENCES, {"ids": ids, "run": run_id}):
        key = (d.pop("exchange_id"), d.pop("run_id"))
        diffs.setdefault(key, []).append(d)
    out: dict[str, list[Sample]] = {}
    for r in picked:
        these = diffs.get((r["exchange_id"], r["run_id"]), [])
        hard = frozenset(d["path"] for d in these if d["status"] == "real")
        soft = frozenset(d["path"] for d in these if d["status"] != "real")
        req_headers = headers_of(r["request_headers"])
        primary_url, candidate_url = urls.get(r["run_id"], (None, None))
        request = (r["method"], r["path"], r["query"], req_headers, r["request_body"])
        conversation = _conversation(r, these)
        cap = None if conversation is not None else body_chars
        out.setdefault(r["endpoint"], []).append(
            Sample(
                exchange_id=r["exchange_id"], run_id=r["run_id"], ts=r["ts"],
                method=r["method"], target=target(r["path"], r["query"]),
                verdict=r["outcome"], request_headers=req_headers,
                request_body=r["request_body"], request_cut=bool(r["request_body_cut"]),
                primary=_side(r, "primary", hard, soft, cap),
                candidate=_side(r, "candidate", hard, soft, cap),
                differences=these,
                curl_primary=curl_command(primary_url, "PRIMARY_URL", *request),
                curl_candidate=curl_command(candidate_url, "CANDIDATE_URL", *request),
                curl_caveat=_caveat(r, req_headers), conversation=conversation,
            )
        )  # fmt: skip
    return out
