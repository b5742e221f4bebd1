"""GoReplay (`--output-file`) reader.

A file is a series of records, each ended by the line "🐵🙈🙉"::

    1 <id> <timestamp_ns> <latency_ns>      type 1: request, 2: original response,
    GET /path HTTP/1.1                       3: replayed response
    Host: example.com
    ...

A request is paired with the original response (type 2) of the same id;
replayed responses (type 3) and responses without a request are ignored.
Entries come out in request order; a request still waiting for its response
after `MAX_PENDING` later requests, or while the waiting ones hold more than
`MAX_PENDING_BYTES`, is given out without one, which bounds memory; so does the
size limit of one record (`MAX_ENTRY_BYTES`): a larger one is a bad entry, read
past without being kept.
`index` is the 0-based record number of the request in the file.

`started_at` is the request's timestamp; `elapsed_ms` the response's latency
field when positive, else the difference of the two timestamps. Older
three-field headers (no latency) are accepted. The URL is
`http://<Host><target>` (GoReplay records plain HTTP), or the target itself
when it is absolute. Bodies are de-chunked; headers are kept as recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from comparators.model import Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources._base import (
    MAX_ENTRY_BYTES,
    BadEntry,
    EntryProblem,
    Reader,
    Recorded,
    split_target,
    split_url,
    too_large,
    url_for_target,
)
from shadow.sources._http1 import HttpParseError, parse_request, parse_response
from shadow.sources.detect import GOR_SEPARATOR

MAX_PENDING = 10_000
MAX_PENDING_BYTES = 256 * 1024 * 1024  # room for a few requests of the largest size
_CHUNK = 1 << 16
_HEAD = 4096  # bytes kept of a record over the size limit: its header line is in them
_SEP_END = GOR_SEPARATOR.rstrip(b"\n")
_EPOCH_NS = 10**15  # timestamps in ns are far above this; latencies far below


@dataclass(frozen=True, slots=True)
class _Record:
    """One record of the file; `ended`: by a separator (not cut off by the file's end).

    A record over the size limit is `too_large` and `data` holds only its start
    (enough for its header line): the rest was read past, not kept.
    """

    data: bytes
    ended: bool
    too_large: bool = False


def records(fh: BinaryIO, limit: int = MAX_ENTRY_BYTES) -> Iterator[_Record]:
    """The file's records, read in chunks; none holds more than `limit` bytes."""
    buf = bytearray()
    passing = False  # inside a record over the limit, already reported: drop until its end
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        start = max(0, len(buf) - len(GOR_SEPARATOR) + 1)
        buf += chunk
        while (at := buf.find(GOR_SEPARATOR, start)) >= 0:
            if not passing:
                yield _record(buf, at, True, limit)
            passing = False
            del buf[: at + len(GOR_SEPARATOR)]
            start = 0
        keep = len(GOR_SEPARATOR) - 1  # the last bytes may start a separator
        if len(buf) - keep > limit:
            if not passing:
                yield _record(buf, len(buf), True, limit)
                passing = True
            del buf[:-keep]
    if passing:
        return
    if buf.endswith(_SEP_END):  # last separator without its final newline
        yield _record(buf, len(buf) - len(_SEP_END), True, limit)
    elif buf.strip(b"\r\n"):
        yield _record(buf, len(buf), False, limit)


def _record(buf: bytearray, end: int, ended: bool, limit: int) -> _Record:
    if end > limit:
        return _Record(bytes(buf[: min(end, _HEAD)]), ended, too_large=True)
    return _Record(bytes(buf[:end]), ended)


@dataclass(slots=True)
class _Meta:
    kind: str
    id: str
    timestamp_ns: int | None
    latency_ns: int | None


def _meta(line: bytes) -> _Meta:
    fields = line.decode("latin-1").split()
    if len(fields) not in (3, 4) or fields[0] not in ("1", "2", "3"):
        raise EntryProblem(f"bad GoReplay header line {line[:80]!r}")
    try:
        numbers = [int(f) for f in fields[2:]]
    except ValueError:
        raise EntryProblem(f"bad GoReplay header line {line[:80]!r}") from None
    if len(numbers) == 1 and fields[0] != "1" and 0 < numbers[0] < _EPOCH_NS:
        return _Meta(fields[0], fields[1], None, numbers[0])  # old header: round-trip time
    latency = numbers[1] if len(numbers) == 2 else None
    return _Meta(fields[0], fields[1], numbers[0] if numbers[0] > 0 else None, latency)


@dataclass(slots=True)
class _Pending:
    index: int
    meta: _Meta
    request: Request
    url: str
    response: Payload | None = None
    elapsed_ms: float | None = None
    done: bool = False
    size: int = 0  # bytes of the records it holds

    def recorded(self) -> Recorded:
        ts = self.meta.timestamp_ns
        return Recorded(
            request=self.request,
            response=self.response,
            started_at=ts / 1e9 if ts else None,
            elapsed_ms=self.elapsed_ms,
            url=self.url,
            index=self.index,
        )


def _request(index: int, meta: _Meta, payload: bytes) -> _Pending:
    try:
        method, target, headers, body = parse_request(payload)
    except HttpParseError as exc:
        raise EntryProblem(f"request record does not parse as HTTP: {exc}") from None
    path, query = split_url(target) if "://" in target else split_target(target)
    request = Request(method, path, query, headers, body)
    return _Pending(index, meta, request, url_for_target(target, headers))


def _elapsed(req: _Meta, resp: _Meta) -> float | None:
    if resp.latency_ns is not None and resp.latency_ns > 0:
        return resp.latency_ns / 1e6
    if req.timestamp_ns and resp.timestamp_ns and resp.timestamp_ns >= req.timestamp_ns:
        return (resp.timestamp_ns - req.timestamp_ns) / 1e6
    return None


def _answer(pending: _Pending, meta: _Meta, payload: bytes) -> None:
    pending.done = True
    try:
        status, headers, body = parse_response(
            payload, head_request=pending.request.method == "HEAD"
        )
    except HttpParseError as exc:
        raise EntryProblem(
            f"response to entry {pending.index} does not parse as HTTP: {exc}"
        ) from None
    pending.response = Payload(status, headers, body)
    pending.elapsed_ms = _elapsed(pending.meta, meta)


def read(path: str, *, max_entry_bytes: int = MAX_ENTRY_BYTES) -> Reader:
    """Requests of the GoReplay file at `path`, each with its original response.

    A record larger than `max_entry_bytes` is a bad entry, passed over unread
    (a request with such a response is given out without one).
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across yields
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    pending: dict[str, _Pending] = {}
    held = 0  # bytes held by `pending`
    try:
        for index, record in enumerate(records(fh, max_entry_bytes)):
            try:
                held += _handle(index, record, pending, max_entry_bytes)
            except EntryProblem as exc:
                reason = str(exc) if record.ended else f"{exc} (last record, cut off)"
                yield BadEntry(index, reason)
            while pending:
                first = next(iter(pending.values()))
                if not first.done and len(pending) <= MAX_PENDING and held <= MAX_PENDING_BYTES:
                    break
                del pending[first.meta.id]
                held -= first.size
                yield first.recorded()
        for left in pending.values():
            yield left.recorded()
    finally:
        fh.close()


def _handle(index: int, record: _Record, pending: dict[str, _Pending], limit: int) -> int:
    """Take one record into `pending`; the bytes it added there."""
    data = record.data.lstrip(b"\r\n")
    line, _, payload = data.partition(b"\n")
    meta = _meta(line.rstrip(b"\r"))
    if record.too_large:
        if meta.kind == "1":
            raise EntryProblem(too_large(limit, "request record"))
        waiting = pending.get(meta.id)
        if meta.kind == "2" and waiting is not None and not waiting.done:
            waiting.done = True  # given out without a response, as when it does not parse
            raise EntryProblem(too_large(limit, f"response to entry {waiting.index}"))
        return 0
    if meta.kind == "1":
        if meta.id in pending:
            raise EntryProblem(f"request id {meta.id} repeats before its response")
        pending[meta.id] = _request(index, meta, payload)
        pending[meta.id].size = len(payload)
        return len(payload)
    waiting = pending.get(meta.id)
    if meta.kind == "2" and waiting is not None and not waiting.done:
        _answer(waiting, meta, payload)
        waiting.size += len(payload)
        return len(payload)
    return 0
