"""`shadow sink`: receive the requests an existing proxy mirrors, shadow each one, store.

nginx (`mirror`), Envoy (`request_mirror_policies`) and Istio (`mirror`) send a
copy of each request to a mirror target and throw its answer away. The sink is
that target: it answers at once (204) and then, in the background, sends the
request to the primary (a staging or replica instance), the secondary and the
candidate itself, as Diffy does, and compares them through the same `Pipeline`
as a replay. It keeps no state besides its own store: N sinks behind the mirror's
load balancing each write their own store (a shard), and the readers take them
all (`--db 'shards/*.duckdb'`, see `shadow.store.shards`).

Bounds: at most `backlog` requests are in flight (bodies being read included); past
that new ones are shed before their body is read. A body over `max_body`, one that
would take the bodies being read past the memory budget, or one that does not arrive
whole within the timeout, is shed too. Every request received ends as one row or one
shed count (the run's `requests_shed`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web, web_server

from shadow.config.tls import BackendTls
from shadow.errors import COPIES_LOST
from shadow.model import DEFAULT_MAX_BODY, BackendResponse, Request
from shadow.pipeline.core import DEFAULT_MEMORY_BUDGET, Pipeline, PipelineSettings
from shadow.pipeline.sender import StreamLimits
from shadow.store.writer import ensure_new_run, finish_run

logger = logging.getLogger("shadow.sink")

# Hop-by-hop headers (RFC 9110 7.6.1) and what the sender sets itself: not the request's.
_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
# Envoy and Istio send the mirrored request to "<host>-shadow": the original name is wanted.
SHADOW_SUFFIX = "-shadow"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class SinkOptions:
    """Where to listen, whom to call, where to store."""

    primary: str
    candidate: str
    db: str
    host: str = "127.0.0.1"
    port: int = 8090
    secondary: str | None = None
    config: str | None = None
    run_id: str = ""
    mirror_unsafe: frozenset[str] = frozenset()
    timeout: float = 10.0
    concurrency: int = 32
    backlog: int = 1000  # requests in flight at most; past it new ones are shed
    max_body: int = DEFAULT_MAX_BODY
    memory_budget: int = DEFAULT_MEMORY_BUDGET  # bytes of bodies being read, then the pipeline's
    drain_timeout: float = 30.0
    tls: dict[str, BackendTls] = field(default_factory=dict)
    copy_proxy: str | None = None
    streams: StreamLimits = field(default_factory=StreamLimits)


@dataclass
class SinkCounts:
    """What the sink saw; `requests = stored rows + shed` once it has drained."""

    requests: int = 0
    shed: int = 0
    too_big: int = 0  # over max_body, or the bodies being read over the memory budget
    cut_off: int = 0  # a body that did not arrive whole in time
    unsafe: int = 0


def original_host(value: str) -> str:
    """A mirrored Host header without the `-shadow` suffix Envoy and Istio add."""
    name, colon, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if not colon:
        name, port = value, ""
    if name.endswith(SHADOW_SUFFIX):
        name = name[: -len(SHADOW_SUFFIX)]
    return f"{name}:{port}" if colon else name


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    # The fields a Connection header names are hop-by-hop too (RFC 9110 7.6.1).
    named = {
        token.strip().lower()
        for key, value in pairs
        if key.lower() == "connection"
        for token in value.split(",")
    }
    out = []
    for name, text in pairs:
        lower = name.lower()
        if lower in _DROPPED or lower in named:
            continue
        if lower in ("host", ":authority"):
            text = original_host(text)
        out.append((name, text))
    return tuple(out)


class Sink:
    """The HTTP side: takes mirrored requests, hands them to the pipeline, never waits on it."""

    def __init__(self, o: SinkOptions, run_id: str) -> None:
        self.o = o
        self.run_id = run_id
        self.counts = SinkCounts()
        self.pipeline = Pipeline(
            PipelineSettings(
                db=o.db,
                candidate=o.candidate,
                run_id=run_id,
                source="sink",
                primary=o.primary,
                secondary=o.secondary,
                config_path=o.config,
                unsafe_methods=o.mirror_unsafe,
                timeout=o.timeout,
                concurrency=o.concurrency * 2,  # primary and candidate calls share the pool
                backlog=o.backlog,
                max_body=o.max_body,
                memory_budget=o.memory_budget,
                drain_timeout=o.drain_timeout,
                options=_run_options(o),
                tls=o.tls,
                copy_proxy=o.copy_proxy,
                streams=o.streams,
            )
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._reading = 0  # requests whose bodies are arriving
        self._body_bytes = 0  # bytes of those bodies held so far
        self._logged: set[str] = set()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """One mirrored request: 204 at once; the shadowing goes on in the background.

        Every request counted here ends as one row (through the pipeline) or one shed
        count: past the backlog (checked before its body is read), a body over
        max_body, too slow or cut off, or a stop while it was arriving.
        """
        self.counts.requests += 1
        if self._stopping or len(self._tasks) + self._reading >= self.o.backlog:
            self.counts.shed += 1
            return web.Response(status=204)
        self._reading += 1
        try:
            body = await self._body(request)
        except asyncio.CancelledError:  # the server stops while the body arrives
            self.counts.shed += 1
            raise
        finally:
            self._reading -= 1
        if body is None or self._stopping:
            self.counts.shed += 1
            return web.Response(status=204)
        path, _, query = request.raw_path.partition("?")
        record = Request(request.method, path, query, _headers(request.raw_headers), body)
        task = asyncio.get_running_loop().create_task(self._shadow(record, time.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=204)

    async def _body(self, request: web.BaseRequest) -> bytes | None:
        """The body; None (the rest unread) when it is longer than max_body, would take
        the bodies being read past the memory budget, takes longer than the timeout to
        arrive or is cut off."""
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.o.timeout):
                if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == (
                    "100-continue"
                ):
                    # aiohttp's low-level server does not answer it; a client would wait.
                    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                while chunk := await request.content.read(_CHUNK):
                    size += len(chunk)
                    self._body_bytes += len(chunk)
                    if size > self.o.max_body or self._body_bytes > self.o.memory_budget:
                        self.counts.too_big += 1
                        return None
                    parts.append(chunk)
        except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as exc:
            self.counts.cut_off += 1
            self._log_once(f"a mirrored body could not be read whole ({type(exc).__name__})")
            return None
        finally:
            self._body_bytes -= size
        return b"".join(parts)

    def _log_once(self, message: str) -> None:
        if message not in self._logged:
            self._logged.add(message)
            logger.warning(f"shadow sink: {message}: shed, counted in runs.requests_shed")

    async def _shadow(self, request: Request, started_at: float) -> None:
        key = uuid.uuid4().hex
        pipeline = self.pipeline
        if not pipeline.config.may_copy(request.method, request.path, self.o.mirror_unsafe):
            # Sent nowhere, not even to the primary (a replica written twice is no replica):
            # stored as skipped, as the proxy stores what it does not copy.
            self.counts.unsafe += 1
            pipeline.on_request(key, request, started_at)
            pipeline.on_primary(
                key, BackendResponse(None, None, error="not sent: unsafe method (--mirror-unsafe)")
            )
            await pipeline.wait_for(key)
            return
        await pipeline.exchange(key, request, started_at)

    async def run(self, started: asyncio.Event | None = None) -> int:
        """Serve until SIGINT/SIGTERM, drain, settle the run; the exit code."""
        await self.pipeline.start()
        server = web_server.Server(self.handle, access_log=None)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(server, self.o.host, self.o.port)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        logger.warning(
            f"shadow sink: listening on {self.o.host}:{self.o.port}, shadowing to "
            f"{self.o.primary} and {self.o.candidate}, storing run {self.run_id} in {self.o.db}"
        )
        if started is not None:
            started.set()
        try:
            await stop.wait()
        finally:
            self._stopping = True
            listener.close()
            await server.shutdown(2.0)
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.o.drain_timeout)
            await self.pipeline.close(self.o.drain_timeout)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        accounting = await asyncio.to_thread(
            finish_run,
            self.o.db,
            self.run_id,
            requests=self.counts.requests,
            shed=self.counts.shed,
            restarts=0,
            source="sink",
        )
        if self.counts.too_big:
            logger.warning(
                f"shadow sink: {self.counts.too_big} requests had bodies over --max-body "
                f"({self.o.max_body} bytes) or past the memory budget: shed, counted in "
                "runs.requests_shed"
            )
        if accounting.lost:
            logger.error(f"shadow sink: {accounting.lost} requests were neither stored nor shed")
            return COPIES_LOST
        return 0


def _run_options(o: SinkOptions) -> dict[str, Any]:
    return {
        "listen": f"{o.host}:{o.port}",
        "mirror_unsafe": sorted(o.mirror_unsafe),
        "timeout": o.timeout,
        "concurrency": o.concurrency,
        "backlog": o.backlog,
        "max_body": o.max_body,
        "tls": {leg: t.options() for leg, t in o.tls.items() if t.options()},
    }


def serve(o: SinkOptions) -> int:
    """Run a sink to the end (Ctrl-C / SIGTERM); the exit code."""
    ensure_new_run(o.db, o.run_id, "--run-id")
    run_id = o.run_id or uuid.uuid4().hex[:12]
    return asyncio.run(Sink(o, run_id).run())
