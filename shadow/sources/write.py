"""Recording traffic to files: `HarWriter` (HAR 1.2) and `JsonlWriter` (FORMAT.md).

Pure file writers: the caller passes already-redacted headers. Both are safe
to call from several threads and flush after every entry, so a crash leaves
every finished entry readable (`read_traffic` reports a HAR without its
closing brackets as truncated after the last complete entry).

HAR stores bodies decoded, as the spec asks, so a response recorded with a
Content-Encoding is written decoded (headers unchanged) and reads back
decoded without its Content-Encoding and Content-Length headers. Times:
`startedDateTime` keeps microseconds; an unknown `elapsed_ms` is written as
`"time": -1` and reads back as None.

A WebSocket exchange (a 101 whose body is a conversation, `_websocket`) is
written as each format holds one: HAR `_webSocketMessages` (Chrome's, times in
unix seconds) with our `_webSocketEnd`; the JSON Lines `"websocket"` field
(FORMAT.md); a mitmproxy flow with `flow.websocket`. The conversation began when
the 101 came: `elapsed_ms` after `started_at`. It reads back equal, times to
the microsecond (HAR, mitmproxy: within float precision of unix times).
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, urlsplit

from comparators import DecodeError, decode_body
from comparators.envelope import Conversation
from comparators.model import Headers, Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources._websocket import (
    META,
    conversation_of,
    har_websocket,
    jsonl_websocket,
    mitm_meta,
)

if TYPE_CHECKING:
    from mitmproxy.http import HTTPFlow


def _version() -> str:
    try:
        return version("shadow-parity")
    except PackageNotFoundError:
        return "0"


def dump_line(obj: Any) -> bytes:
    """Compact JSON as UTF-8; surrogate-escaped bytes (odd URLs) go back to raw bytes."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogateescape"
        )
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def _text_or_base64(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"text": base64.b64encode(data).decode("ascii"), "encoding": "base64"}


def _har_headers(headers: Headers) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers]


def _header(headers: Headers, name: str) -> str:
    return next((v for k, v in headers if k.lower() == name), "")


