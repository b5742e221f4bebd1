"""Stores for tests, written by the real code: `evaluate` judges, `StoreWriter` writes.

A test describes what each backend answered (`Call`); `write_store` runs every
call through `shadow.pipeline.evaluate.evaluate` under a real `Config` and stores
the rows with `StoreWriter`, as the live pipeline does. So stored verdicts,
statuses, noise evidence and accepted entries are exactly what the product
writes, never typed in by a test.

    calls = [Call("GET /api/a/{id}", {"id": 1, "ts": "x"}, {"id": 1, "ts": "y"},
                  secondary={"id": 1, "ts": "z"})]
    db = write_store(tmp_path / "s.duckdb", calls, config={"accepted": [...]})
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comparators.model import Payload
from shadow.config.loader import Config, parse_config
from shadow.model import BackendResponse, Exchange, Request
from shadow.pipeline.evaluate import evaluate
from shadow.store.rows import AcceptedRow
from shadow.store.writer import Run, StoreWriter

JSON = (("content-type", "application/json"),)
T0 = 1_714_640_000.0
ERROR = "error"  # a backend that did not answer (refused)

Answer = Mapping[str, Any] | list[Any] | bytes | str | None


@dataclass
class Call:
    """One request and what primary, candidate and (optionally) secondary answered.

    A body is a JSON value (dict or list), raw bytes, `ERROR` (no answer) or,
    for candidate and secondary, None (not sent: skipped / no secondary).
    """

    endpoint: str  # "GET /api/analysis/{id}"
    primary: Answer
    candidate: Answer
    secondary: Answer = None
    primary_status: int = 200
    candidate_status: int = 200
    secondary_status: int = 200
    path: str | None = None  # default: the template with {id} -> the call's index
    run_id: str = "r1"
    primary_ms: float = 10.0
    candidate_ms: float = 12.0
    headers: tuple[tuple[str, str], ...] = ()
    skip_reason: str | None = None


def _response(body: Answer, status: int, ms: float) -> BackendResponse | None:
    if body is None:
        return None
    if isinstance(body, str) and body == ERROR:
        return BackendResponse.failed("connection refused", ms)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return BackendResponse(Payload(status, JSON, raw), ms)


def exchange(i: int, call: Call) -> Exchange:
    method, template = call.endpoint.split(" ", 1)
    primary = _response(call.primary, call.primary_status, call.primary_ms)
    assert primary is not None, "the primary always answers or fails"
    return Exchange(
        id=f"{call.run_id}-x{i:05d}",
        request=Request(method, call.path or template.replace("{id}", str(i)), "", call.headers),
        primary=primary,
        candidate=_response(call.candidate, call.candidate_status, call.candidate_ms),
        endpoint=call.endpoint,
        started_at=T0 + i,
        skip_reason=call.skip_reason or ("not copied" if call.candidate is None else None),
        secondary=_response(call.secondary, call.secondary_status, call.primary_ms),
    )


def write_store(
    path: Path | str,
    calls: Iterable[Call],
    config: Config | Mapping[str, Any] | None = None,
    runs: Sequence[str] | None = None,
    bodies: str = "differ",
) -> str:
    """A store at `path` with every call judged by the real evaluator; returns the path.

    `config` (a parsed Config or the TOML as a dict) gives the rules and the
    [[accepted]] entries each run starts with, as the pipeline stores them.
    """
    cfg = config if isinstance(config, Config) else parse_config(dict(config or {}))
    calls = list(calls)
    run_ids = list(runs) if runs is not None else sorted({c.run_id for c in calls})
    writer = StoreWriter(str(path))
    for n, run_id in enumerate(run_ids):
        writer.run_changed(Run(run_id, "proxy", T0 + 3600 * n, "http://p.test", "http://c.test"))
        writer.add_accepted(
            [
                AcceptedRow(run_id, i + 1, a.endpoint, a.path, a.kind, a.reason)
                for i, a in enumerate(cfg.accepted)
            ]
        )
    for i, call in enumerate(calls):
        result = evaluate(exchange(i, call), cfg, call.run_id, 64 * 1024, bodies)
        writer.add(result.row, result.differences, result.noise)
    writer.flush()
    return str(path)


__all__ = ["ERROR", "Call", "exchange", "write_store"]


# --- cutover (schema version 5): a route's mode, who answered, fallbacks, events -----------

from dataclasses import replace  # noqa: E402  (appended section: the imports it adds)
from datetime import UTC, datetime  # noqa: E402

from shadow.store.rows import EventRow  # noqa: E402


@dataclass
class CutoverCall(Call):
    """A `Call` made while the route was under cutover (shadow.control).

    `mode` is the route's mode when the request came; `served_by` who answered the
    client ('candidate': the candidate's answer went to the user and the primary got a
    copy); `fell_back`: the candidate was asked to answer, failed, and the primary did.
    `at`: seconds after T0 when the request came (default: its index, one a second).
    """

    mode: str | None = "shadow"
    served_by: str = "primary"
    fell_back: bool = False
    at: float | None = None


def cutover_exchange(i: int, call: Call) -> Exchange:
    """`exchange(i, call)`, with a CutoverCall's mode, server, fallback and time."""
    ex = exchange(i, call)
    if not isinstance(call, CutoverCall):
        return ex
    return replace(
        ex,
        mode=call.mode,
        served_by=call.served_by,
        fell_back=call.fell_back,
        started_at=T0 + (call.at if call.at is not None else i),
    )


