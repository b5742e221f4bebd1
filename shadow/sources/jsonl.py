"""JSON Lines reader: shadow's own traffic format, one exchange per line.

The format is specified in FORMAT.md next to this module. Blank lines are
allowed; `index` is the 0-based line number, so "entry 4" is line 5. A line
with a `"websocket"` field is a WebSocket exchange: its response (the 101)
answers with that conversation (`_websocket.jsonl_conversation`).
"""

from __future__ import annotations

import json
import math
from typing import Any, BinaryIO

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
    split_target,
    split_url,
    str_pairs,
    too_large,
    url_for_target,
    wire_consistent,
)
from shadow.sources._websocket import jsonl_conversation, websocket_payload

_CHUNK = 1 << 20  # bytes read at a time while passing over a line that is too long


def _headers(value: Any, what: str) -> Headers:
    if value is None:
        return ()
    if isinstance(value, dict):
        return str_pairs(value.items(), what)
    if isinstance(value, list):
        if not all(isinstance(p, list) and len(p) == 2 for p in value):
            raise EntryProblem(f"{what} must be [[name, value], ...] or {{name: value}}")
        return str_pairs(((p[0], p[1]) for p in value), what)
    raise EntryProblem(f"{what} must be [[name, value], ...] or {{name: value}}")


def _body(obj: dict[str, Any], what: str) -> bytes:
    if obj.get("body_base64") is not None:
        return b64decode(obj["body_base64"], f"{what}body_base64")
    text = obj.get("body")
    if text is None:
        return b""
    if not isinstance(text, str):
        raise EntryProblem(f"{what}body is not a string (use body_base64 for bytes)")
    return text.encode("utf-8", "surrogateescape")


def _number(obj: dict[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EntryProblem(f"{key} {short(value)} is not a number")
    return float(value)


def _response(value: Any) -> Payload | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EntryProblem("response is not an object")
    status = value.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise EntryProblem(f"response.status {short(status)} is not an HTTP status")
    headers = _headers(value.get("headers"), "response.headers")
    body = _body(value, "response.")
    return Payload(status, wire_consistent(headers, body), body)


def _websocket(obj: dict[str, Any], limit: int) -> Payload:
    response = obj.get("response")
    if not isinstance(response, dict) or response.get("status") != 101:
        raise EntryProblem("websocket needs a response with status 101 (the upgrade)")
    headers = _headers(response.get("headers"), "response.headers")
    return websocket_payload(headers, jsonl_conversation(obj["websocket"], limit))


def line_to_recorded(index: int, obj: Any, limit: int = MAX_ENTRY_BYTES) -> Recorded:
    """One line's object as a `Recorded`; `limit`: the most bytes of a message kept."""
    if not isinstance(obj, dict):
        raise EntryProblem("not a JSON object")
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise EntryProblem("missing 'method'")
    headers = _headers(obj.get("headers"), "headers")
    url, target = obj.get("url"), obj.get("path")
    if isinstance(url, str) and url:
        path, query = split_url(url)
    elif isinstance(target, str) and target.startswith("/"):
        path, query = split_target(target)
        url = url_for_target(target, headers)
    else:
        raise EntryProblem("missing 'url' (or a 'path' starting with '/')")
    body = _body(obj, "")
    if obj.get("websocket") is None:
        response = _response(obj.get("response"))
    else:
        response = _websocket(obj, limit)
    return Recorded(
        request=Request(method.upper(), path, query, wire_consistent(headers, body), body),
        response=response,
        started_at=_number(obj, "timestamp"),
        elapsed_ms=_number(obj, "elapsed_ms"),
        url=url,
        index=index,
    )


def read(path: str, *, max_entry_bytes: int = MAX_ENTRY_BYTES) -> Reader:
    """Entries of the JSON Lines file at `path`, streamed line by line.

    A line longer than `max_entry_bytes` is a bad entry; it is passed over
    without being held in memory and reading goes on at the next line.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across yields
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        index = -1
        # readline(limit + 1): at most the limit and the newline; more means too long
        while raw := fh.readline(max_entry_bytes + 1):
            index += 1
            where = f"entry {index} (line {index + 1})"
            if len(raw) > max_entry_bytes and not raw.endswith(b"\n"):
                _skip_line(fh)
                yield BadEntry(index, too_large(max_entry_bytes, "line"), where=where)
                continue
            line = raw.decode("utf-8", "surrogateescape").strip()
            if index == 0:
                line = line.removeprefix("\ufeff")
            if not line:
                continue
            try:
                obj = json.loads(line)
            except RecursionError:
                yield BadEntry(index, "nested too deeply to decode", where=where)
                continue
            except ValueError as exc:
                cut = "" if raw.endswith(b"\n") else " (last line, cut off?)"
                yield BadEntry(index, f"not valid JSON: {exc}{cut}", where=where)
                continue
            try:
                yield line_to_recorded(index, obj, max_entry_bytes)
            except EntryProblem as exc:
                yield BadEntry(index, str(exc), where=where)
    finally:
        fh.close()


def _skip_line(fh: BinaryIO) -> None:
    """Read to the end of the current line, a chunk at a time."""
    while (rest := fh.readline(_CHUNK)) and not rest.endswith(b"\n"):
        pass
