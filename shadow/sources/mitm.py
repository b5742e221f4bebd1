"""mitmproxy dump reader (`mitmdump -w`, `FlowWriter`): tnetstring-encoded flows.

Only HTTP flows are read; TCP, UDP and DNS flows are passed over (they still
count in `index`). Bodies are `raw_content`, exactly as on the wire (still
content-encoded); headers are decoded as latin-1 like the live addon does.
`url` is the request's `pretty_url` (Host header based, as mitmproxy's HAR
export writes it); `elapsed_ms` runs from the end of the request (its start
when missing) to the end of the response, as the live addon measures it.

A WebSocket flow (`flow.websocket`) answers with its conversation
(`_websocket.websocket_payload`): messages in order, `t_ms` from the end of the
101 (the first message when unknown). It ended in an error when nobody closed it
or the close code is 1006 (the connection broke); what mitmproxy cannot hold
(a cut message, how our own recordings ended) comes from the flow's metadata
`shadow-websocket`, written by `MitmWriter`.

Flows are read one at a time: the file is split into its top-level tnetstrings
here (so that one over `MAX_ENTRY_BYTES` can be read past unparsed, and a flow
that does not parse does not stop the reading), and mitmproxy's `FlowReader`
parses each one.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from mitmproxy import http
from mitmproxy.io import FlowReader

from comparators import envelope
from comparators.envelope import Conversation, Frame
from comparators.model import Headers, Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources._base import (
    MAX_ENTRY_BYTES,
    BadEntry,
    EntryProblem,
    Reader,
    Recorded,
    short,
    too_large,
)
from shadow.sources._websocket import (
    META,
    capped,
    check_cut,
    check_end,
    marked,
    t_ms,
    websocket_payload,
)

_MAX_DIGITS = 12  # tnetstring's own bound on a length prefix


def _headers(headers: http.Headers) -> Headers:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers.fields)


def flow_to_recorded(index: int, flow: http.HTTPFlow, limit: int = MAX_ENTRY_BYTES) -> Recorded:
    """One HTTP flow as a `Recorded`; EntryProblem when its WebSocket part is malformed."""
    req, resp = flow.request, flow.response
    path, _, query = req.path.partition("?")
    response = None
    elapsed = None
    if resp is not None:
        if flow.websocket is not None:
            conv = websocket_conversation(flow, limit)
            response = websocket_payload(_headers(resp.headers), conv)
        else:
            response = Payload(resp.status_code, _headers(resp.headers), resp.raw_content or b"")
        start = req.timestamp_end or req.timestamp_start
        if resp.timestamp_end and start:
            elapsed = (resp.timestamp_end - start) * 1000
    return Recorded(
        request=Request(
            req.method.upper(), path or "/", query, _headers(req.headers), req.raw_content or b""
        ),
        response=response,
        started_at=req.timestamp_start or None,
        elapsed_ms=elapsed,
        url=req.pretty_url,
        index=index,
    )


def websocket_conversation(flow: http.HTTPFlow, limit: int) -> Conversation:
    """The conversation of a WebSocket flow (see the module's docstring)."""
    ws = flow.websocket
    assert ws is not None
    messages, more = capped(ws.messages)
    ended = flow.response.timestamp_end if flow.response is not None else None
    origin = ended or (messages[0].timestamp if messages else 0.0)
    frames: list[Frame] = []
    for m in messages:
        side = "client" if m.from_client else "server"
        item = envelope.frame(side, t_ms(m.timestamp, origin), m.content or b"", m.is_text, limit)
        # mitmproxy's `dropped`: not passed on, so a client's message never reached the server
        frames.append(marked(item, None, None, not (m.from_client and m.dropped)))
    by = "" if ws.closed_by_client is None else "client" if ws.closed_by_client else "server"
    broke = ws.closed_by_client is None or ws.close_code == 1006 or flow.error is not None
    meta = flow.metadata.get(META, {})
    if not isinstance(meta, dict):
        raise EntryProblem(f"metadata {META} is not a dict")
    _mark_cut(frames, meta.get("cut", []))
    code, reason, by, how, dropped = check_end(
        ws.close_code, ws.close_reason or "", meta.get("closed_by", by),
        meta.get("ended", "error" if broke else "closed"), meta.get("dropped", 0),
        f"metadata {META}:",
    )  # fmt: skip
    return Conversation(envelope.WEBSOCKET, tuple(frames), code, reason, by, how, dropped + more)


def _mark_cut(frames: list[Frame], cuts: object) -> None:
    """Mark the messages our writer kept cut: `cuts` is [[index, size, sha256], ...]."""
    if not isinstance(cuts, list | tuple):
        raise EntryProblem(f"metadata {META}: cut {short(cuts)} is not a list")
    for cut in cuts:
        if not isinstance(cut, list | tuple) or len(cut) != 3 or not isinstance(cut[0], int):
            raise EntryProblem(f"metadata {META}: cut {short(cut)} is not [index, size, sha256]")
        if 0 <= cut[0] < len(frames):  # past the cap: not kept
            size, digest = check_cut(cut[1], cut[2], f"metadata {META}: message {cut[0]}")
            frames[cut[0]] = marked(frames[cut[0]], size, digest, frames[cut[0]].sent)


def read(path: str, *, max_entry_bytes: int = MAX_ENTRY_BYTES) -> Reader:
    """HTTP flows of the mitmproxy dump at `path`, in file order, one at a time.

    A flow larger than `max_entry_bytes` is a bad entry, read past unparsed.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across yields
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    index = 0
    try:
        while True:
            try:
                frame = _frame(fh, max_entry_bytes)
            except _Corrupt as exc:
                yield BadEntry(index, _corrupt(index, str(exc)), final=True)
                return
            if frame is None:
                return
            if isinstance(frame, int):
                yield BadEntry(index, too_large(max_entry_bytes, "flow"))
            else:
                try:
                    flows = list(FlowReader(io.BytesIO(frame)).stream())
                except Exception as exc:
                    # mitmproxy checks a flow's state little and fails on bad data with
                    # whatever it meets (KeyError, AttributeError, AssertionError, ...).
                    # The next flow is framed apart: only a file that is no dump stops here.
                    what = str(exc) or type(exc).__name__
                    yield BadEntry(index, _corrupt(index, what), final=index == 0)
                    if index == 0:
                        return
                    flows = []
                for flow in flows:
                    if isinstance(flow, http.HTTPFlow):
                        try:
                            item: Recorded | BadEntry = flow_to_recorded(
                                index, flow, max_entry_bytes
                            )
                        except EntryProblem as exc:
                            item = BadEntry(index, str(exc))
                        yield item
            index += 1
    finally:
        fh.close()


class _Corrupt(Exception):
    """The framing is broken: where the next flow starts cannot be known."""


def _corrupt(index: int, what: str) -> str:
    if index == 0:
        return f"not a mitmproxy flow dump, or its first flow is cut off or corrupt ({what})"
    return f"truncated or corrupt flow data ({what})"


def _frame(fh: BinaryIO, limit: int) -> bytes | int | None:
    """The next flow's tnetstring, whole; None at the end of the file.

    A dump is a series of tnetstrings, "<length>:<data><type byte>", one per
    flow. One whose data is over `limit` bytes is read past, not read, and its
    size is returned instead.
    """
    prefix = b""
    while (char := fh.read(1)).isdigit():
        prefix += char
        if len(prefix) > _MAX_DIGITS:
            raise _Corrupt("not a tnetstring: absurdly large length prefix")
    if not prefix and not char:
        return None
    if not prefix or char != b":":
        raise _Corrupt("not a tnetstring: missing or invalid length prefix")
    size = int(prefix)
    if size > limit:
        fh.seek(size, io.SEEK_CUR)
        if not fh.read(1):
            raise _Corrupt(f"the file ends inside a flow of {size} bytes")
        return size
    data = fh.read(size + 1)
    if len(data) <= size:
        raise _Corrupt(f"the file ends inside a flow: {len(data)} of its {size + 1} bytes")
    return prefix + b":" + data
