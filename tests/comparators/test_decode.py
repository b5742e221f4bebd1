"""Content-Encoding, media type and charset handling."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from comparators import DecodeError, body_text, decode_body, media_type
from comparators.model import Headers

DATA = b'{"hello": "world"}' * 20


def _raw_deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return comp.compress(data) + comp.flush()


def _ce(*values: str) -> Headers:
    return tuple(("Content-Encoding", v) for v in values)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ((), DATA),
        (_ce("identity"), DATA),
        (_ce("gzip"), gzip.compress(DATA, mtime=0)),
        (_ce("GZIP"), gzip.compress(DATA, mtime=0)),
        (_ce("x-gzip"), gzip.compress(DATA, mtime=0)),
        (_ce("deflate"), zlib.compress(DATA)),
        (_ce("deflate"), _raw_deflate(DATA)),
        (_ce("br"), brotli.compress(DATA)),
        # Applied left to right, so undone right to left.
        (_ce("gzip, br"), brotli.compress(gzip.compress(DATA, mtime=0))),
        (_ce("deflate", "gzip"), gzip.compress(zlib.compress(DATA), mtime=0)),
        (_ce("gzip, identity"), gzip.compress(DATA, mtime=0)),
        (
            _ce("gzip"),
            gzip.compress(DATA[:10], mtime=0) + gzip.compress(DATA[10:], mtime=0),
        ),  # multi-member
        ((("content-encoding", "gzip"),), gzip.compress(DATA, mtime=0)),
    ],
)
def test_decode_body(headers: Headers, body: bytes) -> None:
    assert decode_body(headers, body) == DATA


def test_empty_body_needs_no_decoding() -> None:
    assert decode_body(_ce("gzip"), b"") == b""


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", b"not gzip at all", "corrupt gzip"),
        ("gzip", gzip.compress(DATA, mtime=0)[:-6], "corrupt gzip"),  # truncated
        ("deflate", b"not deflate at all", "corrupt deflate"),
        ("deflate", zlib.compress(DATA)[:-6], "corrupt deflate"),  # truncated
        ("br", b"not brotli at all", "corrupt br"),
        ("br", brotli.compress(DATA)[:-3], "corrupt br"),
        ("zstd", b"whatever", "corrupt zstd"),
        ("zstd", zstandard.ZstdCompressor().compress(DATA)[:-4], "corrupt zstd data: truncated"),
        ("compress", b"whatever", "unsupported content-encoding 'compress'"),
        ("gzip, br", brotli.compress(b"plain, not gzip"), "corrupt gzip"),
    ],
)
def test_decode_errors(encoding: str, body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as info:
        decode_body(_ce(encoding), body)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@given(st.binary(max_size=2048), st.sampled_from(sorted(ENCODERS)))
def test_decode_inverts_encode(data: bytes, encoding: str) -> None:
    assert decode_body(_ce(encoding), ENCODERS[encoding](data)) == data


@given(st.binary(max_size=2048))
def test_decode_inverts_raw_deflate(data: bytes) -> None:
    assert decode_body(_ce("deflate"), _raw_deflate(data)) == data


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), ""),
        ((("Content-Type", "application/json"),), "application/json"),
        ((("content-type", "Application/JSON; charset=UTF-8"),), "application/json"),
        ((("Content-Type", "  text/html ;charset=utf-8"),), "text/html"),
        ((("Content-Type", ""),), ""),
        ((("X-Other", "text/html"),), ""),
    ],
)
def test_media_type(headers: Headers, expected: str) -> None:
    assert media_type(headers) == expected


def _ct(value: str) -> Headers:
    return (("Content-Type", value),)


@pytest.mark.parametrize(
    ("headers", "data", "expected"),
    [
        ((), "héllo".encode(), "héllo"),
        (_ct("text/plain; charset=utf-8"), "héllo".encode(), "héllo"),
        (_ct("text/plain; charset=ISO-8859-1"), "héllo".encode("latin-1"), "héllo"),
        (_ct('text/plain; charset="latin-1"'), "héllo".encode("latin-1"), "héllo"),
        (_ct("text/plain; charset=utf-16"), "héllo".encode("utf-16"), "héllo"),
        (_ct("text/plain; charset=no-such-charset"), b"hello", "hello"),  # falls back to utf-8
        (_ct("text/plain"), b"\xff\xfe\xfa", None),  # not utf-8
        (_ct("text/plain"), b"a\x00b", None),  # NUL: binary
        (_ct("image/png"), b"plain ascii", None),  # binary media type
        (_ct("application/octet-stream"), b"plain ascii", None),
        ((), b"", ""),
    ],
)
def test_body_text(headers: Headers, data: bytes, expected: str | None) -> None:
    assert body_text(headers, data) == expected


def _bomb(encoding: str, size: int) -> bytes:
    zeros = b"\0" * size
    if encoding == "gzip":
        return gzip.compress(zeros, compresslevel=6, mtime=0)
    if encoding == "deflate":
        return zlib.compress(zeros, 6)
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(zeros)
    import brotlicffi

    return brotlicffi.compress(zeros, quality=5)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_a_decompression_bomb_stops_at_the_limit_with_bounded_memory(encoding: str) -> None:
    import tracemalloc

    from comparators.decode import DecodedTooLarge

    bomb = _bomb(encoding, 256 * 1024 * 1024)  # 256 MiB of zeros, a few hundred KB on the wire
    assert len(bomb) < 2 * 1024 * 1024
    limit = 4 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(DecodedTooLarge, match=f"body too large after decoding {encoding}"):
            decode_body([("Content-Encoding", encoding)], bomb, limit=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit  # never the 256 MiB


@pytest.mark.parametrize("first", [3, 250, 256, 300, 2000])
def test_zstd_frames_one_after_another_are_one_body(first: int) -> None:
    # Frames of every size relative to the decoder's feed: ending inside it, on its
    # boundary, after several feeds. Random bytes keep the frames about that long.
    import random

    rng = random.Random(first)
    a = bytes(rng.randrange(256) for _ in range(first))
    b = bytes(rng.randrange(256) for _ in range(600))
    frames = [zstandard.ZstdCompressor().compress(x) for x in (a, b, b"", a)]
    assert decode_body(_ce("zstd"), b"".join(frames)) == a + b + a
    # A frame cut exactly on a feed boundary still counts as cut.
    whole = b"".join(frames)
    with pytest.raises(DecodeError, match="truncated"):
        decode_body(_ce("zstd"), whole[:-1])


def test_zstd_frame_ending_on_the_feed_boundary_keeps_what_follows() -> None:
    from comparators.decode import _ZSTD_FEED

    rng_data = bytes(range(256)) * 2
    for n in range(200, 400):  # find a payload whose frame is exactly one feed long
        frame = zstandard.ZstdCompressor(level=1).compress(rng_data[:n])
        if len(frame) == _ZSTD_FEED:
            break
    else:
        raise AssertionError("no frame of exactly one feed found")
    tail = zstandard.ZstdCompressor().compress(b"tail")
    assert decode_body(_ce("zstd"), frame + tail) == rng_data[:n] + b"tail"


def test_a_zstd_window_over_8_mib_is_refused() -> None:
    # RFC 9659 caps the window of the zstd content coding: a bigger one is corrupt here,
    # so the decoder never allocates more than that for its window.
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24)
    body = zstandard.ZstdCompressor(compression_params=params).compress(b"x" * (20 << 20))
    with pytest.raises(DecodeError, match="corrupt zstd"):
        decode_body(_ce("zstd"), body)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_a_body_just_under_the_limit_decodes(encoding: str) -> None:
    data = b"\0" * 1000
    assert decode_body([("Content-Encoding", encoding)], _bomb(encoding, 1000), limit=1000) == data


def test_a_bomb_is_compared_as_a_difference_not_a_crash() -> None:
    from comparators import Payload, compare

    headers = (("content-type", "application/json"), ("content-encoding", "gzip"))
    bomb = Payload(200, headers, _bomb("gzip", 64 * 1024 * 1024))
    fine = Payload(200, headers, gzip.compress(b'{"ok": true}', mtime=0))
    result = compare(fine, bomb)
    assert result.verdict.value == "differ"
    body = [d for d in result.differences if d.path == "$body"]
    assert body and "body too large after decoding" in str(body[0].candidate)


def test_the_decoded_limit_is_a_rule() -> None:
    from comparators import Payload, compare, parse_rules

    headers = (("content-type", "application/json"), ("content-encoding", "gzip"))
    big = gzip.compress(b'{"pad": "' + b"x" * 5000 + b'"}', mtime=0)
    a, b = Payload(200, headers, big), Payload(200, headers, big)
    assert compare(a, b, parse_rules({"max_decoded_bytes": 1000})).verdict.value == "match"
    c = Payload(200, headers, gzip.compress(b'{"pad": "y"}', mtime=0))
    small = compare(a, c, parse_rules({"max_decoded_bytes": 1000}))
    assert "body too large after decoding" in str(small.differences[0].primary)
    assert compare(a, c).differences[0].path == "$.pad"  # under the default limit: decoded
