"""The Cutover section: per route, modes, flag changes, fallbacks and rollbacks over time.

Shown only when the report's scope has an exchange with a mode (schema version 5,
shadow.control) or an event. Every figure comes from the one definition of the
cutover figures, `shadow_route_figures(run, since, until, bucket_s)` in
`shadow/store/sql/outcomes.sql`: once per route over the whole scope, once per time
bucket. The bucket width is chosen so the scope spans MIN..MAX_BUCKETS buckets;
nothing here computes a rate, the chart only scales the macro's rates to pixels.

Sizes are bounded: at most MAX_ROUTES routes (those with rollbacks first) and
MAX_EVENTS events (rollbacks, then flag changes, then the rest), reasons and
evidence cut to TEXT_CHARS characters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from reports._sql import rows
from reports.queries import RUN, RUN_FILTER

MAX_BUCKETS = 60
# Bucket widths in seconds, each at most 2.5 times the one before: a scope of at least
# 24 s gets 24 to 60 buckets.
WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
          43200, 86400)  # fmt: skip
MAX_ROUTES = 50
MAX_EVENTS = 500
TEXT_CHARS = 4000
EVIDENCE_ITEMS = 40
MODES = ("legacy", "shadow", "canary", "candidate")
KINDS = ("flag_change", "rollback", "notification", "fallbacks", "flag_store")
CHANGES = frozenset({"flag_change", "rollback"})  # events that set a route's mode

# The bucket width as shadow_route_figures turns `bucket_s` into an interval.
_WIDTH = "to_microseconds(CAST($bucket_s * 1000000 AS BIGINT))"

PRESENT = f"""
SELECT EXISTS (SELECT 1 FROM exchanges
               WHERE {RUN_FILTER} AND mode IS NOT NULL AND mode <> 'shadow') AS modes,
       (SELECT count(*) FROM events WHERE {RUN_FILTER}) AS events,
       (SELECT count(*) FROM events WHERE {RUN_FILTER} AND kind = 'rollback') AS rollbacks
"""

SPAN = f"""
SELECT min(ts) AS lo, max(ts) AS hi FROM (
    SELECT ts FROM exchanges WHERE {RUN_FILTER}
    UNION ALL
    SELECT ts FROM events WHERE {RUN_FILTER}
)
"""

AXIS = f"""
SELECT unnest(generate_series(time_bucket({_WIDTH}, CAST($lo AS TIMESTAMP)),
                              time_bucket({_WIDTH}, CAST($hi AS TIMESTAMP)),
                              {_WIDTH})) AS bucket
"""

_FIGURES = """requests, asked, served, candidate_errors, fallbacks, compared, mismatches,
       parity_compared, parity_matches, parity, error_rate, fallback_rate, mismatch_rate,
       latency_ratio, last_mode"""
_FIGURES_ENDED = _FIGURES.replace(
    "last_mode",
    "CASE WHEN event_ts IS NOT NULL AND (row_ts IS NULL OR event_ts > row_ts) THEN event_mode "
    "ELSE last_mode END AS last_mode",
)

# Routes under cutover (a mode other than the default shadow, or an event), their figures
# over the whole scope; the mode they ended in: that of their last exchange, or of a
# later change or rollback (a rolled-back route serves nothing more to show it).
ROUTES = f"""
WITH totals AS (
    SELECT route, {_FIGURES} FROM shadow_route_figures({RUN}, NULL, NULL, NULL)
),
moved AS (
    SELECT substr(endpoint, strpos(endpoint, ' ') + 1) AS route, max(ts) AS row_ts,
           bool_or(mode IS NOT NULL AND mode <> 'shadow') AS moved
    FROM exchanges WHERE {RUN_FILTER} GROUP BY 1
),
evented AS (
    SELECT route, count(*) FILTER (WHERE kind = 'rollback') AS rollbacks,
           count(*) FILTER (WHERE kind = 'flag_change') AS flag_changes,
           arg_max(split_part(mode_after, ' ', 1), ts) FILTER (WHERE mode_after IS NOT NULL)
               AS event_mode,
           max(ts) FILTER (WHERE mode_after IS NOT NULL) AS event_ts
    FROM events WHERE {RUN_FILTER} AND route IS NOT NULL
    GROUP BY route
)
SELECT route, {_FIGURES_ENDED}, coalesce(rollbacks, 0) AS rollbacks,
       coalesce(flag_changes, 0) AS flag_changes, count(*) OVER () AS routes_total
