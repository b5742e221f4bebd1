"""Turning an exchange and its comparison into rows of the store.

Secrets are redacted here, on the only road into the database; bodies are
decoded for the reviewer and cut to a size cap, with a flag when cut.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from comparators import DecodeError, body_text, cluster_path, decode_body, envelope
from comparators.decode import DecodedTooLarge
from comparators.model import Comparison, Difference, Headers, Payload, first_header
from shadow.model import BackendResponse, Exchange
from shadow.pipeline.redact import DEFAULT, REDACTED, Redactor
from shadow.store.rows import ConversationRow, DifferenceRow, ExchangeRow, NoiseRow

DEFAULT_BODY_CAP = 64 * 1024


ESCAPED_NOTE = "bytes that are not UTF-8 stored as \\xNN"


def storable(text: str) -> str:
    """`text` as valid UTF-8: bytes that were not (surrogates) become `\\xNN` escapes.

    mitmproxy and Python keep undecodable bytes of a path or header as lone
    surrogates (surrogateescape); the store takes UTF-8 only.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


R = TypeVar("R", ExchangeRow, DifferenceRow, NoiseRow)


def storable_row(row: R) -> tuple[R, bool]:
    """The row with every text made valid UTF-8, and whether anything was escaped."""
    for value in row:  # nearly always all ASCII: decided in one pass
        if type(value) is str and not value.isascii():
            break
    else:
        return row, False
    fixed: dict[str, Any] = {}
    for name, value in zip(row._fields, row, strict=True):
        if isinstance(value, str):
            clean = storable(value)
            if clean is not value:
                fixed[name] = clean
    if not fixed:
        return row, False
    return row._replace(**fixed), True


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # json.dumps makes one a call


def _json(value: Any) -> str:
    return _ENCODER.encode(value)


_HEADERS_MEMO = 512  # header lists remembered per redactor (answers repeat theirs)
_HEADERS_MEMO_SIZE = 4096  # characters of a header list worth remembering


def headers_json(headers: Headers, redactor: Redactor) -> str:
    """`headers` redacted, as the JSON text of a row. Many answers carry the same headers
    (a backend's are alike but for Date): the text is remembered per redactor."""
    memo = redactor.memo
    text = memo.get(headers) if type(headers) is tuple else None
    if text is None:
        text = _json(redactor.headers(headers))
        if type(headers) is tuple and len(text) <= _HEADERS_MEMO_SIZE:
            if len(memo) >= _HEADERS_MEMO:
                memo.clear()
            memo[headers] = text
    return text


def body_for_review(
    headers: Headers, raw: bytes, cap: int, redactor: Redactor = DEFAULT
) -> tuple[str | None, bool]:
    """Decoded, redacted body text cut to `cap` bytes, and whether it was cut (cap 0: not kept)."""
    if not raw or cap <= 0:
        return None, False
    try:
        # Only `cap` bytes are kept: decoding far past them (a bomb to 16 MiB) would
        # cost the comparison process time and memory for nothing.
        data = decode_body(headers, raw, limit=cap)
    except DecodedTooLarge as exc:
        if not exc.partial:
            return f"<over {cap} bytes after decoding: not kept>", True
        data = exc.partial + b"\0"  # one byte past the cap: marked cut below
    except DecodeError:
        data = raw
    truncated = len(data) > cap
    data = data[:cap]
    text = body_text(headers, data)
    if text is None:
        return f"<{len(data)} bytes of binary data>", truncated
    return redactor.body_text(text, first_header(headers, "content-type")), truncated


# A Socket.IO / Engine.IO frame: its packet digits, attachments, namespace and ack id, then
# JSON (`42/admin,7["progress",{...}]`): the JSON part is redacted like a body.
_PACKET = re.compile(r"(\d{1,2}(?:\d+-)?(?:/[^,\[{]*,)?\d*)([\[{].*)\Z", re.DOTALL)


def _frame_text(data: str, redactor: Redactor) -> str:
    """One message's text with its secrets hidden: JSON as a body, Socket.IO by its JSON."""
    if (match := _PACKET.match(data)) is not None:
        return match.group(1) + redactor.body_text(match.group(2), "application/json")
    return redactor.body_text(data, None)


