"""A deterministic, realistic traffic sample for the example backends.

`demo_requests(n, seed)` returns `n` requests, GET heavy, that hit every route of
examples/legacy/app.py and examples/candidate/app.py, including the error paths
(unknown and malformed ids, an invalid POST body), some asking for gzip, and some
carrying an `Authorization` bearer token and a session cookie so that secret
redaction has something to redact. The same (n, seed) always gives the same list.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from examples import store

SECRET_TOKEN = "demo-secret-token"
SECRET_COOKIE = "demo-secret"
SINCE_VALUES = (
    "2024-05-01T12:00:00.000Z",
    "2024-05-01T18:00:00.000Z",
    "2024-05-02T00:00:00.000Z",
    "2024-05-02T06:30:00.000Z",
)
_DATASETS = ("ds_0007", "ds_0042", "ds_0113", "ds_0256")
_NAMES = ("Checkout funnel Q3 2024", "Pricing page Q3 2024", "Search ranking Q4 2024")
_METRIC_SETS = (
    ["conversionRate"],
    ["conversionRate", "avgOrderValue"],
    ["avgOrderValue", "bounceRate", "retention7d"],
)


@dataclass(frozen=True)
class DemoRequest:
    """One request to send: method, path with query string, headers, body (None for GET)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _get(path: str) -> tuple[str, str, bytes | None]:
    return "GET", path, None


def _analysis(rng: random.Random) -> tuple[str, str, bytes | None]:
    roll = rng.random()
    if roll < 0.08:
        return _get(f"/api/analysis/{rng.choice((404, 999, 1234, 0))}")  # unknown id: 404
    if roll < 0.12:
        return _get(f"/api/analysis/{rng.choice(('abc', 'latest'))}")  # malformed id
    return _get(f"/api/analysis/{rng.randint(1, store.ANALYSIS_COUNT)}")


def _insight(rng: random.Random) -> tuple[str, str, bytes | None]:
    if rng.random() < 0.12:
        return _get(f"/api/insights/{rng.choice((13, 42, 'x'))}")  # unknown / malformed
    return _get(f"/api/insights/{rng.randint(1, store.INSIGHT_COUNT)}")


def _updates(rng: random.Random) -> tuple[str, str, bytes | None]:
    if rng.random() < 0.2:
        return _get("/api/process-updates")
    return _get("/api/process-updates?" + urlencode({"since": rng.choice(SINCE_VALUES)}))


def _start(rng: random.Random) -> tuple[str, str, bytes | None]:
    if rng.random() < 0.1:
        return "POST", "/api/start-analysis", _json({"datasetId": rng.choice(_DATASETS)})
    body: dict[str, Any] = {"name": rng.choice(_NAMES), "datasetId": rng.choice(_DATASETS)}
    if rng.random() < 0.7:
        body["metrics"] = rng.choice(_METRIC_SETS)
    if rng.random() < 0.5:
        body["priority"] = rng.choice(("normal", "high"))
    return "POST", "/api/start-analysis", _json(body)


def _results(rng: random.Random) -> tuple[str, str, bytes | None]:
    results = [
        {"metric": rng.choice(_METRIC_SETS[2]), "value": rng.randint(1, 9999) / 10_000}
        for _ in range(rng.randint(1, 6))
    ]
    analysis_id = rng.randint(1, store.ANALYSIS_COUNT)
    if rng.random() < 0.08:
        analysis_id = 777  # unknown: 404 in both
    return "POST", "/api/process-results", _json({"analysisId": analysis_id, "results": results})


_Maker = Callable[[random.Random], tuple[str, str, bytes | None]]
_ROUTES: tuple[tuple[_Maker, int], ...] = (
    (lambda rng: _get("/api/health"), 8),
    (_analysis, 30),
    (lambda rng: _get("/api/insights"), 10),
    (_insight, 12),
    (lambda rng: _get("/api/reports"), 8),
    (_updates, 14),
    (_start, 9),
    (_results, 9),
)

# Requests that are always in a sample of at least this many, so that every route,
# every error path, gzip and the secrets appear even in a short run.
_MUST_HAVE: tuple[tuple[tuple[str, str, bytes | None], bool, bool], ...] = (
    # ((method, path, body), gzip, secrets)
    (_get("/api/health"), False, False),
    (_get("/api/analysis/6"), False, True),  # avgOrderValue rounding differs for id 6
    (_get("/api/analysis/9"), False, False),  # queued: completedAt absent vs null
    (_get("/api/analysis/999"), False, False),
    (_get("/api/analysis/abc"), False, False),
    (_get("/api/insights"), True, False),
    (_get("/api/insights/3"), False, True),
    (_get("/api/insights/42"), False, False),
    (_get("/api/reports"), True, True),
    (_get("/api/process-updates?" + urlencode({"since": SINCE_VALUES[1]})), False, False),
    (
        ("POST", "/api/start-analysis", _json({"name": _NAMES[0], "datasetId": _DATASETS[1]})),
        False,
        True,
    ),
    (
        (
            "POST",
            "/api/process-results",
            _json({"analysisId": 3, "results": [{"metric": "bounceRate", "value": 0.4321}]}),
        ),
        False,
        False,
    ),
)


def _headers(method: str, gzip: bool, secrets: bool) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "shadow-demo/1.0"}
    if method == "POST":
        headers["Content-Type"] = "application/json"
    if gzip:
        headers["Accept-Encoding"] = "gzip"
    if secrets:
        headers["Authorization"] = f"Bearer {SECRET_TOKEN}"
        headers["Cookie"] = f"session={SECRET_COOKIE}"
    return headers


def demo_requests(n: int, seed: int = 7) -> list[DemoRequest]:
    """`n` requests of mixed demo traffic, deterministic given `seed`."""
    if n <= 0:
        return []
    rng = random.Random(seed)
    picked: list[tuple[tuple[str, str, bytes | None], bool, bool]] = []
    if n >= len(_MUST_HAVE):
        picked.extend(_MUST_HAVE)
    makers = [maker for maker, _ in _ROUTES]
    weights = [weight for _, weight in _ROUTES]
    while len(picked) < n:
        maker = rng.choices(makers, weights)[0]
        picked.append((maker(rng), rng.random() < 0.3, rng.random() < 0.25))
    rng.shuffle(picked)
    return [
        DemoRequest(method=method, path=path, headers=_headers(method, gzip, secrets), body=body)
        for (method, path, body), gzip, secrets in picked
    ]
