"""Turning wire bytes into comparable content: Content-Encoding, media type, charset."""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Callable, Iterable

import brotli

from comparators.errors import DecodeError

HeaderPairs = Iterable[tuple[str, str]]

# Media types that are binary whatever their bytes happen to look like.
_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/")
_BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-protobuf",
        "application/protobuf",
        "application/grpc",
        "application/msgpack",
        "application/x-msgpack",
        "application/wasm",
    }
)


def header_values(headers: HeaderPairs, name: str) -> list[str]:
    """All values of header `name` (case-insensitive), in wire order."""
    lname = name.lower()
    return [value for key, value in headers if key.lower() == lname]


def _content_type(headers: HeaderPairs) -> str:
    values = header_values(headers, "content-type")
    return values[0] if values else ""


def media_type(headers: HeaderPairs) -> str:
    """The media type of Content-Type, lowercased without parameters ("" if absent)."""
    return _content_type(headers).split(";", 1)[0].strip().lower()


def charset(headers: HeaderPairs) -> str | None:
    """The `charset` parameter of Content-Type, lowercased and unquoted, or None."""
    for param in _content_type(headers).split(";")[1:]:
        key, sep, value = param.partition("=")
        if sep and key.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def is_json_media_type(mtype: str) -> bool:
    """True for application/json, the legacy text/json and any `+json` suffix."""
    return mtype in ("application/json", "text/json") or mtype.endswith("+json")


def is_binary_media_type(mtype: str) -> bool:
    """True for media types whose bodies are never text."""
    return mtype in _BINARY_TYPES or mtype.startswith(_BINARY_PREFIXES)


def _gunzip(data: bytes) -> bytes:
    # gzip.decompress handles multi-member streams and checks the CRC and length.
    return gzip.decompress(data)


def _inflate(data: bytes) -> bytes:
    # "deflate" is meant to be zlib-wrapped, but many servers send raw deflate.
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
        decomp = zlib.decompressobj(wbits)
        try:
            out = decomp.decompress(data) + decomp.flush()
        except zlib.error:
            continue
        if decomp.eof:  # otherwise the stream was truncated
            return out
    raise DecodeError("corrupt deflate data")


def _unbrotli(data: bytes) -> bytes:
    return brotli.decompress(data)


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
}


def content_encodings(headers: HeaderPairs) -> list[str]:
    """Content-Encoding tokens in the order they were applied (identity dropped)."""
    tokens: list[str] = []
    for value in header_values(headers, "content-encoding"):
        tokens.extend(t.strip().lower() for t in value.split(","))
    return [t for t in tokens if t and t != "identity"]


def decode_body(headers: HeaderPairs, body: bytes) -> bytes:
    """Undo the Content-Encoding of `body`; chained encodings are undone last-first.

    Raises DecodeError on corrupt data or an unsupported encoding.
    """
    if not body:
        return body
    for token in reversed(content_encodings(headers)):
        decoder = _DECODERS.get(token)
        if decoder is None:
            raise DecodeError(f"unsupported content-encoding {token!r}")
        try:
            body = decoder(body)
        except DecodeError:
            raise
        except (OSError, EOFError, zlib.error, brotli.error) as exc:
            raise DecodeError(f"corrupt {token} data: {exc}") from exc
    return body


def body_text(headers: HeaderPairs, decoded: bytes) -> str | None:
    """`decoded` as text per the Content-Type charset (default utf-8).

    None when the media type is binary, the bytes do not decode, or they contain
    NUL (a reliable sign of binary data). An unknown charset falls back to utf-8.
    """
    if is_binary_media_type(media_type(headers)):
        return None
    encoding = charset(headers) or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    try:
        text = decoded.decode(encoding)
    except (UnicodeDecodeError, ValueError):
        return None
    if "\x00" in text:
        return None
    return text
