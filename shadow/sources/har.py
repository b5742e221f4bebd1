"""HAR 1.2 reader (browser DevTools, mitmproxy, Charles, Fiddler, our HarWriter).

The file is parsed whole with `json.loads`. When that fails (a file cut off
mid-write, a broken entry) the entries are walked one by one instead, so the
complete entries before the damage are still delivered and the error names
the entry where the damage is.

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
- `startedDateTime` gives `started_at`, `time` gives `elapsed_ms` (negative -> None).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from comparators.model import Headers, Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources._base import (
    BadEntry,
    EntryProblem,
    Reader,
    Recorded,
    b64decode,
    short,
    split_url,
    wire_consistent,
)

_WS = " \t\n\r"


def read(path: str) -> Reader:
    """Entries of the HAR file at `path`, in file order."""
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        yield from _read_damaged(path, text)
        return
    entries = _entries_of(path, doc)
    for index, entry in enumerate(entries):
        yield from _convert(index, entry)


def _entries_of(path: str, doc: Any) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("log"), dict):
        raise InputError(f'{path}: not a HAR file (no "log" object)')
    entries = doc["log"].get("entries")
    if not isinstance(entries, list):
        raise InputError(f'{path}: not a HAR file (no "log.entries" list)')
    return entries


def _convert(index: int, entry: Any) -> Iterator[Recorded | BadEntry]:
    try:
        recorded = entry_to_recorded(index, entry)
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


def entry_to_recorded(index: int, entry: Any) -> Recorded | None:
    """One HAR entry as a `Recorded`; None for entries that are not HTTP traffic."""
    entry = _obj(entry, "entry")
    request = _obj(entry.get("request"), "request")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise EntryProblem("request has no url")
    scheme = urlsplit(url).scheme.lower()
    if scheme and scheme not in ("http", "https"):
        return None  # data:, blob:, ws: ... are not traffic to replay
    method = request.get("method")
    if not isinstance(method, str) or not method:
        raise EntryProblem("request has no method")
    path, query = split_url(url)
    headers = _headers(request.get("headers"), "request.headers")
    body = _post_data(request)
    return Recorded(
        request=Request(method.upper(), path, query, wire_consistent(headers, body), body),
        response=_response(entry),
        started_at=_started_at(entry),
        elapsed_ms=_elapsed(entry),
        url=url,
        index=index,
    )


# -- damaged files ---------------------------------------------------------------


class _Damage(Exception):
    def __init__(self, pos: int, reason: str, *, cut: bool = False) -> None:
        super().__init__(reason)
        self.pos = pos
        self.reason = reason
        self.cut = cut  # the text ends where more was expected


class _Walker:
    """Walks {"log": {..., "entries": [e0, e1, ...]}} yielding entries until it breaks."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.decoder = json.JSONDecoder()
        self.found_entries = False
        self.in_entry = False
        self.entries_closed = False

    def _ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def _peek(self) -> str:
        self._ws()
        if self.pos >= len(self.text):
            raise _Damage(self.pos, "unexpected end of file", cut=True)
        return self.text[self.pos]

    def _expect(self, chars: str) -> str:
        char = self._peek()
        if char not in chars:
            raise _Damage(self.pos, f"expected {' or '.join(repr(c) for c in chars)}")
        self.pos += 1
        return char

    def _value(self) -> Any:
        self._peek()
        try:
            value, self.pos = self.decoder.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as exc:
            cut = not self.text.rstrip(_WS).endswith("}")
            raise _Damage(exc.pos, exc.msg, cut=cut) from None
        return value

    def _members(self) -> Iterator[str]:
        """Keys of the object starting here; the caller consumes each value."""
        self._expect("{")
        if self._peek() == "}":
            self.pos += 1
            return
        while True:
            if self._peek() != '"':
                raise _Damage(self.pos, "expected a key")
            key = self._value()
            self._expect(":")
            yield key
            if self._expect(",}") == "}":
                return

    def entries(self) -> Iterator[Any]:
        for key in self._members():
            if key != "log":
                self._value()
                continue
            for log_key in self._members():
                if log_key != "entries":
                    self._value()
                    continue
                self.found_entries = True
                self._expect("[")
                if self._peek() == "]":
                    self.pos += 1
                else:
                    while True:
                        self.in_entry = True
                        entry = self._value()
                        self.in_entry = False
                        yield entry
                        if self._expect(",]") == "]":
                            break
                self.entries_closed = True
        self._ws()
        if self.pos < len(self.text):
            raise _Damage(self.pos, "extra data after the HAR object")

    def where(self, pos: int) -> str:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return f"line {line} column {col}"


def _read_damaged(path: str, text: str) -> Reader:
    walker = _Walker(text)
    index = 0
    try:
        for entry in walker.entries():
            yield from _convert(index, entry)
            index += 1
    except _Damage as exc:
        reason = f"{exc.reason} ({walker.where(exc.pos)})"
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
