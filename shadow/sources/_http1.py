"""A small parser for raw HTTP/1.x messages as GoReplay records them.

Accepts CRLF or bare LF line ends and obsolete header folding; bodies are
framed by chunked Transfer-Encoding (de-chunked, trailers dropped), then by
Content-Length, else they run to the end of the data. Headers are decoded as
latin-1 (lossless), the request target as UTF-8 with surrogate escapes, like
mitmproxy does.
"""

from __future__ import annotations

import re

from comparators.model import Headers

_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*")
_NO_BODY_STATUS = frozenset({204, 304})


class HttpParseError(ValueError):
    pass


def _split_head(data: bytes) -> tuple[list[bytes], bytes]:
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if crlf < 0 and lf < 0:
        raise HttpParseError("no blank line after the headers (truncated?)")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, rest = data[:crlf], data[crlf + 4 :]
    else:
        head, rest = data[:lf], data[lf + 2 :]
    return [line.rstrip(b"\r") for line in head.split(b"\n")], rest


def _headers(lines: list[bytes]) -> Headers:
    out: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.decode("latin-1")
        if line[:1] in (" ", "\t"):
            if not out:
                raise HttpParseError("header continuation line before any header")
            name, value = out[-1]
            out[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpParseError(f"bad header line {line[:60]!r}")
        out.append((name, value.strip()))
    return tuple(out)


def _values(headers: Headers, name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        eol = data.find(b"\n", pos)
        if eol < 0:
            raise HttpParseError("chunked body ends without its last chunk (truncated?)")
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpParseError(f"bad chunk size {size_text[:20]!r}") from None
        pos = eol + 1
        if size == 0:
            return b"".join(out)  # trailers, if any, are dropped
        if pos + size > len(data):
            raise HttpParseError("chunk shorter than its size (truncated?)")
        out.append(data[pos : pos + size])
        pos += size
        if data[pos : pos + 2] == b"\r\n":
            pos += 2
        elif data[pos : pos + 1] == b"\n":
            pos += 1
        else:
            raise HttpParseError("chunk not followed by a line end")


def _body(headers: Headers, rest: bytes) -> bytes:
    encodings = ",".join(_values(headers, "transfer-encoding")).lower()
    if encodings.rstrip().endswith("chunked"):
        return _dechunk(rest)
    lengths = {v.strip() for v in _values(headers, "content-length")}
    if not lengths:
        return rest
    if len(lengths) > 1 or not next(iter(lengths)).isdigit():
        raise HttpParseError(f"bad Content-Length {sorted(lengths)!r}")
    length = int(next(iter(lengths)))
    if len(rest) < length:
        raise HttpParseError(f"body has {len(rest)} of its {length} bytes (truncated?)")
    return rest[:length]


def parse_request(data: bytes) -> tuple[str, str, Headers, bytes]:
    """(method, target, headers, body) of a raw request."""
    lines, rest = _split_head(data)
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or not parts[2].startswith("HTTP/"):
        raise HttpParseError(f"not an HTTP request line: {lines[0][:60]!r}")
    target = lines[0].split(b" ")[1].decode("utf-8", "surrogateescape")
    headers = _headers(lines[1:])
    return parts[0].upper(), target, headers, _body(headers, rest)


def parse_response(data: bytes, *, head_request: bool = False) -> tuple[int, Headers, bytes]:
    """(status, headers, body) of a raw response; interim 1xx responses are passed over."""
    while True:
        lines, rest = _split_head(data)
        parts = lines[0].decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HttpParseError(f"not an HTTP status line: {lines[0][:60]!r}")
        status = int(parts[1])
        headers = _headers(lines[1:])
        if 100 <= status < 200 and status != 101 and rest:
            data = rest
            continue
        if head_request or status in _NO_BODY_STATUS or 100 <= status < 200:
            return status, headers, b""
        return status, headers, _body(headers, rest)
