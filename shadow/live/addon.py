"""The mitmproxy addon: copy live traffic to the candidate, off the live path.

Use it from the CLI (`shadow proxy`) or directly:

    mitmdump -s shadow/live/addon.py --mode reverse:http://127.0.0.1:3000 \\
        --set shadow_candidate=http://127.0.0.1:8000 --set shadow_db=parity.duckdb

The hooks only copy what they need out of the flow into immutable records and
put them on a bounded queue to the worker process (shadow.live.worker); they never
wait: when the queue is full the copy is dropped and counted. The client always
gets the primary's response, untouched and undelayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import logging
import multiprocessing
import os
import queue as queue_mod
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy import mode_specs

from comparators.model import Payload
from shadow.config.control import flags_spec
from shadow.config.loader import SAFE_METHODS, load_config, parse_methods
from shadow.config.tls import effective
from shadow.control import fallback
from shadow.errors import COPIES_LOST, ShadowError
from shadow.live import options, tls_options
from shadow.live.cutover import Cutover, bad_gateway, response_from
from shadow.live.streams import StreamDone, StreamTap, TalkTap
from shadow.model import DEFAULT_MAX_BODY, BackendResponse, Request, Served, capped_payload
from shadow.pipeline.core import PipelineSettings
from shadow.pipeline.lag import LoopLag
from shadow.pipeline.realtime import is_websocket
from shadow.pipeline.recording import check_record_path
from shadow.pipeline.sender import MARK_HEADER, SSE_TYPE, StreamLimits
from shadow.store.writer import Accounting, ensure_new_run, ensure_writable, finish_run
from shadow.urls import parse_backend_url, positive_number

logger = logging.getLogger(__name__)

_META = "shadow"  # flow.metadata key: set when the request was queued
_STREAMED = "shadow-streamed"  # flow.metadata key: the answer is streamed to the client
_HOST = "shadow-host"  # flow.metadata key: the client's own Host (keep_host)
_COOKIE = "shadow-cookie"  # flow.metadata key: the canary key cookie to set on the answer
_SENT = "shadow-sent"  # flow.metadata key: (wall, monotonic) time the request was passed on
_TAP = "shadow-tap"  # flow.metadata key: the StreamTap / TalkTap copying a real-time answer
# Answers meant to be read as they arrive: passed through as they come, never buffered.
STREAMED_TYPES = frozenset(
    {
        "text/event-stream",
        "application/x-ndjson",
        "application/stream+json",
        "multipart/x-mixed-replace",
    }
)
BATCH_DELAY = 0.02  # seconds a message may wait for others to share its queue put
BATCH_MAX = 256
# A copy goes out this long after the proxy passed its request on (past the batching and
# the hop to the worker), so the candidate gets the clients' spacing (docs/latency.md).
COPY_PACE = 0.05
OPEN_FLOWS_GRACE = 5.0  # seconds shutdown waits for the primary's answers still in flight
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # back-off between worker restarts
HEALTHY_AFTER = 60.0  # seconds a worker must live before the back-off starts over
MAX_FAILED_STARTS = 5  # workers dying before they are ready, in a row, before giving up
CARRY_MAX = 4 * BATCH_MAX  # answers kept back for the worker when its queue is full
RETRY_DELAY = 0.1  # seconds before kept-back answers are offered again
FLAGS_WAIT = 3.0  # seconds a request at start waits for the first read of the flags


def _headers(h: http.Headers) -> tuple[tuple[str, str], ...]:
    return tuple([(k.decode("latin-1"), v.decode("latin-1")) for k, v in h.fields])


def _values(h: http.Headers, name: bytes) -> list[bytes]:
    """The values of header `name` (lowercase). mitmproxy's own lookups (`in`, `get`) call
    a Python function per header and name: on the hooks' path they cost more than the
    rest of the hooks together (benchmarks/profiles/README.md)."""
    return [v for k, v in h.fields if k.lower() == name]


_MARK = MARK_HEADER.encode()


def _reverse_host(mode: str) -> str:
    """'host[:port]' of a reverse mode's target as a Host header names it ('' if unparsed).

    mitmproxy's own parser: a mode may end in '@listen-port', which is no part of it.
    """
    try:
        spec = mode_specs.ProxyMode.parse(mode)
        scheme, (host, port) = spec.scheme, spec.address  # type: ignore[attr-defined]
    except (ValueError, AttributeError):
        return ""
    default = 443 if scheme in ("https", "wss") else 80
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


def _hostname(hostport: str) -> str | None:
    """The name in 'host[:port]' (IPv6 brackets off), or None when there is none or it is bad."""
    try:
        return urlsplit(f"//{hostport}").hostname if hostport else None
    except ValueError:
        return None


def _copy_proxy(value: str) -> str | None:
    """shadow_copy_proxy: "" -> the environment's (None), "none" -> no proxy ("")."""
    if not value:
        return None
    if value.lower() == "none":
        return ""
    parse_backend_url(value, "shadow_copy_proxy")
    return value


