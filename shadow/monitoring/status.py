"""`shadow status`: per-route figures from a metrics scrape or from the store.

Two sources, one shape (`Status`): a scrape of `shadow proxy --metrics` (the
live counters; verdicts are the worker's provisional ones) or the store, read
through the outcome definition (`shadow_endpoint_outcomes`), so a finished run
shows exactly what `shadow report` and `shadow check` show.

    scrape = parse_scrape(fetch_exposition(url), at=time.monotonic())
    status = metrics_status(scrape, previous_scrape, target=url)
    status = store_status(con, run_id, now=utc_now(), target=db)

Definitions (the same as shadow/store/sql/outcomes.sql): parity = match / (match +
differ), in percent; candidate errors in percent of the requests sent (not
skipped); p95 in milliseconds over fair latency pairs (from the histogram the way
PromQL's `histogram_quantile` estimates it, or the store's `quantile_cont`).
Requests per second: the counter's increase between two scrapes over the time
between them, or the store's exchanges of the last `window_s` seconds.
"""

from __future__ import annotations

import http.client
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shadow.errors import BackendUnreachable, ConfigError, InputError

if TYPE_CHECKING:
    import duckdb

MAX_BODY = 16 * 1024 * 1024  # bytes of a scrape read at most
TIMEOUT = 5.0  # seconds a scrape may take (the proxy waits up to 2 s for its worker)
STORE_WINDOW = 10.0  # seconds of stored exchanges behind the store's requests/s
P95 = 0.95


# --- the figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteRow:
    """One route and method: how it is served and how the candidate does."""

    method: str
    route: str
    mode: str  # legacy | shadow | canary | candidate; "-" when the store has none
    canary_percent: float | None  # the share of users the candidate answers (metrics)
    requests: int  # stored exchanges, skipped included
    requests_per_s: float | None  # None: one read only, no rate yet
    sent: int  # requests not skipped
    compared: int  # match + differ
    matched: int
    parity: float | None  # percent; None when nothing was compared
    candidate_errors: int
    candidate_error_pct: float | None  # of `sent`
    primary_errors: int
    skipped: int
    primary_p95_ms: float | None
    candidate_p95_ms: float | None
    latency_pairs: int  # fair pairs behind the p95s


@dataclass(frozen=True)
class Totals:
    requests: int
    requests_per_s: float | None
    sent: int
    compared: int
    matched: int
    parity: float | None
    candidate_errors: int
    candidate_error_pct: float | None
    primary_errors: int
    skipped: int
    dropped: int | None  # copies never sent (queue or memory full); None: not known
    dropped_by_stage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    """The run's health; None where the source cannot tell (the store knows no worker)."""

    worker_up: bool | None = None
    worker_lag_s: float | None = None
    queue_depth: dict[str, int] = field(default_factory=dict)
    flags_stale: bool | None = None
    store_up: bool | None = None
    rollbacks: int = 0
    rollbacks_by_route: dict[str, int] = field(default_factory=dict)
    proxy_requests: int | None = None  # requests the proxy took (metrics)
    ended: bool | None = None  # the run has ended (store)


@dataclass(frozen=True)
class Status:
    source: str  # "metrics" | "store"
    target: str  # the URL read, or the store's path
    run_id: str | None
    rate_window_s: float | None  # seconds behind requests_per_s
    header: Header
    routes: list[RouteRow]
    totals: Totals

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def totals(
    rows: Sequence[RouteRow], rated: bool, dropped: int | None = None,
    dropped_by_stage: dict[str, int] | None = None,
) -> Totals:  # fmt: skip
    """Sums over `rows`; parity and error rate by the same definitions as each row's."""
    s = {
        k: sum(getattr(r, k) for r in rows)
        for k in ("requests", "sent", "compared", "matched", "candidate_errors",
                  "primary_errors", "skipped")
    }  # fmt: skip
    rate = sum(r.requests_per_s or 0.0 for r in rows) if rated else None
    return Totals(
        requests=s["requests"], requests_per_s=rate, sent=s["sent"], compared=s["compared"],
        matched=s["matched"], parity=_pct(s["matched"], s["compared"]),
        candidate_errors=s["candidate_errors"],
        candidate_error_pct=_pct(s["candidate_errors"], s["sent"]),
        primary_errors=s["primary_errors"], skipped=s["skipped"],
        dropped=dropped, dropped_by_stage=dict(dropped_by_stage or {}),
    )  # fmt: skip


