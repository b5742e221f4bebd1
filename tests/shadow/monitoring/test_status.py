"""shadow.monitoring.status: the quantile, a real exposition parsed, the store's figures.

The exposition comes from the real registries (WorkerMetrics fed the evaluator's
real results, served by a real MetricsServer and read by ProxyMetrics as the proxy
does); the same results go to a real store, so both sources must agree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from shadow.config.control import ControlConfig, RouteMode
from shadow.config.loader import parse_config
from shadow.control.flags import FlagState
from shadow.errors import BackendUnreachable, ConfigError, InputError
from shadow.monitoring.proxy_metrics import ProxyMetrics, ProxyState
from shadow.monitoring.server import MetricsServer
from shadow.monitoring.status import (
    RouteRow,
    Status,
    fetch_exposition,
    histogram_quantile,
    metrics_status,
    metrics_url,
    parse_scrape,
    read_scrape,
    store_status,
)
from shadow.monitoring.worker_metrics import LATENCY_BUCKETS, WorkerMetrics
from shadow.pipeline.evaluate import evaluate
from shadow.store.rows import AcceptedRow
from shadow.store.writer import Run, StoreWriter, reading
from tests.conftest import free_port
from tests.store_builder import ERROR, T0, Call, CutoverCall, event, exchange, write_cutover_store

BOUNDS = (*LATENCY_BUCKETS, math.inf)


# --- histogram_quantile --------------------------------------------------------------------


def _cumulative(
    samples: Sequence[float], bounds: Sequence[float] = BOUNDS
) -> list[tuple[float, float]]:
    """Brute force: for each upper bound, how many samples are at most it."""
    return [(le, float(sum(1 for x in samples if x <= le))) for le in bounds]


def _inverse_cdf(q: float, buckets: list[tuple[float, float]]) -> float:
    """Brute force: the least x where the piecewise-linear CDF through (0, 0) and each
    finite (bound, count) reaches q * total, by bisection; past the last finite bound,
    that bound (what PromQL answers for the +Inf bucket)."""
    finite = [(0.0, 0.0), *[(le, c) for le, c in buckets if le != math.inf]]
    rank = q * buckets[-1][1]

    def cdf(x: float) -> float:
        for (a, ca), (b, cb) in pairwise(finite):
            if x <= b:
                return ca + (cb - ca) * (x - a) / (b - a)
        return finite[-1][1]

    lo, hi = 0.0, finite[-1][0]
    if cdf(hi) < rank:
        return hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if cdf(mid) >= rank:
            hi = mid
        else:
            lo = mid
    return hi


samples_st = st.lists(st.floats(0.0, 12.0, allow_nan=False), min_size=1, max_size=300)
q_st = st.floats(0.001, 1.0)


@given(samples_st, q_st)
def test_quantile_is_the_inverse_of_the_interpolated_cdf(samples: list[float], q: float) -> None:
    buckets = _cumulative(samples)
    got = histogram_quantile(q, buckets)
    assert got is not None
    assert got == pytest.approx(_inverse_cdf(q, buckets), abs=1e-9)


@given(samples_st, q_st)
def test_quantile_lies_in_the_bucket_of_the_true_order_statistic(
    samples: list[float], q: float
) -> None:
    got = histogram_quantile(q, _cumulative(samples))
    assert got is not None
    k = math.ceil(q * len(samples))  # the rank'th smallest sample is the true q-quantile
    true = sorted(samples)[k - 1]
    if true > LATENCY_BUCKETS[-1]:
        assert got == LATENCY_BUCKETS[-1]
        return
    hi = next(le for le in BOUNDS if true <= le)
    lo = max((le for le in BOUNDS if le < hi), default=0.0)
    assert lo <= got <= hi


def test_quantile_known_values() -> None:
    # 10 samples in (0, 0.1], 10 in (0.1, 0.2]
    buckets = [(0.1, 10.0), (0.2, 20.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)
    # a worked example: rank 0.9 * 27892 = 25102.8 in (0.5, 1]: 0.5 + 0.5 * 1001.8 / 2250
    assert histogram_quantile(
        0.9, [(0.5, 24101.0), (1.0, 26351.0), (math.inf, 27892.0)]
    ) == pytest.approx(0.7226222, abs=1e-6)


def test_quantile_edge_cases() -> None:
    assert histogram_quantile(0.95, []) is None
    assert histogram_quantile(0.95, [(0.1, 0.0), (math.inf, 0.0)]) is None  # no observations
    assert histogram_quantile(0.95, [(0.1, 3.0), (0.2, 5.0)]) is None  # no +Inf bucket
    assert histogram_quantile(0.95, [(math.inf, 5.0)]) is None  # one bucket
    assert histogram_quantile(0.5, [(0.1, 0.0), (0.2, 0.0), (math.inf, 7.0)]) == 0.2  # in +Inf
    assert histogram_quantile(0.5, [(-1.0, 4.0), (0.0, 4.0), (math.inf, 4.0)]) == -1.0
    assert histogram_quantile(0.0, [(0.1, 0.0), (math.inf, 7.0)]) is None  # 0/0 in PromQL
    assert histogram_quantile(1.5, [(0.1, 1.0), (math.inf, 1.0)]) == math.inf
    assert histogram_quantile(-0.1, [(0.1, 1.0), (math.inf, 1.0)]) == -math.inf
    # unsorted, duplicate bounds coalesced, a count that went down forced up
    messy = [(math.inf, 20.0), (0.2, 12.0), (0.1, 5.0), (0.1, 5.0), (0.15, 9.0)]
    tidy = [(0.1, 10.0), (0.15, 10.0), (0.2, 12.0), (math.inf, 20.0)]
    assert histogram_quantile(0.55, messy) == histogram_quantile(0.55, tidy)


# --- a real exposition: the registries fed the evaluator's results -----------------------


@dataclass
class Watcher:
    """What ProxyMetrics reads of a FlagWatcher."""

    state: FlagState
    stale_now: bool = False
    ever_read: bool = True

    def stale(self) -> bool:
        return self.stale_now

    def age(self) -> float:
        return 0.5


def _pipeline() -> Any:
    """The figures WorkerMetrics' scrape-time collector reads from a Pipeline."""
    return SimpleNamespace(
        shed_upstream=lambda: 3, counters=SimpleNamespace(dropped=2), waiting=4, pending=1,
        comparing=0, writer=SimpleNamespace(pending=6),
        late=SimpleNamespace(worst=lambda window: 0.25),
        lag=SimpleNamespace(stalls=SimpleNamespace(worst=lambda window: 0.01)), store_error=None,
        config=SimpleNamespace(
            control=SimpleNamespace(routes={}), matcher=SimpleNamespace(patterns=[])
        ),
    )  # fmt: skip


