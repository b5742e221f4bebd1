"""A small HTTP/1.1 client for plain `http://` copies: a keep-alive pool, bytes as given.

The sender's common case (no TLS settings of its own, no outbound proxy) needs no
general client: one request line, the client's headers, one answer framed by
Content-Length, chunked encoding or the end of the connection. Through httpx and
aiohttp a copy cost the worker about 0.3 ms of CPU on the target machine, here
about a fifth of it (benchmarks/profiles/README.md); on two cores that CPU is
taken from the proxy.

- One request per connection at a time; connections are kept alive and reused
  (at most `limit` in use at once, waiting for one counts against the timeout).
- The request goes out as the sender built it: no header is added but
  Content-Length (no Accept-Encoding or User-Agent of a library's own).
- The answer's head is parsed here (interim 1xx answers skipped); its body goes,
  as it arrives, into a `BodyBuffer` (bounded) or, when `stream_if` says so (an
  event stream), chunk by chunk to the reader of `Answer.chunks()`.
- Timeouts: connecting, waiting for a free connection, and between two reads of
  the answer; the sender caps the whole.
- A request sent on a kept-alive connection that the server closed meanwhile
  (nothing came back) is sent again on a new one, when `retry` (safe methods).

Failures are raised as exceptions that `describe_failure` names: `ConnectFailed`
(refused, unreachable, unknown host), `ConnectionResetError`, `Incomplete` (closed
before the answer was complete), `BadAnswer` (not HTTP/1.x), `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import AsyncIterator, Callable

from shadow.model import BodyBuffer

MAX_HEAD = 64 * 1024  # bytes of an answer's status line and headers (and of its trailer)
MAX_LINE = 8 * 1024  # bytes of a chunk-size line
IDLE_KEEP = 15.0  # seconds an unused connection is kept for the next request

Headers = tuple[tuple[str, str], ...]


class BadAnswer(ValueError):
    """The answer is not HTTP/1.x as expected."""


class Incomplete(ConnectionError):
    """The connection closed before the answer was complete."""


class ConnectFailed(ConnectionError):
    """No connection could be made (the cause says why: refused, no such host...)."""


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_SAFE_TARGET = re.compile(r"[!-~]+")  # visible ASCII: goes on the request line as it is
_NO_BODY = (204, 304)
# States of an answer being read.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _TO_CLOSE, _DONE = range(8)


def request_head(method: str, target: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, checked: a line break in a value would be a second
    request (smuggled), so it is refused (ValueError) rather than sent."""
    if not _TOKEN.fullmatch(method.encode("latin-1", "replace")):
        raise ValueError(f"not an HTTP method: {method!r}")
    if not _SAFE_TARGET.fullmatch(target):
        target = _quote_target(target) or "/"
    lines = [f"{method} {target} HTTP/1.1".encode("ascii")]
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"not a header name: {name!r}")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise ValueError(f"header {name.decode('latin-1')} holds a line break or NUL")
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def _quote_target(target: str) -> str:
    """Bytes that cannot stand on a request line (space, controls, non-ASCII) as %XX."""
    raw = target.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x20 < b < 0x7F else f"%{b:02X}" for b in raw)


