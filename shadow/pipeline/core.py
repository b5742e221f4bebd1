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
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import astuple, dataclass, field, replace
from typing import Any

from comparators import envelope
from comparators.decode import DEFAULT_DECODED_LIMIT
from comparators.envelope import Conversation, Frame
from comparators.model import Payload, Verdict
from shadow.config.loader import SAFE_METHODS, load_config
from shadow.config.tls import BackendTls, effective
from shadow.errors import StoreError
from shadow.model import (
    DEFAULT_MAX_BODY,
    BackendResponse,
    Exchange,
    Request,
    Served,
    capped_payload,
)
from shadow.pipeline import evaluate  # (also registers shadow.pipeline.pickling)
from shadow.pipeline.lag import LoopLag, Recent
from shadow.pipeline.realtime import TalkCopy, is_websocket
from shadow.pipeline.recording import RedactingRecorder, open_recorder
from shadow.pipeline.records import DEFAULT_BODY_CAP
from shadow.pipeline.redact import redactor_for
from shadow.pipeline.sender import Sender, StreamLimits
from shadow.store.rows import AcceptedRow, EventRow, ExchangeRow
from shadow.store.writer import Run, StoreWriter, load_run, reading, spill_path

log = logging.getLogger("shadow")

EVAL_BATCH = 64  # exchanges per trip to the comparison process
EVAL_DELAY = 0.005  # seconds an exchange may wait for others to share the trip
DEFAULT_MEMORY_BUDGET = 512 * 1024 * 1024  # bytes of traffic the pipeline holds at most
FLUSH_BYTES = 16 * 1024 * 1024  # buffered row bytes that trigger a flush before the interval
SHUTDOWN = "shutdown"  # skip reasons of exchanges cut short by the drain deadline start so


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
    # Added to the worker's nice value (the live proxy first). The sender times copies, so
    # it only yields a little; the comparisons, CPU-heavy and in no hurry, yield the most.
    niceness: int = 3
    compare_niceness: int = 10
    primary_headers: tuple[tuple[str, str], ...] = ()  # header overrides per target
    candidate_headers: tuple[tuple[str, str], ...] = ()
    record: str | None = None  # write what passed through here (.har, .jsonl or mitm dump)
    options: dict[str, Any] = field(default_factory=dict)
    max_body: int = DEFAULT_MAX_BODY  # bytes of a backend's body held; past it, a digest
    memory_budget: int = DEFAULT_MEMORY_BUDGET  # bytes of traffic held before copies are shed
    drain_timeout: float = 30.0  # seconds `close()` waits for copies and comparisons
    resume: bool = False  # continue a run a previous worker started (after a restart)
    restarts: int = 0  # workers restarted so far in this run
    tls: dict[str, BackendTls] = field(default_factory=dict)  # per leg, over the config's
    copy_proxy: str | None = None  # outbound proxy for the copies ("": none; None: env)
    flags: str = ""  # flag store the rollback controller watches and writes ("": none)
    rollback: bool = True  # judge the routes the candidate serves and roll them back
    # Live copies go out `pace` seconds after the proxy passed their request on, not when
    # their batch arrives: the candidate sees the clients' spacing, not our batches as
    # bursts (None: at once, as a replay does; its primary goes out at the same time).
    pace: float | None = None
    metrics: bool = False  # serve this worker's metrics for the proxy's --metrics
    # Real-time answers (WebSocket conversations, event streams): how much is followed.
    streams: StreamLimits = field(default_factory=StreamLimits)


LATE_SLACK = 0.005  # seconds a copy may go out after its due time and not count as late


@dataclass
class _Pending:
    request: Request
    started_at: float
    endpoint: str
    created: float
    size: int  # bytes held for this exchange (request, then the answers)
    skip_reason: str | None = None
    # The candidate's answer and, with a secondary, the secondary's.
    candidate: asyncio.Future[tuple[BackendResponse, BackendResponse | None]] | None = None
    primary: BackendResponse | None = None
    served: Served | None = None  # how the proxy served it (a controlled route)
    primary_copy: asyncio.Task[None] | None = None  # reverse shadow: the copy to the primary


@dataclass
class _Talk:
    """A WebSocket conversation being copied: the candidate's side and the primary's frames."""

    copy: TalkCopy
    frames: list[Frame] = field(default_factory=list)
    kept: int = 0  # bytes of the primary's frames held
    dropped: int = 0  # the primary's messages past the cap, not kept
    timer: asyncio.TimerHandle | None = None
    # The primary's 101: its status, headers, time to it, and unix time (t_ms counts from it)
    status: int = 101
    headers: tuple[tuple[str, str], ...] = ()
    handshake_ms: float | None = None
    lag_ms: float | None = None
    t0: float | None = None


