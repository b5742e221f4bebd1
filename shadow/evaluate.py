"""Comparing one finished exchange and shaping its rows: the CPU-heavy step.

It runs in a process of its own (a one-worker pool owned by the pipeline) so
that DeepDiff's milliseconds never stall the event loop that sends copies and
times the candidate's answers. `evaluate` is the core; `init`/`process_many`
are the pool's entry points. Differences are classified here: 'noise' (see
shadow.noise), 'accepted' (the config's [[accepted]] entries) or 'real'; only
real ones make a verdict "differ".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from comparators import compare
from comparators.model import Comparison, Payload, Verdict
from shadow.config import Config, load_config
from shadow.model import BackendResponse, Exchange
from shadow.noise import NoiseModel
from shadow.records import cluster_path, difference_rows, exchange_row


@dataclass(frozen=True, slots=True)
class Evaluated:
    verdict: str
    row: tuple[Any, ...]
    differences: Sequence[Sequence[Any]]
    noise: Sequence[Sequence[Any]] = ()


def _pair(exchange: Exchange, other: BackendResponse, config: Config) -> Comparison:
    primary = exchange.primary.payload
    assert primary is not None and other.payload is not None
    req = exchange.request
    rules = config.rules_for(req.method, req.path)
    a, b = primary, other.payload
    if req.method.upper() == "HEAD":
        # HEAD answers carry no body; compare status and headers only.
        a, b = Payload(a.status, a.headers), Payload(b.status, b.headers)
    return compare(a, b, rules)


def judge(exchange: Exchange, config: Config) -> Comparison:
    """The raw comparison of primary and candidate under the endpoint's rules."""
    primary, candidate = exchange.primary, exchange.candidate
    if primary.payload is None:
        return Comparison(Verdict.PRIMARY_ERROR)
    if exchange.skip_reason is not None or candidate is None:
        return Comparison(Verdict.SKIPPED)
    if candidate.payload is None:
        return Comparison(Verdict.CANDIDATE_ERROR)
    return _pair(exchange, candidate, config)


def is_cheap(exchange: Exchange) -> bool:
    """True when judging needs no structural diff: an error, a skip, or identical bytes."""
    p = exchange.primary.payload
    c = exchange.candidate.payload if exchange.candidate else None
    if p is None or c is None or exchange.skip_reason is not None:
        return True
    if exchange.secondary is not None:
        return False  # every exchange with a secondary feeds the one noise model
    return p.status == c.status and p.body == c.body


def classify(
    exchange: Exchange, comparison: Comparison, config: Config, noise: NoiseModel
) -> tuple[Comparison, dict[str, tuple[str, str | None]], Comparison | None]:
    """Mark noise and accepted differences; recompute the verdict from real ones."""
    status: dict[str, tuple[str, str | None]] = {}
    noisy: Comparison | None = None
    sec = exchange.secondary
    if comparison.verdict not in (Verdict.MATCH, Verdict.DIFFER):
        return comparison, status, None
    if sec is not None and sec.payload is not None:
        noisy = _pair(exchange, sec, config)
        direct = {cluster_path(d.path) for d in noisy.differences}
        mine = {cluster_path(d.path) for d in comparison.differences}
        for d in comparison.differences:
            if cluster_path(d.path) in direct:
                status[d.path] = ("noise", "also differs between primary and secondary here")
        noise.observe(exchange.endpoint, direct, mine)
    if sec is not None or noise.seen.get(exchange.endpoint):
        for d in comparison.differences:
            if d.path not in status:
                evidence = noise.verdict(exchange.endpoint, cluster_path(d.path))
                if evidence is not None:
                    status[d.path] = ("noise", evidence)
    for d in comparison.differences:
        if d.path not in status:
            reason = config.accepted_reason(exchange.endpoint, d.path, d.kind.value)
            if reason is not None:
                status[d.path] = ("accepted", reason)
    if (
        comparison.verdict == Verdict.DIFFER
        and not comparison.truncated  # unseen differences may be real ones
        and all(d.path in status for d in comparison.differences)
    ):
        comparison = replace(comparison, verdict=Verdict.MATCH)
    return comparison, status, noisy


def evaluate(
    exchange: Exchange,
    config: Config,
    run_id: str,
    body_cap: int,
    bodies: str = "all",
    noise: NoiseModel | None = None,
) -> Evaluated:
    """Judge one exchange and shape its rows; bodies kept as `bodies` says."""
    comparison, status, noisy = classify(
        exchange, judge(exchange, config), config, noise if noise is not None else NoiseModel()
    )
    keep = bodies == "all" or (bodies == "differ" and comparison.verdict != Verdict.MATCH)
    noise_rows = [
        (exchange.id, run_id, exchange.endpoint, d.path, cluster_path(d.path), d.kind.value)
        for d in (noisy.differences if noisy else ())
    ]
    return Evaluated(
        comparison.verdict.value,
        exchange_row(exchange, comparison, run_id, body_cap if keep else 0),
        difference_rows(exchange, comparison, run_id, status),
        noise_rows,
    )


_state: dict[str, Any] = {}


def init(config_path: str | None, run_id: str, body_cap: int, bodies: str) -> None:
    """Pool initializer: load the config once per process."""
    _state.update(
        config=load_config(config_path),
        run_id=run_id,
        body_cap=body_cap,
        bodies=bodies,
        noise=NoiseModel(),
    )


def process_many(exchanges: list[Exchange]) -> list[Evaluated]:
    s = _state
    return [
        evaluate(e, s["config"], s["run_id"], s["body_cap"], s["bodies"], s["noise"])
        for e in exchanges
    ]
