"""Stores for the report tests, written by the real code (see tests/store_builder.py).

A test says what each backend answered (`Call`, or `Req` when the request's query or
body matter); `build` judges every call with the real evaluator under a real Config
and stores the rows with StoreWriter. It is `store_builder.write_store` plus what a
report needs besides: the request's query and body (curl commands, redaction) and each
run's URLs and dropped copies. Nothing here sets a verdict or a difference status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shadow.config.loader import Config, parse_config
from shadow.pipeline.evaluate import evaluate
from shadow.store.rows import AcceptedRow
from shadow.store.writer import Run, StoreWriter
from tests.store_builder import ERROR, T0, Call, exchange

PWN = "<script>window.__pwned=1</script>"
URLS = ("http://primary.test:8000", "http://cand.test:9000")
BODY_CAP = 64 * 1024

__all__ = ["DEMO_CONFIG", "ERROR", "PWN", "ROUTES", "T0", "Call", "Req", "build", "demo_exchanges"]


@dataclass
class Req(Call):
    """A call whose request also has a query string and a body."""

    query: str = ""
    body: bytes = b""


def build(
    path: Path | str,
    calls: Iterable[Call],
    runs: Sequence[str | Run] | None = None,
    urls: tuple[str | None, str | None] = URLS,
    config: Config | Mapping[str, Any] | None = None,
    bodies: str = "differ",
) -> str:
    """A store at `path` holding `calls`, each judged by `evaluate`; returns the path.

    `runs`: run ids (started an hour apart in that order, against `urls`, the n-th
    with n copies dropped) or whole `Run` rows; default: the calls' run ids, sorted.
    `config` (a Config or the TOML as a dict): rules and the [[accepted]] entries each
    run starts with, stored as the pipeline stores them.
    """
    cfg = config if isinstance(config, Config) else parse_config(dict(config or {}))
    calls = list(calls)
    wanted = list(runs) if runs is not None else sorted({c.run_id for c in calls})
    writer = StoreWriter(str(path))
    for n, r in enumerate(wanted):
        run = r if isinstance(r, Run) else Run(r, "proxy", T0 + 3600 * n, *urls, copies_dropped=n)
        writer.run_changed(run)
        writer.add_accepted(
            [
                AcceptedRow(run.run_id, i + 1, a.endpoint, a.path, a.kind, a.reason)
                for i, a in enumerate(cfg.accepted)
            ]
        )
    for i, call in enumerate(calls):
        ex = exchange(i, call)
        if isinstance(call, Req):
            ex = replace(ex, request=replace(ex.request, query=call.query, body=call.body))
        result = evaluate(ex, cfg, call.run_id, BODY_CAP, bodies)
        writer.add(result.row, result.differences, result.noise)
    writer.flush()
    return str(path)


ORDERS = "GET /api/orders/{id}"
ETAG_REASON = "etags differ by design"
# The config the demo traffic was recorded with: its [[accepted]] entry is stored per run.
DEMO_CONFIG: dict[str, Any] = {
    "accepted": [{"endpoint": ORDERS, "path": "$.etag", "reason": ETAG_REASON}]
}


def _order(prices: list[int], at: str, etag: str) -> dict[str, Any]:
    return {"items": [{"price": p} for p in prices], "generatedAt": at, "etag": etag}


def demo_exchanges() -> list[Call]:
    """A small but complete picture: real, noise and accepted differences, errors, markup.

    Store it with `build(path, demo_exchanges(), config=DEMO_CONFIG)`.
    GET /api/orders/{id}, 6 exchanges: 2 with a real difference (both prices), 3 whose
    only differences are `generatedAt` (the secondary differs there too: noise) and
    `etag` (accepted by DEMO_CONFIG), 1 match -> 4 of 6 match, 66.7 %.
    """
    out: list[Call] = []
    for i in range(6):
        if i < 2:
            out.append(
                Req(ORDERS, _order([10, 5], "09:00", "a"), _order([11, 6], "09:01", "a"),
                    secondary=_order([10, 5], "09:02", "a"),
                    headers=(("Authorization", "Bearer s3cr3t"), ("Accept", "*/*")),
                    query="page=1&token=abc", primary_ms=10.0, candidate_ms=20.0)
            )  # fmt: skip
        elif i < 5:
            out.append(
                Call(ORDERS, _order([10], "09:00", "a"), _order([10], "09:01", "b"),
                     secondary=_order([10], "09:02", "a"),
                     primary_ms=30.0 + i, candidate_ms=90.0 + i)
            )  # fmt: skip
        else:
            same = _order([10], "09:00", "a")
            out.append(Call(ORDERS, same, same, secondary=same, candidate_ms=20.0))
    out.append(Call("GET /api/notes", {"note": "plain"}, {"note": PWN}))
    out += [Call("GET /api/notes", {"note": "plain"}, {"note": "plain"}) for _ in range(3)]
    out += [
        Call(
            "GET /api/health", {"ok": True}, {"ok": True}, primary_ms=1.0 + i, candidate_ms=2.0 + i
        )
        for i in range(5)
    ]
    out += [
        Call("GET /api/users", {"ok": True}, ERROR, candidate_ms=5000.0),
        Call("GET /api/users", {"ok": True}, {"ok": True}),
    ]
    out.append(
        Req("POST /api/start", {"ok": True}, None, skip_reason="POST is not copied",
            body=b'{"name": "it\'s $(whoami)"}', headers=(("Content-Type", "application/json"),))
    )  # fmt: skip
    return out


ROUTES = ["GET /api/orders/{id}", "GET /api/notes", "GET /api/health", "GET /api/users",
          "POST /api/start", "DELETE /api/orders/{id}", "* /api/admin"]  # fmt: skip