class Rig:
    """A worker registry served on a real port, the proxy's registry reading it, a store."""

    def __init__(self, db: Path, watcher: Watcher | None = None) -> None:
        self.db = str(db)
        self.cfg = parse_config({})
        self.metrics = WorkerMetrics(_pipeline(), proxy_queue=SimpleNamespace(qsize=lambda: 7))
        self.server = MetricsServer(
            "127.0.0.1", 0, lambda: generate_latest(self.metrics.registry), lambda: None
        ).start()
        self.seen = 0
        control = (ControlConfig(), watcher) if watcher is not None else None
        self.proxy = ProxyMetrics(
            ProxyState(
                run_id="r1", requests=lambda: self.seen, restarts=lambda: 0,
                worker_pid=os.getpid, worker_ready=lambda: True,
                worker_port=lambda: self.server.port, control=lambda: control,
            )
        )  # fmt: skip
        self.writer = StoreWriter(self.db)
        self.writer.run_changed(Run("r1", "proxy", T0, "http://p.test", "http://c.test"))
        self.writer.add_accepted(list[AcceptedRow]())
        self.n = 0

    def feed(self, calls: Sequence[Call], lagged: Sequence[int] = ()) -> None:
        """Evaluate each call once; its result goes to the store and to the metrics."""
        for call in calls:
            ex = exchange(self.n, call)
            if self.n in lagged and ex.candidate is not None:  # our own delay in its time
                ex = replace(ex, candidate=replace(ex.candidate, lag_ms=500.0))
            result = evaluate(ex, self.cfg, "r1", 64 * 1024, "differ")
            self.writer.add(result.row, result.differences, result.noise)
            self.metrics.observe(result.row)
            self.n += 1
            self.seen += 1
        self.writer.flush()

    def text(self) -> str:
        return self.proxy.exposition().decode()

    def close(self) -> None:
        self.writer.release()
        self.server.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "s.duckdb")
    yield r
    r.close()