FROM totals FULL OUTER JOIN evented USING (route) LEFT JOIN moved USING (route)
WHERE coalesce(moved, false) OR evented.route IS NOT NULL
ORDER BY coalesce(rollbacks, 0) DESC, route
LIMIT $n
"""

BUCKETS = f"""
SELECT route, bucket, {_FIGURES}
FROM shadow_route_figures({RUN}, NULL, NULL, $bucket_s)
WHERE route IN (SELECT unnest(CAST($routes AS VARCHAR[])))
ORDER BY route, bucket
"""

EVENTS = f"""
SELECT event_id, run_id, ts, time_bucket({_WIDTH}, ts) AS bucket, kind, route, flag,
       mode_before, mode_after, actor, left(reason, $cap) AS reason,
       length(reason) > $cap AS reason_cut, left(evidence, $cap) AS evidence,
       length(evidence) > $cap AS evidence_cut, count(*) OVER () AS total
FROM events WHERE {RUN_FILTER}
QUALIFY row_number() OVER (
    ORDER BY CASE kind WHEN 'rollback' THEN 0 WHEN 'flag_change' THEN 1 ELSE 2 END,
             ts, event_id) <= $n
ORDER BY ts, event_id
"""


@dataclass(frozen=True)
class Figures:
    """One row of shadow_route_figures, as the macro gives it (rates are fractions)."""

    requests: int = 0
    asked: int = 0
    served: int = 0
    candidate_errors: int = 0
    fallbacks: int = 0
    compared: int = 0
    mismatches: int = 0
    parity_compared: int = 0
    parity_matches: int = 0
    parity: float | None = None
    error_rate: float | None = None
    fallback_rate: float | None = None
    mismatch_rate: float | None = None
    latency_ratio: float | None = None
    last_mode: str | None = None


_FIELDS = tuple(Figures.__dataclass_fields__)


def _figures(r: dict[str, Any]) -> Figures:
    return Figures(**{k: r[k] for k in _FIELDS if r.get(k) is not None})


@dataclass(frozen=True)
class Event:
    event_id: str
    run_id: str | None
    ts: datetime | None
    kind: str
    route: str | None
    flag: str | None
    mode_before: str | None
    mode_after: str | None
    actor: str | None
    reason: str | None
    reason_cut: bool
    evidence: list[tuple[str, str]]  # a JSON object's fields, nested keys dotted
    evidence_text: str | None  # evidence that is no JSON object, as stored (or indented)
    evidence_cut: bool

    @property
    def css(self) -> str:
        return self.kind if self.kind in KINDS else "other"


@dataclass(frozen=True, slots=True)
class Shape:
    """A rectangle (or a marker: w == 0, a circle at x, y) of a route's chart."""

    x: float
    y: float
    w: float
    h: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    y: float  # top
    h: float


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    plot_x: float
    plot_w: float
    lanes: list[Lane]
    shapes: list[Shape]
    rules: list[Shape]  # vertical lines across the lanes: flag changes and rollbacks
    ticks: list[Shape]  # time labels (title: the text)


@dataclass(frozen=True)
class Bucket:
    start: datetime
    figures: Figures
    events: list[Event]


@dataclass(frozen=True)
class RouteTimeline:
    route: str
    anchor: str
    totals: Figures
    rollbacks: int
    flag_changes: int
    buckets: list[Bucket]  # the buckets with traffic or events
    chart: Chart


@dataclass(frozen=True)
class CutoverSection:
    bucket_s: int
    first: datetime | None
    last: datetime | None
    routes: list[RouteTimeline]
    routes_total: int  # routes under cutover, beyond MAX_ROUTES too
    events: list[Event]  # at most MAX_EVENTS, by time
    events_total: int
    rollbacks: int  # rollback events in scope

    @property
    def bucket_label(self) -> str:
        s = self.bucket_s
        if s % 3600 == 0:
            return f"{s // 3600} h"
        return f"{s // 60} min" if s % 60 == 0 else f"{s} s"


