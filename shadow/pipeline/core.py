"""Everything after the source: send the copy, compare, store.

Both sources use it: the proxy's worker process feeds it from the addon's
queue, and replay feeds it from a file. A `Pipeline` owns the HTTP client and
the store writer; call it from one event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from comparators.model import Verdict
from shadow.config.loader import SAFE_METHODS, load_config
from shadow.errors import StoreError
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline import evaluate
from shadow.pipeline.recording import RedactingRecorder, open_recorder
from shadow.pipeline.records import DEFAULT_BODY_CAP
from shadow.pipeline.sender import Sender
from shadow.store.rows import AcceptedRow
from shadow.store.writer import Run, StoreWriter

log = logging.getLogger("shadow")

EVAL_BATCH = 64  # exchanges per trip to the comparison process
EVAL_DELAY = 0.005  # seconds an exchange may wait for others to share the trip


@dataclass(frozen=True)
class PipelineSettings:
    """What a pipeline needs; picklable, so it can cross into a worker process."""

    db: str
    candidate: str
    run_id: str
    source: str = "proxy"
    primary: str | None = None  # set when the pipeline itself must call the primary (replay)
    secondary: str | None = None
    config_path: str | None = None
    unsafe_methods: frozenset[str] = frozenset()
    timeout: float = 5.0
    concurrency: int = 32
    backlog: int = 1000  # copies waiting for a free connection before new ones are dropped
    body_cap: int = DEFAULT_BODY_CAP
    bodies: str = "differ"  # which exchanges keep their bodies: "all" | "differ" | "none"
    flush_interval: float = 1.0
    flush_rows: int = 5000
    stale_after: float = 120.0
    compare_processes: int = 1  # 0: compare in this process (tests, tiny runs)
    niceness: int = 10  # added to the worker's nice value (live proxy first)
    primary_headers: tuple[tuple[str, str], ...] = ()  # header overrides per target
    candidate_headers: tuple[tuple[str, str], ...] = ()
    record: str | None = None  # write what passed through here (.har, .jsonl or mitm dump)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Pending:
    request: Request
    started_at: float
    endpoint: str
    created: float
    skip_reason: str | None = None
    # The candidate's answer and, with a secondary, the secondary's.
    candidate: asyncio.Task[tuple[BackendResponse, BackendResponse | None]] | None = None
    primary: BackendResponse | None = None


@dataclass
class Counters:
    received: int = 0
    compared: int = 0
    stored: int = 0
    dropped: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """Sends copies, pairs them with the primary's answers, compares and stores."""

    def __init__(
        self, settings: PipelineSettings, external_dropped: Callable[[], int] = lambda: 0
    ) -> None:
        self.settings = settings
        self.config = load_config(settings.config_path)
        self.writer = StoreWriter(settings.db)
        self.run = Run(
            run_id=settings.run_id,
            source=settings.source,
            started_at=time.time(),
            primary_url=settings.primary or settings.options.get("primary"),
            candidate_url=settings.candidate,
            secondary_url=settings.secondary,
            options=settings.options,
        )
        self.counters = Counters()
        self._external_dropped = external_dropped
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sem = asyncio.Semaphore(settings.concurrency)
        self._waiting = 0
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._spill_kinds: set[str] = set()  # kinds of write failure already logged
        self._flushes: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._sender: Sender | None = None
        self._recorder: RedactingRecorder | None = None
        if settings.record:
            base = self.run.primary_url or "http://primary.invalid"
            self._recorder = RedactingRecorder(open_recorder(settings.record), base)
        self._evaluating = 0
        self._to_evaluate: list[Exchange] = []
        self._eval_timer: asyncio.TimerHandle | None = None
        self._inflight: set[str] = set()  # keys being compared
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._executor: Executor | None = None
        if settings.compare_processes > 0:
            self._executor = ProcessPoolExecutor(
                max_workers=settings.compare_processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=evaluate.init,
                initargs=(
                    settings.config_path,
                    settings.run_id,
                    settings.body_cap,
                    settings.bodies,
                ),
            )

    # -- lifecycle ---------------------------------------------------------
    @property
    def sender(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(self.settings.concurrency)
        return self._sender

    async def start(self) -> None:
        self.sender  # noqa: B018 - created here, inside the running loop
        self.writer.run_changed(self.run)
        self.writer.add_accepted(
            [
                AcceptedRow(
                    run_id=self.run.run_id,
                    entry=i + 1,
                    endpoint=a.endpoint,
                    path=a.path,
                    kind=a.kind,
                    reason=a.reason,
                )
                for i, a in enumerate(self.config.accepted)
            ]
        )
        await self._flush()
        self._flush_task = asyncio.create_task(self._flush_loop())

    async def close(self, drain_timeout: float | None = None) -> None:
        """Wait for copies in flight, store everything, end the run."""
        wait = drain_timeout if drain_timeout is not None else self.settings.timeout + 2
        live = {p.candidate for p in self._pending.values() if p.candidate is not None}
        # Drain as long as copies keep finishing (a busy machine may be slow to send
        # the last ones); give up only on copies that make no progress for `wait`.
        while live:
            done, live = await asyncio.wait(live, timeout=wait)
            if not done:
                for task in live:
                    task.cancel()
                await asyncio.gather(*live, return_exceptions=True)
                break
        for key in list(self._pending):
            pending = self._pending.pop(key)
            if pending.primary is None:
                self._settle(key)
                continue  # the primary's answer never reached us: nothing to compare
            self._finish(key, pending)
        self._submit_evaluations()
        while self._evaluating:
            await asyncio.sleep(0.01)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        # Let flushes finish rather than cancel them: a write in a thread would
        # go on regardless and race the final flush.
        self._stopping.set()
        if self._flush_task:
            await self._flush_task
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        self.run.ended_at = time.time()
        if self._recorder is not None:
            self._recorder.close()
        await self._flush(final=True)
        self.writer.release()
        if self._sender is not None:
            await self._sender.aclose()

    # -- input -------------------------------------------------------------
    def on_request(self, key: str, request: Request, started_at: float) -> None:
        """A request reached the primary: start its copy (or decide to skip it)."""
        self.counters.received += 1
        endpoint = self.config.matcher.endpoint(request.method, request.path)
        pending = _Pending(request, started_at, endpoint, time.monotonic())
        if not self.config.may_copy(request.method, request.path, self.settings.unsafe_methods):
            pending.skip_reason = f"{request.method} is not copied (unsafe method)"
        elif self._waiting >= self.settings.backlog:
            pending.skip_reason = "dropped: candidate backlog full"
            self.counters.dropped += 1
        else:
            pending.candidate = self._spawn(self._copy(request))
        self._pending[key] = pending

    def on_skip(self, key: str, reason: str) -> None:
        """Not to be compared after all (e.g. the primary streams its answer): stop the copy."""
        pending = self._pending.get(key)
        if pending is None:
            return
        pending.skip_reason = reason
        if pending.candidate is not None:
            pending.candidate.cancel()  # a copy of a stream would only run into its timeout
            pending.candidate = None

    def on_primary(self, key: str, response: BackendResponse) -> None:
        """The primary answered (or failed): compare once the copy is back too."""
        pending = self._pending.get(key)
        if pending is None:
            return
        pending.primary = response
        task = pending.candidate
        if task is None or task.done():
            self._finish(key, self._pending.pop(key))
        else:
            task.add_done_callback(lambda _t: self._finish_if_pending(key))

    async def exchange(self, key: str, request: Request, started_at: float) -> None:
        """Replay helper: call the primary ourselves, then pair as the proxy does.

        Callers filter out requests that may not be copied (unsafe methods) first:
        this sends to the primary whatever it is given.
        """
        assert self.settings.primary is not None
        self.on_request(key, request, started_at)
        async with self._sem:
            primary = await self.sender.send(
                self.settings.primary,
                request,
                None,
                self.settings.timeout,
                self.settings.primary_headers,
            )
        self.on_primary(key, primary)
        await self.wait_for(key)

    async def wait_for(self, key: str) -> None:
        """Until the exchange `key` is compared and buffered for the store (or dropped)."""
        if key not in self._pending and key not in self._inflight:
            return
        waiter = self._waiters.setdefault(key, asyncio.get_running_loop().create_future())
        await waiter

    def _settle(self, key: str) -> None:
        self._inflight.discard(key)
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- internals ---------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _copy(self, request: Request) -> tuple[BackendResponse, BackendResponse | None]:
        self._waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self._waiting -= 1
        s = self.settings
        try:
            to_candidate = self.sender.send(
                s.candidate, request, "1", s.timeout, s.candidate_headers
            )
            if s.secondary is None or request.method.upper() not in SAFE_METHODS:
                # The secondary is a legacy instance with its own data: an unsafe
                # copy would write there too, so it only ever gets safe requests.
                return await to_candidate, None
            # The secondary is a second legacy instance: what differs between it
            # and the primary is nondeterminism, not migration (noise).
            to_secondary = self.sender.send(s.secondary, request, "1", s.timeout, s.primary_headers)
            candidate, secondary = await asyncio.gather(to_candidate, to_secondary)
            return candidate, secondary
        finally:
            self._sem.release()

    def _finish_if_pending(self, key: str) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._finish(key, pending)

    def _finish(self, key: str, pending: _Pending) -> None:
        primary = pending.primary
        assert primary is not None
        candidate: BackendResponse | None = None
        secondary: BackendResponse | None = None
        task = pending.candidate
        if task is not None:
            if task.done() and not task.cancelled():
                candidate, secondary = task.result()
            else:
                candidate = BackendResponse.failed("no answer before shutdown")
        if self._recorder is not None:
            self._recorder.add(
                pending.request, primary.payload, pending.started_at, primary.elapsed_ms
            )
        exchange = Exchange(
            id=key,
            request=pending.request,
            primary=primary,
            candidate=candidate,
            endpoint=pending.endpoint,
            started_at=pending.started_at,
            source=self.settings.source,
            skip_reason=pending.skip_reason,
            secondary=secondary,
        )
        if self._executor is None or evaluate.is_cheap(exchange):
            # Identical answers and errors cost microseconds: a trip to the pool costs more.
            s = self.settings
            self._store(evaluate.evaluate(exchange, self.config, s.run_id, s.body_cap, s.bodies))
            self._settle(key)
            return
        if self._evaluating >= self.settings.backlog:
            self.counters.dropped += 1  # comparisons fall behind: shed load, count it
            self._settle(key)
            return
        self._evaluating += 1
        self._inflight.add(key)
        self._to_evaluate.append(exchange)
        if len(self._to_evaluate) >= EVAL_BATCH:
            self._submit_evaluations()
        elif self._eval_timer is None:
            self._eval_timer = asyncio.get_running_loop().call_later(
                EVAL_DELAY, self._submit_evaluations
            )

    def _submit_evaluations(self) -> None:
        # One pool task per batch: the pool's own per-task cost exceeds a fast comparison.
        if self._eval_timer is not None:
            self._eval_timer.cancel()
            self._eval_timer = None
        batch, self._to_evaluate = self._to_evaluate, []
        if not batch:
            return
        if self._executor is None:
            self._evaluate_here(batch)
            return
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, evaluate.process_many, batch
            )
        except BrokenProcessPool:
            self._pool_broken()
            self._evaluate_here(batch)
            return
        future.add_done_callback(lambda f: self._evaluated(batch, f))

    def _pool_broken(self) -> None:
        """The comparison process died (e.g. killed for memory): compare here from now on."""
        if self._executor is not None:
            log.error("shadow: the comparison process died; comparing in the worker from now on")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _evaluate_here(self, batch: list[Exchange]) -> None:
        s = self.settings
        for exchange in batch:
            self._evaluating -= 1
            try:
                self._store(
                    evaluate.evaluate(exchange, self.config, s.run_id, s.body_cap, s.bodies)
                )
            except Exception as exc:  # one bad exchange must not stop the others
                log.error("shadow: comparing exchange %s failed: %r", exchange.id, exc)
            finally:
                self._settle(exchange.id)

    def _evaluated(
        self, batch: list[Exchange], future: asyncio.Future[list[evaluate.Evaluated]]
    ) -> None:
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
            self._pool_broken()
            self._evaluate_here(batch)
            return
        self._evaluating -= len(batch)
        try:
            if future.cancelled():
                return
            exc = future.exception()
            if exc is not None:
                log.error("shadow: comparing %d exchanges failed: %r", len(batch), exc)
                return
            for result in future.result():
                self._store(result)
        finally:
            for exchange in batch:
                self._settle(exchange.id)

    def _store(self, result: evaluate.Evaluated) -> None:
        self.writer.add(result.row, result.differences, result.noise)
        verdict = result.verdict
        self.counters.by_verdict[verdict] = self.counters.by_verdict.get(verdict, 0) + 1
        if verdict in (Verdict.MATCH, Verdict.DIFFER):
            self.counters.compared += 1
        self.run.exchanges += 1
        if (
            self.writer.pending >= self.settings.flush_rows
            and self._flush_task is not None
            and not self._flushes
        ):
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def _expire_stale(self) -> None:
        """Forget requests whose primary answer never came (its message was dropped)."""
        limit = time.monotonic() - self.settings.stale_after
        # Only those still waiting for the primary: an answered one waits for its copy,
        # which its own timeout bounds.
        stale = [k for k, p in self._pending.items() if p.created < limit and p.primary is None]
        for key in stale:
            pending = self._pending.pop(key)
            if pending.candidate is not None:
                pending.candidate.cancel()
            self.counters.dropped += 1
            self._settle(key)

    async def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.flush_interval)
            self._expire_stale()
            await self._flush()

    async def _spill(self, batch: Any, exc: BaseException) -> None:
        """Save rows the store did not take to `<db>.unflushed-<run>.jsonl`, and count them."""
        spill = f"{self.settings.db}.unflushed-{self.settings.run_id}.jsonl"
        n = len(batch.exchanges)
        self.run.rows_spilled += n
        kind = type(exc).__name__
        try:
            await asyncio.to_thread(self.writer.spill, batch, spill)
        except Exception as spill_exc:  # the disk is gone too: say so, the count stays
            log.error("shadow: %d rows lost: neither the store nor %s took them (%r, %r)",
                      n, spill, exc, spill_exc)  # fmt: skip
            return
        if kind not in self._spill_kinds:  # once per kind: a bad row may repeat every batch
            self._spill_kinds.add(kind)
            log.error("shadow: could not write to the store (%s); rows saved in %s", exc, spill)

    async def _flush(self, final: bool = False) -> None:
        async with self._flush_lock:
            await self._flush_locked(final)

    async def _flush_locked(self, final: bool) -> None:
        self.run.copies_dropped = self.counters.dropped + self._external_dropped()
        self.writer.run_changed(self.run)
        batch = self.writer.detach()
        try:
            n = await asyncio.to_thread(self.writer.write, batch)
        except StoreError as exc:
            if not final:
                self.writer.restore(batch)
                log.error("shadow: could not write to the store (%s); will retry", exc)
                return
            self.writer.release()
            # Last chance: keep the rows in a file beside the database rather than lose them.
            await self._spill(batch, exc)
            return
        except Exception as exc:  # rows the store cannot take: never lose the writer
            self.writer.release()
            await self._spill(batch, exc)
            if batch.runs:  # the run's own row went with the batch: write it again
                self.writer.run_changed(self.run)
                if final:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.writer.write, self.writer.detach())
            return
        self.counters.stored += n