@dataclass
class Counters:
    received: int = 0
    compared: int = 0
    stored: int = 0
    dropped: int = 0
    compare_failed: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """Sends copies, pairs them with the primary's answers, compares and stores.

    Every request it is given ends as exactly one stored row (compared, skipped
    with its reason, or cut short by shutdown), so a run's rows plus what the
    source counted as shed or lost add up to the requests it saw.
    """

    def __init__(
        self, settings: PipelineSettings, external_dropped: Callable[[], int] = lambda: 0
    ) -> None:
        self.settings = settings
        self.config = load_config(settings.config_path)
        self.tls = effective(self.config.tls, settings.tls)
        self._redactor = redactor_for(self.config.redact)
        self.writer = StoreWriter(settings.db)
        # A backend URL may carry a password (http://user:pw@host): never stored.
        hide = self._redactor.text
        self.run = Run(
            run_id=settings.run_id,
            source=settings.source,
            started_at=time.time(),
            primary_url=_hidden(settings.primary or settings.options.get("primary"), hide),
            candidate_url=hide(settings.candidate),
            secondary_url=_hidden(settings.secondary, hide),
            options={
                **_hidden(settings.options, hide),
                # What applied (config file and command line merged): insecure is never hidden.
                "tls": {leg: t.options() for leg, t in self.tls.items() if t.options()},
            },
            worker_restarts=settings.restarts,
        )
        self.counters = Counters()
        self._run_written: tuple[Any, ...] = ()  # the run's row as last handed to the writer
        # Called with every stored result (the rollback controller watches them).
        self.observers: list[Callable[[evaluate.Evaluated], None]] = []
        self._external_dropped = external_dropped
        self._requests_before = 0  # requests a previous worker of this run received
        self._dropped_before = 0  # copies a previous worker of this run dropped
        self._stop_deadline: float | None = None  # monotonic time the drain ends
        self._digest_only = 0  # answers whose body was let go (memory budget)
        self._pending: dict[str, _Pending] = {}
        self._talks: dict[str, _Talk] = {}  # WebSocket conversations being copied
        self._streams_stop = asyncio.Event()  # set at close: event streams followed end
        self._stream_stops: dict[str, asyncio.Event] = {}  # per copy: its stream ends now
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sem = asyncio.Semaphore(settings.concurrency)
        self._slots = _Slot(self)
        self._waiting = 0
        self._held = 0  # bytes of traffic held (requests and answers not yet stored)
        self._sizes: dict[str, int] = {}  # key -> bytes it holds, until it is settled
        self._buffered = 0  # bytes of rows waiting for the next flush
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._failure_kinds: set[str] = set()  # kinds of failure already logged
        self._flushes: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._sender: Sender | None = None
        self.lag = LoopLag()  # stalls of this loop: our own delay in a copy's latency
        self.late = Recent()  # how late recent copies went out after their due time
        self.store_error: str | None = None  # why the last write failed (None: it worked)
        self.event_observers: list[Callable[[Sequence[EventRow]], None]] = []
        # Called with the exchange rows of every batch the store took (not spilled ones).
        self.written_observers: list[Callable[[Sequence[ExchangeRow]], None]] = []
        self._recorder: RedactingRecorder | None = None
        if settings.record:
            base = self.run.primary_url or "http://primary.invalid"
            self._recorder = RedactingRecorder(
                open_recorder(settings.record), base, self.config.redact
            )
        self._to_evaluate: list[Exchange] = []
        self._eval_timer: asyncio.TimerHandle | None = None
        self._in_pool: dict[str, Exchange] = {}  # sent to the comparison process, not back yet
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._executor: ProcessPoolExecutor | None = None
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
                    settings.compare_niceness,
                ),
            )

    # -- lifecycle ---------------------------------------------------------
    @property
    def sender(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(self.settings.concurrency, self.settings.copy_proxy)
        return self._sender

    @property
    def waiting(self) -> int:
        """Copies waiting for one of the `concurrency` connections."""
        return self._waiting

    @property
    def pending(self) -> int:
        """Exchanges waiting for an answer (the primary's, the copy's or both)."""
        return len(self._pending)

    @property
    def comparing(self) -> int:
        """Exchanges in (or on their way to) the comparison process."""
        return len(self._in_pool)

    def shed_upstream(self) -> int:
        """Copies the source shed before they reached this pipeline (the proxy's queue)."""
        return self._external_dropped()

    @property
    def held_bytes(self) -> int:
        """Bytes of traffic held now (requests and answers not yet stored)."""
        return self._held

    async def start(self) -> None:
        self.sender  # noqa: B018 - created here, inside the running loop
        self.lag.start()
        if self.settings.resume:
            # A restarted worker continues its run: same start, counts carried on.
            def resume() -> None:
                with reading(self.settings.db) as con:
                    load_run(con, self.run)

            with contextlib.suppress(Exception):  # no row yet: the run simply starts here
                await asyncio.to_thread(resume)
            self._requests_before = self.run.exchanges + self.run.rows_spilled
            # The stored count already holds the proxy's shed copies up to now.
            self._dropped_before = max(0, self.run.copies_dropped - self._external_dropped())
        else:
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
        self.writer.run_changed(self.run)
        await self._flush()
        self._flush_task = asyncio.create_task(self._flush_loop())

    def add_events(self, rows: Sequence[EventRow]) -> None:
        """Events (shadow.control) to write with the next batch of rows."""
        self.writer.add_events(rows)
        for observe in self.event_observers:
            with contextlib.suppress(Exception):  # an observer must never cost an event
                observe(rows)

    async def close(self, drain_timeout: float | None = None) -> None:
        """Finish what is in flight by the drain deadline, store everything, end the run.

        Copies and comparisons still running at the deadline are not waited for:
        their exchanges are stored as skipped with a reason starting "shutdown".
        """
        if drain_timeout is not None:
            self._stop_deadline = time.monotonic() + drain_timeout
        self.begin_stop()
        assert self._stop_deadline is not None
        deadline = self._stop_deadline
        # Conversations and event streams still open: compared as far as they got.
        self._streams_stop.set()
        for stop in self._stream_stops.values():
            stop.set()
        for key in list(self._talks):
            self.on_ws_end(key, None, "", "", "limit")
        live: set[asyncio.Future[Any]] = {
            task
            for p in self._pending.values()
            for task in (p.candidate, p.primary_copy)
            if task is not None
        }
        if live:
            _, late = await asyncio.wait(live, timeout=max(0.0, deadline - time.monotonic()))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for key in list(self._pending):
            pending = self._pending.pop(key)
            if pending.primary is None:  # the primary had not answered when we stopped
                pending.primary = BackendResponse.failed("no answer from the primary by shutdown")
                pending.skip_reason = (
                    pending.skip_reason or f"{SHUTDOWN}: the primary had not answered"
                )
            self._finish(key, pending)
        self._submit_evaluations()
        while self._in_pool and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._in_pool:
            self._abandon_comparisons()
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
        self.lag.stop()
        self.run.ended_at = time.time()
        if self.counters.compare_failed or self._digest_only:
            log.error(
                "shadow: %d comparisons failed (stored as skipped); %d answers let go of "
                "their body (worker memory budget; exchanges skipped)",
                self.counters.compare_failed,
                self._digest_only,
            )
        if self._recorder is not None:
            self._recorder.close()
        await self._flush(final=True)
        self.writer.release()
        if self._sender is not None:
            await self._sender.aclose()

    def begin_stop(self) -> None:
        """The source stops: the drain deadline starts now (once)."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.settings.drain_timeout

    # -- input -------------------------------------------------------------
    def on_request(
        self,
        key: str,
        request: Request,
        started_at: float,
        skip: str | None = None,
        served: Served | None = None,
        sent_at: float | None = None,
    ) -> None:
        """A request reached the primary: start its copy (or skip it, for `skip` or a limit).

        `sent_at` (unix seconds): when the proxy passed it on; a live copy is paced from
        there (else from `started_at`).

        `served` (a controlled route): when the candidate was asked to answer, its
        answer comes with it and no copy goes to the candidate; when it did answer,
        no primary answer will follow: the primary gets a copy (reverse shadow) or
        the exchange is stored without one.
        """
        paced = sent_at if sent_at is not None else started_at
        if served is not None and served.candidate is not None:
            self._on_served(key, request, started_at, skip, served, paced)
            return
        self.counters.received += 1
        # Grouped by the path as stored: a secret the redactor hides in the path (a
        # token segment, ;jsessionid=) must not come back through the endpoint's name.
        shown = self._redactor.path(request.path)
        endpoint = self.config.matcher.endpoint(request.method, shown)
        s = self.settings
        skip_reason: str | None = skip
        if skip_reason is not None:
            pass
        elif self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
            skip_reason = f"{SHUTDOWN}: read after the drain deadline, not copied"
        elif not self.config.may_copy(request.method, request.path, s.unsafe_methods):
            skip_reason = f"{request.method} is not copied (unsafe method)"
        elif self._waiting >= s.backlog:
            skip_reason = "dropped: candidate backlog full"
            self.counters.dropped += 1
        elif self._held + self._buffered + _request_size(request) > s.memory_budget:
            skip_reason = f"dropped: worker memory budget full ({s.memory_budget} bytes)"
            self.counters.dropped += 1
            # Hold no body for it: the budget bounds what this process keeps.
            request = replace(request, body=b"")
        size = _request_size(request)
        talk = skip_reason is None and is_websocket(request)
        # Each conversation may hold a message being read and its kept messages, each up
        # to message_bytes: that much of the memory budget is set aside for it.
        reserve = (len(self._talks) + 1) * 2 * s.streams.message_bytes
        if talk and len(self._talks) >= s.streams.connections:
            skip_reason = f"dropped: {s.streams.connections} WebSocket conversations copied at once"
            self.counters.dropped += 1
            talk = False
        elif talk and self._held + self._buffered + reserve > s.memory_budget:
            skip_reason = (
                f"dropped: worker memory budget full ({s.memory_budget} bytes; each "
                "WebSocket conversation copied sets aside twice --max-body)"
            )
            self.counters.dropped += 1
            talk = False
        pending = _Pending(request, started_at, endpoint, time.monotonic(), size, skip_reason)
        pending.served = served
        if talk:
            copy = self._new_talk(key, request)
            pending.candidate = self._spawn(self._talk_copy(key, copy, paced))
        elif skip_reason is None:
            pending.candidate = self._spawn(self._copy(key, request, paced))
        self._hold(key, size)
        self._pending[key] = pending

    def _on_served(
        self,
        key: str,
        request: Request,
        started_at: float,
        skip: str | None,
        served: Served,
        paced: float | None = None,
    ) -> None:
        """The candidate was asked to answer the client: pair its answer with the primary's."""
        assert served.candidate is not None
        self.counters.received += 1
        endpoint = self.config.matcher.endpoint(request.method, self._redactor.path(request.path))
        size = _request_size(request)
        pending = _Pending(
            request, started_at, endpoint, time.monotonic(), size, skip, served=served
        )
        self._hold(key, size)
        self._pending[key] = pending
        done: asyncio.Future[tuple[BackendResponse, BackendResponse | None]]
        done = asyncio.get_running_loop().create_future()
        done.set_result((self._bounded(key, served.candidate), None))
        pending.candidate = done
        if served.served_by != "candidate":
            return  # it fell back: the primary's answer comes from the proxy
        primary_url = self.settings.primary or self.settings.options.get("primary")
        if skip is not None:
            pending.skip_reason = skip
            self.on_primary(key, BackendResponse(None))
        elif request.method.upper() not in SAFE_METHODS:
            # Reverse shadow never copies a write to the legacy: it would happen twice.
            pending.skip_reason = f"served by the candidate; {request.method} not copied back"
            self.on_primary(key, BackendResponse(None))
        elif not served.reverse or not primary_url:
            pending.skip_reason = "served by the candidate (reverse shadow off: no copy)"
            self.on_primary(key, BackendResponse(None))
        elif self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
            pending.skip_reason = f"{SHUTDOWN}: read after the drain deadline, not copied"
            self.on_primary(key, BackendResponse(None))
        elif self._waiting >= self.settings.backlog:
            pending.skip_reason = "dropped: primary copy backlog full"
            self.counters.dropped += 1
            self.on_primary(key, BackendResponse(None))
        else:
            pending.primary_copy = self._spawn(
                self._copy_to_primary(key, str(primary_url), request, paced)
            )

    async def _copy_to_primary(
        self, key: str, url: str, request: Request, paced: float | None = None
    ) -> None:
        """Reverse shadow: the legacy's answer to a request the candidate served."""
        due = await self._pace(paced)
        async with self._slot():
            late = 0.0 if due is None else max(0.0, time.time() - due)
            answer = await self._timed(
                self._send("primary", url, request, "1", self._streams_stop),
                time.monotonic(),
                late,
            )
        self.on_primary(key, answer)

    async def _pace(self, paced: float | None) -> float | None:
        """Wait until `pace` after `paced` (live copies keep the clients' spacing); the due
        time, or None when not paced (a replay)."""
        s = self.settings
        due = None if s.pace is None or paced is None else paced + s.pace
        if due is not None and (wait := due - time.time()) > 0:
            await asyncio.sleep(min(wait, s.pace or 0.0))
        return due

    def _slot(self) -> _Slot:
        """One of the `concurrency` copies in flight (waiting for one counts as backlog)."""
        return self._slots

    def on_skip(self, key: str, reason: str) -> None:
        """Not to be compared after all (e.g. the primary streams its answer): stop the copy."""
        pending = self._pending.get(key)
        if pending is None:
            return
        pending.skip_reason = reason
        if (talk := self._talks.pop(key, None)) is not None:
            talk.copy.abort()
        if pending.candidate is not None:
            pending.candidate.cancel()  # a copy of a stream would only run into its timeout
            pending.candidate = None

    def on_primary(self, key: str, response: BackendResponse) -> None:
        """The primary answered (or failed): compare once the copy is back too."""
        pending = self._pending.get(key)
        if pending is None:
            return
        talk = self._talks.pop(key, None)
        if talk is not None:
            if talk.timer is not None:
                talk.timer.cancel()
            if response.payload is None or not response.payload.stream:
                talk.copy.abort()  # the primary refused the upgrade (or failed): no talk
        pending.primary = self._bounded(key, response)
        task = pending.candidate
        if task is None or task.done():
            self._finish(key, self._pending.pop(key))
        else:
            task.add_done_callback(lambda _t: self._finish_if_pending(key))

    # -- WebSocket conversations and event streams ---------------------------
    def _new_talk(self, key: str, request: Request, base_url: str | None = None) -> TalkCopy:
        """A conversation copy to the candidate (or `base_url`), registered under `key`."""
        s = self.settings
        copy = TalkCopy(
            base_url or s.candidate,
            request,
            s.primary_headers if base_url else s.candidate_headers,
            self.tls["primary" if base_url else "candidate"],
            s.timeout,
            s.streams,
            proxy=s.copy_proxy,
        )
        if base_url is None:
            talk = _Talk(copy)
            self._talks[key] = talk
            # Given up if the primary's conversation never ends as far as we hear.
            talk.timer = asyncio.get_running_loop().call_later(
                s.streams.seconds + s.timeout + 5, self._talk_timeout, key
            )
        return copy

    async def _talk_copy(
        self, key: str, copy: TalkCopy, paced: float | None
    ) -> tuple[BackendResponse, BackendResponse | None]:
        """Copy a WebSocket conversation to the candidate as it happens (no secondary:
        a conversation may write, and its noise is not learnt from a second legacy)."""
        await self._pace(paced)
        answer = await copy.run()
        if key in self._sizes:
            answer = self._bounded(key, answer)
        return answer, None

    async def talk(
        self,
        key: str,
        request: Request,
        started_at: float,
        conv: Conversation,
        recorded: BackendResponse | None = None,
    ) -> None:
        """Replay one recorded WebSocket conversation: its client messages, with their
        recorded spacing, to the candidate and (with no `recorded` answer) to the primary."""
        self.on_request(key, request, started_at)
        talk = self._talks.get(key)
        primary = None if recorded is not None or talk is None else self._primary_talk(request)
        t0 = time.time()
        end_at = t0
        for copy in (talk.copy if talk else None, primary):
            if copy is not None:
                copy.origin = t0
        for f in conv.frames:
            end_at = t0 + f.t_ms / 1000
            if f.side == "client" and talk is not None:
                talk.copy.client(f, end_at)
                if primary is not None:
                    primary.client(f, end_at)
        for copy in (talk.copy if talk else None, primary):
            if copy is not None:
                copy.end(conv.close_code, conv.close_reason, conv.closed_by, conv.ended, end_at)
        if primary is not None:
            answer = await primary.run()
        elif recorded is not None:
            answer = recorded
        else:  # skipped before it began (a limit): the primary is not asked either
            answer = BackendResponse(None)
        if talk is not None and talk.timer is not None:
            talk.timer.cancel()
        self._talks.pop(key, None)
        if talk is not None and (answer.payload is None or not answer.payload.stream):
            talk.copy.abort()
        self.on_primary(key, answer)
        await self.wait_for(key)

    def _primary_talk(self, request: Request) -> TalkCopy | None:
        url = self.settings.primary
        return self._new_talk("", request, url) if url else None

    def _talk_timeout(self, key: str) -> None:
        if key in self._talks:
            self.on_ws_end(key, None, "", "", "limit")

    def on_ws_open(
        self,
        key: str,
        status: int,
        headers: tuple[tuple[str, str], ...],
        handshake_ms: float | None,
        t0: float,
        lag_ms: float | None = None,
    ) -> None:
        """The primary accepted the upgrade of `key` at unix time `t0` (its 101)."""
        talk = self._talks.get(key)
        if talk is None:
            # Not copied (skipped: a limit, the route's mode): stored now, with the 101.
            if key in self._pending:
                self.on_primary(key, BackendResponse(Payload(status, headers), handshake_ms))
            return
        if talk is not None:
            talk.status, talk.headers, talk.handshake_ms = status, headers, handshake_ms
            talk.t0, talk.lag_ms = t0, lag_ms
            talk.copy.origin = t0 + (self.settings.pace or 0.0)

    def on_ws_message(
        self,
        key: str,
        from_client: bool,
        text: bool,
        data: bytes,
        at: float,
        size: int | None = None,
        sha256: str = "",
    ) -> None:
        """A message of the primary's conversation `key` passed the proxy at unix time `at`;
        a client's message goes to the candidate `pace` later.

        `size`/`sha256`: the whole message's, when `data` holds only its first bytes."""
        talk = self._talks.get(key)
        if talk is None:
            return
        s = self.settings
        if talk.t0 is None:
            talk.t0 = at
        t_ms = max(0.0, (at - talk.t0) * 1000)
        if size is not None and size > len(data):
            kind = "text" if text else "binary"
            shown = data.decode("utf-8", "replace") if text else envelope._b64(data)
            f = Frame("client" if from_client else "server", t_ms, kind, shown, size, True, sha256)
        else:
            side = "client" if from_client else "server"
            # The conversation's messages are held up to message_bytes in all; then digests.
            room = max(0, s.streams.message_bytes - talk.kept)
            f = envelope.frame(side, t_ms, data, text, room)
        if len(talk.frames) >= s.streams.messages:
            talk.dropped += 1
            return
        talk.frames.append(f)
        talk.kept += len(f.data)
        self._hold(key, len(f.data))
        if from_client:
            # The frame kept for the comparison may be a digest; the candidate gets it whole.
            whole = None if not f.cut else data.decode("utf-8", "surrogateescape") if text else data
            talk.copy.client(f, at + (s.pace or 0.0), whole)

    def on_ws_end(
        self, key: str, code: int | None, reason: str, by: str, ended: str, at: float | None = None
    ) -> None:
        """The primary's conversation `key` ended (`by` "client" | "server" | "", `ended`
        "closed" | "limit" | "error"): the candidate's ends the same way, then they are
        compared."""
        talk = self._talks.get(key)
        if talk is None:
            return
        due = (at if at is not None else time.time()) + (self.settings.pace or 0.0)
        if ended == "error":
            # The connection was lost without a close (mostly the client going away): both
            # sides are compared as far as they got, as when we stop listening.
            ended, reason = "limit", reason or "connection lost"
        server_frames = sum(f.side == "server" for f in talk.frames)
        talk.copy.end(code, reason, by, ended, due, server_frames)
        stop = at if at is not None else time.time()
        t_end = (stop - talk.t0) * 1000 if talk.t0 is not None else None
        conv = Conversation(
            envelope.WEBSOCKET, tuple(talk.frames), code, reason, by, ended, talk.dropped, t_end
        )
        payload = Payload(
            talk.status, talk.headers, envelope.encode(conv), stream=envelope.WEBSOCKET
        )
        self.on_primary(key, BackendResponse(payload, talk.handshake_ms, lag_ms=talk.lag_ms))

    def on_primary_stream(
        self,
        key: str,
        response: BackendResponse,
        ended: str,
        times: Sequence[tuple[int, float]] = (),
        t_end_ms: float | None = None,
    ) -> None:
        """The primary's event stream, as captured (wire bytes), ended so: compare it.
        `times`: (bytes so far, ms) per chunk; `t_end_ms`: when the capture ended."""
        if ended != "closed" and (stop := self._stream_stops.get(key)) is not None:
            stop.set()  # the client left (or we stopped): the candidate's copy stops too
        p = response.payload
        if p is not None and not p.stream:
            conv = envelope.sse_conversation(
                p.headers,
                p.body,
                ended,
                DEFAULT_DECODED_LIMIT,
                self.settings.streams.messages,
                times,
                t_end_ms,
            )
            p = Payload(p.status, p.headers, envelope.encode(conv), stream=envelope.SSE)
            response = replace(response, payload=p)
        self.on_primary(key, response)

    async def exchange(self, key: str, request: Request, started_at: float) -> None:
        """Replay helper: call the primary ourselves, then pair as the proxy does.

        Callers filter out requests that may not be copied (unsafe methods) first:
        this sends to the primary whatever it is given.
        """
        s = self.settings
        assert s.primary is not None
        self.on_request(key, request, started_at)
        async with self._sem:
            primary = await self._timed(
                self._send("primary", s.primary, request, None, self._streams_stop),
                time.monotonic(),
                0.0,
            )
        self.on_primary(key, primary)
        await self.wait_for(key)

    async def wait_for(self, key: str) -> None:
        """Until the exchange `key` is compared and buffered for the store (or dropped)."""
        if key not in self._sizes:
            return
        waiter = self._waiters.setdefault(key, asyncio.get_running_loop().create_future())
        await waiter

    def _bounded(self, key: str, response: BackendResponse) -> BackendResponse:
        """`response`, held for `key` within max_body and the memory budget.

        An answer that would pass the budget keeps no body (only its length and
        digest) and its exchange is skipped and counted as dropped: compared without
        the rules (volatile fields and all) it would be a false difference.
        """
        p = response.payload
        if p is not None and not p.stream and not p.cut and len(p.body) > self.settings.max_body:
            p = capped_payload(p.status, p.headers, p.body, self.settings.max_body)
            response = replace(response, payload=p)  # e.g. a recorded answer in replay
        size = _answer_size(response)
        if (
            p is not None
            and p.body
            and self._held + self._buffered + size > self.settings.memory_budget
        ):
            self._digest_only += 1
            pending = self._pending.get(key)
            if pending is not None and pending.skip_reason is None:
                budget = self.settings.memory_budget
                pending.skip_reason = f"dropped: worker memory budget full ({budget} bytes)"
                self.counters.dropped += 1
            p = replace(p, body=b"") if p.cut else capped_payload(p.status, p.headers, p.body, 0)
            response = replace(response, payload=p)
            size = _answer_size(response)
        self._hold(key, size)
        return response

    def _hold(self, key: str, size: int) -> None:
        self._held += size
        self._sizes[key] = self._sizes.get(key, 0) + size

    def _settle(self, key: str) -> None:
        """`key` is stored (or given up): free what it held, wake whoever waits for it."""
        self._held -= self._sizes.pop(key, 0)
        self._stream_stops.pop(key, None)
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

    async def _copy(
        self, key: str, request: Request, paced: float | None = None
    ) -> tuple[BackendResponse, BackendResponse | None]:
        s = self.settings
        # Set when the primary's event stream ends early, or at close: the copy ends too.
        stop = self._stream_stops.setdefault(key, asyncio.Event())
        if self._streams_stop.is_set():
            stop.set()
        due = await self._pace(paced)
        async with self._slot():
            # Timed from here (sent) to the answer's last byte, as the primary is; what the
            # copy waited for in our queues is not the candidate's time but our lag.
            late = 0.0 if due is None else max(0.0, time.time() - due)
            self.late.add(late)
            sent = time.monotonic()
            to_candidate = self._timed(
                self._send("candidate", s.candidate, request, "1", stop), sent, late
            )
            if s.secondary is None or request.method.upper() not in SAFE_METHODS:
                # The secondary is a legacy instance with its own data: an unsafe
                # copy would write there too, so it only ever gets safe requests.
                candidate, secondary = await to_candidate, None
            else:
                # The secondary is a second legacy instance: what differs between it
                # and the primary is nondeterminism, not migration (noise).
                to_secondary = self._send("secondary", s.secondary, request, "1", stop)
                candidate, secondary = await asyncio.gather(to_candidate, to_secondary)
            if key in self._sizes:
                candidate = self._bounded(key, candidate)
                secondary = self._bounded(key, secondary) if secondary is not None else None
            return candidate, secondary

    def _send(
        self, leg: str, url: str, request: Request, mark: str | None, stop: asyncio.Event
    ) -> Awaitable[BackendResponse]:
        """`request` to the backend of `leg` at `url`: that leg's header overrides (the
        legacy's for the secondary) and TLS; bodies cut at max_body, event streams followed
        within the stream limits or until `stop`."""
        s = self.settings
        headers = s.candidate_headers if leg == "candidate" else s.primary_headers
        return self.sender.send(
            url, request, mark, s.timeout, headers, s.max_body, self.tls[leg], s.streams, stop
        )

    async def _timed(
        self, answer: Awaitable[BackendResponse], sent: float, late: float
    ) -> BackendResponse:
        """`answer`, with our own delay in its timing: `late` and the loop's stalls."""
        response = await answer
        # Late by a few ms (a timer's overshoot) keeps the clients' spacing; later than
        # that, the worker was behind and its copies went out bunched.
        lag = max(0.0, late - LATE_SLACK) + self.lag.worst(sent)
        return replace(response, lag_ms=round(lag * 1000, 3))

    def _finish_if_pending(self, key: str) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._finish(key, pending)

    def _finish(self, key: str, pending: _Pending) -> None:
        try:
            self._finish_unguarded(key, pending)
        except Exception as exc:  # a callback must never leave a key unsettled
            self.counters.compare_failed += 1
            self._log_once(f"finish:{type(exc).__name__}", f"shadow: finishing failed: {exc!r}")
            self._in_pool.pop(key, None)
            self._settle(key)

    def _finish_unguarded(self, key: str, pending: _Pending) -> None:
        primary = pending.primary
        assert primary is not None
        candidate: BackendResponse | None = None
        secondary: BackendResponse | None = None
        skip_reason = pending.skip_reason
        task = pending.candidate
        if task is not None:
            if task.done() and not task.cancelled():
                candidate, secondary = task.result()
            elif skip_reason is None:
                skip_reason = f"{SHUTDOWN}: the candidate had not answered by the drain deadline"
        candidate = _refused(primary, candidate)
        if self._recorder is not None:
            # A cut body would be recorded as if whole: record the exchange without it.
            answer = primary.payload if primary.payload and not primary.payload.cut else None
            try:
                self._recorder.add(pending.request, answer, pending.started_at, primary.elapsed_ms)
            except Exception as exc:  # the recording must not cost the exchange its row
                self._log_once(f"record:{type(exc).__name__}", f"shadow: recording failed: {exc!r}")
        exchange = Exchange(
            id=key,
            request=pending.request,
            primary=primary,
            candidate=candidate,
            endpoint=pending.endpoint,
            started_at=pending.started_at,
            source=self.settings.source,
            skip_reason=skip_reason,
            secondary=secondary,
            mode=pending.served.mode if pending.served else None,
            served_by=pending.served.served_by if pending.served else "primary",
            fell_back=pending.served.fell_back if pending.served else False,
        )
        if self._executor is None or evaluate.is_cheap(exchange):
            # Identical answers and errors cost microseconds: a trip to the pool costs more.
            self._evaluate_here([exchange])
            return
        if len(self._in_pool) >= self.settings.backlog:
            # Comparisons fall behind: shed load, but keep the exchange's row.
            self.counters.dropped += 1
            self._evaluate_here([replace(exchange, skip_reason="dropped: comparison backlog full")])
            return
        self._in_pool[key] = exchange
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
            self._take_back(batch)
            return
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, evaluate.process_many, batch
            )
        except (BrokenProcessPool, RuntimeError):  # broken, or shut down at the deadline
            self._pool_broken()
            self._take_back(batch)
            return
        future.add_done_callback(lambda f: self._evaluated(batch, f))

    def _take_back(self, batch: list[Exchange], reason: str | None = None) -> None:
        """Compare here the exchanges of `batch` still waiting on the pool (or skip them)."""
        mine = [e for e in batch if self._in_pool.pop(e.id, None) is not None]
        if reason is not None:
            mine = [replace(e, skip_reason=reason) for e in mine]
        self._evaluate_here(mine)

    def _pool_broken(self) -> None:
        """The comparison process died (e.g. killed for memory): compare here from now on."""
        if self._executor is not None:
            log.error("shadow: the comparison process died; comparing in the worker from now on")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _abandon_comparisons(self) -> None:
        """Drain deadline: store what the pool still holds as skipped, and stop the pool."""
        n = len(self._in_pool)
        log.error("shadow: %d comparisons unfinished at the drain deadline: stored as skipped", n)
        self._take_back(
            list(self._in_pool.values()),
            f"{SHUTDOWN}: comparison not finished by the drain deadline",
        )
        executor, self._executor = self._executor, None
        if executor is not None:
            # A comparison stuck on a pathological body would keep the pool (and this
            # process's exit) waiting: stop its processes outright.
            for proc in list(getattr(executor, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.kill()
            executor.shutdown(wait=False, cancel_futures=True)

    def _evaluate_here(self, batch: list[Exchange]) -> None:
        s = self.settings
        for exchange in batch:
            result: evaluate.Evaluated | None
            try:
                result = evaluate.evaluate(exchange, self.config, s.run_id, s.body_cap, s.bodies)
            except Exception as exc:  # one bad exchange must not stop the others
                result = self._failed_comparison(exchange, exc)
            if result is not None:
                self._store(result)
            self._settle(exchange.id)

    def _failed_comparison(
        self, exchange: Exchange, exc: BaseException
    ) -> evaluate.Evaluated | None:
        """A comparison raised: keep the exchange as skipped with the error, and count it."""
        self.counters.compare_failed += 1
        self._log_once(f"compare:{type(exc).__name__}", f"shadow: comparing failed: {exc!r}")
        s = self.settings
        skipped = replace(exchange, skip_reason=f"comparison failed: {type(exc).__name__}")
        try:
            return evaluate.evaluate(skipped, self.config, s.run_id, s.body_cap, s.bodies)
        except Exception:
            return None  # not even a skipped row can be made: the run's accounting shows it

    def _evaluated(
        self, batch: list[Exchange], future: asyncio.Future[list[evaluate.Evaluated]]
    ) -> None:
        if future.cancelled():
            self._take_back(batch, f"{SHUTDOWN}: comparison not finished by the drain deadline")
            return
        exc = future.exception()
        if isinstance(exc, BrokenProcessPool):
            self._pool_broken()
            self._take_back(batch)
            return
        if exc is not None:  # the whole batch failed: compare each here, one by one
            self._log_once(
                f"batch:{type(exc).__name__}", f"shadow: a comparison batch failed: {exc!r}"
            )
            self._take_back(batch)
            return
        for exchange, result in zip(batch, future.result(), strict=True):
            if self._in_pool.pop(exchange.id, None) is None:
                continue  # already stored as cut short by the drain deadline
            self._store(result)
            self._settle(exchange.id)

    def _store(self, result: evaluate.Evaluated) -> None:
        self.writer.add(result.row, result.differences, result.noise, result.conversations)
        for observe in self.observers:
            try:
                observe(result)
            except Exception as exc:  # an observer must never cost a row
                self._log_once(
                    f"observer:{type(exc).__name__}", f"shadow: observer failed: {exc!r}"
                )
        self._buffered += _row_size(result)
        verdict = result.verdict
        self.counters.by_verdict[verdict] = self.counters.by_verdict.get(verdict, 0) + 1
        if verdict in (Verdict.MATCH, Verdict.DIFFER):
            self.counters.compared += 1
        self.run.exchanges += 1
        full = self.writer.pending >= self.settings.flush_rows or self._buffered >= FLUSH_BYTES
        if full and self._flush_task is not None and not self._flushes:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def _expire_stale(self) -> None:
        """Store requests whose primary answer never came (its message was lost) as skipped."""
        limit = time.monotonic() - self.settings.stale_after
        # Only those still waiting for the primary: an answered one waits for its copy,
        # which its own timeout bounds.
        stale = [k for k, p in self._pending.items() if p.created < limit and p.primary is None]
        for key in stale:
            pending = self._pending.pop(key)
            if pending.candidate is not None:
                pending.candidate.cancel()
                pending.candidate = None
            pending.primary = BackendResponse.failed("the primary's answer never reached shadow")
            if pending.skip_reason is None:
                pending.skip_reason = "lost: no answer from the primary reached the worker"
                self.counters.dropped += 1
            self._finish(key, pending)

    def _log_once(self, kind: str, message: str) -> None:
        # A bad row or a failing store may repeat every batch: say it once per kind.
        if kind not in self._failure_kinds:
            self._failure_kinds.add(kind)
            log.error(message)

    async def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.flush_interval)
            try:
                self._expire_stale()
                await self._flush()
            except Exception as exc:  # the loop must outlive any failure, or storage stops
                self._log_once(f"flush:{type(exc).__name__}", f"shadow: flushing failed: {exc!r}")

    async def _spill(self, batch: Any, exc: BaseException) -> None:
        """Save rows the store did not take to `<db>.unflushed-<run>.jsonl`, and count them."""
        spill = spill_path(self.settings.db, self.settings.run_id)
        n = len(batch.exchanges)
        self.run.rows_spilled += n
        self.run.exchanges -= n  # `exchanges` counts rows in the store only
        try:
            await asyncio.to_thread(self.writer.spill, batch, spill)
        except Exception as spill_exc:  # the disk is gone too: the rows are lost, say so
            self.run.rows_spilled -= n
            log.error("shadow: %d rows lost: neither the store nor %s took them (%r, %r)",
                      n, spill, exc, spill_exc)  # fmt: skip
            return
        self._log_once(
            f"spill:{type(exc).__name__}",
            f"shadow: could not write to the store ({exc}); rows saved in {spill}",
        )

    async def _flush(self, final: bool = False) -> None:
        async with self._flush_lock:
            await self._flush_locked(final)

    async def _flush_locked(self, final: bool) -> None:
        self.run.copies_dropped = (
            self._dropped_before + self.counters.dropped + self._external_dropped()
        )
        self.run.requests = self._requests_before + self.counters.received
        # Each request given to the pipeline ends as one row; one whose row could not
        # even be made (see _failed_comparison) is lost. The live proxy overrides this
        # with its own count of requests (finish_run), which also sees its queue.
        self.run.requests_lost = max(
            0, self.run.requests - self.run.exchanges - self.run.rows_spilled - len(self._sizes)
        )
        state = astuple(self.run)
        if state != self._run_written:  # an idle run's row is not written again every second
            self.writer.run_changed(self.run)
            self._run_written = state
        batch = self.writer.detach()
        size, self._buffered = self._buffered, 0
        try:
            n = await asyncio.to_thread(self.writer.write, batch)
        except StoreError as exc:
            self.store_error = str(exc)
            if not final and size < 4 * FLUSH_BYTES:
                # Locked or briefly unavailable: try again at the next flush.
                self.writer.restore(batch)
                self._buffered += size
                log.error("shadow: could not write to the store (%s); will retry", exc)
                return
            # Last chance (or too much to hold): keep the rows beside the database.
            self.writer.release()
            await self._spill(batch, exc)
            self._rewrite_run(batch)
            return
        except Exception as exc:  # rows the store cannot take: never lose the writer
            self.store_error = str(exc)
            self.writer.release()
            await self._spill(batch, exc)
            self._rewrite_run(batch)
            if final:
                last = self.writer.detach()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.writer.write, last)
                    self._written(last.exchanges)
            return
        self.counters.stored += n
        self.store_error = None
        self._written(batch.exchanges)

    def _written(self, rows: Sequence[Any]) -> None:
        for observe in self.written_observers:
            try:
                observe(rows)
            except Exception as exc:  # an observer must never cost the writer
                self._log_once(f"written:{type(exc).__name__}", f"shadow: observer failed: {exc!r}")

    def _rewrite_run(self, batch: Any) -> None:
        if batch.runs:  # the run's own row went with the spilled batch: write it again
            self.writer.run_changed(self.run)


