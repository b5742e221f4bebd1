"""GoReplay (`--output-file`) reader.

A file is a series of records, each ended by the line "🐵🙈🙉"::

    1 <id> <timestamp_ns> <latency_ns>      type 1: request, 2: original response,
    GET /path HTTP/1.1                       3: replayed response
    Host: example.com
    ...

A request is paired with the original response (type 2) of the same id;
replayed responses (type 3) and responses without a request are ignored.
Entries come out in request order; a request still waiting for its response
after `MAX_PENDING` later requests is given out without one, which bounds memory.
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
    BadEntry,
    EntryProblem,
    Reader,
    Recorded,
    split_target,
    split_url,
    url_for_target,
)
from shadow.sources._http1 import HttpParseError, parse_request, parse_response
from shadow.sources.detect import GOR_SEPARATOR

MAX_PENDING = 10_000
_CHUNK = 1 << 16
_SEP_END = GOR_SEPARATOR.rstrip(b"\n")
_EPOCH_NS = 10**15  # timestamps in ns are far above this; latencies far below


def records(fh: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """(record, ended_by_separator) pairs, read in chunks."""
    buf = bytearray()
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        start = max(0, len(buf) - len(GOR_SEPARATOR) + 1)
        buf += chunk
        while (at := buf.find(GOR_SEPARATOR, start)) >= 0:
            yield bytes(buf[:at]), True
            del buf[: at + len(GOR_SEPARATOR)]
            start = 0
    if buf.endswith(_SEP_END):  # last separator without its final newline
        yield bytes(buf[: -len(_SEP_END)]), True
    elif buf.strip(b"\r\n"):
        yield bytes(buf), False


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


def read(path: str) -> Reader:
    """Requests of the GoReplay file at `path`, each with its original response."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across yields
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    pending: dict[str, _Pending] = {}
    try:
        for index, (record, ended) in enumerate(records(fh)):
            try:
                _handle(index, record, pending)
            except EntryProblem as exc:
                reason = str(exc) if ended else f"{exc} (last record, cut off)"
                yield BadEntry(index, reason)
            while pending:
                first = next(iter(pending.values()))
                if not first.done and len(pending) <= MAX_PENDING:
                    break
                del pending[first.meta.id]
                yield first.recorded()
        for left in pending.values():
            yield left.recorded()
    finally:
        fh.close()


def _handle(index: int, record: bytes, pending: dict[str, _Pending]) -> None:
    record = record.lstrip(b"\r\n")
    line, _, payload = record.partition(b"\n")
    meta = _meta(line.rstrip(b"\r"))
    if meta.kind == "1":
        if meta.id in pending:
            raise EntryProblem(f"request id {meta.id} repeats before its response")
        pending[meta.id] = _request(index, meta, payload)
    elif meta.kind == "2":
        waiting = pending.get(meta.id)
        if waiting is not None and not waiting.done:
            _answer(waiting, meta, payload)
