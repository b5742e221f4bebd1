"""Replay: recorded traffic as a second source of exchanges.

Two modes. With a primary URL, each recorded request is sent to the primary
and the candidate, as the proxy would. Without one, the recorded response
stands for the primary's and only the candidate is called. Either way the
exchanges go through the same `Pipeline` as live traffic, and each replay is
one run in the store (source `replay:<file>`, its options, start and end).

A request with an unsafe method that may not be copied is sent nowhere (not
even to the primary: a replayed POST writes as much as a copied one). When
the file has its response it is stored as a `skipped` exchange, as the live
proxy stores the requests it does not copy, so that a replay of a recording
shows the same endpoints and verdicts as the live run that made it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import os
import random
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from comparators.envelope import WEBSOCKET, Conversation
from comparators.envelope import decode as decode_conversation
from comparators.errors import DecodeError
from shadow.config.loader import load_config
from shadow.config.tls import BackendTls
from shadow.errors import ConfigError, InputError
from shadow.model import BackendResponse
from shadow.pipeline.core import Pipeline, PipelineSettings
from shadow.pipeline.realtime import is_websocket
from shadow.pipeline.sender import StreamLimits
from shadow.sources import Recorded, detect_format, read_traffic
from shadow.store import outcomes
from shadow.store.writer import ensure_new_run, reading

MAX_BAD_MESSAGES = 5  # bad entries named in the summary (all are counted)


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and how fast; filters are applied in the order listed."""

    path: str
    candidate: str
    db: str
    primary: str | None = None
    secondary: str | None = None
    config: str | None = None
    fmt: str | None = None
    concurrency: int = 16
    rate: float | None = None  # requests per second, None: as fast as concurrency allows
    sample: float = 1.0
    seed: int = 0
    methods: frozenset[str] = frozenset()  # empty: all
    paths: tuple[str, ...] = ()  # glob patterns on the path; empty: all
    limit: int | None = None  # requests sent at most
    mirror_unsafe: frozenset[str] = frozenset()
    primary_headers: tuple[tuple[str, str], ...] = ()
    candidate_headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    skip_bad: bool = False
    run_id: str = ""
    tls: dict[str, BackendTls] = field(default_factory=dict)  # per leg, over the config's
    copy_proxy: str | None = None  # None: the environment's; "": none
    streams: StreamLimits = field(default_factory=StreamLimits)  # WebSocket and SSE limits


@dataclass
class ReplaySummary:
    """Counts of one replay; `lines` is what the CLI prints at the end."""

    run_id: str
    read: int = 0  # entries read from the file, bad ones included
    sent: int = 0  # requests sent (to the candidate, and the primary if given)
    filtered: int = 0  # left out by --method, --path or --sample
    unsafe_skipped: int = 0  # unsafe method not allowed: sent nowhere
    unsafe_stored: int = 0  # ... of which stored as `skipped` rows (recorded response known)
    no_response: int = 0  # no primary and no recorded response: nothing to compare with
    bad_entries: int = 0
    bad_messages: list[str] = field(default_factory=list)
    by_verdict: dict[str, int] = field(default_factory=dict)
    stored: int = 0
    seconds: float = 0.0

    @property
    def compared(self) -> int:
        return self.by_verdict.get("match", 0) + self.by_verdict.get("differ", 0)

    @property
    def errors(self) -> int:
        v = self.by_verdict
        return v.get("candidate_error", 0) + v.get("primary_error", 0)

    @property
    def skipped(self) -> int:
        # Stored unsafe requests are also counted in by_verdict["skipped"]: count them once.
        other = max(0, self.by_verdict.get("skipped", 0) - self.unsafe_stored)
        return self.unsafe_skipped + self.no_response + other

    def lines(self, db: str) -> list[str]:
        v = self.by_verdict
        rate = self.sent / self.seconds if self.seconds else 0.0
        out = [
            f"read {self.read} entries: sent {self.sent}, skipped {self.skipped} "
            f"(unsafe method {self.unsafe_skipped}, no recorded response {self.no_response}), "
            f"filtered out {self.filtered}, bad entries {self.bad_entries}",
            f"compared {self.compared}: matched {v.get('match', 0)}, "
            f"differed {v.get('differ', 0)}; errors {self.errors} "
            f"(candidate {v.get('candidate_error', 0)}, primary {v.get('primary_error', 0)})",
            f"{self.stored} exchanges stored in {self.seconds:.1f}s ({rate:.0f} sent/s)",
        ]
        out += [f"bad entry skipped: {m}" for m in self.bad_messages]
        if self.bad_entries > len(self.bad_messages):
            out.append(f"... and {self.bad_entries - len(self.bad_messages)} more bad entries")
        out.append(
            f"run {self.run_id} stored in {db}; next: shadow report --db {db} --run {self.run_id}"
        )
        return out