def _calls() -> list[Call]:
    calls: list[Call] = []
    for i in range(40):  # GET /api/a/{id}: a fifth differ, latencies spread over buckets
        body = {"id": 1, "v": i % 5 == 0}
        p_ms, c_ms = 1.0 + (i * 7) % 40, 2.0 + (i * 11) % 90
        calls.append(Call("GET /api/a/{id}", {"id": 1, "v": False}, body, primary_ms=p_ms,
                          candidate_ms=c_ms))  # fmt: skip
    for i in range(12):  # POST /api/b: candidate errors, a primary error, skipped
        candidate: Any = ERROR if i % 4 == 0 else None if i % 6 == 1 else {"ok": True}
        primary: Any = ERROR if i == 5 else {"ok": True}
        calls.append(Call("POST /api/b", primary, candidate, primary_ms=3.0 + i, candidate_ms=8.0))
    return calls


def _row(status: Status, method: str, route: str) -> RouteRow:
    found = [r for r in status.routes if (r.method, r.route) == (method, route)]
    assert len(found) == 1, status.routes
    return found[0]


AGREE = ("requests", "sent", "compared", "matched", "parity", "candidate_errors",
         "candidate_error_pct", "primary_errors", "skipped", "latency_pairs")  # fmt: skip


def _store(db: str, now: datetime | None = None, run: str | None = None) -> Status:
    with reading(db) as con:
        return store_status(con, run, now or datetime(2030, 1, 1), target=db)


def test_exposition_figures_agree_with_the_store(rig: Rig) -> None:
    calls = _calls()
    rig.feed(calls, lagged=[3, 8, 13])
    status = metrics_status(parse_scrape(rig.text(), at=1.0), None, target="t")
    stored = _store(rig.db)
    assert [(r.method, r.route) for r in status.routes] == [
        ("GET", "/api/a/{id}"), ("POST", "/api/b")
    ]  # fmt: skip
    assert [(r.method, r.route) for r in stored.routes] == [
        (r.method, r.route) for r in status.routes
    ]
    for live, kept in zip(status.routes, stored.routes, strict=True):
        for name in AGREE:
            assert getattr(live, name) == pytest.approx(getattr(kept, name)), name
    a = _row(status, "GET", "/api/a/{id}")
    assert (a.requests, a.compared, a.matched) == (40, 40, 32)
    assert a.parity == pytest.approx(80.0)
    assert a.latency_pairs == 37  # three left out: our own delay was in the candidate's time
    b = _row(status, "POST", "/api/b")
    assert (b.requests, b.skipped, b.candidate_errors, b.primary_errors) == (12, 2, 3, 1)
    assert b.candidate_error_pct == pytest.approx(100 * 3 / 10)
    assert status.totals.parity == pytest.approx(stored.totals.parity)
    assert status.totals.requests == stored.totals.requests == len(calls)
    assert status.rate_window_s is None and a.requests_per_s is None  # one scrape: no rate


def _type7(values: Sequence[float], q: float) -> float:
    """Brute-force linear-interpolation quantile (DuckDB's quantile_cont)."""
    xs = sorted(values)
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    return xs[lo] + (h - lo) * (xs[min(lo + 1, len(xs) - 1)] - xs[lo])


def test_p95_of_both_sources_from_the_same_fair_pairs(rig: Rig) -> None:
    calls = _calls()
    rig.feed(calls, lagged=[3, 8, 13])
    fair = [c for i, c in enumerate(calls[:40]) if i not in (3, 8, 13)]
    live = _row(metrics_status(parse_scrape(rig.text(), at=1.0), None), "GET", "/api/a/{id}")
    kept = _row(_store(rig.db), "GET", "/api/a/{id}")
    for side in ("primary", "candidate"):
        ms = [getattr(c, f"{side}_ms") for c in fair]
        buckets = _cumulative([m / 1000 for m in ms])
        expected = histogram_quantile(0.95, buckets)
        assert expected is not None
        assert getattr(live, f"{side}_p95_ms") == pytest.approx(expected * 1000)
        assert getattr(kept, f"{side}_p95_ms") == pytest.approx(_type7(ms, 0.95))


