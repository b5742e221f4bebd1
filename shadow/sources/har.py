"""HAR 1.2 reader (browser DevTools, mitmproxy, Charles, Fiddler, our HarWriter).

The file is streamed (`_jsontext.JsonText`): each entry of `log.entries` is
decoded on its own and handed out before the next one is read, so memory
follows the largest entry, not the file. An entry larger than
`max_entry_bytes` is passed over (its end is found by a scan that decodes
nothing) and reported as a bad entry; reading goes on after it. A damaged
file (cut off mid-write, a broken entry) still delivers every complete entry
before the damage, and the error names the entry and the line and column
where the damage is. Bytes that are not UTF-8 are kept (surrogateescape), so
an entry with them is read, not refused.

Normalisation, all documented in README/FORMAT.md:
- path and raw query come from `request.url` (fragment dropped); `queryString`
  is ignored; entries whose URL is not http(s) (data:, blob:, ws:) are skipped;
- HTTP/2 pseudo-headers (":authority", ":path", ...) are dropped;
- `postData.text` (or `encoding: "base64"`) is the request body; `params`
  alone are re-encoded as a form only for urlencoded forms;
- HAR bodies are decoded: a response (or request) body that does not decode
  with its declared Content-Encoding loses that header and Content-Length;
- text bodies are encoded as UTF-8 whatever charset the server used;
- response `status` 0 (or no response) means no answer: `response=None`;
- `startedDateTime` gives `started_at`, `time` gives `elapsed_ms` (negative -> None);
- an entry with `_webSocketMessages` (Chrome, mitmproxy, our HarWriter) answered
  101 (or with no answer but messages) is a WebSocket conversation (see
  `_websocket.har_conversation`); its ws(s): URL reads as http(s):.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from comparators.model import Headers, Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources._base import (
    MAX_ENTRY_BYTES,
    BadEntry,
    EntryProblem,
    Reader,
    Recorded,
    b64decode,
    short,
    split_url,
    wire_consistent,
)
from shadow.sources._jsontext import Damage, JsonText, Unreadable
from shadow.sources._websocket import har_conversation, websocket_payload

_BOM = b"\xef\xbb\xbf"


def read(path: str, *, max_entry_bytes: int = MAX_ENTRY_BYTES) -> Reader:
    """Entries of the HAR file at `path`, in file order, one at a time."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across yields
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if fh.read(len(_BOM)) != _BOM:
            fh.seek(0)
        yield from _read_entries(path, JsonText(fh, max_entry_bytes), max_entry_bytes)
    finally:
        fh.close()


def _convert(index: int, entry: Any, limit: int) -> Iterator[Recorded | BadEntry]:
    try:
        recorded = entry_to_recorded(index, entry, limit)
    except EntryProblem as exc:
        yield BadEntry(index, str(exc))
        return
    if recorded is not None:
        yield recorded


# -- one entry -----------------------------------------------------------------


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EntryProblem(f"{what} is missing or not an object")
    return value


def _headers(value: Any, what: str) -> Headers:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise EntryProblem(f"{what} is not a list")
    out: list[tuple[str, str]] = []
    for item in value:
        if isinstance(item, dict):
            name, val = item.get("name"), item.get("value")
        elif isinstance(item, list) and len(item) == 2:  # [name, value], as Slack writes
            name, val = item
        else:
            raise EntryProblem(f"{what}: {short(item)} is not a header")
        if not isinstance(name, str) or not isinstance(val, str):
            raise EntryProblem(f"{what}: {short(item)} is not a name/value pair of strings")
        if not name.startswith(":"):  # HTTP/2 pseudo-headers are not headers
            out.append((name, val))
    return tuple(out)


