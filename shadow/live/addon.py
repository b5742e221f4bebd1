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
import logging
import multiprocessing
import queue as queue_mod
import time
import uuid
from typing import Any

from mitmproxy import ctx, exceptions, http

from comparators.model import Payload
from shadow.config.loader import load_config, parse_methods
from shadow.errors import ShadowError
from shadow.model import BackendResponse, Request
from shadow.pipeline.core import PipelineSettings
from shadow.pipeline.recording import check_record_path
from shadow.pipeline.sender import MARK_HEADER
from shadow.store.writer import ensure_new_run, ensure_writable
from shadow.urls import parse_backend_url, positive_number

logger = logging.getLogger(__name__)

_META = "shadow"  # flow.metadata key: set when the request was queued
_STREAMED = "shadow-streamed"  # flow.metadata key: the answer is streamed to the client
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


def _headers(h: http.Headers) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in h.fields)


def _answer(flow: http.HTTPFlow, body: bytes, end: float | None) -> BackendResponse:
    """The primary's answer to `flow` as a record, timed from the request's end to `end`."""
    req, resp = flow.request, flow.response
    assert resp is not None
    start = req.timestamp_end or req.timestamp_start
    payload = Payload(resp.status_code, _headers(resp.headers), body)
    return BackendResponse(payload, elapsed_ms=((end or time.time()) - start) * 1000)