def test_header_from_the_exposition(rig: Rig) -> None:
    rig.feed(_calls()[:3])
    rig.metrics.events([event("rollback", 1.0, "/api/a/{id}"), event("rollback", 2.0, "/x")])
    status = metrics_status(parse_scrape(rig.text(), at=1.0), None)
    h = status.header
    assert status.run_id == "r1"
    assert h.worker_up is True and h.store_up is True
    assert h.worker_lag_s == pytest.approx(0.25)
    assert h.queue_depth == {"proxy": 7, "copies": 4, "exchanges": 1, "comparisons": 0, "rows": 6}
    assert h.rollbacks == 2 and h.rollbacks_by_route == {"/api/a/{id}": 1, "/x": 1}
    assert h.proxy_requests == 3
    assert h.flags_stale is None  # no route modes exported
    assert status.totals.dropped == 5
    assert status.totals.dropped_by_stage == {"proxy": 3, "worker": 2}
    assert {r.mode for r in status.routes} == {"shadow"}


def test_worker_down_shows_no_rows(rig: Rig) -> None:
    rig.feed(_calls()[:3])
    rig.server.close()  # the worker does not answer: the proxy's families only
    status = metrics_status(parse_scrape(rig.text(), at=1.0), None)
    assert status.header.worker_up is False
    assert status.routes == [] and status.totals.dropped is None
    assert status.header.proxy_requests == 3


@pytest.mark.parametrize("stale", [False, True])
def test_route_modes(tmp_path: Path, stale: bool) -> None:
    flags = FlagState(routes={"/api/a/{id}": RouteMode("canary", 25)})
    r = Rig(tmp_path / "s.duckdb", Watcher(flags, stale_now=stale))
    try:
        r.feed(_calls())
        status = metrics_status(parse_scrape(r.text(), at=1.0), None)
    finally:
        r.close()
    a, b = _row(status, "GET", "/api/a/{id}"), _row(status, "POST", "/api/b")
    assert status.header.flags_stale is stale
    if stale:  # the flag store unreadable: every route runs legacy
        assert (a.mode, a.canary_percent, b.mode) == ("legacy", 0.0, "legacy")
    else:  # /api/b is neither configured nor flagged: the default mode
        assert (a.mode, a.canary_percent, b.mode) == ("canary", 25.0, "shadow")


def test_rates_between_two_scrapes(rig: Rig, tmp_path: Path) -> None:
    calls = _calls()
    rig.feed(calls[:20])
    first = parse_scrape(rig.text(), at=10.0)
    rig.feed(calls[20:])  # 20 more of /api/a, and /api/b appears
    second = parse_scrape(rig.text(), at=14.0)
    status = metrics_status(second, first)
    assert status.rate_window_s == pytest.approx(4.0)
    assert _row(status, "GET", "/api/a/{id}").requests_per_s == pytest.approx(20 / 4)
    assert _row(status, "POST", "/api/b").requests_per_s == pytest.approx(12 / 4)
    assert status.totals.requests_per_s == pytest.approx(32 / 4)
    # a restarted worker starts its counters again: the increase is the new count
    fresh = Rig(tmp_path / "fresh.duckdb")
    try:
        fresh.feed(calls[:6])
        restarted = metrics_status(parse_scrape(fresh.text(), at=16.0), second)
    finally:
        fresh.close()
    assert _row(restarted, "GET", "/api/a/{id}").requests_per_s == pytest.approx(6 / 2)


@pytest.mark.parametrize(
    "text",
    ["<html><body>hi</body></html>\n", "go_goroutines 5\nprocess_open_fds 9\n", "", "ok\n"],
)
def test_not_a_shadow_exposition(text: str) -> None:
    with pytest.raises(ValueError):
        parse_scrape(text, at=0.0)


# --- reading an endpoint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1:9464", "http://127.0.0.1:9464/metrics"),
        (":9464", "http://127.0.0.1:9464/metrics"),
        ("9464", "http://127.0.0.1:9464/metrics"),
        ("[::1]:9464", "http://[::1]:9464/metrics"),
        ("http://mon.test:9464", "http://mon.test:9464/metrics"),
        ("https://mon.test/", "https://mon.test/metrics"),
        ("http://mon.test:9464/custom/path", "http://mon.test:9464/custom/path"),
    ],
)
def test_metrics_url(given: str, url: str) -> None:
    assert metrics_url(given) == url


