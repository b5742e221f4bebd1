"""Turning wire bytes into comparable content: Content-Encoding, media type, charset."""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Callable, Iterable

import brotlicffi
import zstandard

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


DEFAULT_DECODED_LIMIT = 16 * 1024 * 1024  # bytes a decoded body may have (a bomb stops here)
_CHUNK = 64 * 1024  # compressed bytes fed to a decoder at a time


class DecodedTooLarge(DecodeError):
    """The body inflates past the limit: compared as its wire bytes, never inflated whole."""

    def __init__(self, encoding: str, limit: int, partial: bytes = b"") -> None:
        super().__init__(f"body too large after decoding {encoding} (over {limit} bytes)")
        # The first `limit` decoded bytes (of the last encoding undone; empty when an
        # outer one of a chain overflowed): enough for a reviewer's look at the start.
        self.partial = partial


def _zlib_stream(data: bytes, wbits: int, limit: int, name: str, multi: bool) -> bytes:
    """Inflate with zlib, `limit` bytes at most; `multi`: members one after another (gzip)."""
    out = bytearray()
    rest = data
    while True:
        decomp = zlib.decompressobj(wbits)
        pending = rest
        while True:
            chunk = decomp.decompress(pending, limit + 1 - len(out))
            out += chunk
            if len(out) > limit:
                raise DecodedTooLarge(name, limit, bytes(memoryview(out)[:limit]))
            pending = decomp.unconsumed_tail
            if not pending or decomp.eof:
                break
        if not decomp.eof:
            flushed = decomp.flush()
            out += flushed
            if len(out) > limit:
                raise DecodedTooLarge(name, limit, bytes(memoryview(out)[:limit]))
            raise DecodeError(f"corrupt {name} data: truncated stream")
        rest = decomp.unused_data
        if not multi or not rest.strip(b"\x00"):
            return bytes(out)


def _gunzip(data: bytes, limit: int) -> bytes:
    # Multi-member streams are one body (as gzip.decompress reads them); zlib checks the CRC.
    return _zlib_stream(data, 16 + zlib.MAX_WBITS, limit, "gzip", multi=True)


def _inflate(data: bytes, limit: int) -> bytes:
    # "deflate" is meant to be zlib-wrapped, but many servers send raw deflate.
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
        try:
            return _zlib_stream(data, wbits, limit, "deflate", multi=False)
        except DecodedTooLarge:
            raise
        except (zlib.error, DecodeError):
            continue
    raise DecodeError("corrupt deflate data")


def _unbrotli(data: bytes, limit: int) -> bytes:
    decomp = brotlicffi.Decompressor()
    out = bytearray()
    for start in range(0, max(len(data), 1), _CHUNK):
        out += decomp.process(data[start : start + _CHUNK], output_buffer_limit=_CHUNK)
        while len(out) <= limit and not decomp.can_accept_more_data():
            out += decomp.process(b"", output_buffer_limit=_CHUNK)
        if len(out) > limit:
            raise DecodedTooLarge("br", limit, bytes(memoryview(out)[:limit]))
    if not decomp.is_finished():
        raise DecodeError("corrupt br data: truncated stream")
    return bytes(out)


# RFC 9659: a zstd content coding's window is at most 8 MiB; refusing larger windows
# keeps the decoder's own memory bounded too, not only its output.
_ZSTD_MAX_WINDOW = 8 * 1024 * 1024
_ZSTD_FEED = 256  # compressed bytes per call: at most a few MiB of output each


def _unzstd(data: bytes, limit: int) -> bytes:
    # Fed a little at a time: one block of a few bytes may stand for 128 KiB of output,
    # so a small feed bounds what one call can produce before the limit is checked.
    decomp = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    view = memoryview(data)
    out = bytearray()
    pos = 0
    while pos < len(view):  # frames may follow one another, as gzip members do
        frame = decomp.decompressobj()
        while not frame.eof:
            if pos >= len(view):
                raise DecodeError("corrupt zstd data: truncated stream")
            chunk = view[pos : pos + _ZSTD_FEED]
            pos += len(chunk)
            out += frame.decompress(chunk)
            if len(out) > limit:
                raise DecodedTooLarge("zstd", limit, bytes(memoryview(out)[:limit]))
        pos -= len(frame.unused_data)  # the next frame starts inside the last feed
    return bytes(out)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
    "zstd": _unzstd,
}


def content_encodings(headers: HeaderPairs) -> list[str]:
    """Content-Encoding tokens in the order they were applied (identity dropped)."""
    tokens: list[str] = []
    for value in header_values(headers, "content-encoding"):
        tokens.extend(t.strip().lower() for t in value.split(","))
    return [t for t in tokens if t and t != "identity"]


def decode_body(headers: HeaderPairs, body: bytes, limit: int = DEFAULT_DECODED_LIMIT) -> bytes:
    """Undo the Content-Encoding of `body`; chained encodings are undone last-first.

    Raises DecodeError on corrupt data or an unsupported encoding, and its subclass
    DecodedTooLarge as soon as a decoded body would pass `limit` bytes (memory stays
    bounded whatever the compression ratio).
    """
    if not body:
        return body
    tokens = content_encodings(headers)
    for i, token in enumerate(reversed(tokens)):
        decoder = _DECODERS.get(token)
        if decoder is None:
            raise DecodeError(f"unsupported content-encoding {token!r}")
        try:
            body = decoder(body, limit)
        except DecodedTooLarge as exc:
            if i < len(tokens) - 1:
                exc.partial = b""  # still encoded by the next one: no use to a reader
            raise
        except DecodeError:
            raise
        except (OSError, EOFError, zlib.error, brotlicffi.error, zstandard.ZstdError) as exc:
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