def _text_body(content: dict[str, Any], what: str) -> bytes:
    text = content.get("text")
    if text is None:
        return b""
    encoding = content.get("encoding")
    if encoding in (None, ""):
        if not isinstance(text, str):
            raise EntryProblem(f"{what}.text is not a string")
        return text.encode("utf-8", "surrogateescape")
    if encoding == "base64":
        return b64decode(text, f"{what}.text")
    raise EntryProblem(f"{what}.encoding {short(encoding)} is not supported")


def _post_data(request: dict[str, Any]) -> bytes:
    post = request.get("postData")
    if post is None:
        return b""
    post = _obj(post, "request.postData")
    if post.get("text") is not None:
        return _text_body(post, "request.postData")
    params = post.get("params") or []
    if not params:
        return b""
    mime = str(post.get("mimeType") or "")
    if mime and "x-www-form-urlencoded" not in mime:
        raise EntryProblem(f"request.postData has params but no text; cannot rebuild a {mime} body")
    pairs = [
        (str(p.get("name", "")), str(p.get("value", ""))) for p in params if isinstance(p, dict)
    ]
    return urlencode(pairs).encode()


def _started_at(entry: dict[str, Any]) -> float | None:
    value = entry.get("startedDateTime")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _elapsed(entry: dict[str, Any]) -> float | None:
    value = entry.get("time")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _response(entry: dict[str, Any]) -> Payload | None:
    resp = entry.get("response")
    if resp is None:
        return None
    resp = _obj(resp, "response")
    status = resp.get("status")
    if isinstance(status, bool) or not isinstance(status, int):
        raise EntryProblem(f"response.status {short(status)} is not an integer")
    if status == 0:  # how browsers and mitmproxy write "no response"
        return None
    headers = _headers(resp.get("headers"), "response.headers")
    content = resp.get("content")
    body = _text_body(_obj(content, "response.content"), "response.content") if content else b""
    return Payload(status, wire_consistent(headers, body), body)


def _origin(entry: dict[str, Any], started_at: float | None) -> float | None:
    """When the answer (the 101) had come: `startedDateTime` plus the timings."""
    if started_at is None:
        return None
    timings = entry.get("timings")
    if isinstance(timings, dict):
        spent = [timings.get(k) for k in ("blocked", "dns", "connect", "send", "wait", "receive")]
        numbers = [v for v in spent if isinstance(v, int | float) and not isinstance(v, bool)]
        return started_at + sum(v for v in numbers if v > 0) / 1000
    return started_at + (_elapsed(entry) or 0.0) / 1000


def _websocket(
    entry: dict[str, Any], response: Payload | None, started_at: float | None, limit: int
) -> Payload | None:
    """The answer of an entry with `_webSocketMessages`: a conversation, if it was one."""
    messages = entry["_webSocketMessages"]
    if not isinstance(messages, list):
        raise EntryProblem("_webSocketMessages is not a list")
    if (response is None and not messages) or (response is not None and response.status != 101):
        return response  # no answer, or a refused upgrade: an answer like any other
    conv = har_conversation(messages, entry.get("_webSocketEnd"), _origin(entry, started_at), limit)
    return websocket_payload(response.headers if response is not None else (), conv)


def entry_to_recorded(index: int, entry: Any, limit: int = MAX_ENTRY_BYTES) -> Recorded | None:
    """One HAR entry as a `Recorded`; None for entries that are not HTTP traffic.

    `limit`: the most bytes of one WebSocket message kept (the rest: size and digest).
    """
    entry = _obj(entry, "entry")
    request = _obj(entry.get("request"), "request")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise EntryProblem("request has no url")
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:  # "Invalid IPv6 URL": an unbalanced "[" in the host
        raise EntryProblem(f"request.url is not a valid URL ({exc}): {short(url)}") from None
    if scheme in ("ws", "wss") and "_webSocketMessages" in entry:
        url = "http" + url[2:]  # the handshake is an HTTP GET to the same place
    elif scheme and scheme not in ("http", "https"):
        return None  # data:, blob:, ws: ... are not traffic to replay
    method = request.get("method")
    if not isinstance(method, str) or not method:
        raise EntryProblem("request has no method")
    path, query = split_url(url)
    headers = _headers(request.get("headers"), "request.headers")
    body = _post_data(request)
    response = _response(entry)
    started_at = _started_at(entry)
    if "_webSocketMessages" in entry:
        response = _websocket(entry, response, started_at, limit)
    return Recorded(
        request=Request(method.upper(), path, query, wire_consistent(headers, body), body),
        response=response,
        started_at=started_at,
        elapsed_ms=_elapsed(entry),
        url=url,
        index=index,
    )