def conversation_for_review(
    body: bytes, cap: int, redactor: Redactor, keep_binary: bool = False
) -> tuple[str | None, bool]:
    """A conversation (comparators.envelope) with each message redacted, kept whole as JSON:
    frames past `cap` bytes are left out (and it is marked cut), never cut mid-document.

    Binary messages keep only their length and digest, unless `keep_binary` (a recording
    for replay: its client messages must be sent again as they were)."""
    if cap <= 0 or not body:
        return None, False
    try:
        conv = envelope.decode(body)
    except DecodeError:
        return "<not a readable conversation>", False
    frames: list[envelope.Frame] = []
    used = 0
    cut = False
    for f in conv.frames:
        if f.kind == "binary" and not keep_binary:
            # Like a binary body: its length and digest, never its bytes (they may hold
            # anything, secrets included, and no redaction can read them).
            digest = f.sha256 or hashlib.sha256(f.raw).hexdigest()
            f = dataclasses.replace(f, data="", cut=True, sha256=digest)
        data = f.data if f.kind == "binary" else _frame_text(f.data, redactor)
        used += len(data) + 80  # the frame's own fields, roughly
        if used > cap:
            cut = True
            break
        frames.append(dataclasses.replace(f, data=data))
    kept = dataclasses.replace(
        conv, frames=tuple(frames), close_reason=redactor.text(conv.close_reason)
    )
    return envelope.encode(kept).decode("utf-8", "replace"), cut


def _side(
    resp: BackendResponse | None, cap: int, redactor: Redactor
) -> tuple[str | None, str | None, bool | None]:
    if resp is None or resp.payload is None:
        return (None, None, None)
    p: Payload = resp.payload
    if p.stream:
        text, cut = conversation_for_review(p.body, cap, redactor)
        return (headers_json(p.headers, redactor), text, cut)
    if p.cut and cap > 0:  # only its first bytes reached us: nothing worth showing
        note = f"<{p.full_size} bytes, over the body limit: compared by length and SHA-256>"
        return (headers_json(p.headers, redactor), note, True)
    text, cut = body_for_review(p.headers, p.body, cap, redactor)
    return (headers_json(p.headers, redactor), text, cut)


def _talk(resp: BackendResponse | None) -> envelope.Conversation | None:
    p = resp.payload if resp is not None else None
    if p is None or not p.stream:
        return None
    try:
        return envelope.decode(p.body)
    except DecodeError:
        return None


def conversation_rows(ex: Exchange, run_id: str) -> list[ConversationRow]:
    """The `conversations` row of a WebSocket or event-stream exchange (none for others)."""
    prim, cand = _talk(ex.primary), _talk(ex.candidate)
    either = prim or cand
    if either is None:
        return []

    def server(c: envelope.Conversation | None) -> int | None:
        return None if c is None else sum(f.side == "server" for f in c.frames)

    return [
        ConversationRow(
            exchange_id=ex.id,
            run_id=run_id,
            kind=either.kind,
            client_messages=sum(f.side == "client" for f in either.frames),
            primary_messages=server(prim),
            candidate_messages=server(cand),
            primary_ended=prim.ended if prim else None,
            candidate_ended=cand.ended if cand else None,
            primary_close_code=prim.close_code if prim else None,
            candidate_close_code=cand.close_code if cand else None,
            dropped=(prim.dropped if prim else 0) + (cand.dropped if cand else 0),
        )
    ]


def _error(text: str | None, redactor: Redactor) -> str | None:
    # An error's text may quote the URL it failed on, query string included.
    return redactor.text(text) if text else text