# --- histogram_quantile ------------------------------------------------------------------


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative `buckets` (upper bound, count), as PromQL estimates it.

    Prometheus' `bucketQuantile`: the +Inf bucket must be there; the rank q * total
    falls in the first bucket whose count reaches it, and the value is interpolated
    linearly within that bucket (from 0 for the first, unless its bound is <= 0);
    a rank in the +Inf bucket gives the highest finite bound. None (PromQL: NaN)
    without observations, without a +Inf bucket or with fewer than two buckets.
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count  # coalesce equal bounds
    ordered = sorted(merged.items())
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    fixed: list[tuple[float, float]] = []
    top = 0.0
    for bound, count in ordered:  # force monotonic counts (scrapes are not atomic)
        top = max(top, count)
        fixed.append((bound, top))
    observations = fixed[-1][1]
    if observations == 0:
        return None
    rank = q * observations
    b = next((i for i, (_, c) in enumerate(fixed[:-1]) if c >= rank), len(fixed) - 1)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, end, count = 0.0, fixed[b][0], fixed[b][1]
    if b > 0:
        start = fixed[b - 1][0]
        count -= fixed[b - 1][1]
        rank -= fixed[b - 1][1]
    if count == 0:  # q = 0 over an empty first bucket: 0/0, NaN in PromQL
        return None
    return start + (end - start) * (rank / count)


# --- from a scrape -----------------------------------------------------------------------


@dataclass
class Series:
    """The worker's counters of one (method, route)."""

    requests: float = 0.0
    verdicts: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # backend -> le -> n


@dataclass
class Scrape:
    """What one read of /metrics said (only what `status` shows)."""

    at: float  # when read (a monotonic clock, seconds)
    run_id: str | None = None
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    modes: dict[str, str] | None = None  # route -> mode; None: no route modes exported
    canary: dict[str, float] = field(default_factory=dict)
    rollbacks: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, float] = field(default_factory=dict)
    queues: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)  # unlabelled gauges and counters


_GAUGES = ("shadow_worker_up", "shadow_worker_lag_seconds", "shadow_flags_stale",
           "shadow_store_up", "shadow_proxy_requests_total")  # fmt: skip


def parse_scrape(text: str, at: float) -> Scrape:
    """The figures of a Prometheus text exposition; ValueError if it is not shadow's."""
    from prometheus_client.parser import text_string_to_metric_families

    scrape = Scrape(at=at)
    shadow_families = 0
    for family in text_string_to_metric_families(text):
        shadow_families += family.name.startswith("shadow_")
        if family.name == "shadow_route_mode":
            scrape.modes = {}
        for s in family.samples:
            value = float(s.value)
            if family.name.startswith("shadow_") and not math.isfinite(value):
                # Ours are always finite: NaN or Inf means another exporter's figures.
                raise ValueError(f"{s.name} is {value}, not a count or a time")
            _take(scrape, s.name, s.labels, value)
    if not shadow_families:
        raise ValueError("no shadow_* metrics in it")
    return scrape


def _take(scrape: Scrape, name: str, labels: dict[str, str], value: float) -> None:
    key = (labels.get("method", ""), labels.get("route", ""))
    if name == "shadow_requests_total":
        scrape.series.setdefault(key, Series()).requests += value
    elif name == "shadow_verdicts_total":
        verdicts = scrape.series.setdefault(key, Series()).verdicts
        verdicts[labels["verdict"]] = verdicts.get(labels["verdict"], 0.0) + value
    elif name == "shadow_latency_seconds_bucket":
        per = scrape.series.setdefault(key, Series()).buckets.setdefault(labels["backend"], {})
        le = float(labels["le"])
        per[le] = per.get(le, 0.0) + value
    elif name == "shadow_route_mode" and value == 1.0 and scrape.modes is not None:
        scrape.modes[labels["route"]] = labels["mode"]
    elif name == "shadow_route_canary_percent":
        scrape.canary[labels["route"]] = value
    elif name == "shadow_rollbacks_total":
        scrape.rollbacks[labels["route"]] = scrape.rollbacks.get(labels["route"], 0.0) + value
    elif name == "shadow_copies_dropped_total":
        scrape.dropped[labels["stage"]] = value
    elif name == "shadow_queue_depth":
        scrape.queues[labels["queue"]] = value
    elif name == "shadow_run_info":
        scrape.run_id = labels.get("run_id")
    elif name in _GAUGES:
        scrape.gauges[name] = value


def _increase(now: float, before: float) -> float:
    """A counter's increase; a counter that went down was reset (a restarted worker)."""
    return now - before if now >= before else now