def _selected(
    entries: Iterable[Recorded], o: ReplayOptions, s: ReplaySummary
) -> Generator[Recorded, None, None]:
    """Entries passing --method, --path and --sample (the sample is seeded: repeatable)."""
    rng = random.Random(o.seed)
    for rec in entries:
        s.read += 1
        req = rec.request
        if (o.methods and req.method not in o.methods) or (
            o.paths and not any(fnmatch.fnmatchcase(req.path, p) for p in o.paths)
        ):
            s.filtered += 1
            continue
        if o.sample < 1.0 and rng.random() >= o.sample:
            s.filtered += 1
            continue
        yield rec


async def _talk(pipeline: Pipeline, key: str, rec: Recorded, ts: float, live: bool) -> None:
    """A recorded WebSocket conversation, replayed (docs/realtime.md)."""
    resp = rec.response
    conv = Conversation(WEBSOCKET, closed_by="client", close_code=1000)
    if resp is not None and resp.stream == WEBSOCKET:
        try:
            conv = decode_conversation(resp.body)
        except DecodeError:
            pass  # compared as recorded: the recorded answer says what it is
    recorded = None if live or resp is None else BackendResponse(resp, rec.elapsed_ms)
    await pipeline.talk(key, rec.request, ts, conv, recorded)


def _check(o: ReplayOptions) -> None:
    if not 0 < o.sample <= 1:
        raise ConfigError(f"--sample {o.sample}: expected a fraction in (0, 1]")
    if o.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if o.rate is not None and o.rate <= 0:
        raise ConfigError("--rate must be positive")
    if o.limit is not None and o.limit < 0:
        raise ConfigError("--limit must not be negative")
    if o.timeout <= 0:
        raise ConfigError("--timeout must be positive")


def _run_options(o: ReplayOptions, fmt: str) -> dict[str, Any]:
    """The options stored with the run: everything but header values (they may be secrets)."""
    options: dict[str, Any] = {
        k: (sorted(v) if isinstance(v, frozenset) else v)
        for k, v in o.__dict__.items()
        if k not in ("primary_headers", "candidate_headers", "tls", "streams")
    }
    options["streams"] = dataclasses.asdict(o.streams)
    options["tls"] = {leg: t.options() for leg, t in o.tls.items() if t.options()}
    options["path"] = os.path.abspath(o.path)
    options["fmt"] = fmt
    options["primary_header_names"] = sorted({k for k, _ in o.primary_headers})
    options["candidate_header_names"] = sorted({k for k, _ in o.candidate_headers})
    return options


