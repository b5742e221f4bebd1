"""The worker process behind the live addon.

mitmproxy's event loop is the ceiling of the live path (about 1.7 ms of CPU per
request on the target machine) and comparing and storing cost more than that
budget, so they run here, in another process, fed by a bounded queue. A thread
blocks on the queue and hands messages to this process's event loop.

The addon puts lists of messages (batches); each message is a tuple:
    ("req", key, Request, started_at, skip, served, sent_at)
                                        a request reached the proxy (skip: why it must not
                                        be copied, or None; served: how a controlled route
                                        served it, shadow.model.Served; sent_at: when the
                                        proxy passed it on, the copy's pace starts there)
    ("resp", key, BackendResponse)      the primary answered or failed
    ("skip", key, reason)               not to be compared (a streamed answer): store as skipped
    ("sse", key, BackendResponse, ended, times, t_end_ms)
                                        the primary's event stream as captured, how it
                                        ended, (bytes, ms) per chunk, when it ended
    ("wsopen", key, BackendResponse, t0)  the primary accepted a WebSocket upgrade (its 101)
    ("ws", key, from_client, text, data, at[, size, sha256])  one message of that conversation
    ("wsend", key, code, reason, by, ended, at)  the conversation (or its copy) ended
    ("stop",)                           drain, store everything, exit (the addon also
                                        sets an Event, in case the queue is full)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from queue import Empty
from typing import Any

from shadow.errors import ShadowError
from shadow.pipeline.core import Pipeline, PipelineSettings
from shadow.store.writer import WRITER_THREADS

log = logging.getLogger("shadow")


INBOX_BATCHES = 64  # batches moved off the cross-process queue but not yet handled


def _reader(
    queue: Queue[Any],
    loop: asyncio.AbstractEventLoop,
    inbox: asyncio.Queue[Any],
    stop: Event,
    on_stop: Any,
) -> None:
    parent = os.getppid()
    told = False

    def hand_over(batch: list[Any]) -> None:
        # Blocks while the inbox is full: the bounded cross-process queue then fills
        # and the addon sheds (and counts) copies, instead of this process growing.
        asyncio.run_coroutine_threadsafe(inbox.put(batch), loop).result()

    while True:
        if stop.is_set() and not told:
            # The drain deadline starts now, however much backlog is still to be read.
            told = True
            loop.call_soon_threadsafe(on_stop)
        try:
            item = queue.get(timeout=0.2)
        except Empty:
            if stop.is_set() or os.getppid() != parent:  # told to stop, or the proxy died
                hand_over([("stop",)])
                return
            continue
        batch = item if isinstance(item, list) else [item]
        hand_over(batch)
        if any(msg[0] == "stop" for msg in batch):
            return


async def _serve(
    settings: PipelineSettings,
    queue: Queue[Any],
    dropped: Synchronized[int],
    ready: Event,
    stop_event: Event,
    metrics_port: Synchronized[int] | None = None,
) -> None:
    pipeline = Pipeline(settings, external_dropped=lambda: int(dropped.value))
    await pipeline.start()
    controller = await _start_controller(settings, pipeline)
    server = _start_metrics(pipeline, queue, metrics_port) if metrics_port is not None else None
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=INBOX_BATCHES)
    threading.Thread(
        target=_reader,
        args=(queue, loop, inbox, stop_event, pipeline.begin_stop),
        daemon=True,
    ).start()
    # What start-up made stays: frozen, it is never walked by the collector again (shorter
    # full collections, less CPU taken from the proxy beside us).
    gc.collect()
    gc.freeze()
    ready.set()
    stop = False
    while not stop:
        for msg in await inbox.get():
            kind = msg[0]
            if kind == "req":
                skip = msg[4] if len(msg) > 4 else None
                served = msg[5] if len(msg) > 5 else None
                sent = msg[6] if len(msg) > 6 else None
                pipeline.on_request(msg[1], msg[2], msg[3], skip, served, sent)
            elif kind == "resp":
                pipeline.on_primary(msg[1], msg[2])
            elif kind == "skip":
                pipeline.on_skip(msg[1], msg[2])
            elif kind == "ws":
                pipeline.on_ws_message(*msg[1:])
            elif kind == "wsopen":
                answer = msg[2]
                p = answer.payload
                pipeline.on_ws_open(
                    msg[1], p.status, p.headers, answer.elapsed_ms, msg[3], answer.lag_ms
                )
            elif kind == "wsend":
                pipeline.on_ws_end(*msg[1:])
            elif kind == "sse":
                pipeline.on_primary_stream(*msg[1:])
            elif kind == "stop":
                stop = True
    if controller is not None:
        # Its last events (a rollback's notification, the fallbacks) go with the last rows.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(controller.aclose(), settings.drain_timeout)
    await pipeline.close()
    if server is not None:
        server.close()


def _start_metrics(pipeline: Pipeline, queue: Queue[Any], port: Synchronized[int]) -> Any:
    """Serve this worker's metrics on an ephemeral 127.0.0.1 port; the proxy reads them
    there and serves them with its own at `--metrics` (docs/monitoring.md)."""
    from prometheus_client import generate_latest

    from shadow.monitoring.server import MetricsServer
    from shadow.monitoring.worker_metrics import WorkerMetrics

    metrics = WorkerMetrics(pipeline, queue)
    pipeline.written_observers.append(metrics.observe_rows)
    pipeline.event_observers.append(metrics.events)
    try:
        server = MetricsServer(
            "127.0.0.1",
            0,
            lambda: generate_latest(metrics.registry),
            lambda: f"the store: {pipeline.store_error}" if pipeline.store_error else None,
            option="worker metrics",
        ).start()
    except ShadowError as exc:  # no port to be had: the proxy reports the worker's part as down
        log.error(f"shadow: {exc}")
        return None
    port.value = server.port
    return server


def _recorded_events(db: str) -> set[str] | None:
    """Ids of the events the store holds (None: it cannot be read now)."""
    from shadow.store.writer import reading

    try:
        with reading(db) as con:
            return {r[0] for r in con.execute("SELECT event_id FROM events").fetchall()}
    except Exception:  # a new store, or one busy: only this run's changes are imported
        return None


async def _start_controller(settings: PipelineSettings, pipeline: Pipeline) -> Any:
    """The rollback controller (shadow.control.rollback), when the proxy has a flag store."""
    if not settings.flags:
        return None
    from shadow.control.flags import open_store
    from shadow.control.rollback import Controller

    config = pipeline.config
    try:
        store = open_store(settings.flags, polled=True)  # an absolute path or a URL (flags_spec)
    except ShadowError as exc:
        log.error(f"shadow: rollback controller off: {exc}")
        return None
    controller = Controller(
        config,
        store,
        pipeline.run.run_id,
        pipeline.add_events,
        act=settings.rollback,
        started_at=pipeline.run.started_at,
        known_events=lambda: _recorded_events(settings.db),
    )
    # Its window is an in-memory DuckDB judged once a second: like the store writer's, its
    # connection gets one thread (a second one only spins, on the core the proxy needs).
    with contextlib.suppress(Exception):
        controller.window.con.execute(f"SET threads = {WRITER_THREADS}")
    await controller.start()
    pipeline.observers.append(controller.observe)
    return controller


def run_worker(
    settings: PipelineSettings,
    queue: Queue[Any],
    dropped: Synchronized[int],
    ready: Event,
    failed: Any,
    stop_event: Event,
    metrics_port: Synchronized[int] | None = None,
) -> None:
    """Process entry point: serve until told to stop (the event, or a ("stop",) message)."""
    # The parent decides when to stop (SIGINT reaches the whole process group);
    # the worker must drain after the proxy, not die with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: when CPU is short, the live proxy must win it, not the copies.
    with contextlib.suppress(OSError):
        os.nice(settings.niceness)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        asyncio.run(_serve(settings, queue, dropped, ready, stop_event, metrics_port))
    except ShadowError as exc:
        failed.put(str(exc))
        ready.set()
        raise SystemExit(exc.exit_code) from None