def metrics_status(current: Scrape, previous: Scrape | None, target: str = "") -> Status:
    """Per-route figures of `current`; rates against `previous` (None: no rates yet)."""
    dt = current.at - previous.at if previous is not None else 0.0
    stale = current.gauges.get("shadow_flags_stale")
    rows = []
    for (method, route), s in sorted(current.series.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        v = s.verdicts
        matched, compared = v.get("match", 0.0), v.get("match", 0.0) + v.get("differ", 0.0)
        skipped = v.get("skipped", 0.0)
        sent = sum(v.values()) - skipped
        rate = None
        if previous is not None and dt > 0:
            before = previous.series.get((method, route))
            rate = _increase(s.requests, before.requests if before else 0.0) / dt
        p95 = {b: histogram_quantile(P95, s.buckets.get(b, {}).items()) for b in _BACKENDS}
        if current.modes is None:
            mode = "shadow"  # no route modes: every route is shadowed
        else:  # a route neither configured nor flagged runs in the default mode
            mode = current.modes.get(route, "legacy" if stale == 1.0 else "shadow")
        rows.append(
            RouteRow(
                method=method, route=route, mode=mode, canary_percent=current.canary.get(route),
                requests=int(s.requests), requests_per_s=rate, sent=int(sent),
                compared=int(compared), matched=int(matched), parity=_pct(matched, compared),
                candidate_errors=int(v.get("candidate_error", 0.0)),
                candidate_error_pct=_pct(v.get("candidate_error", 0.0), sent),
                primary_errors=int(v.get("primary_error", 0.0)), skipped=int(skipped),
                primary_p95_ms=_ms(p95["primary"]), candidate_p95_ms=_ms(p95["candidate"]),
                latency_pairs=int(s.buckets.get("primary", {}).get(math.inf, 0.0)),
            )
        )  # fmt: skip
    g = current.gauges
    header = Header(
        worker_up=_flag(g.get("shadow_worker_up")),
        worker_lag_s=g.get("shadow_worker_lag_seconds"),
        queue_depth={k: int(n) for k, n in current.queues.items()},
        flags_stale=_flag(stale),
        store_up=_flag(g.get("shadow_store_up")),
        rollbacks=int(sum(current.rollbacks.values())),
        rollbacks_by_route={k: int(n) for k, n in current.rollbacks.items() if n},
        proxy_requests=_int(g.get("shadow_proxy_requests_total")),
    )
    dropped = {k: int(n) for k, n in current.dropped.items()}
    return Status(
        source="metrics", target=target, run_id=current.run_id,
        rate_window_s=dt if previous is not None else None, header=header, routes=rows,
        totals=totals(
            rows, previous is not None,
            sum(dropped.values()) if dropped else None, dropped,
        ),
    )  # fmt: skip


_BACKENDS = ("primary", "candidate")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _flag(value: float | None) -> bool | None:
    return None if value is None else value == 1.0


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


# --- reading a metrics endpoint ----------------------------------------------------------


def metrics_url(value: str) -> str:
    """`http(s)://HOST:PORT[/PATH]` (default path /metrics), or HOST:PORT, :PORT or PORT."""
    text = value.strip()
    if "://" not in text:
        from shadow.monitoring.address import parse_address

        host, port = parse_address(text, "--metrics")
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--metrics {value!r}: expected http://HOST:PORT/metrics or HOST:PORT")
    try:
        _ = parts.port  # raises on a bad port
    except ValueError:
        raise ConfigError(f"--metrics {value!r}: bad port") from None
    return parts._replace(path=parts.path if parts.path not in ("", "/") else "/metrics").geturl()


def fetch_exposition(url: str, timeout: float = TIMEOUT, limit: int = MAX_BODY) -> str:
    """The body of `url` (at most `limit` bytes), directly (no HTTP proxy).

    BackendUnreachable when nothing answers there; InputError when what answers is
    not a metrics endpoint (an HTTP error, HTML, not HTTP, too large).
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with opener.open(request, timeout=timeout) as resp:
            kind = resp.headers.get("Content-Type", "")
            body = resp.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}: not a metrics endpoint") from None
    except urllib.error.URLError as exc:
        raise BackendUnreachable(f"cannot read {url}: {_reason(exc.reason)}") from None
    except http.client.HTTPException as exc:
        raise InputError(f"{url}: not an HTTP metrics endpoint ({type(exc).__name__})") from None
    except OSError as exc:  # a timeout or reset while reading
        raise BackendUnreachable(f"cannot read {url}: {_reason(exc)}") from None
    if len(body) > limit:
        raise InputError(f"{url}: the answer is larger than {limit} bytes")
    if kind.startswith("text/html"):
        raise InputError(f"{url}: answered with HTML, not Prometheus metrics")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{url}: the answer is not UTF-8 text") from None


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def read_scrape(url: str, at: float, timeout: float = TIMEOUT) -> Scrape:
    """`fetch_exposition` and `parse_scrape`, with one InputError if it does not parse."""
    text = fetch_exposition(url, timeout)
    try:
        return parse_scrape(text, at)
    except ValueError as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else "unreadable"
        raise InputError(f"{url}: not a shadow metrics endpoint ({first})") from None


# --- from the store ----------------------------------------------------------------------

# the latest run of traffic (a `shadow data diff` run has no routes to show)
_LATEST_RUN = (
    "SELECT run_id FROM runs WHERE NOT starts_with(source, 'data:') "
    "ORDER BY started_at DESC, run_id DESC LIMIT 1"
)
_RUN = "SELECT run_id, ended_at, copies_dropped FROM runs WHERE run_id = ?"
_FIGURES = """
SELECT endpoint, requests, sent, compared, matched, candidate_errors, primary_errors, skipped,
       parity, candidate_error_pct, primary_q, candidate_q, latency_pairs
FROM shadow_endpoint_outcomes(?)
"""
# Facts, not figures: exchanges stored since `since`, and the mode of each one's latest.
_RECENT = """
SELECT endpoint, count(*) FILTER (WHERE ts >= ?), arg_max(mode, ts) FILTER (WHERE mode IS NOT NULL)
FROM exchanges WHERE run_id = ? GROUP BY endpoint
"""
_ROLLBACKS = """
SELECT coalesce(route, ''), count(*) FROM events WHERE run_id = ? AND kind = 'rollback'
GROUP BY ALL
"""


def store_status(
    con: duckdb.DuckDBPyConnection, run: str | None, now: datetime,
    window_s: float = STORE_WINDOW, target: str = "",
) -> Status:  # fmt: skip
    """Per-endpoint figures of `run` (None: the newest run) from the outcome definition.

    `now`: naive UTC, as the store keeps `ts`; requests/s counts the exchanges
    stored with ts in [now - window_s, now]. ConfigError if `run` is not there.
    """
    if run is None:
        latest = con.execute(_LATEST_RUN).fetchall()
        if not latest:
            empty = totals([], True)
            return Status("store", target, None, window_s, Header(), [], empty)
        run = str(latest[0][0])
    found = con.execute(_RUN, [run]).fetchall()
    if not found:
        raise ConfigError(f"--run {run}: no such run in {target or 'the store'}")
    _, ended_at, copies_dropped = found[0]
    since = now - timedelta(seconds=window_s)
    recent = {str(e): (int(n), m) for e, n, m in con.execute(_RECENT, [since, run]).fetchall()}
    rows = []
    for r in con.execute(_FIGURES, [run]).fetchall():
        endpoint = str(r[0])
        method, _, route = endpoint.partition(" ")
        n, mode = recent.get(endpoint, (0, None))
        rows.append(
            RouteRow(
                method=method, route=route or "/", mode=str(mode) if mode else "-",
                canary_percent=None, requests=int(r[1]), requests_per_s=n / window_s,
                sent=int(r[2]), compared=int(r[3]), matched=int(r[4]), parity=_float(r[8]),
                candidate_errors=int(r[5]), candidate_error_pct=_float(r[9]),
                primary_errors=int(r[6]), skipped=int(r[7]),
                primary_p95_ms=_p95(r[10]), candidate_p95_ms=_p95(r[11]),
                latency_pairs=int(r[12]),
            )
        )  # fmt: skip
    rows.sort(key=lambda row: (row.route, row.method))
    rollbacks = {str(k): int(n) for k, n in con.execute(_ROLLBACKS, [run]).fetchall()}
    header = Header(
        rollbacks=sum(rollbacks.values()), rollbacks_by_route=rollbacks,
        ended=ended_at is not None,
    )  # fmt: skip
    dropped = int(copies_dropped or 0)
    return Status("store", target, run, window_s, header, rows, totals(rows, True, dropped))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _p95(quantiles: object) -> float | None:
    if not isinstance(quantiles, list | tuple) or len(quantiles) < 2 or quantiles[1] is None:
        return None
    return float(quantiles[1])


__all__ = [
    "Header", "RouteRow", "Scrape", "Status", "Totals", "fetch_exposition",
    "histogram_quantile", "metrics_status", "metrics_url", "parse_scrape", "read_scrape",
    "store_status", "totals",
]  # fmt: skip
