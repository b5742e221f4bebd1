"""Comparing one finished exchange and shaping its rows: the CPU-heavy step.

It runs in a process of its own (a one-worker pool owned by the pipeline) so
that DeepDiff's milliseconds never stall the event loop that sends copies and
times the candidate's answers. `evaluate` is the pure core; `init`/`process`
are the pool's entry points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from comparators import compare
from comparators.model import Comparison, Payload, Verdict
from shadow.config import Config, load_config
from shadow.model import Exchange
from shadow.records import difference_rows, exchange_row


@dataclass(frozen=True, slots=True)
class Evaluated:
    verdict: str
    row: tuple[Any, ...]
    differences: Sequence[Sequence[Any]]


def judge(exchange: Exchange, config: Config) -> Comparison:
    """The comparison of one exchange under the rules of its endpoint."""
    primary, candidate = exchange.primary, exchange.candidate
    if primary.payload is None:
        return Comparison(Verdict.PRIMARY_ERROR)
    if exchange.skip_reason is not None or candidate is None:
        return Comparison(Verdict.SKIPPED)
    if candidate.payload is None:
        return Comparison(Verdict.CANDIDATE_ERROR)
    req = exchange.request
    rules = config.rules_for(req.method, req.path)
    a, b = primary.payload, candidate.payload
    if req.method.upper() == "HEAD":
        # HEAD answers carry no body; compare status and headers only.
        a, b = Payload(a.status, a.headers), Payload(b.status, b.headers)
    return compare(a, b, rules)


def is_cheap(exchange: Exchange) -> bool:
    """True when judging needs no structural diff: an error, a skip, or identical bytes."""
    p = exchange.primary.payload
    c = exchange.candidate.payload if exchange.candidate else None
    if p is None or c is None or exchange.skip_reason is not None:
        return True
    return p.status == c.status and p.body == c.body


def evaluate(
    exchange: Exchange, config: Config, run_id: str, body_cap: int, bodies: str = "all"
) -> Evaluated:
    """Judge one exchange and shape its rows; bodies kept as `bodies` says."""
    comparison = judge(exchange, config)
    keep = bodies == "all" or (bodies == "differ" and comparison.verdict != Verdict.MATCH)
    return Evaluated(
        comparison.verdict.value,
        exchange_row(exchange, comparison, run_id, body_cap if keep else 0),
        difference_rows(exchange, comparison, run_id),
    )


_state: dict[str, Any] = {}


def init(config_path: str | None, run_id: str, body_cap: int, bodies: str) -> None:
    """Pool initializer: load the config once per process."""
    _state.update(config=load_config(config_path), run_id=run_id, body_cap=body_cap, bodies=bodies)


def process_many(exchanges: list[Exchange]) -> list[Evaluated]:
    s = _state
    return [evaluate(e, s["config"], s["run_id"], s["body_cap"], s["bodies"]) for e in exchanges]
