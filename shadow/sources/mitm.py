"""mitmproxy dump reader (`mitmdump -w`, `FlowWriter`): tnetstring-encoded flows.

Only HTTP flows are read; TCP, UDP and DNS flows are passed over (they still
count in `index`). Bodies are `raw_content`, exactly as on the wire (still
content-encoded); headers are decoded as latin-1 like the live addon does.
`url` is the request's `pretty_url` (Host header based, as mitmproxy's HAR
export writes it); `elapsed_ms` runs from the end of the request (its start
when missing) to the end of the response, as the live addon measures it.
"""

from __future__ import annotations

from mitmproxy import exceptions, http
from mitmproxy.io import FlowReader

from comparators.model import Headers, Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources._base import BadEntry, Reader, Recorded


def _headers(headers: http.Headers) -> Headers:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers.fields)


def flow_to_recorded(index: int, flow: http.HTTPFlow) -> Recorded:
    req, resp = flow.request, flow.response
    path, _, query = req.path.partition("?")
    response = None
    elapsed = None
    if resp is not None:
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


def read(path: str) -> Reader:
    """HTTP flows of the mitmproxy dump at `path`, in file order."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across yields
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    index = 0
    try:
        for flow in FlowReader(fh).stream():
            if isinstance(flow, http.HTTPFlow):
                yield flow_to_recorded(index, flow)
            index += 1
    except (exceptions.FlowReadException, KeyError) as exc:  # KeyError: malformed flow state
        if index == 0:
            reason = f"not a mitmproxy flow dump, or its first flow is cut off or corrupt ({exc})"
        else:
            reason = f"truncated or corrupt flow data ({exc})"
        yield BadEntry(index, reason, final=True)
    finally:
        fh.close()