class Answer:
    """An answer's head and body. The body is whole (`body`) unless it is streamed:
    then read it with `chunks()` and always `aclose()` it."""

    __slots__ = ("_client", "_conn", "_exchange", "body", "headers", "status")

    def __init__(self, status: int, headers: Headers, body: BodyBuffer | None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self._exchange: _Exchange | None = None
        self._conn: _Conn | None = None
        self._client: Client | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        ex = self._exchange
        assert ex is not None and ex.stream is not None
        while True:
            while ex.stream:
                yield ex.stream.popleft()
            if ex.state == _DONE:
                return
            if ex.error is not None:
                raise ex.error
            ex.waiter = asyncio.get_running_loop().create_future()
            await ex.waiter

    async def aclose(self) -> None:
        """Let go of the connection: kept for the next request if the answer was read to
        its end, else closed."""
        conn, self._conn = self._conn, None
        if conn is not None and self._client is not None:
            self._client._release(conn)


class _Exchange:
    """One answer being read from a connection, pushed by the protocol's callbacks."""

    __slots__ = (
        "body", "buf", "error", "head", "head_only", "headers", "keep_alive", "last_read",
        "loop", "received", "remaining", "state", "status", "stream", "stream_if", "timeout",
        "timer", "trailer", "waiter",
    )  # fmt: skip

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        head_only: bool,
        max_body: int,
        timeout: float,
        stream_if: Callable[[Headers], bool] | None,
    ) -> None:
        self.loop = loop
        self.head_only = head_only
        self.state = _HEAD
        self.buf = bytearray()
        self.remaining = 0
        self.trailer = 0
        self.keep_alive = True
        self.received = False  # any byte of the answer came
        self.status = 0
        self.headers: Headers = ()
        self.body = BodyBuffer(max_body)
        self.stream: collections.deque[bytes] | None = None
        self.stream_if = stream_if
        self.error: BaseException | None = None
        # Set (with a result only, never an exception) when the head is in, the answer
        # is complete or failed; and, while streaming, when a chunk came.
        self.head: asyncio.Future[None] = loop.create_future()
        self.waiter: asyncio.Future[None] | None = None
        self.timeout = timeout
        self.last_read = loop.time()
        self.timer: asyncio.TimerHandle | None = loop.call_at(
            self.last_read + timeout, self._check_idle
        )

    # -- from the protocol ------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.received = True
        self.last_read = self.loop.time()
        if self.state == _DONE:
            self.keep_alive = False  # bytes nobody asked for: do not trust the connection
            return
        try:
            if self.state == _HEAD:
                self._head(data)
            else:
                self._body(data)
        except BadAnswer as exc:
            self.keep_alive = False
            self.fail(exc)

    def eof(self) -> None:
        if self.state == _TO_CLOSE:
            self._finish()
        elif self.state != _DONE:
            if self.state == _HEAD and self.buf and not _may_be_http(self.buf):
                self.fail(BadAnswer(f"not an HTTP answer: {bytes(self.buf[:40])!r}"))
            else:
                self.fail(Incomplete("connection closed before the answer was complete"))

    def fail(self, exc: BaseException) -> None:
        if self.state == _DONE or self.error is not None:
            return
        self.error = exc
        self.keep_alive = False
        self._stop_timer()
        self._wake()

    # -- parsing ----------------------------------------------------------------
    def _head(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if buf[:2] == b"\r\n":  # stray line ends before a status line are tolerated
                del buf[:2]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise BadAnswer(f"answer head over {MAX_HEAD} bytes")
                if not _may_be_http(buf):
                    raise BadAnswer(f"not an HTTP answer: {bytes(buf[:40])!r}")
                return
            head = bytes(buf[:end])
            del buf[:end + 4]  # fmt: skip
            status = self._parse_head(head)
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            break
        rest = bytes(buf)
        buf.clear()
        if self.stream_if is not None and self.stream_if(self.headers):
            self.stream = collections.deque()
        if not self.head.done():
            self.head.set_result(None)
        if self.state == _DONE:
            self._finish()
        elif rest:
            self._body(rest)

    def _parse_head(self, head: bytes) -> int:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, _reason = rest.partition(b" ")
        if version[:7] != b"HTTP/1." or len(version) != 8 or len(code) != 3 or not code.isdigit():
            raise BadAnswer(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
        status = int(code)
        headers: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        close = version == b"HTTP/1.0"
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):  # an obsolete folded line: part of the last value
                if not headers:
                    raise BadAnswer("folded header line before any header")
                name_s, value_s = headers[-1]
                headers[-1] = (name_s, f"{value_s} {line.strip().decode('latin-1')}")
                continue
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.fullmatch(name):
                raise BadAnswer(f"bad header line: {line[:60]!r}")
            value = value.strip(b" \t")
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
            lower = name.lower()
            if lower == b"content-length":
                n = _content_length(value)
                if length is not None and n != length:
                    raise BadAnswer("conflicting Content-Length headers")
                length = n
            elif lower == b"transfer-encoding":
                chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            elif lower == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    close = True
                elif b"keep-alive" in tokens:
                    close = False
        self.status = status
        self.headers = tuple(headers)
        if 100 <= status < 200 and status != 101:
            return status
        if close:
            self.keep_alive = False
        if self.head_only or status in _NO_BODY or status == 101:
            self.state = _DONE
            if status == 101:
                self.keep_alive = False
        elif chunked:
            self.state = _CHUNK_SIZE
        elif length is not None:
            self.remaining = length
            self.state = _LENGTH if length else _DONE
        else:
            self.state = _TO_CLOSE  # the body ends with the connection
            self.keep_alive = False
        return status

    def _body(self, data: bytes) -> None:
        state = self.state
        if state == _LENGTH:
            n = self.remaining
            if len(data) < n:
                self.remaining = n - len(data)
                self._out(data)
                return
            self._out(data if len(data) == n else data[:n])
            if len(data) > n:
                self.keep_alive = False  # more than announced: do not reuse
            self._finish()
            return
        if state == _TO_CLOSE:
            self._out(data)
            return
        self.buf += data
        self._chunks()

    def _chunks(self) -> None:
        buf = self.buf
        while buf and self.state != _DONE:
            state = self.state
            if state == _CHUNK_DATA:
                take = min(self.remaining, len(buf))
                self._out(bytes(buf[:take]))
                del buf[:take]
                self.remaining -= take
                if not self.remaining:
                    self.state = _CHUNK_END
                continue
            if state == _CHUNK_END:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise BadAnswer("chunk not followed by CRLF")
                del buf[:2]
                self.state = _CHUNK_SIZE
                continue
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > (MAX_LINE if state == _CHUNK_SIZE else MAX_HEAD):
                    raise BadAnswer("chunk-size line or trailer too long")
                return
            line = bytes(buf[:eol])
            del buf[:eol + 2]  # fmt: skip
            if state == _CHUNK_SIZE:
                size = line.split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size):
                    raise BadAnswer(f"bad chunk size: {line[:40]!r}")
                self.remaining = int(size, 16)
                self.state = _CHUNK_DATA if self.remaining else _TRAILER
            else:  # _TRAILER: fields until an empty line, not kept
                self.trailer += len(line) + 2
                if self.trailer > MAX_HEAD:
                    raise BadAnswer("trailer too long")
                if not line:
                    if buf:
                        self.keep_alive = False
                    self._finish()

    def _out(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.stream is not None:
            self.stream.append(chunk)
            self._wake()
        else:
            self.body.add(chunk)

    def _finish(self) -> None:
        self.state = _DONE
        self._stop_timer()
        self._wake()

    def _wake(self) -> None:
        if not self.head.done():
            self.head.set_result(None)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the read timeout -------------------------------------------------------
    def _check_idle(self) -> None:
        self.timer = None
        if self.state == _DONE or self.error is not None:
            return
        due = self.last_read + self.timeout
        if self.loop.time() >= due:
            self.fail(TimeoutError(f"no data from the server for {self.timeout:g} s"))
        else:
            self.timer = self.loop.call_at(due, self._check_idle)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _may_be_http(buf: bytearray) -> bool:
    start = bytes(buf[:5])
    return b"HTTP/".startswith(start) if len(start) < 5 else start == b"HTTP/"


def _content_length(value: bytes) -> int:
    parts = {p.strip() for p in value.split(b",")}  # "5, 5" (a repeated header, joined)
    if len(parts) != 1:
        raise BadAnswer("conflicting Content-Length values")
    text = parts.pop()
    if not text.isdigit() or len(text) > 18:
        raise BadAnswer(f"bad Content-Length: {value[:30]!r}")
    return int(text)


class _Conn(asyncio.Protocol):
    """One connection to a server; one exchange on it at a time."""

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.used = 0  # requests sent on it
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:  # nothing was asked: a server talking out of turn is not reused
            self.abort()
            return
        ex.feed(data)
        if ex.error is not None:
            self.abort()

    def eof_received(self) -> bool:
        if self.exchange is not None:
            self.exchange.eof()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        if ex is not None:
            if exc is not None:
                ex.fail(exc)
            else:
                ex.eof()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Client:
    """Keep-alive connections to plain-HTTP servers (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._open: set[_Conn] = set()

    async def request(
        self,
        host: str,
        port: int,
        head: bytes,
        body: bytes,
        *,
        head_only: bool,
        timeout: float,
        max_body: int,
        retry: bool,
        stream_if: Callable[[Headers], bool] | None = None,
    ) -> Answer:
        """Send `head` + `body` to host:port and read the answer: whole, or up to its
        head when `stream_if` chose to stream it (then the caller reads and closes it)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        slots = self._slots
        if slots.locked():
            async with asyncio.timeout(timeout):  # waiting for a connection: the pool phase
                await slots.acquire()
        else:
            await slots.acquire()
        loop = asyncio.get_running_loop()
        key = (host, port)
        conn: _Conn | None = None
        streaming = False
        try:
            for attempt in (0, 1):
                # Again after a stale connection: a new one (the server may have closed
                # every idle one at once, at its keep-alive timeout).
                conn = self._take(key, loop.time()) if attempt == 0 else None
                if conn is None:
                    conn = await self._connect(host, port, timeout)
                reused = conn.used > 0
                conn.used += 1
                ex = _Exchange(loop, head_only, max_body, timeout, stream_if)
                conn.exchange = ex
                assert conn.transport is not None
                conn.transport.write(head + body if body else head)
                await ex.head
                if ex.error is not None:
                    stale = reused and not ex.received and retry and attempt == 0
                    if stale and isinstance(ex.error, (Incomplete, ConnectionResetError)):
                        self._drop(conn)  # closed by the server while idle: once more
                        conn = None
                        continue
                    raise ex.error
                answer = Answer(ex.status, ex.headers, None)
                if ex.stream is not None:
                    answer._exchange, answer._conn, answer._client = ex, conn, self
                    streaming = True
                    return answer
                while ex.state != _DONE:
                    ex.waiter = loop.create_future()
                    await ex.waiter
                    if ex.error is not None:
                        raise ex.error
                answer.body = ex.body
                return answer
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if not streaming:
                if conn is not None:
                    self._release(conn, slot=False)
                slots.release()

    def _release(self, conn: _Conn, slot: bool = True) -> None:
        """The exchange on `conn` is over: keep the connection if it can be reused."""
        ex, conn.exchange = conn.exchange, None
        if slot and self._slots is not None:
            self._slots.release()
        if ex is not None:
            ex._stop_timer()
        reusable = ex is not None and ex.state == _DONE and ex.keep_alive
        if not reusable or conn.closed or conn.transport is None or conn.transport.is_closing():
            self._drop(conn)
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self._limit:
            self._drop(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle.append(conn)

    def _take(self, key: tuple[str, int], now: float) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                self._open.discard(conn)
                continue
            if now - conn.idle_since > IDLE_KEEP:
                self._drop(conn)
                continue
            return conn
        return None

    async def _connect(self, host: str, port: int, timeout: float) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: _Conn((host, port)), host, port)
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        self._open.add(conn)
        return conn

    def _drop(self, conn: _Conn) -> None:
        self._open.discard(conn)
        if not conn.closed:
            conn.abort()

    async def aclose(self) -> None:
        for conn in list(self._open):
            _close(conn)
        self._open.clear()
        self._idle.clear()


def _close(conn: _Conn) -> None:
    conn.closed = True
    if conn.transport is not None:
        conn.transport.close()