class Shadow:
    """Mirrors each request to a candidate backend for comparison."""

    def __init__(self) -> None:
        self.enabled = False
        self.settings: PipelineSettings | None = None
        self.queue: Any = None
        self.dropped: Any = None
        self.process: Any = None
        self.queued = 0
        self._watcher: asyncio.Task[None] | None = None
        self._failed: Any = None
        self._ready: Any = None
        self._batch: list[tuple[Any, ...]] = []
        self._batch_timer: asyncio.TimerHandle | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "shadow_candidate", str, "",
            """
            Base URL of the candidate backend (e.g. http://127.0.0.1:8000). Each
            request sent to the primary is copied there in the background and the
            two responses are compared. Empty: shadowing is off.
            """,
        )  # fmt: skip
        loader.add_option(
            "shadow_secondary", str, "",
            """
            Base URL of a second instance of the primary (legacy) backend. Copies of
            safe requests (GET, HEAD, OPTIONS; never unsafe ones, which would write
            there too) also go there; a value that changes between primary and
            secondary is evidence of noise (see docs/verdicts.md).
            """,
        )  # fmt: skip
        loader.add_option(
            "shadow_db", str, "parity.duckdb",
            "DuckDB file the exchanges and their differences are written to.",
        )  # fmt: skip
        loader.add_option(
            "shadow_config", str, "",
            """
            TOML file with comparison rules and endpoint routes (see README).
            Empty: default rules.
            """,
        )  # fmt: skip
        loader.add_option(
            "shadow_mirror_unsafe", str, "",
            """
            Comma-separated methods besides GET, HEAD and OPTIONS that may be copied
            to the candidate ("POST,PUT", or "*" for all). A copied POST writes
            twice, so the default copies none; endpoints can allow it in the config.
            """,
        )  # fmt: skip
        loader.add_option(
            "shadow_timeout", float, 5.0,
            "Seconds to wait for the candidate before recording a candidate error.",
        )  # fmt: skip
        loader.add_option(
            "shadow_concurrency", int, 32,
            "Maximum copies in flight to the candidate at once.",
        )  # fmt: skip
        loader.add_option(
            "shadow_queue_size", int, 10000,
            """
            Capacity of the queue between the proxy and the comparing worker. When
            it is full, copies are dropped and counted rather than slowing clients.
            """,
        )  # fmt: skip
        loader.add_option(
            "shadow_body_cap", int, 65536,
            "Bytes of each body kept in the store for review (longer ones are cut and flagged).",
        )  # fmt: skip
        loader.add_option(
            "shadow_bodies", str, "differ",
            """
            Which exchanges keep their bodies in the store for review: "differ"
            (all but matching ones), "all", or "none". Differences are always kept.
            """,
        )  # fmt: skip
        loader.add_option(
            "shadow_record", str, "",
            """
            Also record what passed through (request and the primary's response,
            secrets redacted) for `shadow replay`: a .har file, a .jsonl file, or
            any other name for a mitmproxy flow dump. Empty: no recording.
            """,
        )  # fmt: skip
        loader.add_option(
            "shadow_run_id", str, "",
            "Identifier of this run in the store. Empty: a new random one.",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("shadow_") for name in updated):
            return
        if self.process is not None:
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
            load_config(opts.shadow_config or None)
            unsafe = parse_methods(opts.shadow_mirror_unsafe)
            positive_number(opts.shadow_timeout, "shadow_timeout")
            if opts.shadow_concurrency < 1 or opts.shadow_queue_size < 1:
                raise ShadowError("shadow_concurrency and shadow_queue_size must be at least 1")
            ensure_writable(opts.shadow_db)
            ensure_new_run(opts.shadow_db, opts.shadow_run_id, "shadow_run_id")
            if opts.shadow_bodies not in ("differ", "all", "none"):
                raise ShadowError("shadow_bodies must be one of differ, all, none")
            if opts.shadow_record:
                check_record_path(opts.shadow_record)
        except ShadowError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        primary = ""
        if opts.mode and opts.mode[0].startswith("reverse:"):
            primary = opts.mode[0].removeprefix("reverse:")
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
            options={"primary": primary, "mode": list(opts.mode)},
        )
        self.enabled = True

    async def running(self) -> None:
        if not self.enabled or self.process is not None:
            return
        from shadow.live.worker import run_worker

        assert self.settings is not None
        # spawn, not fork: the proxy process has an event loop and threads running.
        mp = multiprocessing.get_context("spawn")
        # The queue holds batches; its bound approximates shadow_queue_size messages.
        self.queue = mp.Queue(maxsize=max(8, ctx.options.shadow_queue_size // 16))
        self.dropped = mp.Value("q", 0, lock=False)
        # Keep references: a semaphore collected here breaks the child's unpickling.
        self._ready = mp.Event()
        self._failed = mp.SimpleQueue()
        self.process = mp.Process(
            target=run_worker,
            args=(self.settings, self.queue, self.dropped, self._ready, self._failed),
            name="shadow-worker",
            daemon=False,
        )
        self.process.start()
        # Keep a reference to the task: the loop holds tasks only weakly.
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        logger.info(
            f"shadow: copying to {self.settings.candidate}, storing in {self.settings.db} "
            f"(run {self.settings.run_id})"
        )

    async def _watch(self) -> None:
        """Notice a worker that died, say why once, and stop queueing for it."""
        while self.process is not None and self.enabled:
            await asyncio.sleep(1.0)
            if self.process is not None and not self.process.is_alive():
                reason = "" if self._failed.empty() else f": {self._failed.get()}"
                logger.error(f"shadow: worker exited (code {self.process.exitcode}){reason}")
                self.enabled = False
                # Nobody reads the queue any more: do not let its feeder block our exit.
                self.queue.cancel_join_thread()
                return

    def _put(self, msg: tuple[Any, ...]) -> None:
        # Batch messages for a few milliseconds: one queue put (one pickle, one
        # wake-up of the queue's feeder thread) per batch instead of per message
        # halves what the addon costs the proxy's event loop.
        self._batch.append(msg)
        if len(self._batch) >= BATCH_MAX:
            self._send_batch()
        elif self._batch_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called outside mitmproxy's loop (tests, scripts)
                self._send_batch()
                return
            self._batch_timer = loop.call_later(BATCH_DELAY, self._send_batch)

    def _send_batch(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            self.queue.put_nowait(batch)
        except queue_mod.Full:
            # The worker is behind: drop these copies and count them; never wait.
            self.dropped.value += sum(1 for m in batch if m[0] == "req")

    def request(self, flow: http.HTTPFlow) -> None:
        if not self.enabled or self.queue is None or flow.is_replay:
            return
        req = flow.request
        if MARK_HEADER in req.headers:
            return  # one of our own copies came back through the proxy
        if req.stream:
            return  # a streamed body (stream_large_bodies) is not kept: nothing to copy
        path, _, query = req.path.partition("?")
        record = Request(req.method, path, query, _headers(req.headers), req.raw_content or b"")
        self._put(("req", flow.id, record, req.timestamp_start or time.time()))
        flow.metadata[_META] = True
        self.queued += 1

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        mtype = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if mtype not in STREAMED_TYPES:
            return
        # The client reads it as it arrives: pass it through now (mitmproxy would buffer
        # the whole body first), whether shadowing is on or not.
        resp.stream = True
        flow.metadata[_STREAMED] = True
        if not self.enabled or not flow.metadata.get(_META):
            return
        self._put(("skip", flow.id, f"streamed answer ({mtype}): passed through, not compared"))
        self._put(("resp", flow.id, _answer(flow, b"", resp.timestamp_start)))

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_STREAMED):
            return  # stored when its headers came
        if not self.enabled or not flow.metadata.get(_META) or flow.response is None:
            return
        resp = flow.response
        if resp.stream:
            reason = "primary body streamed (stream_large_bodies): not compared"
            self._put(("resp", flow.id, BackendResponse.failed(reason)))
            return
        self._put(("resp", flow.id, _answer(flow, resp.raw_content or b"", resp.timestamp_end)))

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_STREAMED):
            return  # stored when its headers came
        if not self.enabled or not flow.metadata.get(_META) or flow.response is not None:
            return
        msg = flow.error.msg if flow.error else "primary failed"
        self._put(("resp", flow.id, BackendResponse.failed(msg)))

    async def done(self) -> None:
        if self.process is None:
            return
        self.enabled = False
        self._send_batch()
        # Everything queued is still written: the worker drains before it exits.
        await asyncio.to_thread(self._stop_worker)

    def _stop_worker(self) -> None:
        assert self.settings is not None
        if not self.process.is_alive():
            self.queue.cancel_join_thread()  # nothing will read what is left
            self.process = None
            return
        try:
            self.queue.put(("stop",), timeout=30)
        except queue_mod.Full:
            logger.error("shadow: worker queue stayed full; stopping it anyway")
        self.process.join(timeout=self.settings.timeout + 120)
        if self.process.is_alive():
            logger.error("shadow: worker did not finish in time; stopping it")
            self.process.kill()  # it ignores SIGTERM on purpose (it must outlive a Ctrl-C)
            self.process.join(timeout=5)
            self.queue.cancel_join_thread()
        self.process = None


addons = [Shadow()]