class _Slot:
    """`async with` one of a pipeline's `concurrency` copies in flight; waiting for one
    counts as backlog. (A plain class: contextlib's generator-based manager cost more
    than the rest of taking the slot.)"""

    __slots__ = ("_pipeline",)

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def __aenter__(self) -> None:
        p = self._pipeline
        p._waiting += 1
        try:
            await p._sem.acquire()
        finally:
            p._waiting -= 1

    async def __aexit__(self, *exc: object) -> None:
        self._pipeline._sem.release()


def _refused(primary: BackendResponse, other: BackendResponse | None) -> BackendResponse | None:
    """`other`, failed when it refused the WebSocket upgrade the primary accepted."""
    p = primary.payload
    o = other.payload if other is not None else None
    if p is None or o is None or p.stream != envelope.WEBSOCKET or o.stream:
        return other
    assert other is not None
    error = f"refused the WebSocket upgrade (HTTP {o.status})"
    return BackendResponse.failed(error, other.elapsed_ms)


def _hidden(value: Any, hide: Callable[[str], str]) -> Any:
    """`value` (text, or lists and dicts of it) with `hide` applied to every string."""
    if isinstance(value, str):
        return hide(value)
    if isinstance(value, dict):
        return {k: _hidden(v, hide) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hidden(v, hide) for v in value]
    return value


def _request_size(request: Request) -> int:
    headers = sum(len(k) + len(v) for k, v in request.headers)
    return len(request.body) + headers + len(request.path) + len(request.query) + 200


def _answer_size(response: BackendResponse | None) -> int:
    if response is None or response.payload is None:
        return 200
    p = response.payload
    return len(p.body) + sum(len(k) + len(v) for k, v in p.headers) + 200


def _row_size(result: evaluate.Evaluated) -> int:
    """Rough bytes a stored result holds until it is flushed (its text fields)."""
    total = 0
    for row in (result.row, *result.differences, *result.noise, *result.conversations):
        total += sum(len(v) for v in row if isinstance(v, str | bytes)) + 100
    return total