def exchange_row(
    ex: Exchange,
    comparison: Comparison,
    run_id: str,
    body_cap: int = DEFAULT_BODY_CAP,
    redactor: Redactor = DEFAULT,
) -> ExchangeRow:
    """The row of `exchanges` for one judged exchange (its verdict is the provisional one).

    The stored path is redacted (`redactor.path`); `ex.endpoint`, from the raw
    path, is kept as it was grouped.
    """
    req = ex.request
    req_text, req_cut = body_for_review(req.headers, req.body, body_cap, redactor)
    prim, cand, sec = ex.primary, ex.candidate, ex.secondary
    p_headers, p_body, p_cut = _side(prim, body_cap, redactor)
    c_headers, c_body, c_cut = _side(cand, body_cap, redactor)
    row = ExchangeRow(
        exchange_id=ex.id,
        run_id=run_id,
        ts=datetime.fromtimestamp(ex.started_at, UTC).replace(tzinfo=None),
        source=ex.source,
        method=req.method,
        endpoint=ex.endpoint,
        path=redactor.path(req.path),
        query=redactor.query(req.query) or None,
        verdict=comparison.verdict.value,
        skip_reason=ex.skip_reason,
        primary_status=prim.payload.status if prim.payload else None,
        candidate_status=cand.payload.status if cand and cand.payload else None,
        primary_ms=prim.elapsed_ms,
        candidate_ms=cand.elapsed_ms if cand else None,
        primary_error=_error(prim.error, redactor),
        candidate_error=_error(cand.error, redactor) if cand else None,
        diff_count=len(comparison.differences),
        diffs_truncated=comparison.truncated,
        body_kind=comparison.body_kind,
        notes="; ".join(comparison.notes) or None,
        request_headers=headers_json(req.headers, redactor),
        request_body=req_text,
        request_body_truncated=req_cut,
        primary_headers=p_headers,
        primary_body=p_body,
        primary_body_truncated=p_cut,
        candidate_headers=c_headers,
        candidate_body=c_body,
        candidate_body_truncated=c_cut,
        secondary_status=sec.payload.status if sec and sec.payload else None,
        secondary_ms=sec.elapsed_ms if sec else None,
        secondary_error=_error(sec.error, redactor) if sec else None,
        mode=ex.mode,
        served_by=ex.served_by if ex.mode is not None else None,
        fell_back=ex.fell_back if ex.mode is not None else None,
        lag_ms=cand.lag_ms if cand else None,
        primary_lag_ms=prim.lag_ms,
    )
    row, escaped = storable_row(row)
    if escaped:
        row = row._replace(notes="; ".join(filter(None, [row.notes, ESCAPED_NOTE])))
    return row


def _stored(row: R) -> R:
    return storable_row(row)[0]


def clustered(
    differences: Iterable[Difference],
) -> Iterator[tuple[Difference, tuple[str, str], bool]]:
    """Each difference with its (cluster path, kind) and whether it is the first of those."""
    seen: set[tuple[str, str]] = set()
    for d in differences:
        key = (cluster_path(d.path), d.kind.value)
        yield d, key, key not in seen
        seen.add(key)


def noise_rows(ex: Exchange, noisy: Comparison | None, run_id: str) -> list[NoiseRow]:
    """Rows of `noise_differences`: the primary-vs-secondary differences (evidence)."""
    return [
        _stored(
            NoiseRow(
                exchange_id=ex.id,
                run_id=run_id,
                endpoint=ex.endpoint,
                path=d.path,
                cluster_path=key[0],
                kind=key[1],
                cluster_first=first,
            )
        )
        for d, key, first in clustered(noisy.differences if noisy is not None else ())
    ]


def difference_rows(
    ex: Exchange,
    comparison: Comparison,
    run_id: str,
    status: Mapping[str, tuple[str, str | None]] | None = None,
    secondary: Collection[tuple[str, str]] | None = None,
    redactor: Redactor = DEFAULT,
) -> list[DifferenceRow]:
    """Rows of `differences`; values as JSON text, secrets redacted.

    `status` maps a difference path to ('noise' | 'accepted', reason); others are 'real'.
    `secondary`: the (cluster path, kind) pairs that differ primary-vs-secondary in this
    exchange, or None without a usable secondary.
    """
    rows: list[DifferenceRow] = []
    for d, key, first in clustered(comparison.differences):
        p, c = d.primary, d.candidate
        if d.path.startswith("$header."):
            name = d.path.removeprefix("$header.")
            p, c = (
                redactor.headers([(name, str(v))])[0][1] if v is not None else None for v in (p, c)
            )
        elif redactor.is_secret_path(d.path):
            p, c = (REDACTED if v is not None else None for v in (p, c))
        elif d.path == "$body":
            p, c = (redactor.body_text(v) if isinstance(v, str) else v for v in (p, c))
        elif d.path.startswith(("$ws", "$sse")):
            # A whole message as text (Socket.IO framing, STOMP, XML...): redacted as the
            # stored conversation's messages are; values inside one: as JSON values.
            p, c = (_frame_text(v, redactor) if isinstance(v, str) else redactor.value(v)
                    for v in (p, c))  # fmt: skip
        else:
            # Objects and lists may hold secret members below the path, strings URLs.
            p, c = (redactor.value(v) for v in (p, c))
        state, reason = (status or {}).get(d.path, ("real", None))
        pj, cj = _json(p), _json(c)
        rows.append(
            _stored(
                DifferenceRow(
                    exchange_id=ex.id,
                    run_id=run_id,
                    endpoint=ex.endpoint,
                    path=d.path,
                    kind=d.kind.value,
                    primary_value=pj,
                    candidate_value=cj,
                    status=state,
                    cluster_path=key[0],
                    reason=reason,
                    secondary_same=None if secondary is None else key in secondary,
                    cluster_first=first,
                )
            )
        )
    return rows
