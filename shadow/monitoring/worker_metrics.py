"""The worker's metrics: what happened to every exchange, and how the worker keeps up.

Counters move as batches of rows are written (a pipeline observer), so they count
exactly the exchanges the store holds (not the ones spilled beside it), with the
provisional verdict the worker stored (the outcome definition's input;
`shadow_exchange_outcomes.provisional_verdict`).
Gauges are read when scraped. Latency histograms take the fair pairs only: both
backends answered, and our own delay in the candidate's time is within
`shadow_latency_usable`'s bound on both sides (the same bound as in SQL, see `usable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from comparators.model import Verdict
from shadow.monitoring.labels import RouteLabels
from shadow.store.rows import EventRow, ExchangeRow

if TYPE_CHECKING:
    from shadow.pipeline.core import Pipeline

# Seconds: fine at the low end, where a fast API's p95 lives.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


VERDICTS = tuple(v.value for v in Verdict)
BACKENDS = ("primary", "candidate", "secondary")
MAX_ENDPOINTS = 4096  # endpoints whose series are kept at hand
LAG_WINDOW = 5.0  # seconds over which the lag and stall gauges take the worst


LAG_LIMIT_MS = 2.0  # outcomes.sql shadow_latency_usable


def usable(lag_ms: float | None) -> bool:
    """shadow/store/sql/outcomes.sql `shadow_latency_usable`, for the live histograms."""
    return lag_ms is None or lag_ms <= LAG_LIMIT_MS


def failed(status: int | None, error: str | None) -> bool:
    """A transport error or a 5xx (outcomes.sql `shadow_candidate_failed`)."""
    return error is not None or (status is not None and status >= 500)


@dataclass(frozen=True)
class _Series:
    """One endpoint's labelled children (prometheus_client's per-label-set objects)."""

    requests: dict[str, Any]
    verdicts: dict[str, Any]
    errors: dict[str, Any]
    fallbacks: Any
    excluded: Any
    latency: dict[str, Any]


class WorkerMetrics:
    """The worker's registry; `observe_rows` every written batch, `events` every event batch."""

    def __init__(self, pipeline: Pipeline, proxy_queue: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.labels = RouteLabels(declared=(p.template for p in pipeline.config.matcher.patterns))
        r = self.registry
        self.requests = Counter(
            "shadow_requests", "Requests the worker stored, by route and who answered the client.",
            ["method", "route", "served_by"], registry=r,
        )  # fmt: skip
        self.verdicts = Counter(
            "shadow_verdicts",
            "Stored exchanges by provisional verdict (match, differ, candidate_error, "
            "primary_error, skipped); the report's verdict may still move differ to match.",
            ["method", "route", "verdict"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "shadow_backend_errors",
            "Answers that were a transport error or a 5xx, by backend.",
            ["backend", "method", "route"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "shadow_fallbacks", "Requests the candidate was to answer, answered by the primary.",
            ["method", "route"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "shadow_latency_seconds",
            "Time from sending a request to the last byte of its answer, over fair pairs only.",
            ["backend", "method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.excluded = Counter(
            "shadow_latency_excluded",
            "Compared exchanges left out of latency: our own delay was in the candidate's time.",
            ["method", "route"], registry=r,
        )  # fmt: skip
        self.rollbacks = Counter(
            "shadow_rollbacks", "Automatic rollbacks, by route.", ["route"], registry=r
        )
        self.overflow = Counter(
            "shadow_route_labels_overflow",
            'Stored exchanges counted under route="other": past the limit of distinct routes.',
            registry=r,
        )
        self._by_endpoint: dict[str, _Series] = {}
        r.register(_Live(pipeline, proxy_queue, self.labels))
        # Series exist from the start at 0, so the first rollback is an increase, too.
        for route in pipeline.config.control.routes:
            self.rollbacks.labels(self.labels.route(route))

    def _series(self, endpoint: str) -> _Series:
        """The labelled series of an endpoint, made once (labels() per row costs more than
        the counting). A route's series exist from its first request, at 0: rate() and
        increase() then see its first verdicts, errors and fallbacks too."""
        found = self._by_endpoint.get(endpoint)
        if found is not None:
            return found
        before = self.labels.overflow
        method, route = self.labels(endpoint)
        if self.labels.overflow != before:
            self.overflow.inc()
        if len(self._by_endpoint) >= MAX_ENDPOINTS:
            self._by_endpoint.clear()  # bounded: endpoints that never repeat
        found = self._by_endpoint[endpoint] = _Series(
            requests={s: self.requests.labels(method, route, s) for s in ("primary", "candidate")},
            verdicts={v: self.verdicts.labels(method, route, v) for v in VERDICTS},
            errors={b: self.errors.labels(b, method, route) for b in BACKENDS},
            fallbacks=self.fallbacks.labels(method, route),
            excluded=self.excluded.labels(method, route),
            latency={b: self.latency.labels(b, method, route) for b in ("primary", "candidate")},
        )
        return found

    def observe_rows(self, rows: Sequence[ExchangeRow]) -> None:
        """Count the exchange rows of a batch the store took."""
        for row in rows:
            self.observe(row)

    def observe(self, row: ExchangeRow) -> None:
        s = self._series(row.endpoint)
        s.requests["candidate" if row.served_by == "candidate" else "primary"].inc()
        verdict = row.verdict
        s.verdicts[verdict].inc()
        if row.fell_back:
            s.fallbacks.inc()
        if failed(row.primary_status, row.primary_error):
            s.errors["primary"].inc()
        if verdict != "skipped" and failed(row.candidate_status, row.candidate_error):
            s.errors["candidate"].inc()
        if failed(row.secondary_status, row.secondary_error):  # None, None: no secondary
            s.errors["secondary"].inc()
        if verdict not in ("match", "differ"):
            return
        p_ms, c_ms = row.primary_ms, row.candidate_ms
        if p_ms is None or c_ms is None or row.primary_error or row.candidate_error:
            return
        if not (usable(row.lag_ms) and usable(row.primary_lag_ms)):
            s.excluded.inc()
            return
        s.latency["primary"].observe(p_ms / 1000)
        s.latency["candidate"].observe(c_ms / 1000)

    def events(self, rows: Sequence[EventRow]) -> None:
        for e in rows:
            if e.kind == "rollback":
                self.rollbacks.labels(self.labels.route(e.route or "")).inc()


class _Live(Collector):
    """Gauges read at scrape time from the pipeline (no cost between scrapes)."""

    def __init__(self, pipeline: Pipeline, proxy_queue: Any, labels: RouteLabels) -> None:
        self.pipeline = pipeline
        self.proxy_queue = proxy_queue
        self.labels = labels

    def describe(self) -> Iterable[Metric]:
        return []  # read at scrape time only

    def collect(self) -> Iterable[Metric]:
        p = self.pipeline
        c = p.counters
        dropped = CounterMetricFamily(
            "shadow_copies_dropped",
            "Copies not sent: the proxy's queue to the worker was full (stage proxy), or the "
            "worker's backlog or memory budget was (stage worker).",
            labels=["stage"],
        )
        dropped.add_metric(["proxy"], float(_safe(p.shed_upstream)))
        dropped.add_metric(["worker"], float(c.dropped))
        yield dropped
        depth = GaugeMetricFamily(
            "shadow_queue_depth",
            "Items waiting: proxy (batches for the worker), copies (waiting for a connection), "
            "exchanges (waiting for an answer), comparisons, rows (for the next write).",
            labels=["queue"],
        )
        depth.add_metric(["proxy"], float(_safe(lambda: self.proxy_queue.qsize())))
        depth.add_metric(["copies"], float(p.waiting))
        depth.add_metric(["exchanges"], float(p.pending))
        depth.add_metric(["comparisons"], float(p.comparing))
        depth.add_metric(["rows"], float(p.writer.pending))
        yield depth
        yield GaugeMetricFamily(
            "shadow_worker_lag_seconds",
            "How late copies went out after their due time, at most, over the last "
            f"{LAG_WINDOW:g} s (0 when idle): how far behind the worker is.",
            value=p.late.worst(LAG_WINDOW),
        )
        yield GaugeMetricFamily(
            "shadow_worker_loop_stall_seconds",
            f"The longest stall of the worker's event loop over the last {LAG_WINDOW:g} s "
            "(any number of scrapers read the same figure).",
            value=p.lag.stalls.worst(LAG_WINDOW),
        )
        yield GaugeMetricFamily(
            "shadow_store_up", "1 when the last write to the store worked.",
            value=0.0 if p.store_error else 1.0,
        )  # fmt: skip


def _safe(read: Callable[[], int]) -> int:
    try:
        return int(read())
    except Exception:  # qsize is not implemented everywhere (macOS)
        return 0