def _har_request(request: Request, url: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": request.method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _har_headers(request.headers),
        "queryString": [
            {"name": k, "value": v} for k, v in parse_qsl(request.query, keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": len(request.body),
    }
    if request.body:
        mime = _header(request.headers, "content-type")
        out["postData"] = {"mimeType": mime, **_text_or_base64(request.body)}
    return out


def _har_response(response: Payload | None) -> dict[str, Any]:
    if response is None:
        return {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": "no response recorded",
        }
    try:
        decoded = decode_body(response.headers, response.body)
    except DecodeError:
        decoded = response.body  # reads back as it is, without Content-Encoding
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    content: dict[str, Any] = {
        "size": len(decoded),
        "compression": len(decoded) - len(response.body),
        "mimeType": _header(response.headers, "content-type"),
    }
    if decoded:
        content.update(_text_or_base64(decoded))
    return {
        "status": response.status,
        "statusText": reason,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _har_headers(response.headers),
        "content": content,
        "redirectURL": _header(response.headers, "location"),
        "headersSize": -1,
        "bodySize": len(response.body),
    }


def har_entry(
    request: Request,
    response: Payload | None,
    started_at: float,
    elapsed_ms: float | None,
    url: str,
) -> dict[str, Any]:
    """One HAR 1.2 entry."""
    moment = datetime.fromtimestamp(started_at, UTC)
    started = moment.isoformat(timespec="microseconds")
    wait = elapsed_ms if elapsed_ms is not None and elapsed_ms >= 0 else 0
    conv = conversation_of(response)
    if conv is not None and response is not None:
        response = Payload(101, response.headers)  # the conversation goes beside it
    entry: dict[str, Any] = {
        "startedDateTime": started.replace("+00:00", "Z"),
        "time": elapsed_ms if elapsed_ms is not None else -1,
        "request": _har_request(request, url),
        "response": _har_response(response),
        "cache": {},
        "timings": {"send": 0, "wait": wait, "receive": 0},
    }
    if conv is not None:
        # Counted from the start as written (to the microsecond), as the reader counts
        entry.update(har_websocket(conv, moment.timestamp() + wait / 1000))
    return entry


def jsonl_record(
    request: Request,
    response: Payload | None,
    started_at: float,
    elapsed_ms: float | None,
    url: str,
) -> dict[str, Any]:
    """One JSON Lines record (FORMAT.md); bodies exactly as given."""
    out: dict[str, Any] = {
        "method": request.method,
        "url": url,
        "headers": [list(h) for h in request.headers],
    }
    if request.body:
        out.update(_body_fields(request.body))
    out["timestamp"] = started_at
    if elapsed_ms is not None:
        out["elapsed_ms"] = elapsed_ms
    conv = conversation_of(response)
    if response is not None:
        out["response"] = {
            "status": response.status,
            "headers": [list(h) for h in response.headers],
            **(_body_fields(response.body) if conv is None else {}),
        }
    if conv is not None:
        out["websocket"] = jsonl_websocket(conv)
    return out


def _body_fields(data: bytes) -> dict[str, str]:
    if not data:
        return {}
    try:
        return {"body": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(data).decode("ascii")}


class TrafficWriter:
    """Base of the traffic writers: one exchange per `add`, flushed at once, thread-safe."""

    _mode = "wb"

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.count = 0
        try:
            self._fh: IO[bytes] | None = open(path, self._mode)  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
        self._start()

    @classmethod
    def open(cls, path: str) -> Self:
        return cls(path)

    def _start(self) -> None:
        pass

    def _write(self, data: bytes) -> None:
        if self._fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        self._fh.write(data)
        self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is None:
                return
            self._finish()
            self._fh.close()
            self._fh = None

    def _finish(self) -> None:
        pass

    def add(
        self,
        request: Request,
        response: Payload | None,
        started_at: float,
        elapsed_ms: float | None,
        url: str,
    ) -> None:
        """Write one exchange (headers already redacted by the caller), flushed at once."""
        entry = self._encode(request, response, started_at, elapsed_ms, url)
        with self._lock:
            self._write(self._frame(entry))
            self.count += 1

    def _encode(
        self,
        request: Request,
        response: Payload | None,
        started_at: float,
        elapsed_ms: float | None,
        url: str,
    ) -> bytes:
        raise NotImplementedError

    def _frame(self, entry: bytes) -> bytes:
        """The bytes that put `entry` in the file (called under the lock)."""
        return entry

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class HarWriter(TrafficWriter):
    """Writes a HAR 1.2 file (creator "shadow"), one entry per `add`.

    The entries are streamed: the file is complete once `close()` has run.
    """

    def _start(self) -> None:
        creator = {"name": "shadow", "version": _version()}
        head = {"version": "1.2", "creator": creator, "pages": []}
        self._write(dump_line({"log": head})[:-2] + b',"entries":[\n')

    def _encode(
        self,
        request: Request,
        response: Payload | None,
        started_at: float,
        elapsed_ms: float | None,
        url: str,
    ) -> bytes:
        return dump_line(har_entry(request, response, started_at, elapsed_ms, url))

    def _frame(self, entry: bytes) -> bytes:
        return (b",\n" if self.count else b"") + entry

    def _finish(self) -> None:
        self._write(b"\n]}}\n")


class JsonlWriter(TrafficWriter):
    """Appends one JSON Lines record (FORMAT.md) per `add`, flushed at once."""

    _mode = "ab"

    def _encode(
        self,
        request: Request,
        response: Payload | None,
        started_at: float,
        elapsed_ms: float | None,
        url: str,
    ) -> bytes:
        return dump_line(jsonl_record(request, response, started_at, elapsed_ms, url))

    def _frame(self, entry: bytes) -> bytes:
        return entry + b"\n"


def _b(pairs: Headers) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in pairs)


class MitmWriter(TrafficWriter):
    """Writes mitmproxy flows (the tnetstring dump `mitmproxy -r` and FlowReader read)."""

    def _encode(
        self,
        request: Request,
        response: Payload | None,
        started_at: float,
        elapsed_ms: float | None,
        url: str,
    ) -> bytes:
        from mitmproxy import connection, http
        from mitmproxy.io import tnetstring
        from mitmproxy.proxy.mode_specs import ProxyMode

        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or "localhost"
        client = connection.Client(
            peername=("127.0.0.1", 0),
            sockname=("127.0.0.1", 0),
            timestamp_start=started_at,
            proxy_mode=ProxyMode.parse("regular"),
        )
        flow = http.HTTPFlow(client, connection.Server(address=(host, port)))
        end = started_at + (elapsed_ms or 0.0) / 1000
        flow.request = http.Request(
            host, port, request.method.encode(), parts.scheme.encode() or b"http",
            b"", request.target.encode(), b"HTTP/1.1", http.Headers(_b(request.headers)),
            request.body, None, started_at, started_at,
        )  # fmt: skip
        if response is not None:
            try:
                reason = HTTPStatus(response.status).phrase.encode()
            except ValueError:
                reason = b""
            conv = conversation_of(response)
            flow.response = http.Response(
                b"HTTP/1.1", response.status, reason, http.Headers(_b(response.headers)),
                response.body if conv is None else b"", None, started_at, end,
            )  # fmt: skip
            if conv is not None:
                _add_websocket(flow, conv, end)
        return tnetstring.dumps(flow.get_state())


def _add_websocket(flow: HTTPFlow, conv: Conversation, origin: float) -> None:
    """Give `flow` the conversation, begun at unix time `origin`."""
    from mitmproxy.websocket import WebSocketData, WebSocketMessage
    from wsproto.frame_protocol import Opcode

    messages = []
    for f in conv.frames:
        opcode = Opcode.BINARY if f.kind == "binary" else Opcode.TEXT
        message = WebSocketMessage(opcode, f.side == "client", f.raw, dropped=not f.sent)
        message.timestamp = origin + f.t_ms / 1000  # set apart: mitmproxy takes 0 for "now"
        messages.append(message)
    closed_by = {"client": True, "server": False}.get(conv.closed_by)
    last = origin + (conv.frames[-1].t_ms / 1000 if conv.frames else 0.0)
    flow.websocket = WebSocketData(
        messages, closed_by, conv.close_code, conv.close_reason or None, last
    )
    flow.metadata[META] = mitm_meta(conv)