def bucket_width(span_s: float) -> int:
    """Seconds per bucket: the narrowest of WIDTHS leaving at most MAX_BUCKETS buckets."""
    for width in WIDTHS:
        if span_s / width <= MAX_BUCKETS - 1:  # -1: the first bucket starts before `lo`
            return width
    days = -(-span_s // (86400 * (MAX_BUCKETS - 1)))
    return int(days) * 86400


def evidence_fields(text: str | None) -> tuple[list[tuple[str, str]], str | None]:
    """A JSON object's fields (nested objects flattened to dotted keys), else the text."""
    if text is None:
        return [], None
    try:
        value = json.loads(text)
    except ValueError:
        return [], text
    if not isinstance(value, dict):
        return [], json.dumps(value, indent=2, ensure_ascii=False)
    out: list[tuple[str, str]] = []

    def walk(prefix: str, obj: dict[str, Any]) -> None:
        for key, v in obj.items():
            name = f"{prefix}{key}"
            if isinstance(v, dict) and v:
                walk(name + ".", v)
            else:
                out.append((name, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)))

    walk("", value)
    if len(out) > EVIDENCE_ITEMS:
        out = [*out[:EVIDENCE_ITEMS], ("…", f"{len(out) - EVIDENCE_ITEMS} more fields")]
    return out, None


def _event(r: dict[str, Any]) -> Event:
    cut = bool(r["evidence_cut"])
    fields, text = ([], r["evidence"]) if cut else evidence_fields(r["evidence"])
    return Event(
        event_id=r["event_id"], run_id=r["run_id"], ts=r["ts"], kind=r["kind"],
        route=r["route"], flag=r["flag"], mode_before=r["mode_before"],
        mode_after=r["mode_after"], actor=r["actor"], reason=r["reason"],
        reason_cut=bool(r["reason_cut"]), evidence=fields, evidence_text=text,
        evidence_cut=cut,
    )  # fmt: skip


# --- the chart: one column per bucket, one lane per series ---------------------------------

SLOT = 12.0
LABEL_W = 92.0
GAP = 6.0
LANES = (("mode", 10.0), ("events", 12.0), ("parity", 28.0), ("candidate errors", 28.0),
         ("fallbacks", 20.0))  # fmt: skip
TICK_H = 14.0
TICKS = 6


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _parity_css(value: float) -> str:
    return "good" if value >= 0.995 else "warn" if value >= 0.9 else "bad"


def _clock(ts: datetime, long: bool) -> str:
    return ts.strftime("%m-%d %H:%M" if long else "%H:%M:%S")


