"""Comparing one finished exchange and shaping its rows: the CPU-heavy step.

It runs in a process of its own (a one-worker pool owned by the pipeline) so
that DeepDiff's milliseconds never stall the event loop that sends copies and
times the candidate's answers. `evaluate` is the core; `init`/`process_many`
are the pool's entry points.

What is stored are facts: the primary-vs-candidate differences and, with a
usable secondary, the primary-vs-secondary differences (evidence of noise).
The verdict and difference status written here are *provisional*: direct
evidence in this exchange and the config's [[accepted]] entries only, for the
live counters. Readers judge with all the evidence at read time
(`shadow/store/sql/outcomes.sql`); see docs/verdicts.md.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from comparators import cluster_path, compare
from comparators.model import Comparison, Difference, Kind, Payload, Verdict
from comparators.socketio import is_socketio
from shadow.config.loader import Config, load_config
from shadow.model import BackendResponse, Exchange
from shadow.pipeline import pickling
from shadow.pipeline.records import (
    conversation_rows,
    difference_rows,
    exchange_row,
    noise_rows,
)
from shadow.pipeline.redact import redactor_for
from shadow.store.rows import ConversationRow, DifferenceRow, ExchangeRow, NoiseRow

# Only a value that changes (or a keyed list in another order) in the JSON body can be
# explained by the legacy's own nondeterminism; mirrors `shadow_noise_kind` in SQL.
NOISE_KINDS = frozenset({Kind.VALUE_CHANGED, Kind.REORDERED})
_VALUE_PATHS = ("$.", "$[", "$sse[", "$ws")  # inside a body or a message (mirrors the SQL)
DIRECT_EVIDENCE = "the same change also happened between primary and secondary here"


@dataclass(frozen=True, slots=True)
class Evaluated:
    verdict: str
    row: ExchangeRow
    differences: Sequence[DifferenceRow]
    noise: Sequence[NoiseRow] = ()
    conversations: Sequence[ConversationRow] = ()


pickling.register(Evaluated)  # results come back from the comparison process


def noise_kind(d: Difference) -> bool:
    """Whether secondary evidence may explain `d` (a changed value in the body, or in a
    message of a conversation or event stream)."""
    return d.kind in NOISE_KINDS and (
        d.path == "$" or d.path.startswith(("$.", "$[", "$sse[", "$ws"))
    )


def changes(comparison: Comparison) -> set[tuple[str, str]]:
    """The (cluster path, kind) pairs of a comparison's differences."""
    return {(cluster_path(d.path), d.kind.value) for d in comparison.differences}


def _pair(exchange: Exchange, other: BackendResponse, config: Config) -> Comparison:
    primary = exchange.primary.payload
    assert primary is not None and other.payload is not None
    req = exchange.request
    rules = config.rules_for(req.method, req.path)
    a, b = primary, other.payload
    if req.method.upper() == "HEAD":
        # HEAD answers carry no body; compare status and headers only.
        a, b = Payload(a.status, a.headers), Payload(b.status, b.headers)
    # A Socket.IO conversation (its handshake's query has EIO=) is compared by its packets.
    socketio = a.stream == "websocket" and is_socketio(req.path, req.query)
    return compare(a, b, rules, socketio=socketio)


def judge(exchange: Exchange, config: Config) -> Comparison:
    """The raw comparison of primary and candidate under the endpoint's rules."""
    primary, candidate = exchange.primary, exchange.candidate
    if exchange.skip_reason is not None or candidate is None:
        return Comparison(Verdict.SKIPPED)  # not copied: whatever the primary did
    if primary.payload is None:
        return Comparison(Verdict.PRIMARY_ERROR)
    if candidate.payload is None:
        return Comparison(Verdict.CANDIDATE_ERROR)
    return _pair(exchange, candidate, config)


def secondary_usable(exchange: Exchange) -> bool:
    """A secondary answer is evidence only when it has the primary's status.

    An error or another status (a 503 from a flaky instance) says nothing about
    the fields; such exchanges are left out of the noise evidence.
    """
    sec, prim = exchange.secondary, exchange.primary.payload
    return (
        sec is not None
        and sec.payload is not None
        and prim is not None
        and sec.payload.status == prim.status
    )


def is_cheap(exchange: Exchange) -> bool:
    """True when judging needs no structural diff: an error, a skip, or identical bytes."""
    p = exchange.primary.payload
    c = exchange.candidate.payload if exchange.candidate else None
    if p is None or c is None or exchange.skip_reason is not None:
        return True
    if secondary_usable(exchange):
        return False  # primary-vs-secondary must be compared too, for the evidence
    return p.status == c.status and p.same_body(c)


def classify(
    exchange: Exchange, comparison: Comparison, config: Config
) -> tuple[Comparison, dict[str, tuple[str, str | None]], Comparison | None]:
    """Provisional status of each difference and the provisional verdict.

    Returns the comparison (its verdict recomputed from real differences), the
    status by path, and the primary-vs-secondary comparison (None without a
    usable secondary).
    """
    status: dict[str, tuple[str, str | None]] = {}
    if comparison.verdict not in (Verdict.MATCH, Verdict.DIFFER):
        return comparison, status, None
    noisy: Comparison | None = None
    if secondary_usable(exchange):
        assert exchange.secondary is not None
        noisy = _pair(exchange, exchange.secondary, config)
        direct = changes(noisy)
        for d in comparison.differences:
            if noise_kind(d) and (cluster_path(d.path), d.kind.value) in direct:
                status[d.path] = ("noise", DIRECT_EVIDENCE)
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
) -> Evaluated:
    """Judge one exchange (provisionally) and shape its rows; bodies kept as `bodies` says."""
    comparison, status, noisy = classify(exchange, judge(exchange, config), config)
    # "differ": keep the bodies of every exchange a reader may judge `differ`: a provisional
    # differ, or one whose only differences were accepted (a reader's config may not accept
    # them). Differences that are noise by direct evidence keep none (the bodies of a
    # volatile field would be kept for every exchange).
    keep = bodies == "all" or (
        bodies == "differ"
        and (
            comparison.verdict != Verdict.MATCH
            or any(status.get(d.path, ("real",))[0] != "noise" for d in comparison.differences)
        )
    )
    redactor = redactor_for(config.redact)
    return Evaluated(
        comparison.verdict.value,
        exchange_row(exchange, comparison, run_id, body_cap if keep else 0, redactor),
        difference_rows(
            exchange,
            comparison,
            run_id,
            status,
            changes(noisy) if noisy is not None else None,
            redactor,
        ),
        noise_rows(exchange, noisy, run_id),
        conversation_rows(exchange, run_id),
    )


_state: dict[str, Any] = {}


def init(
    config_path: str | None, run_id: str, body_cap: int, bodies: str, niceness: int = 0
) -> None:
    """Pool initializer: load the config once per process; exit when the parent dies.

    `niceness`: this process's nice value at least (it may inherit some already).
    """
    with contextlib.suppress(OSError):
        os.nice(max(0, niceness - os.nice(0)))
    _state.update(config=load_config(config_path), run_id=run_id, body_cap=body_cap, bodies=bodies)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    # A worker killed with -9 cannot stop its pool: without this the comparison
    # process would wait on its queue for ever.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def process_many(exchanges: list[Exchange]) -> list[Evaluated]:
    s = _state
    return [evaluate(e, s["config"], s["run_id"], s["body_cap"], s["bodies"]) for e in exchanges]