def _answer(
    flow: http.HTTPFlow,
    body: bytes,
    end: float | None,
    limit: int = DEFAULT_MAX_BODY,
    lag_ms: float | None = None,
) -> BackendResponse:
    """The primary's answer to `flow` as a record, timed from when the proxy passed the
    request on (else the request's end) to `end`; `lag_ms`: the proxy's own delay in it.

    A body over `limit` bytes is cut (with its length and digest): what crosses to
    the worker is bounded whatever the primary sends.
    """
    req, resp = flow.request, flow.response
    assert resp is not None
    start = req.timestamp_end or req.timestamp_start
    sent = flow.metadata.get(_SENT)
    if sent and start <= sent[0] <= (end or time.time()):
        start = sent[0]
    headers = _headers(resp.headers)
    ours = flow.metadata.get(_COOKIE)
    if ours:  # the proxy's canary cookie is no part of the primary's answer
        headers = tuple(h for h in headers if not (h[0].lower() == "set-cookie" and h[1] == ours))
    payload = capped_payload(resp.status_code, headers, body, limit)
    elapsed = max(0.0, (end or time.time()) - start) * 1000
    return BackendResponse(payload, elapsed_ms=elapsed, lag_ms=lag_ms)


_frozen = False


def _freeze_startup() -> None:
    """Start-up is over: what it made (modules, mitmproxy's set-up and ours) lives as long as
    the process. Frozen, the collector never walks it again, so the full collections of the
    run (each a pause of every client's request) stay short (benchmarks/profiles/README.md).
    Once per process."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


class Shadow:
    """Mirrors each request to a candidate backend for comparison."""

    def __init__(self) -> None:
        self.enabled = False
        self.settings: PipelineSettings | None = None
        self.queue: Any = None
        self.dropped: Any = None
        self.process: Any = None
        self.queued = 0
        self.seen = 0  # requests meant to be shadowed, queued or not
        self.restarts = 0
        self.accounting: Accounting | None = None
        self.exit_code = 0
        self._launched = False
        self._stopping = False  # the stop signal came: finish what is in flight
        self._stopped = False  # the worker was told to stop: later requests are lost
        self._open: set[str] = set()  # queued flows still waiting for the primary
        self._serving: set[str] = set()  # flows waiting for the candidate's answer
        self._worker_started = 0.0
        self._ever_ready = False  # some worker of this run got ready
        self._stop_event: Any = None
        self._hashing: set[asyncio.Future[str]] = set()  # oversized answers being hashed
        self._shed_ids: set[str] = set()  # flows whose request was shed, until they end
        self._after_stop = 0  # requests served after the stop, not shadowed
        self._keep_host_primary = False
        self._keep_host_any = False
        self._primary_host = ""  # host[:port] of the primary, from the reverse mode URL
        self._hosts: dict[str, str] = {}  # client connection -> Host (keep_host, primary)
        self._watcher: asyncio.Task[None] | None = None
        self._failed: Any = None
        self._ready: Any = None
        self._lag: LoopLag | None = None
        self._ws_history = -1  # WebSocket messages left in a flow after the copy (-1: all)
        self._metrics: Any = None  # shadow.monitoring.server.MetricsServer (--metrics)
        self._proxy_metrics: Any = None  # shadow.monitoring.proxy_metrics.ProxyMetrics
        self._metrics_port: Any = None  # the worker's metrics port (a shared int)
        self._batch: list[tuple[Any, ...]] = []
        self._batch_timer: asyncio.TimerHandle | None = None
        self.cutover: Cutover | None = None
        self._cutover_args: tuple[Any, ...] | None = None
        self._flags_ready: asyncio.Event | None = None  # set once the flags were read (or not)

    def load(self, loader: Any) -> None:
        options.add_options(loader)

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("shadow_") for name in updated):
            return
        if self._launched:
            # The worker was started with the old settings and holds the database.
            raise exceptions.OptionsError("shadow options cannot change while the proxy runs")
        opts = ctx.options
        if not opts.shadow_candidate:
            self.enabled = False
            return
        try:
            candidate = parse_backend_url(opts.shadow_candidate, "shadow_candidate")
            secondary = (
                parse_backend_url(opts.shadow_secondary, "shadow_secondary")
                if opts.shadow_secondary
                else None
            )
            config = load_config(opts.shadow_config or None)
            tls = effective(config.tls, tls_options.read(opts))
            if opts.ssl_insecure and not tls["primary"].insecure:
                # mitmproxy's own -k: the primary goes unverified, so it is said and recorded.
                tls["primary"] = tls["primary"].merged(insecure=True)
            tls_options.announce(tls)
            updates = tls_options.mitmproxy_updates(
                tls["primary"],
                os.path.expanduser(opts.shadow_listen_cert),
                os.path.expanduser(opts.shadow_listen_key),
                os.path.expanduser(opts.confdir),
            )
            unsafe = parse_methods(opts.shadow_mirror_unsafe)
            positive_number(opts.shadow_timeout, "shadow_timeout")
            positive_number(opts.shadow_drain_timeout, "shadow_drain_timeout")
            if opts.shadow_concurrency < 1 or opts.shadow_queue_size < 1:
                raise ShadowError("shadow_concurrency and shadow_queue_size must be at least 1")
            if opts.shadow_max_body < 1 or opts.shadow_worker_memory < 1:
                raise ShadowError("shadow_max_body and shadow_worker_memory must be at least 1")
            positive_number(opts.shadow_stream_seconds, "shadow_stream_seconds")
            self._ws_history = opts.shadow_websocket_history
            if opts.shadow_stream_messages < 1 or opts.shadow_stream_connections < 1:
                raise ShadowError(
                    "shadow_stream_messages and shadow_stream_connections must be at least 1"
                )
            ensure_writable(opts.shadow_db)
            ensure_new_run(opts.shadow_db, opts.shadow_run_id, "shadow_run_id")
            if opts.shadow_bodies not in ("differ", "all", "none"):
                raise ShadowError("shadow_bodies must be one of differ, all, none")
            if opts.shadow_record:
                check_record_path(opts.shadow_record)
            self._bind_metrics(opts.shadow_metrics)
        except ShadowError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        if tls["primary"].keep_host or "certs" in updates:
            # keep_host: the primary's TLS name must be the client's Host, known only once
            # a request came. certs: with the primary connected first, mitmproxy offers
            # TLS clients only what the primary speaks (no HTTP/2 before an HTTP/1.1
            # backend). Both need the connection to the primary made after the request.
            updates["connection_strategy"] = "lazy"
        self._keep_host_primary = tls["primary"].keep_host
        self._keep_host_any = any(t.keep_host for t in tls.values())
        if self._keep_host_any:
            updates["keep_host_header"] = True
        if updates:
            opts.update(**updates)
        primary = ""
        if opts.mode and opts.mode[0].startswith("reverse:"):
            primary = opts.mode[0].removeprefix("reverse:")
        self._primary_host = _reverse_host(opts.mode[0]) if primary else ""
        flags = flags_spec(opts.shadow_flags, config.control, opts.shadow_config or None)
        self._cutover_args = (
            config,
            flags,
            candidate,
            tls["candidate"],
            _copy_proxy(opts.shadow_copy_proxy),
        )
        self.settings = PipelineSettings(
            db=opts.shadow_db,
            candidate=candidate,
            secondary=secondary,
            run_id=opts.shadow_run_id or uuid.uuid4().hex[:12],
            source="proxy",
            config_path=opts.shadow_config or None,
            unsafe_methods=unsafe,
            timeout=opts.shadow_timeout,
            concurrency=opts.shadow_concurrency,
            backlog=opts.shadow_queue_size,
            body_cap=opts.shadow_body_cap,
            record=opts.shadow_record or None,
            bodies=opts.shadow_bodies,
            options={
                "primary": primary,
                "mode": list(opts.mode),
                "tls": {leg: t.options() for leg, t in tls.items() if t.options()},
            },
            max_body=opts.shadow_max_body,
            memory_budget=opts.shadow_worker_memory,
            drain_timeout=opts.shadow_drain_timeout,
            tls=tls,
            copy_proxy=_copy_proxy(opts.shadow_copy_proxy),
            flags=flags,
            rollback=opts.shadow_rollback,
            pace=COPY_PACE,
            metrics=self._metrics is not None,
            streams=StreamLimits(
                messages=opts.shadow_stream_messages,
                seconds=opts.shadow_stream_seconds,
                message_bytes=opts.shadow_max_body,
                connections=opts.shadow_stream_connections,
            ),
        )
        self.enabled = True

    def _bind_metrics(self, address: str) -> None:
        """Take the metrics address now (a busy port is a setup error); serve it once running."""
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if not address:
            return
        from shadow.monitoring.address import parse_address
        from shadow.monitoring.server import MetricsServer

        host, port = parse_address(address, "shadow_metrics")
        # The server reads the figures through self._proxy_metrics, set in running().
        self._metrics = MetricsServer(
            host, port, self._exposition, self._readiness, option="shadow_metrics"
        )

    def _exposition(self) -> bytes:
        if self._proxy_metrics is None:
            return b""
        return bytes(self._proxy_metrics.exposition())

    def _readiness(self) -> str | None:
        if self._proxy_metrics is None:
            return "starting"
        return self._proxy_metrics.readiness()

    def _start_metrics(self) -> None:
        from shadow.monitoring.proxy_metrics import ProxyMetrics, ProxyState

        assert self.settings is not None and self._metrics is not None

        def worker_pid() -> int | None:
            process = self.process
            return process.pid if process is not None and process.exitcode is None else None

        def control() -> Any:
            c = self.cutover
            return None if c is None else (c.control, c.watcher)

        self._proxy_metrics = ProxyMetrics(
            ProxyState(
                run_id=self.settings.run_id,
                requests=lambda: self.seen,
                restarts=lambda: self.restarts,
                worker_pid=worker_pid,
                worker_ready=lambda: self._ready is not None and self._ready.is_set(),
                worker_port=lambda: int(self._metrics_port.value) if self._metrics_port else 0,
                control=control,
            )
        )
        self._metrics.start()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self.enabled or not self._keep_host_any:
            return
        # mitmproxy keeps the client's Host (keep_host_header) when any backend wants it:
        # the copies take it from the recorded request, the primary only if asked to.
        original = flow.request.host_header or ""
        flow.metadata[_HOST] = original
        if self._keep_host_primary:
            self._hosts[flow.client_conn.id] = original  # for server_connect (its SNI)
        elif self._primary_host:
            flow.request.host_header = self._primary_host

    def server_connect(self, data: Any) -> None:
        if not self.enabled or not self._primary_host:
            return
        # A reverse proxy's TLS name toward the primary is the primary's own (mitmproxy
        # would pass on the client's, meant for this proxy), or with keep_host the Host.
        name = _hostname(self._primary_host)
        if self._keep_host_primary:
            name = _hostname(self._hosts.get(data.client.id, "")) or name
        if name:
            data.server.sni = name

    def client_disconnected(self, client: Any) -> None:
        self._hosts.pop(client.id, None)

    async def running(self) -> None:
        if not self.enabled or self._launched:
            return
        self._launched = True
        self._lag = LoopLag()  # a 5 ms timer: the proxy's own delay in the primary's times
        self._lag.start()
        self._start_worker()
        if self._metrics is not None:
            self._start_metrics()
        # Keep a reference to the task: the loop holds tasks only weakly.
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        if self._cutover_args is not None:
            try:
                self.cutover = Cutover(*self._cutover_args)
            except ShadowError as exc:  # a flags path that cannot be used: shadow mode only
                logger.error(f"shadow: route modes off: {exc}")
            else:
                # mitmproxy listens already: requests wait (briefly) for the first read of
                # the flags, or a route cut over would be served by the primary meanwhile.
                self._flags_ready = asyncio.Event()
                try:
                    await self.cutover.start()
                finally:
                    self._flags_ready.set()
        _freeze_startup()
        assert self.settings is not None
        logger.info(
            f"shadow: copying to {self.settings.candidate}, storing in {self.settings.db} "
            f"(run {self.settings.run_id})"
        )

    def _start_worker(self) -> None:
        """Start a worker process (again, after one died: it continues the same run)."""
        from shadow.live.worker import run_worker

        assert self.settings is not None
        # spawn, not fork: the proxy process has an event loop and threads running.
        mp = multiprocessing.get_context("spawn")
        if self.dropped is None:
            self.dropped = mp.Value("q", 0, lock=False)  # copies shed, over all workers
            self._stop_event = mp.Event()
        if self.queue is None:
            self.queue = self._new_queue()
        # Keep references: a semaphore collected here breaks the child's unpickling.
        self._ready = mp.Event()
        self._failed = mp.SimpleQueue()
        if self.settings.metrics:
            self._metrics_port = mp.Value("i", 0, lock=False)  # the new worker's own port
        settings = dataclasses.replace(
            self.settings, resume=self.restarts > 0, restarts=self.restarts
        )
        self._worker_started = time.monotonic()
        process = mp.Process(
            target=run_worker,
            args=(
                settings,
                self.queue,
                self.dropped,
                self._ready,
                self._failed,
                self._stop_event,
                self._metrics_port,
            ),
            name="shadow-worker",
            daemon=False,
        )
        process.start()
        self.process = process

    def _new_queue(self) -> Any:
        # The queue holds batches; its bound approximates shadow_queue_size messages.
        assert self.settings is not None
        mp = multiprocessing.get_context("spawn")
        return mp.Queue(maxsize=max(8, self.settings.backlog // 16))

    def _retire_queue(self) -> None:
        """Let go of a dead worker's queue without blocking: what it held is lost."""
        old, self.queue = self.queue, None
        if old is None:
            return
        # Its feeder thread may block on a full pipe for ever, holding every batch:
        # read the pipe empty in the background so both can go.
        old.cancel_join_thread()

        def discard() -> None:
            with contextlib.suppress(Exception):
                while True:
                    old.get(timeout=0.5)
            with contextlib.suppress(Exception):
                old.close()

        threading.Thread(target=discard, name="shadow-discard", daemon=True).start()

    async def _exited_or(self, seconds: float) -> None:
        """Until the worker process ends (its sentinel becomes readable) or `seconds` pass."""
        proc = self.process
        if proc is None:
            await asyncio.sleep(seconds)
            return
        # Noticed at once rather than at the next poll: until then copies go into the
        # dead worker's queue and are lost.
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def on_end() -> None:
            if not ended.done():
                ended.set_result(None)

        try:
            loop.add_reader(proc.sentinel, on_end)
        except (NotImplementedError, ValueError, OSError):  # no fd readers here: poll
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(ended, seconds)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(proc.sentinel)

    async def _watch(self) -> None:
        """Notice a worker that died: restart it with back-off, or give up if it cannot start."""
        failures = 0  # deaths since the last worker that lived HEALTHY_AFTER seconds
        starts_failed = 0  # workers in a row that died before they were ready
        while not self._stopping:
            await self._exited_or(0.5)
            proc = self.process
            if self._stopping:
                return
            if proc is not None and proc.is_alive():
                if time.monotonic() - self._worker_started > HEALTHY_AFTER:
                    failures = 0
                if self._ready.is_set():
                    self._ever_ready = True
                    starts_failed = 0
                continue
            reason = ""
            if proc is not None:
                reason = "" if self._failed.empty() else f": {self._failed.get()}"
                if self._ready.is_set():
                    self._ever_ready = True
                else:
                    starts_failed += 1
                self.process = None
            # A fresh queue collects what comes during the back-off, for the next worker.
            self._retire_queue()
            self.queue = self._new_queue()
            code = proc.exitcode if proc is not None else None
            if (reason and not self._ever_ready) or starts_failed >= MAX_FAILED_STARTS:
                # It cannot start (config, database): a restart would fail alike.
                logger.error(f"shadow: worker exited (code {code}){reason}; shadowing stopped")
                self._retire_queue()
                self.enabled = False
                self.exit_code = COPIES_LOST
                return
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            logger.error(
                f"shadow: worker died (code {code}){reason}; restarting it in {delay:g} s. "
                "Copies it held are lost and counted in the run (runs.requests_lost)."
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self.restarts += 1
            try:
                self._start_worker()
            except Exception as exc:  # e.g. out of processes: try again after the back-off
                logger.error(f"shadow: could not start a worker: {exc}")
                starts_failed += 1

    def _put(self, msg: tuple[Any, ...]) -> None:
        # Batch messages for a few milliseconds: one queue put (one pickle, one
        # wake-up of the queue's feeder thread) per batch instead of per message
        # halves what the addon costs the proxy's event loop.
        self._batch.append(msg)
        if len(self._batch) >= BATCH_MAX:
            self._send_batch()
        else:
            self._arm(BATCH_DELAY)

    def _arm(self, delay: float) -> None:
        if self._batch_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside mitmproxy's loop (tests, scripts)
            self._send_batch()
            return
        self._batch_timer = loop.call_later(delay, self._send_batch)

    def _send_batch(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        batch, self._batch = self._batch, []
        if not batch or self.queue is None:
            return  # no worker (it gave up): the requests in it count as lost
        try:
            self.queue.put_nowait(batch)
        except queue_mod.Full:
            self._shed(batch)

    def _shed(self, batch: list[tuple[Any, ...]]) -> None:
        """The worker is behind: drop the new copies (counted), keep the answers it awaits."""
        shed = {m[1] for m in batch if m[0] == "req"}
        self.dropped.value += len(shed)
        self._open.difference_update(shed)
        self._shed_ids.update(shed)  # their answers, when they come, are not sent either
        # Answers and skips belong to copies the worker already has: without them it
        # would keep those copies until they expire, so they wait for the next batch.
        kept = [m for m in batch if m[0] != "req" and m[1] not in shed]
        if len(kept) > CARRY_MAX:  # the worker stays stuck: their exchanges expire as rows
            kept = kept[-CARRY_MAX:]
        if kept:
            self._batch[:0] = kept
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop to retry on (tests): they wait for the next message
            self._arm(RETRY_DELAY)

    def request(self, flow: http.HTTPFlow) -> Any:
        ready = self._flags_ready
        if ready is not None and not ready.is_set() and not flow.is_replay:
            return self._after_flags(flow)
        return self._request(flow)

    async def _after_flags(self, flow: http.HTTPFlow) -> None:
        """A request that came before the first read of the flags: it waits for it."""
        assert self._flags_ready is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flags_ready.wait(), FLAGS_WAIT)
        serving = self._request(flow)
        if serving is not None:
            await serving

    def _request(self, flow: http.HTTPFlow) -> Any:
        if not self._launched or flow.is_replay:
            return None
        req = flow.request
        if req.stream:
            # A streamed body (stream_large_bodies) is not kept: nothing to copy, nor to send
            # to a candidate; the primary answers (docs/control.md).
            return None
        if _values(req.headers, _MARK):
            # One of our own copies came back through the proxy: not recorded again. The
            # header is no way around a route's mode, though: anyone can send it.
            return self._unrecorded(flow)
        if self._stopped:
            # Its client was let go in the tick the stop began (its headers came just
            # before): refused, not forwarded, like a connection after the listeners closed.
            if flow.killable:
                flow.kill()
            return None
        self.seen += 1
        assert self.settings is not None
        body = req.raw_content or b""
        limit = self.settings.max_body
        skip = f"request body over {limit} bytes: not copied" if len(body) > limit else None
        record = self._record(flow, body)
        served: Served | None = None
        if self.cutover is not None:
            # Who answers does not depend on the worker: a route cut over stays so without it.
            decision = self.cutover.decide(
                req.method, record.path, record.headers, flow.client_conn.tls
            )
            if decision.set_cookie:
                flow.metadata[_COOKIE] = decision.set_cookie
            if decision.serve and not is_websocket(record):
                # A coroutine: mitmproxy awaits it, and serves other flows meanwhile.
                # (A WebSocket upgrade stays with the primary: docs/realtime.md.)
                return self._serve(flow, record, decision.mode, decision.reverse, skip)
            served = Served(decision.mode)
            if decision.mode == "legacy" and skip is None:
                skip = "route mode legacy: not copied"
        if not self.enabled:
            return None  # no worker left: counted (seen) and lost
        self._queue_request(flow, record, skip, served)
        return None

    def _unrecorded(self, flow: http.HTTPFlow) -> Any:
        """A request that is not recorded, answered as its route's mode says."""
        if self.cutover is None or self._stopped:
            return None
        record = self._record(flow, flow.request.raw_content or b"")
        decision = self.cutover.decide(
            record.method, record.path, record.headers, flow.client_conn.tls
        )
        if not decision.serve:
            return None
        return self._serve(flow, record, decision.mode, False, None, recorded=False)

    def _record(self, flow: http.HTTPFlow, body: bytes) -> Request:
        """The request as the worker gets it (the client's Host kept for --keep-host)."""
        req = flow.request
        path, _, query = req.path.partition("?")
        headers = _headers(req.headers)
        # The client's Host (kept from before the primary's replaced it) or, from an
        # HTTP/2 client, its :authority: what --keep-host sends to the copies' backends.
        host = flow.metadata.get(_HOST) or ("" if _values(req.headers, b"host") else req.authority)
        if host:
            headers = (("host", host), *((k, v) for k, v in headers if k.lower() != "host"))
        return Request(req.method, path, query, headers, body)

    def _queue_request(
        self,
        flow: http.HTTPFlow,
        record: Request,
        skip: str | None,
        served: Served | None,
        answer: bool = True,
    ) -> None:
        """Hand the request to the worker; `answer`: the primary's answer will follow."""
        req = flow.request
        if skip:
            record = dataclasses.replace(record, body=b"")  # held nowhere past the proxy
        # The skip reason travels with the request: the worker must not start the copy.
        # `now`: the request goes on to the primary (or was served); the copy is paced
        # from here, not from when the client began to send (a slow upload is not ours).
        now = time.time()
        started = req.timestamp_start or now
        self._put(("req", flow.id, record, started, skip, served, now))
        if answer:
            flow.metadata[_META] = True
            # The primary's clock starts here, as the candidate's starts when its copy is
            # sent: the time this proxy took to read and hand on the request is not its.
            flow.metadata[_SENT] = (now, time.monotonic())
            self._open.add(flow.id)
        self.queued += 1

    async def _serve(
        self,
        flow: http.HTTPFlow,
        record: Request,
        mode: str,
        reverse: bool,
        skip: str | None,
        recorded: bool = True,
    ) -> None:
        """The candidate answers this request; on a failure the primary may (fallback)."""
        assert self.cutover is not None and self.settings is not None
        req = flow.request
        self._serving.add(flow.id)  # shutdown waits for it like for a primary's answer
        asked = time.monotonic()
        try:
            answer = await self.cutover.ask(record)
        finally:
            self._serving.discard(flow.id)
        if self._lag is not None:  # timed in this loop: its stalls are our delay in it
            answer = dataclasses.replace(answer, lag_ms=round(self._lag.worst(asked) * 1000, 3))
        p = answer.payload
        # What crosses to the worker is bounded (the client gets the whole answer).
        kept = answer
        if p is not None and len(p.body) > self.settings.max_body:
            cut = capped_payload(p.status, p.headers, p.body, self.settings.max_body)
            kept = dataclasses.replace(answer, payload=cut)
        why = fallback.failure(answer)
        if why is not None and fallback.may_fall_back(req.method, answer):
            # The primary answers, as if the candidate had never been asked (one attempt).
            served = Served(mode, "primary", True, kept)
        else:
            cookie = flow.metadata.pop(_COOKIE, None)
            if why is None or (p is not None and not p.cut):
                flow.response = response_from(flow, answer, cookie)  # its 5xx too, for a write
            else:
                flow.response = bad_gateway(flow, why)
            reverse = reverse and req.method.upper() in SAFE_METHODS
            served = Served(mode, "candidate", False, kept, reverse)
        if not recorded:
            return
        if self._stopped:
            self._after_stop += 1  # counted with the shed ones
            return
        if not self.enabled:
            return  # no worker left: counted (seen) and lost
        # After a fallback the primary's answer follows, as for any shadowed request.
        self._queue_request(flow, record, skip, served, answer=served.fell_back)

    def _shadowed(self, flow: http.HTTPFlow) -> bool:
        """Whether `flow`'s request was queued and its (first) answer may still be sent."""
        if not flow.metadata.get(_META):
            return False
        flow.metadata[_META] = False  # one answer per request: an error after it is not one
        self._open.discard(flow.id)
        if flow.id in self._shed_ids:  # its request was shed: the worker never had it
            self._shed_ids.discard(flow.id)
            return False
        return self.enabled and not self._stopped

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        cookie = flow.metadata.get(_COOKIE)
        if cookie:  # a canary user without a key: from now on, this one
            resp.headers.add("set-cookie", cookie)
        ctype = b", ".join(_values(resp.headers, b"content-type")).decode("latin-1")
        mtype = ctype.split(";", 1)[0].strip().lower()
        if mtype not in STREAMED_TYPES:
            return
        # The client reads it as it arrives: pass it through now (mitmproxy would buffer
        # the whole body first), whether shadowing is on or not.
        resp.stream = True
        flow.metadata[_STREAMED] = True
        if not self._shadowed(flow):
            return
        if mtype == SSE_TYPE:
            assert self.settings is not None
            # Passed on chunk by chunk as before; a bounded copy is kept on the side.
            tap = StreamTap(self.settings.streams, self.settings.max_body, self._stream_done(flow))
            resp.stream = tap
            flow.metadata[_TAP] = tap
            return
        self._put(("skip", flow.id, f"streamed answer ({mtype}): passed through, not compared"))
        self._put(("resp", flow.id, _answer(flow, b"", resp.timestamp_start)))  # not timed

    def _stream_done(self, flow: http.HTTPFlow) -> StreamDone:
        """What to do with the primary's event stream once its copy ends."""
        key = flow.id
        assert flow.response is not None
        headers_at = flow.response.timestamp_start
        lag = self._primary_lag(flow)

        def done(raw: bytes, ended: str, times: list[tuple[int, float]], t_end: float) -> None:
            answer = _answer(flow, raw, headers_at, len(raw) + 1, lag)  # timed to its headers
            self._put(("sse", key, answer, ended, times, t_end))

        return done

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            return
        messages = flow.websocket.messages
        tap = flow.metadata.get(_TAP)
        if isinstance(tap, TalkTap):
            m = messages[-1]
            tap.message(m.from_client, m.is_text, m.content, m.timestamp)
        keep = self._ws_history
        if 0 <= keep < len(messages) - 1:
            # mitmproxy relays the message it just handed us, not the list: the older
            # ones are only memory (a conversation of hours would hold every message).
            del messages[: len(messages) - 1 - keep]

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        tap = flow.metadata.get(_TAP)
        if isinstance(tap, TalkTap) and flow.websocket is not None:
            ws = flow.websocket
            by = (
                "" if ws.closed_by_client is None else "client" if ws.closed_by_client else "server"
            )
            # 1006: the connection was lost without a closing handshake; while stopping,
            # it is the proxy that let it go: the conversation is compared as far as it got.
            ended = "error" if ws.close_code in (None, 1006) else "closed"
            if self._stopping or self._stopped:
                ended = "limit"
            at = ws.timestamp_end or time.time()
            tap.end(ws.close_code, ws.close_reason or "", by, ended, at)

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_STREAMED) or flow.response is None:
            return  # a stream is stored when its headers came
        if not self._shadowed(flow):
            return
        resp = flow.response
        if flow.websocket is not None and resp.status_code == 101:
            # A conversation follows: the worker copies it message by message.
            assert self.settings is not None
            t0 = resp.timestamp_end or time.time()
            answer = _answer(flow, b"", t0, 1, self._primary_lag(flow))
            flow.metadata[_TAP] = TalkTap(flow.id, t0, self.settings.streams, self._put)
            self._put(("wsopen", flow.id, answer, t0))
            return
        if resp.stream:
            reason = "primary body streamed (stream_large_bodies): not compared"
            self._put(("resp", flow.id, BackendResponse.failed(reason)))
            return
        assert self.settings is not None
        body = resp.raw_content or b""
        if len(body) > self.settings.max_body:
            self._cut_later(flow, body)
            return
        limit = self.settings.max_body
        lag = self._primary_lag(flow)
        self._put(("resp", flow.id, _answer(flow, body, resp.timestamp_end, limit, lag)))

    def _primary_lag(self, flow: http.HTTPFlow) -> float | None:
        """The longest stall of this proxy's event loop since `flow`'s request was passed
        on (ms): how much of the proxy's own delay may be in the primary's time."""
        sent = flow.metadata.get(_SENT)
        if sent is None or self._lag is None:
            return None
        return round(self._lag.worst(sent[1]) * 1000, 3)

    def _cut_later(self, flow: http.HTTPFlow, body: bytes) -> None:
        """An answer over max_body: hash it off the event loop, then queue it cut."""
        assert self.settings is not None
        key, limit = flow.id, self.settings.max_body
        end = flow.response.timestamp_end if flow.response else None
        answer = _answer(flow, body[:limit], end, limit, self._primary_lag(flow))
        assert answer.payload is not None
        head = answer.payload

        def queue_it(digest: str) -> None:
            payload = Payload(head.status, head.headers, head.body, len(body), digest)
            self._put(("resp", key, dataclasses.replace(answer, payload=payload)))

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside mitmproxy's loop (tests): hash here
            queue_it(hashlib.sha256(body).hexdigest())
            return
        # Hashing 100 MB takes about 100 ms: on the proxy's loop that would stall every
        # client. hashlib lets go of the GIL, so a thread does it alongside.
        future = loop.run_in_executor(None, lambda: hashlib.sha256(body).hexdigest())
        self._hashing.add(future)

        def done(f: asyncio.Future[str]) -> None:
            self._hashing.discard(f)
            if f.cancelled() or f.exception() is not None:
                self._put(("resp", key, BackendResponse.failed("primary answer: hashing failed")))
            else:
                queue_it(f.result())

        future.add_done_callback(done)

    def error(self, flow: http.HTTPFlow) -> None:
        tap = flow.metadata.get(_TAP)
        if isinstance(tap, StreamTap):  # the stream ended early: compared as far as it came
            # The client going away says nothing of the primary: we stopped listening.
            gone = flow.error is not None and flow.error.msg.startswith("Client disconnected")
            tap.finish("limit" if gone or self._stopping else "error")
            return
        if flow.metadata.get(_STREAMED) or not self._shadowed(flow):
            return  # a stream is stored when its headers came
        msg = flow.error.msg if flow.error else "primary failed"
        if flow.response is not None:
            # The primary died mid-answer: the client got a cut answer (or none).
            msg = f"primary connection broke during its answer: {msg}"
        elif msg.startswith("Client disconnected"):
            # The client gave up first: that says nothing about the primary.
            self._put(("skip", flow.id, "client disconnected before the primary answered"))
        self._put(("resp", flow.id, BackendResponse.failed(msg)))

    async def done(self) -> None:
        if not self._launched:
            return
        assert self.settings is not None
        self._stopping = True
        # Stop taking connections, then let answers in flight arrive (bounded), so the
        # requests the proxy already took are stored with the primary's answer.
        await self._close_listeners()
        grace = OPEN_FLOWS_GRACE
        if self.cutover is not None:  # the candidate may take its whole timeout to answer
            grace = max(grace, self.cutover.control.timeout + 1)
        deadline = time.monotonic() + min(grace, self.settings.drain_timeout)
        while (self._serving or (self._open and self.enabled)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._hashing:
            await asyncio.wait(set(self._hashing), timeout=max(0.1, deadline - time.monotonic()))
        self._stopped = True
        # Close the clients' kept-alive connections in the same tick: no request can
        # slip in between, and none is served after the run's accounting is settled.
        self._close_clients()
        if self._watcher is not None:
            self._watcher.cancel()
        if self._lag is not None:
            self._lag.stop()
        if self.cutover is not None:
            with contextlib.suppress(Exception):
                await self.cutover.aclose()
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        last, self._batch = self._batch, []
        # Everything queued is still written: the worker drains (up to its deadline).
        await asyncio.to_thread(self._stop_worker, last)
        await asyncio.to_thread(self._settle_run)
        tls_options.remove_temp_files()
        if self._metrics is not None:
            self._metrics.close()

    async def _close_listeners(self) -> None:
        with contextlib.suppress(Exception):
            servers = ctx.master.addons.get("proxyserver").servers
            # Python 3.12+ waits for open client connections here: bound it.
            await asyncio.wait_for(servers.update([]), 2.0)

    def _close_clients(self) -> None:
        with contextlib.suppress(Exception):
            for handler in list(ctx.master.addons.get("proxyserver").connections.values()):
                with contextlib.suppress(Exception):
                    handler.close_connection(handler.client)

    def _stop_worker(self, last: list[tuple[Any, ...]]) -> None:
        """Tell the worker to stop (after `last`, the final batch), wait for it, or kill it."""
        assert self.settings is not None
        process, self.process = self.process, None
        try:
            if process is None or not process.is_alive():
                return
            # Out of band: a full queue cannot keep the worker from learning of the stop,
            # and its drain deadline starts now, not when it reaches the end of its backlog.
            with contextlib.suppress(queue_mod.Full):
                if last:
                    self.queue.put(last, timeout=5)  # the last answers, worth a short wait
            self._stop_event.set()
            with contextlib.suppress(queue_mod.Full):
                self.queue.put_nowait(("stop",))
            # The worker gives up on copies and comparisons at its drain deadline; writing
            # the last rows may take a while longer on a slow disk.
            process.join(timeout=self.settings.drain_timeout + 60)
            if process.is_alive():
                logger.error("shadow: worker did not finish in time; stopping it")
                process.kill()  # it ignores SIGTERM on purpose (it must outlive a Ctrl-C)
                process.join(timeout=5)
            elif process.exitcode:
                logger.error(f"shadow: worker ended with code {process.exitcode}")
        finally:
            # No worker reads the queue any more: whatever is left must not block our exit.
            if self.queue is not None:
                self.queue.cancel_join_thread()

    def _settle_run(self) -> None:
        """Record how every request of the run ended; decide the exit code."""
        assert self.settings is not None
        try:
            self.accounting = a = finish_run(
                self.settings.db,
                self.settings.run_id,
                requests=self.seen,
                shed=self._after_stop
                + (int(self.dropped.value) if self.dropped is not None else 0),
                restarts=self.restarts,
            )
        except Exception as exc:  # never a traceback out of mitmproxy's done hook
            logger.error(f"shadow: could not record the run's accounting: {exc}")
            self.exit_code = COPIES_LOST
            return
        if a.lost or self.restarts:
            logger.error(
                f"shadow: {a.lost} of {a.requests} requests were neither stored nor shed "
                f"({self.restarts} worker restarts); see runs.requests_lost"
            )
            self.exit_code = COPIES_LOST
        if self._after_stop:
            logger.warning(
                f"shadow: {self._after_stop} requests came after the stop, or were still "
                "waiting for an answer when the clients were let go: not shadowed "
                "(counted in requests_shed)"
            )
        if a.spilled:
            logger.error(
                f"shadow: {a.spilled} rows are in the spill file beside {self.settings.db}"
            )


addons = [Shadow()]