def build_chart(axis: list[datetime], buckets: dict[datetime, Bucket], width_s: int) -> Chart:
    """Geometry of one route's timeline over `axis` (every bucket start of the scope)."""
    lanes, y = [], 0.0
    for name, h in LANES:
        lanes.append(Lane(name, y, h))
        y += h + GAP
    lane = {ln.name: ln for ln in lanes}
    shapes: list[Shape] = []
    rules: list[Shape] = []
    long = len(axis) > 1 and (axis[-1] - axis[0]).total_seconds() >= 86400
    mode: str | None = None
    for i, start in enumerate(axis):
        x = LABEL_W + i * SLOT
        when = f"{_clock(start, long)} (+{width_s} s)"
        b = buckets.get(start)
        f = b.figures if b else Figures()
        changes = [e for e in (b.events if b else []) if e.kind in CHANGES and e.mode_after]
        carried = f.last_mode is None
        mode = f.last_mode or (changes[-1].mode_after if changes else mode)
        if mode is not None:
            css = f"mode {mode if mode in MODES else 'other'}{' carried' if carried else ''}"
            title = f"{when}: {mode}" + (" (no traffic with a mode)" if carried else "")
            shapes.append(Shape(x, lane["mode"].y, SLOT - 1, lane["mode"].h, css, title))
        for kind in KINDS:
            mine = [e for e in (b.events if b else []) if e.kind == kind]
            if not mine:
                continue
            text = "; ".join(
                f"{_clock(e.ts, long) if e.ts else '-'} {kind.replace('_', ' ')}"
                + (f" {e.mode_before or '-'} → {e.mode_after}" if e.mode_after else "")
                + (f": {e.reason}" if e.reason else "")
                for e in mine
            )
            ev = lane["events"]
            shapes.append(Shape(x + SLOT / 2, ev.y + ev.h / 2, 0, 0, f"event {kind}", text))
            if kind in CHANGES:
                rules.append(Shape(x + SLOT / 2, 0, 0, y - GAP, f"rule {kind}", text))
        for name, rate, css, title in (
            ("parity", f.parity, _parity_css(f.parity or 0),
             f"parity {_pct(f.parity)} ({f.parity_matches}/{f.parity_compared} compared)"),
            ("candidate errors", f.error_rate, "errors",
             f"candidate errors {_pct(f.error_rate)} ({f.candidate_errors}/{f.asked} asked)"),
            ("fallbacks", f.fallback_rate, "fallbacks",
             f"fallbacks {_pct(f.fallback_rate)} ({f.fallbacks}/{f.asked} asked)"),
        ):  # fmt: skip
            if rate is None:
                continue
            ln = lane[name]
            h = max(1.0, ln.h * min(rate, 1.0))
            shapes.append(Shape(x, ln.y + ln.h - h, SLOT - 2, h, f"col {css}", f"{when}: {title}"))
    step = max(1, -(-len(axis) // TICKS))
    ticks = [
        Shape(LABEL_W + i * SLOT, y + TICK_H - 4, 0, 0, "tick", _clock(axis[i], long))
        for i in range(0, len(axis), step)
    ]
    plot_w = len(axis) * SLOT
    return Chart(LABEL_W + plot_w + 40, y + TICK_H, LABEL_W, plot_w, lanes, shapes, rules, ticks)


def load_cutover(con: duckdb.DuckDBPyConnection, run_id: str | None) -> CutoverSection | None:
    """The section for `run_id`'s scope (None: every run); None without cutover data."""
    params: dict[str, Any] = {"run": run_id}
    present = rows(con, PRESENT, params)[0]
    if not present["modes"] and not present["events"]:
        return None
    span = rows(con, SPAN, params)[0]
    lo, hi = span["lo"], span["hi"]
    width = bucket_width((hi - lo).total_seconds() if lo is not None else 0.0)
    params.update(bucket_s=width, lo=lo, hi=hi, n=MAX_ROUTES, cap=TEXT_CHARS)
    axis = [r["bucket"] for r in rows(con, AXIS, params)] if lo is not None else []

    found = rows(con, ROUTES, params)
    names = [r["route"] for r in found]
    per_route: dict[str, dict[datetime, Figures]] = {}
    for r in rows(con, BUCKETS, {**params, "routes": names}):
        per_route.setdefault(r["route"], {})[r["bucket"]] = _figures(r)

    event_rows = rows(con, EVENTS, {**params, "n": MAX_EVENTS})
    events = [_event(r) for r in event_rows]
    by_bucket: dict[tuple[str, datetime], list[Event]] = {}
    for r, e in zip(event_rows, events, strict=True):
        if e.route is not None and r["bucket"] is not None:
            by_bucket.setdefault((e.route, r["bucket"]), []).append(e)

    routes = []
    for i, r in enumerate(found):
        name = r["route"]
        figures = per_route.get(name, {})
        starts = sorted(set(figures) | {b for (rt, b) in by_bucket if rt == name})
        buckets = {
            s: Bucket(s, figures.get(s, Figures()), by_bucket.get((name, s), [])) for s in starts
        }
        routes.append(
            RouteTimeline(
                route=name, anchor=f"cutover-{i}", totals=_figures(r),
                rollbacks=r["rollbacks"], flag_changes=r["flag_changes"],
                buckets=list(buckets.values()), chart=build_chart(axis, buckets, width),
            )
        )  # fmt: skip
    return CutoverSection(
        bucket_s=width,
        first=lo,
        last=hi,
        routes=routes,
        routes_total=found[0]["routes_total"] if found else 0,
        events=events,
        events_total=event_rows[0]["total"] if event_rows else 0,
        rollbacks=present["rollbacks"],
    )


__all__ = [
    "MAX_BUCKETS",
    "MAX_EVENTS",
    "MAX_ROUTES",
    "Bucket",
    "Chart",
    "CutoverSection",
    "Event",
    "Figures",
    "RouteTimeline",
    "bucket_width",
    "evidence_fields",
    "load_cutover",
]
