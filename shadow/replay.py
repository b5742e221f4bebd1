"""Replay: recorded traffic as a second source of exchanges.

Two modes. With a primary URL, each recorded request is sent to the primary
and the candidate, as the proxy would. Without one, the recorded response
stands for the primary's and only the candidate is called. Either way the
exchanges go through the same `Pipeline` as live traffic.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shadow.config import SAFE_METHODS, load_config
from shadow.errors import ConfigError, InputError
from shadow.model import BackendResponse
from shadow.pipeline import Pipeline, PipelineSettings
from shadow.sources import Recorded, read_traffic


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
    limit: int | None = None
    mirror_unsafe: frozenset[str] = frozenset()
    primary_headers: tuple[tuple[str, str], ...] = ()
    candidate_headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    skip_bad: bool = False
    run_id: str = ""


@dataclass
class ReplaySummary:
    run_id: str
    read: int = 0
    sent: int = 0
    filtered: int = 0
    unsafe_skipped: int = 0
    no_response: int = 0
    bad_entries: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def compared(self) -> int:
        return self.by_verdict.get("match", 0) + self.by_verdict.get("differ", 0)

    def lines(self, db: str) -> list[str]:
        v = self.by_verdict
        errors = v.get("candidate_error", 0) + v.get("primary_error", 0)
        skipped = self.unsafe_skipped + self.no_response + v.get("skipped", 0)
        rate = self.sent / self.seconds if self.seconds else 0.0
        return [
            f"replayed {self.sent} of {self.read} entries in {self.seconds:.1f}s ({rate:.0f}/s)",
            f"compared {self.compared}: {v.get('match', 0)} matched, "
            f"{v.get('differ', 0)} differed; {errors} errors "
            f"({v.get('candidate_error', 0)} candidate, {v.get('primary_error', 0)} primary)",
            f"skipped {skipped} (unsafe method {self.unsafe_skipped}, no recorded response "
            f"{self.no_response}), filtered out {self.filtered}, bad entries {self.bad_entries}",
            f"run {self.run_id} stored in {db}; next: shadow report --db {db} --run {self.run_id}",
        ]


def _selected(
    entries: Iterable[Recorded], o: ReplayOptions, s: ReplaySummary
) -> Iterator[Recorded]:
    rng = random.Random(o.seed)
    taken = 0
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
        if o.limit is not None and taken >= o.limit:
            return
        taken += 1
        yield rec


async def replay(
    o: ReplayOptions, progress: Callable[[ReplaySummary], None] | None = None
) -> ReplaySummary:
    """Replay a traffic file; stores everything sent even when the file turns out bad."""
    config = load_config(o.config)  # fail on a bad config before reading anything
    if not 0 < o.sample <= 1:
        raise ConfigError(f"--sample {o.sample}: expected a fraction in (0, 1]")
    if o.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if o.rate is not None and o.rate <= 0:
        raise ConfigError("--rate must be positive")
    run_id = o.run_id or uuid.uuid4().hex[:12]
    summary = ReplaySummary(run_id)

    def skipped_bad(message: str) -> None:
        summary.bad_entries += 1

    entries = read_traffic(o.path, fmt=o.fmt, skip_bad=o.skip_bad, on_skip=skipped_bad)
    options: dict[str, Any] = {
        k: (sorted(v) if isinstance(v, frozenset) else v)
        for k, v in o.__dict__.items()
        if k not in ("primary_headers", "candidate_headers")
    }
    options["header_overrides"] = sorted(
        {k for k, _ in o.primary_headers} | {k for k, _ in o.candidate_headers}
    )
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
            options=options,
        )
    )
    await pipeline.start()
    started = time.monotonic()
    sem = asyncio.Semaphore(o.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    interval = 1.0 / o.rate if o.rate else 0.0
    next_at = time.monotonic()

    async def one(rec: Recorded) -> None:
        key = f"{run_id}-{rec.index}"
        ts = rec.started_at or time.time()
        try:
            if o.primary:
                await pipeline.exchange(key, rec.request, ts)
            else:
                assert rec.response is not None
                pipeline.on_request(key, rec.request, ts)
                pipeline.on_primary(key, BackendResponse(rec.response, rec.elapsed_ms))
                await pipeline.wait_for(key)
        finally:
            sem.release()
            summary.by_verdict = dict(pipeline.counters.by_verdict)
            if progress:
                progress(summary)

    failure: BaseException | None = None
    try:
        for rec in _selected(entries, o, summary):
            m = rec.request.method
            if m not in SAFE_METHODS and not config.may_copy(m, rec.request.path, o.mirror_unsafe):
                summary.unsafe_skipped += 1
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
    except (InputError, asyncio.CancelledError, KeyboardInterrupt) as exc:
        failure = exc  # store what was already sent, then report the failure
    finally:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await pipeline.close()
        summary.by_verdict = dict(pipeline.counters.by_verdict)
        summary.seconds = time.monotonic() - started
    if failure is not None:
        raise failure
    return summary