async def replay(
    o: ReplayOptions, progress: Callable[[ReplaySummary], None] | None = None
) -> ReplaySummary:
    """Replay a traffic file; stores everything sent even when the file turns out bad.

    A bad file as a whole (missing, empty, not a traffic file) raises InputError
    before a run is created. A bad entry later on (without `skip_bad`) raises
    InputError too, after every exchange before it has been stored and the run
    ended.
    """
    config = load_config(o.config)  # fail on a bad config before reading anything
    _check(o)
    fmt = o.fmt or detect_format(o.path)
    ensure_new_run(o.db, o.run_id, "--run-id")
    run_id = o.run_id or uuid.uuid4().hex[:12]
    summary = ReplaySummary(run_id)

    def skipped_bad(message: str) -> None:
        summary.bad_entries += 1
        summary.read += 1
        if len(summary.bad_messages) < MAX_BAD_MESSAGES:
            summary.bad_messages.append(message)

    entries = _selected(
        read_traffic(o.path, fmt=fmt, skip_bad=o.skip_bad, on_skip=skipped_bad), o, summary
    )
    # Read up to the first entry before creating the run: a file that is bad from
    # its start (not HAR after all, entry 0 broken) leaves no empty run behind.
    first = None if o.limit == 0 else next(entries, None)

    pipeline = Pipeline(
        PipelineSettings(
            db=o.db,
            candidate=o.candidate,
            run_id=run_id,
            source=f"replay:{o.path}",
            primary=o.primary,
            secondary=o.secondary,
            config_path=o.config,
            unsafe_methods=o.mirror_unsafe,
            timeout=o.timeout,
            concurrency=o.concurrency * 2,  # primary and candidate calls share the pool
            primary_headers=o.primary_headers,
            candidate_headers=o.candidate_headers,
            options=_run_options(o, fmt),
            tls=o.tls,
            copy_proxy=o.copy_proxy,
            streams=o.streams,
        )
    )
    await pipeline.start()
    started = time.monotonic()
    sem = asyncio.Semaphore(o.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    interval = 1.0 / o.rate if o.rate else 0.0
    next_at = time.monotonic()

    def update() -> None:
        summary.by_verdict = dict(pipeline.counters.by_verdict)
        summary.stored = pipeline.run.exchanges
        if progress:
            progress(summary)

    async def one(rec: Recorded) -> None:
        key = f"{run_id}-{rec.index}"
        ts = rec.started_at or time.time()
        try:
            if is_websocket(rec.request):
                await _talk(pipeline, key, rec, ts, bool(o.primary))
            elif o.primary:
                await pipeline.exchange(key, rec.request, ts)
            else:
                assert rec.response is not None
                pipeline.on_request(key, rec.request, ts)
                pipeline.on_primary(key, BackendResponse(rec.response, rec.elapsed_ms))
                await pipeline.wait_for(key)
        finally:
            sem.release()
            update()

    def store_unsafe(rec: Recorded) -> None:
        """An unsafe request not to be copied: a `skipped` row, as the live proxy makes."""
        summary.unsafe_skipped += 1
        if rec.response is None:
            return  # no answer to show for it: counted only
        key = f"{run_id}-{rec.index}"
        pipeline.on_request(key, rec.request, rec.started_at or time.time())
        pipeline.on_primary(key, BackendResponse(rec.response, rec.elapsed_ms))
        summary.unsafe_stored += 1

    def limit_reached() -> bool:
        return o.limit is not None and summary.sent >= o.limit

    def chain() -> Generator[Recorded, None, None]:
        if first is not None:
            yield first
            yield from entries

    failure: BaseException | None = None
    todo = chain()
    try:
        for rec in todo:
            m = rec.request.method
            if not config.may_copy(m, rec.request.path, o.mirror_unsafe):
                store_unsafe(rec)
                continue
            if not o.primary and rec.response is None:
                summary.no_response += 1
                continue
            if interval:
                now = time.monotonic()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at = max(next_at + interval, time.monotonic() - 1.0)
            await sem.acquire()
            summary.sent += 1
            task = asyncio.create_task(one(rec))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if limit_reached():
                break  # before reading another entry: a bad one after the limit is no failure
    except (InputError, asyncio.CancelledError, KeyboardInterrupt) as exc:
        failure = exc  # store what was already sent, then report the failure
    finally:
        todo.close()  # closes the file now, also when stopped early by --limit
        entries.close()
        results = await asyncio.gather(*tasks, return_exceptions=True) if tasks else []
        await pipeline.close()
        update()
        summary.seconds = time.monotonic() - started
    if isinstance(failure, InputError):
        raise InputError(
            f"{failure}; {summary.stored} exchanges before it are stored in run {run_id}"
            + ("" if o.skip_bad else " (--skip-bad passes over bad entries)")
        ) from None
    if failure is not None:
        raise failure
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result  # a bug, not bad input: do not hide it behind a summary
    # The counts so far were provisional (judged one by one as they came); the summary
    # shows the verdicts of the one outcome definition, as the report and check do.
    with reading(o.db) as con:
        summary.by_verdict = outcomes.verdict_counts(con, run_id)
    return summary
