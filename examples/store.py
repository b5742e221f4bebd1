"""The seeded "database" both example backends read.

In the story these examples tell, the legacy Next.js routes and the new FastAPI
service read the same Postgres database; this module stands in for it. Every row
is derived from its id with a seeded `random.Random`, so each process (the
legacy, a second legacy instance, the candidate) sees exactly the same data and
nothing depends on the clock or on process state.

Values are stored *raw*, as a database would hold them: aware UTC datetimes
(some with milliseconds), unrounded floats. How each backend turns them into
JSON is where the deliberate differences live (see examples/README.md).

Float columns are generated so that they are never integral: JavaScript prints
`1.0` as `1` but pydantic prints `1.0`, and agreeing endpoints must agree.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

ANALYSIS_COUNT = 40  # analyses 1..40 exist; any other id is "not found"
INSIGHT_COUNT = 12  # insights 1..12
REPORT_COUNT = 50  # reports 1..50 (the large list)
UPDATE_COUNT = 30  # the process-updates timeline
UPDATES_PAGE = 10  # at most this many updates per /api/process-updates answer


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    share: float
    lift: float


@dataclass(frozen=True, slots=True)
class Metrics:
    conversion_rate: float  # 4 decimals already
    avg_order_value: float  # raw average, an odd multiple of 1/8 (e.g. 57.125): needs rounding
    sample_size: int
    confidence: float


@dataclass(frozen=True, slots=True)
class Analysis:
    id: int
    name: str
    status: str  # "completed" | "running" | "queued" | "failed"
    dataset_id: str
    owner: Owner
    created_at: datetime  # whole seconds
    completed_at: datetime | None  # with milliseconds; None unless completed/failed
    progress: int  # percent
    metrics: Metrics
    tags: tuple[str, ...]
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Evidence:
    metric: str
    value: float
    baseline: float


@dataclass(frozen=True, slots=True)
class Insight:
    id: int
    analysis_id: int
    title: str
    severity: str  # "info" | "warning" | "critical"
    confidence_score: float
    created_at: datetime
    summary: str
    recommendation: str
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    analysis_id: int
    title: str
    format: str
    size_bytes: int
    author: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Update:
    analysis_id: int
    status: str
    progress: int
    message: str
    at: datetime


OWNERS: tuple[Owner, ...] = (
    Owner("u_1", "Ada Lovelace", "ada@example.com"),
    Owner("u_2", "Grace Hopper", "grace@example.com"),
    Owner("u_3", "Alan Turing", "alan@example.com"),
    Owner("u_4", "Katherine Johnson", "katherine@example.com"),
    Owner("u_5", "Edsger Dijkstra", "edsger@example.com"),
    Owner("u_6", "Barbara Liskov", "barbara@example.com"),
)
_SUBJECTS = (
    "Checkout funnel",
    "Pricing page",
    "Onboarding flow",
    "Search ranking",
    "Cart recovery email",
    "Mobile paywall",
    "Referral banner",
    "Shipping estimate",
)
_QUARTERS = ("Q1", "Q2", "Q3", "Q4")
_TAGS = ("funnel", "pricing", "mobile", "web", "email", "experiment", "retention", "growth")
_SEGMENTS = ("mobile", "desktop", "tablet", "new users", "returning", "paid search")
_STATUSES = ("completed", "completed", "completed", "running", "queued", "failed")
_SEVERITIES = ("info", "warning", "critical")
_METRIC_NAMES = ("conversionRate", "avgOrderValue", "bounceRate", "retention7d")
_FORMATS = ("pdf", "csv", "xlsx")
_UPDATE_MESSAGES = {
    "queued": "Waiting for a worker",
    "running": "Crunching events",
    "completed": "Analysis finished",
    "failed": "Worker ran out of memory",
}


def _rng(kind: str, key: int) -> random.Random:
    # str seeds are hashed with SHA-512 by `random`, so this is stable across processes
    return random.Random(f"{kind}:{key}")


def _nonzero(rng: random.Random, low: int, high: int, scale: int) -> float:
    """A float low/scale..high/scale with `log10(scale)` decimals, never 0."""
    value = 0
    while value == 0:
        value = rng.randint(low, high)
    return value / scale


def analysis(analysis_id: int) -> Analysis | None:
    """The analysis row with this id, or None when there is no such row."""
    if not 1 <= analysis_id <= ANALYSIS_COUNT:
        return None
    rng = _rng("analysis", analysis_id)
    status = rng.choice(_STATUSES)
    created_at = EPOCH + timedelta(hours=7 * analysis_id, minutes=rng.randint(0, 59))
    completed_at = None
    if status in ("completed", "failed"):
        completed_at = created_at + timedelta(
            seconds=rng.randint(60, 7200), milliseconds=rng.randint(1, 999)
        )
    progress = {"completed": 100, "queued": 0}.get(status, rng.randint(5, 95))
    metrics = Metrics(
        conversion_rate=rng.randint(150, 950) / 10_000,
        avg_order_value=(2 * rng.randint(200, 1200) + 1) / 8,
        sample_size=rng.randint(800, 60_000),
        confidence=rng.choice((0.9, 0.95, 0.99)),
    )
    segments = tuple(
        Segment(name=name, share=rng.randint(5, 60) / 100, lift=_nonzero(rng, -50, 80, 1000))
        for name in rng.sample(_SEGMENTS, 3)
    )
    return Analysis(
        id=analysis_id,
        name=f"{rng.choice(_SUBJECTS)} {rng.choice(_QUARTERS)} 2024",
        status=status,
        dataset_id=f"ds_{rng.randint(1, 400):04d}",
        owner=rng.choice(OWNERS),
        created_at=created_at,
        completed_at=completed_at,
        progress=progress,
        metrics=metrics,
        tags=tuple(rng.sample(_TAGS, rng.randint(1, 3))),
        segments=segments,
    )


def insight(insight_id: int) -> Insight | None:
    """The insight row with this id, or None."""
    if not 1 <= insight_id <= INSIGHT_COUNT:
        return None
    rng = _rng("insight", insight_id)
    analysis_id = rng.randint(1, ANALYSIS_COUNT)
    subject = rng.choice(_SUBJECTS)
    metric = rng.choice(_METRIC_NAMES)
    severity = rng.choice(_SEVERITIES)
    evidence = tuple(
        Evidence(
            metric=name,
            value=rng.randint(1, 999) / 1000,
            baseline=rng.randint(1, 999) / 1000,
        )
        for name in rng.sample(_METRIC_NAMES, 2)
    )
    return Insight(
        id=insight_id,
        analysis_id=analysis_id,
        title=f"{subject}: {metric} moved",
        severity=severity,
        confidence_score=rng.randint(51, 99) / 100,
        created_at=EPOCH + timedelta(days=insight_id, hours=rng.randint(0, 23)),
        summary=(
            f"{metric} for {subject.lower()} shifted beyond its usual band "
            f"over the last {rng.randint(3, 14)} days."
        ),
        recommendation=rng.choice(
            (
                "Roll the change back for mobile users first.",
                "Keep the experiment running for another week.",
                "Ship to everyone; the effect is stable.",
                "Check the tracking plan before acting on this.",
            )
        ),
        evidence=evidence,
    )


def insights() -> list[Insight]:
    """All insights, by id."""
    return [row for i in range(1, INSIGHT_COUNT + 1) if (row := insight(i)) is not None]


def reports() -> list[Report]:
    """All report rows in primary-key (id) order, as `SELECT ... ` without ORDER BY gives."""
    rows: list[Report] = []
    for report_id in range(1, REPORT_COUNT + 1):
        rng = _rng("report", report_id)
        analysis_id = rng.randint(1, ANALYSIS_COUNT)
        fmt = rng.choice(_FORMATS)
        rows.append(
            Report(
                id=report_id,
                analysis_id=analysis_id,
                title=f"{rng.choice(_SUBJECTS)} report #{report_id}",
                format=fmt,
                size_bytes=rng.randint(2_000, 900_000),
                author=rng.choice(OWNERS).name,
                # not monotonic in id, and unique (the id is part of the offset)
                created_at=EPOCH + timedelta(minutes=rng.randint(0, 400) * 60 + report_id),
            )
        )
    return rows


def updates() -> list[Update]:
    """The status-update timeline, oldest first (strictly increasing `at`)."""
    rows: list[Update] = []
    at = EPOCH
    for index in range(UPDATE_COUNT):
        rng = _rng("update", index)
        at = at + timedelta(minutes=rng.randint(5, 90), seconds=rng.randint(0, 59))
        status = rng.choice(("queued", "running", "running", "completed", "failed"))
        progress = {"completed": 100, "queued": 0}.get(status, rng.randint(5, 95))
        rows.append(
            Update(
                analysis_id=rng.randint(1, ANALYSIS_COUNT),
                status=status,
                progress=progress,
                message=_UPDATE_MESSAGES[status],
                at=at,
            )
        )
    return rows


def updates_since(since: datetime | None) -> tuple[list[Update], bool]:
    """Up to UPDATES_PAGE updates strictly after `since` (all when None), and whether more exist."""
    after = [row for row in updates() if since is None or row.at > since]
    return after[:UPDATES_PAGE], len(after) > UPDATES_PAGE


def new_analysis_id(name: str, dataset_id: str) -> int:
    """The id a newly started analysis gets: derived from its name and dataset (1000..9999)."""
    digest = hashlib.sha256(f"{name}\x00{dataset_id}".encode()).hexdigest()
    return 1000 + int(digest[:12], 16) % 9000


def new_analysis_created_at(analysis_id: int) -> datetime:
    """Creation time of a started analysis: deterministic, derived from its id."""
    return EPOCH + timedelta(days=30, seconds=(analysis_id * 7919) % 86_400)


def estimated_duration_sec(metric_count: int, priority: str) -> int:
    return 60 * (metric_count + 1) * (1 if priority == "high" else 2)


def processed_at(analysis_row: Analysis) -> datetime:
    """When a results batch for this analysis counts as processed (deterministic)."""
    return analysis_row.created_at + timedelta(hours=2)


COST_PER_RESULT = "0.35"  # dollars, per result row processed