def event(
    kind: str,
    at: float,
    route: str | None = None,
    *,
    run_id: str = "r1",
    before: str | None = None,
    after: str | None = None,
    actor: str | None = "shadow-controller",
    reason: str | None = None,
    evidence: Mapping[str, Any] | str | None = None,
    flag: str | None = None,
) -> EventRow:
    """An `events` row at `at` seconds after T0; `evidence` a dict is stored as JSON."""
    text = json.dumps(evidence) if isinstance(evidence, Mapping) else evidence
    return EventRow(
        event_id=f"{run_id}-{kind}-{at:g}-{route or '*'}",
        run_id=run_id,
        ts=datetime.fromtimestamp(T0 + at, UTC).replace(tzinfo=None),
        kind=kind,
        route=route,
        flag=flag,
        mode_before=before,
        mode_after=after,
        actor=actor,
        reason=reason,
        evidence=text,
    )


def write_cutover_store(
    path: Path | str,
    calls: Iterable[Call],
    events: Sequence[EventRow] = (),
    config: Config | Mapping[str, Any] | None = None,
    runs: Sequence[str] | None = None,
    bodies: str = "differ",
) -> str:
    """`write_store` for cutover traffic: CutoverCalls keep their mode, server, fallback
    and time; `events` (see `event`) are written with `StoreWriter.add_events`."""
    cfg = config if isinstance(config, Config) else parse_config(dict(config or {}))
    calls = list(calls)
    found = {c.run_id for c in calls} | {e.run_id for e in events}
    run_ids = list(runs) if runs is not None else sorted(found)
    writer = StoreWriter(str(path))
    for n, run_id in enumerate(run_ids):
        writer.run_changed(Run(run_id, "proxy", T0 + 3600 * n, "http://p.test", "http://c.test"))
        writer.add_accepted(
            [
                AcceptedRow(run_id, i + 1, a.endpoint, a.path, a.kind, a.reason)
                for i, a in enumerate(cfg.accepted)
            ]
        )
    for i, call in enumerate(calls):
        result = evaluate(cutover_exchange(i, call), cfg, call.run_id, 64 * 1024, bodies)
        writer.add(result.row, result.differences, result.noise)
    writer.add_events(list(events))
    writer.flush()
    return str(path)


__all__ += ["CutoverCall", "cutover_exchange", "event", "write_cutover_store"]
