"""The worker process behind the live addon.

mitmproxy's event loop is the ceiling of the live path (about 1.7 ms of CPU per
request on the target machine) and comparing and storing cost more than that
budget, so they run here, in another process, fed by a bounded queue. A thread
blocks on the queue and hands messages to this process's event loop.

The addon puts lists of messages (batches); each message is a tuple:
    ("req", key, Request, started_at)   a request reached the primary
    ("resp", key, BackendResponse)      the primary answered or failed
    ("skip", key, reason)               not to be compared (a streamed answer): store as skipped
    ("stop",)                           drain, store everything, exit
"""

from __future__ import annotations

import asyncio
import contextlib
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

log = logging.getLogger("shadow")


def _reader(queue: Queue[Any], loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any]) -> None:
    parent = os.getppid()
    while True:
        try:
            item = queue.get(timeout=1.0)
        except Empty:
            if os.getppid() != parent:  # the proxy died without saying stop
                loop.call_soon_threadsafe(inbox.put_nowait, [("stop",)])
                return
            continue
        batch = item if isinstance(item, list) else [item]
        loop.call_soon_threadsafe(inbox.put_nowait, batch)
        if any(msg[0] == "stop" for msg in batch):
            return


async def _serve(
    settings: PipelineSettings, queue: Queue[Any], dropped: Synchronized[int], ready: Event
) -> None:
    pipeline = Pipeline(settings, external_dropped=lambda: int(dropped.value))
    await pipeline.start()
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    threading.Thread(target=_reader, args=(queue, loop, inbox), daemon=True).start()
    ready.set()
    stop = False
    while not stop:
        for msg in await inbox.get():
            kind = msg[0]
            if kind == "req":
                pipeline.on_request(msg[1], msg[2], msg[3])
            elif kind == "resp":
                pipeline.on_primary(msg[1], msg[2])
            elif kind == "skip":
                pipeline.on_skip(msg[1], msg[2])
            elif kind == "stop":
                stop = True
    await pipeline.close()


def run_worker(
    settings: PipelineSettings,
    queue: Queue[Any],
    dropped: Synchronized[int],
    ready: Event,
    failed: Any,
) -> None:
    """Process entry point: serve until a ("stop",) message arrives."""
    # The parent decides when to stop (SIGINT reaches the whole process group);
    # the worker must drain after the proxy, not die with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: when CPU is short, the live proxy must win it, not the copies.
    with contextlib.suppress(OSError):
        os.nice(settings.niceness)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        asyncio.run(_serve(settings, queue, dropped, ready))
    except ShadowError as exc:
        failed.put(str(exc))
        ready.set()
        raise SystemExit(exc.exit_code) from None
