"""Building real DuckDB stores for report tests, through StoreWriter and shadow.records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from comparators import Comparison, Difference, Kind, Payload, Verdict
from shadow.model import BackendResponse, Exchange, Request
from shadow.records import cluster_path, difference_rows, exchange_row
from shadow.store import Run, StoreWriter

JSON = (("content-type", "application/json"),)
T0 = 1_714_640_000.0
PWN = "<script>window.__pwned=1</script>"


@dataclass
class Ex:
    """One exchange to store; `status` maps a difference path to (noise|accepted, reason)."""

    endpoint: str
    verdict: Verdict = Verdict.MATCH
    diffs: tuple[Difference, ...] = ()
    status: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    noise_paths: tuple[str, ...] = ()  # primary-vs-secondary differences (evidence)
    primary_ms: float = 10.0
    candidate_ms: float = 20.0
    primary_body: bytes = b'{"ok": true}'
    candidate_body: bytes = b'{"ok": true}'
    candidate_status: int = 200
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    run_id: str = "r1"
    truncated: bool = False


def exchange(i: int, e: Ex) -> Exchange:
    method, template = e.endpoint.split(" ", 1)
    primary = BackendResponse(Payload(200, JSON, e.primary_body), e.primary_ms)
    candidate: BackendResponse | None
    if e.verdict is Verdict.SKIPPED:
        candidate = None
    elif e.verdict is Verdict.CANDIDATE_ERROR:
        candidate = BackendResponse.failed("refused", e.candidate_ms)
    else:
        candidate = BackendResponse(
            Payload(e.candidate_status, JSON, e.candidate_body), e.candidate_ms
        )
    return Exchange(
        id=f"x{i:04d}",
        request=Request(method, template.replace("{id}", str(i)), e.query, e.headers, e.body),
        primary=primary,
        candidate=candidate,
        endpoint=e.endpoint,
        started_at=T0 + i,
        skip_reason="not copied" if e.verdict is Verdict.SKIPPED else None,
    )


def build(
    path: Path,
    exchanges: list[Ex],
    runs: tuple[str, ...] = ("r1",),
    urls: tuple[str | None, str | None] = ("http://primary.test:8000", "http://cand.test:9000"),
) -> str:
    """A store at `path` holding `exchanges`; runs start an hour apart in the given order."""
    writer = StoreWriter(str(path))
    for n, run in enumerate(runs):
        writer.run_changed(Run(run, "proxy", T0 + 3600 * n, urls[0], urls[1], copies_dropped=n))
    for i, e in enumerate(exchanges):
        ex = exchange(i, e)
        cmp = Comparison(e.verdict, e.diffs, truncated=e.truncated, body_kind="json")
        noise = [
            (ex.id, e.run_id, e.endpoint, p, cluster_path(p), "value_changed")
            for p in e.noise_paths
        ]
        writer.add(
            exchange_row(ex, cmp, e.run_id),
            difference_rows(ex, cmp, e.run_id, e.status),
            noise,
        )
    writer.flush()
    return str(path)


def changed(path: str, a: object, b: object) -> Difference:
    return Difference(path, Kind.VALUE_CHANGED, a, b)


def demo_exchanges() -> list[Ex]:
    """A small but complete picture: real, noise and accepted differences, errors, markup."""
    out: list[Ex] = []
    price = changed("$.items[0].price", 10, 11)
    price2 = changed("$.items[1].price", 5, 6)
    ts = changed("$.generatedAt", "09:00", "09:01")
    etag = Difference("$header.etag", Kind.HEADER, "a", "b")
    order_body = json.dumps({"items": [{"price": 10}, {"price": 5}], "generatedAt": "09:00"})
    cand_body = json.dumps({"items": [{"price": 11}, {"price": 6}], "generatedAt": "09:01"})
    noisy: dict[str, tuple[str, str | None]] = {
        "$.generatedAt": ("noise", "differs between primary and secondary")
    }
    for i in range(6):  # GET /api/orders/{id}: 2 real, 3 noise only, 1 match -> 66.7 %
        if i < 2:
            out.append(
                Ex("GET /api/orders/{id}", Verdict.DIFFER, (price, price2, ts), noisy,
                   ("$.generatedAt",), primary_body=order_body.encode(),
                   candidate_body=cand_body.encode(),
                   headers=(("Authorization", "Bearer s3cr3t"), ("Accept", "*/*")),
                   query="page=1&token=abc"),
            )  # fmt: skip
        elif i < 5:
            out.append(
                Ex("GET /api/orders/{id}", Verdict.DIFFER, (ts, etag),
                   {**noisy, "$header.etag": ("accepted", "etags differ by design")},
                   ("$.generatedAt",), primary_ms=30.0 + i, candidate_ms=90.0 + i),
            )  # fmt: skip
        else:
            out.append(Ex("GET /api/orders/{id}"))
    xss = json.dumps({"note": PWN}).encode()
    out.append(
        Ex("GET /api/notes", Verdict.DIFFER, (changed("$.note", "plain", PWN),),
           primary_body=b'{"note": "plain"}', candidate_body=xss),
    )  # fmt: skip
    out += [Ex("GET /api/notes"), Ex("GET /api/notes"), Ex("GET /api/notes")]
    out += [Ex("GET /api/health", primary_ms=1.0 + i, candidate_ms=2.0 + i) for i in range(5)]
    out += [
        Ex("GET /api/users", Verdict.CANDIDATE_ERROR, candidate_ms=5000.0),
        Ex("GET /api/users"),
    ]
    out.append(
        Ex("POST /api/start", Verdict.SKIPPED, body=b'{"name": "it\'s $(whoami)"}',
           headers=(("Content-Type", "application/json"),)),
    )  # fmt: skip
    return out


ROUTES = ["GET /api/orders/{id}", "GET /api/notes", "GET /api/health", "GET /api/users",
          "POST /api/start", "DELETE /api/orders/{id}", "* /api/admin"]  # fmt: skip