@pytest.mark.parametrize("bad", ["nonsense", "ftp://mon.test/metrics", "http://:80", "1:99999",
                                 "http://mon.test:notaport/"])  # fmt: skip
def test_metrics_url_rejects(bad: str) -> None:
    with pytest.raises(ConfigError):
        metrics_url(bad)


def test_fetch_is_bounded_and_errors_are_classified() -> None:
    big = MetricsServer("127.0.0.1", 0, lambda: b"x" * 5000, lambda: None).start()
    try:
        base = f"http://127.0.0.1:{big.port}"
        assert len(fetch_exposition(base + "/metrics", limit=5000)) == 5000
        with pytest.raises(InputError, match="larger than 4999 bytes"):
            fetch_exposition(base + "/metrics", limit=4999)
        with pytest.raises(InputError, match="HTTP 404"):
            fetch_exposition(base + "/nothing-here")
        with pytest.raises(InputError, match="not a shadow metrics endpoint"):
            read_scrape(base + "/metrics", at=0.0)
    finally:
        big.close()
    with pytest.raises(BackendUnreachable, match="cannot read"):
        fetch_exposition(f"http://127.0.0.1:{free_port()}/metrics", timeout=2)


# --- from the store --------------------------------------------------------------------------


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def test_store_rate_window_modes_and_rollbacks(tmp_path: Path) -> None:
    calls = [
        CutoverCall("GET /api/a/{id}", {"a": 1}, {"a": 1}, mode="shadow", at=float(t))
        for t in range(30)
    ]  # fmt: skip
    calls += [CutoverCall("GET /api/a/{id}", {"a": 1}, {"a": 2}, mode="canary", at=30.0 + t)
              for t in range(5)]  # fmt: skip
    calls += [CutoverCall("GET /api/c", {"c": 1}, {"c": 1}, mode=None, at=float(t))
              for t in range(0, 30, 3)]  # fmt: skip
    events = [event("rollback", 31.0, "/api/a/{id}"), event("flag", 32.0, "/api/a/{id}")]
    db = write_cutover_store(tmp_path / "c.duckdb", calls, events)
    now = T0 + 35.0
    status = _store(db, now=_utc(now))
    a, c = _row(status, "GET", "/api/a/{id}"), _row(status, "GET", "/api/c")
    for row, route in ((a, "/api/a/{id}"), (c, "/api/c")):  # brute force: ts in the window
        recent = [x for x in calls if x.endpoint == f"GET {route}"
                  and T0 + (x.at or 0) >= now - 10]  # fmt: skip
        assert row.requests_per_s == pytest.approx(len(recent) / 10)
    assert a.requests_per_s == pytest.approx(1.0)  # at 25..34
    assert (a.mode, c.mode) == ("canary", "-")  # the latest request's mode; none in c
    assert (a.requests, a.compared, a.matched) == (35, 35, 30)
    assert a.parity == pytest.approx(100 * 30 / 35)
    assert status.header.rollbacks == 1 and status.header.rollbacks_by_route == {"/api/a/{id}": 1}
    assert status.run_id == "r1" and status.totals.dropped == 0
    assert status.totals.requests_per_s == pytest.approx(1.0 + 1 / 10)  # c: only at 27
    later = _store(db, now=_utc(now + 3600))
    assert later.totals.requests_per_s == 0


def test_store_runs(tmp_path: Path) -> None:
    calls = [CutoverCall("GET /api/a", {"a": 1}, {"a": 1}, run_id=r) for r in ("r1", "r2", "r2")]
    db = write_cutover_store(tmp_path / "r.duckdb", calls)
    assert _store(db).run_id == "r2"  # the newest run (it started an hour later)
    assert _store(db).totals.requests == 2
    assert _store(db, run="r1").totals.requests == 1
    with pytest.raises(ConfigError, match="--run nope: no such run"):
        _store(db, run="nope")
    empty = write_cutover_store(tmp_path / "e.duckdb", [])
    nothing = _store(empty)
    assert nothing.run_id is None and nothing.routes == [] and nothing.totals.parity is None