# -- the entries, walked ----------------------------------------------------------


class _NotHar(Exception):
    """Valid so far, but not shaped like a HAR file."""


@dataclass(frozen=True, slots=True)
class _Skipped:
    """An entry passed over without being decoded, and why."""

    reason: str


class _Walker:
    """Walks {"log": {..., "entries": [e0, e1, ...]}} handing out entries until it breaks."""

    def __init__(self, text: JsonText) -> None:
        self.text = text
        self.found_entries = False
        self.in_entry = False
        self.entries_closed = False

    def _members(self) -> Iterator[str]:
        """Keys of the object at the cursor; the caller reads or skips each value."""
        text = self.text
        text.expect("{")
        if text.peek() == "}":
            text.pos += 1
            return
        while True:
            if text.peek() != '"':
                raise Damage("expected a key", text.where())
            try:
                key = text.value()
            except Unreadable as exc:
                raise Damage(f"a key that cannot be read: {exc.reason}", text.where()) from None
            text.expect(":")
            yield key
            if text.expect(",}") == "}":
                return

    def _skip_value(self) -> None:
        try:
            self.text.value()  # decoded to check it, as a whole-file parse would
        except Unreadable:
            self.text.skip()

    def _entry(self) -> Any:
        try:
            return self.text.value()
        except Unreadable as exc:
            self.text.skip()
            return _Skipped(exc.reason)

    def entries(self) -> Iterator[Any]:
        text = self.text
        found_log = False
        for key in self._members():
            if key != "log":
                self._skip_value()
                continue
            if text.peek() != "{":
                raise _NotHar('no "log" object')
            found_log = True
            for log_key in self._members():
                if log_key != "entries":
                    self._skip_value()
                    continue
                if text.peek() != "[":
                    raise _NotHar('no "log.entries" list')
                self.found_entries = True
                text.expect("[")
                if text.peek() == "]":
                    text.pos += 1
                else:
                    while True:
                        self.in_entry = True
                        entry = self._entry()
                        self.in_entry = False
                        yield entry
                        if text.expect(",]") == "]":
                            break
                self.entries_closed = True
            if not self.found_entries:
                raise _NotHar('no "log.entries" list')
        if not found_log:
            raise _NotHar('no "log" object')
        if not text.at_end():
            raise Damage("extra data after the HAR object", text.where())


def _read_entries(path: str, text: JsonText, limit: int) -> Reader:
    walker = _Walker(text)
    index = 0
    try:
        for entry in walker.entries():
            if isinstance(entry, _Skipped):
                yield BadEntry(index, entry.reason)
            else:
                yield from _convert(index, entry, limit)
            index += 1
    except _NotHar as exc:
        raise InputError(f"{path}: not a HAR file ({exc})") from None
    except Damage as exc:
        reason = f"{exc.reason} ({exc.where})"
        if exc.cut:
            reason += "; the file is cut off (truncated)"
        if not walker.found_entries:
            raise InputError(f"{path}: not valid HAR/JSON: {reason}") from None
        if walker.in_entry:
            yield BadEntry(index, f"invalid or incomplete JSON: {reason}", final=True)
        elif walker.entries_closed or index:
            where = "after the last entry" if walker.entries_closed else f"after entry {index - 1}"
            yield BadEntry(index, reason, final=True, where=where)
        else:
            yield BadEntry(index, reason, final=True, where="at the start of the entries")
