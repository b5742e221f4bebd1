"""Decompression bombs from the candidate: comparing them stays bounded in memory and time.

The candidate answers about 1 MB (gzip, deflate) or less (br, zstd) that inflates to
1 GiB: the primary's JSON document followed by 1 GiB of spaces (still the same
JSON, for a decoder that went all the way). The primary sends the document
uncompressed. shadow decodes at most 16 MiB of a body (comparators.decode; zstd,
if it is not decoded, is compared as bytes); the worker and its comparison process
are watched for their peak resident memory (VmHWM) while they compare.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import brotlicffi
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import run_proxy, serve
from tests.faults.faultkit import (
    PeakMemory,
    accounting,
    app,
    find_worker,
    live_count,
    stop,
    wait_until,
)
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
COPIES = 1024  # MiB of spaces after the document: 1 GiB inflated
DOC = b'{"id": 7, "items": [1, 2, 3], "ok": true}'
# Bomb name -> its Content-Encoding. "zstd" is one frame; "zstd-frames" many frames one
# after another (RFC 8878 allows it, as gzip allows members).
ENCODINGS = dict(gzip="gzip", deflate="deflate", br="br", zstd="zstd") | {"zstd-frames": "zstd"}
ROUNDS = 2
# Peak resident memory allowed to each process. Measured on the 2-core test machine:
# worker 159-167 MiB, comparison process 98-106 MiB (Python and its libraries, and
# the 16 MiB decode limit). Inflating one bomb whole would take over 1 GiB; 400 MiB
# leaves room for allocator noise and still catches that.
RSS_BOUND = 400 * MIB
STOP_BOUND = 20.0  # seconds from SIGINT to exit; a comparison stuck on a bomb would hold it


def _deflate_raw() -> bytes:
    """Raw deflate of DOC + COPIES MiB of spaces, built from one compressed MiB.

    After a full flush the compressor starts over, byte-aligned: compressing the
    same MiB again gives the same bytes, so the stream is that segment repeated
    (no GiB is ever held or compressed).
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = b" " * MIB
    head = c.compress(DOC + chunk) + c.flush(zlib.Z_FULL_FLUSH)
    segment = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    return head + segment * (COPIES - 1) + c.flush(zlib.Z_FINISH)


def _bombs() -> dict[str, bytes]:
    raw = _deflate_raw()
    chunk = b" " * MIB
    crc, adler = zlib.crc32(DOC), zlib.adler32(DOC)
    for _ in range(COPIES):
        crc, adler = zlib.crc32(chunk, crc), zlib.adler32(chunk, adler)
    size = len(DOC) + COPIES * MIB
    bombs = {
        "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw
        + struct.pack("<II", crc, size & 0xFFFFFFFF),
        "deflate": b"\x78\xda" + raw + struct.pack(">I", adler),  # zlib-wrapped, as meant
    }  # fmt: skip
    br = brotlicffi.Compressor(quality=1)
    parts = [br.process(DOC)]
    parts += [br.process(chunk) for _ in range(COPIES)]
    bombs["br"] = b"".join([*parts, br.finish()])
    try:
        import zstandard
    except ImportError:  # not decoded then: any bytes labelled zstd will do
        bombs["zstd"] = bombs["zstd-frames"] = b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 256
        return bombs
    cctx = zstandard.ZstdCompressor(level=1)
    stream = cctx.compressobj()
    parts = [stream.compress(DOC)]
    parts += [stream.compress(chunk) for _ in range(COPIES)]
    bombs["zstd"] = b"".join([*parts, stream.flush()])
    # The MiB's own frame, repeated: no GiB compressed at all.
    bombs["zstd-frames"] = cctx.compress(DOC) + cctx.compress(chunk) * COPIES
    return bombs


@dataclass
class BombRun:
    db: Path
    code: int | None
    output: str
    stop_seconds: float
    stored_in_time: bool
    memory: PeakMemory


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> BombRun:
    bombs = _bombs()
    # The gzip and deflate bombs are valid: their first KiB inflates to the document.
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bombs["gzip"][:1024])[:41] == DOC
    assert zlib.decompressobj().decompress(bombs["deflate"][:1024])[:41] == DOC

    async def primary(request: Request) -> Response:
        return Response(DOC, media_type="application/json")

    async def candidate(request: Request) -> Response:
        name = request.path_params["name"]
        headers = {"content-encoding": ENCODINGS[name]}
        return Response(bombs[name], media_type="application/json", headers=headers)

    tmp = tmp_path_factory.mktemp("bombs")
    db = tmp / "bombs.duckdb"
    with (
        serve(app({"/bomb/{name}": primary})) as prim,
        serve(app({"/bomb/{name}": candidate})) as cand,
        run_proxy(prim.url, cand.url, db, tmp) as proxy,
    ):
        memory = PeakMemory(find_worker(proxy))
        memory.start()
        with httpx.Client(timeout=30, trust_env=False) as client:
            for _ in range(ROUNDS):
                for name in ENCODINGS:
                    resp = client.get(f"{proxy.url}/bomb/{name}")
                    assert resp.content == DOC  # the client gets the primary's answer
        stored = wait_until(lambda: live_count(db) >= len(ENCODINGS) * ROUNDS, 60, step=0.5)
        memory.finish()
        elapsed = stop(proxy)
    sizes = {name: len(bomb) for name, bomb in bombs.items()}
    print(
        f"peak RSS: worker {memory.worker_peak / MIB:.0f} MiB, comparison process "
        f"{memory.pool_peak / MIB:.0f} MiB ({len(memory.pool_pids)} processes); "
        f"stop {elapsed:.1f} s; bombs {sizes}"
    )
    return BombRun(db, proxy.process.returncode, proxy.output, elapsed, stored, memory)


def test_bombs_are_compared_within_bounded_memory_and_time(run: BombRun) -> None:
    assert run.stored_in_time, "the bombs' rows were not stored within 60 s"
    assert run.code == 0, run.output
    assert run.stop_seconds < STOP_BOUND, run.stop_seconds
    # The comparisons ran in the comparison process (else its peak would say nothing).
    assert run.memory.pool_pids and run.memory.pool_peak > 0
    assert run.memory.worker_peak < RSS_BOUND, run.memory.worker_peak
    assert run.memory.pool_peak < RSS_BOUND, run.memory.pool_peak
    accounting(run.db).check(answered=len(ENCODINGS) * ROUNDS)
    found = rows(
        run.db,
        "SELECT e.path, e.verdict, list(d.path ORDER BY d.path) FROM exchanges e "
        "LEFT JOIN differences d USING (exchange_id) GROUP BY e.exchange_id, e.path, e.verdict",
    )
    by_name: dict[str, list[tuple[str, list[str]]]] = {}
    for path, verdict, diff_paths in found:
        by_name.setdefault(str(path).rsplit("/", 1)[1], []).append((verdict, diff_paths))
    assert by_name == {name: [("differ", ["$body"])] * ROUNDS for name in ENCODINGS}


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_bomb_difference_names_the_decoding_limit(run: BombRun, name: str) -> None:
    """Decoded up to the limit and no further (zstd may also be left undecoded)."""
    enc = ENCODINGS[name]
    expected = [f"too large after decoding {enc}"]
    if enc == "zstd":
        expected.append("unsupported content-encoding 'zstd'")
    values = rows(
        run.db,
        "SELECT d.candidate_value FROM differences d JOIN exchanges e USING (exchange_id) "
        "WHERE e.path = ? AND d.path = '$body'",
        [f"/bomb/{name}"],
    )
    assert len(values) == ROUNDS
    for (value,) in values:
        assert any(e in str(value) for e in expected), value
