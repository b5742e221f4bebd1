"""The gate's verdict does not depend on the order requests arrive in.

Three real backends on 127.0.0.1 behind the real `shadow proxy --secondary`:
a legacy app as primary, the same legacy app as secondary (a second instance that
answers 503 once per flaky route), and a candidate app. The same multiset of
requests goes through the proxy in several orders, each run into its own store;
`shadow check`, `shadow report` and `shadow export` (real subprocesses) must say the
same about every endpoint whatever the order:

- `GET /api/list`: records without ids in random order (legacy and candidate
  alike): noise by direct evidence from the first request, 100 % parity;
- `GET /api/item/{id}`: the candidate drops the legacy's volatile `requestId`: a
  real difference (removed) that noise must not hide, 0 % parity;
- `GET /api/ok/{id}`: identical answers, the secondary answers 503 once: match;
- `GET /api/stamped/{id}`: both carry a fresh `requestId`, the secondary answers 503
  once: the exchange without usable evidence is still noise (statistical), match;
- `GET /api/broken/{id}`: the candidate answers 500 every time, the secondary 503
  once: the status difference is real, never noise, 0 % parity;
- `GET /api/catalog`: records *with* ids in random order at the top level of the
  body: one `reordered` difference at `$`, which is noise like any keyed list.
"""

from __future__ import annotations

import html
import json
import random
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import ROOT, run_proxy, serve, shadow_cmd
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

N = 25  # requests per endpoint and order (>= --min-samples 20)
NAMES = [f"rec-{c}" for c in "abcdefghij"]  # 10 records: another order by chance 1 in 10!
DIRECT = "the same change also happened between primary and secondary here"

LIST = "GET /api/list"
CATALOG = "GET /api/catalog"
ITEM = "GET /api/item/{id}"
OK = "GET /api/ok/{id}"
STAMPED = "GET /api/stamped/{id}"
BROKEN = "GET /api/broken/{id}"
FLAKY = (OK, STAMPED, BROKEN)  # the secondary answers 503 on its first call to these


# --- the backends -------------------------------------------------------------------------


def _shuffled(rng: random.Random, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = list(records)
    rng.shuffle(out)
    return out


def make_app(role: str) -> Starlette:
    """The legacy app (role 'primary' or 'secondary') or the candidate app ('candidate')."""
    rng = random.Random()  # each instance orders on its own
    failed: set[str] = set()  # flaky routes the secondary already answered 503 on
    plain = [{"name": n, "rank": i} for i, n in enumerate(NAMES)]
    keyed = [{"id": i + 1, "name": n} for i, n in enumerate(NAMES)]

    def flaky(route: str) -> JSONResponse | None:
        if role == "secondary" and route not in failed:
            failed.add(route)
            return JSONResponse({"error": "warming up"}, status_code=503)
        return None

    def ident(request: Request) -> int:
        return int(request.path_params["id"])

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse(_shuffled(rng, plain))

    async def catalog(request: Request) -> JSONResponse:
        return JSONResponse(_shuffled(rng, keyed))

    async def item(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"id": ident(request), "name": f"item {ident(request)}"}
        if role != "candidate":
            body["requestId"] = str(uuid.uuid4())  # the candidate drops it
        return JSONResponse(body)

    async def ok(request: Request) -> JSONResponse:
        return flaky("ok") or JSONResponse({"id": ident(request), "state": "ok"})

    async def stamped(request: Request) -> JSONResponse:
        body = {"id": ident(request), "state": "ok", "requestId": str(uuid.uuid4())}
        return flaky("stamped") or JSONResponse(body)

    async def broken(request: Request) -> JSONResponse:
        body = {"id": ident(request), "state": "ok", "requestId": str(uuid.uuid4())}
        status = 500 if role == "candidate" else 200
        return flaky("broken") or JSONResponse(body, status_code=status)

    return Starlette(
        routes=[
            Route("/api/list", listing),
            Route("/api/catalog", catalog),
            Route("/api/item/{id:int}", item),
            Route("/api/ok/{id:int}", ok),
            Route("/api/stamped/{id:int}", stamped),
            Route("/api/broken/{id:int}", broken),
        ]
    )


# --- the request orders -------------------------------------------------------------------

GROUPS = {
    LIST: ["/api/list"] * N,
    CATALOG: ["/api/catalog"] * N,
    ITEM: [f"/api/item/{i}" for i in range(1, N + 1)],
    OK: [f"/api/ok/{i}" for i in range(1, N + 1)],
    STAMPED: [f"/api/stamped/{i}" for i in range(1, N + 1)],
    BROKEN: [f"/api/broken/{i}" for i in range(1, N + 1)],
}


def grouped() -> list[str]:
    """Endpoint by endpoint, the random-order list first."""
    return [p for group in GROUPS.values() for p in group]


def interleaved_reversed() -> list[str]:
    """Round robin over the endpoints, in reverse, ids counting down."""
    groups = [list(reversed(g)) for g in reversed(GROUPS.values())]
    return [g[i] for i in range(N) for g in groups]


ORDERS: dict[str, Callable[[], list[str]]] = {
    "grouped": grouped,
    "interleaved-reversed": interleaved_reversed,
}  # two orders: each costs ~15 s (proxy start, 150 requests, drain, three readers)


# --- running one order and reading what the tools say ----------------------------------------


@dataclass
class Outcome:
    order: list[str]
    db: Path
    check: subprocess.CompletedProcess[str]
    table: dict[str, dict[str, str]]  # endpoint -> column -> cell of the check table
    junit: ET.Element
    report: subprocess.CompletedProcess[str]
    report_html: str
    endpoints: dict[str, dict[str, Any]]  # endpoint_outcomes.parquet, by endpoint
    differences: list[dict[str, Any]]  # difference_outcomes.parquet
    exchanges: list[dict[str, Any]]  # exchange_outcomes.parquet


def _shadow_all(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run `shadow` subcommands side by side; each finishes within 60 s or is killed."""
    procs = [
        subprocess.Popen(
            shadow_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in commands
    ]
    done = []
    for args, proc in zip(commands, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def _parquet(path: Path) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect()
    try:
        cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


CHECK_COLUMNS = ("samples", "parity", "threshold", "cand.err", "p95 ratio", "result", "why")


def parse_check_table(stdout: str) -> dict[str, dict[str, str]]:
    lines = stdout.splitlines()
    assert lines and lines[0].split()[:2] == ["endpoint", "samples"], stdout
    out = {}
    for line in lines[1:]:
        if line.startswith("shadow check "):
            break
        cells = re.split(r"\s{2,}", line.strip())
        endpoint, rest = cells[0], cells[1:]
        out[endpoint] = dict(zip(CHECK_COLUMNS, [*rest, ""][: len(CHECK_COLUMNS)], strict=True))
    return out


def report_parity(page: str) -> dict[str, float | None]:
    """Per endpoint, the parity of the report's endpoint table (its data-v: %.6g)."""
    out: dict[str, float | None] = {}
    for endpoint, row in re.findall(r'<tr data-endpoint="([^"]+)"[^>]*>(.*?)</tr>', page, re.S):
        found = re.search(r'data-col="parity" data-v="([^"]+)"', row)
        if found is None:
            continue  # the baseline table has no parity column of this kind
        value = float(found.group(1))
        out[html.unescape(endpoint)] = None if value < 0 else value
    return out


def run_order(name: str, order: list[str], tmp: Path) -> Outcome:
    db = tmp / f"{name}.duckdb"
    with ExitStack() as stack:
        primary = stack.enter_context(serve(make_app("primary")))
        secondary = stack.enter_context(serve(make_app("secondary")))
        candidate = stack.enter_context(serve(make_app("candidate")))
        extra = ("--secondary", secondary.url, "--run-id", name)
        proxy = stack.enter_context(run_proxy(primary.url, candidate.url, db, tmp, *extra))
        with httpx.Client(timeout=10) as client:
            for path in order:  # bounded: len(order) requests, 10 s each at most
                r = client.get(proxy.url + path)
                assert r.status_code == 200, (path, r.status_code, r.text)  # the primary's
        proxy.stop()  # SIGINT: the worker writes everything queued before it exits
        assert proxy.process.returncode == 0, proxy.output
    stored = rows(db, "SELECT count(*) FROM exchanges WHERE run_id = ?", [name])
    assert stored == [(len(order),)], proxy.output

    # the three readers at once (each opens the closed store read-only)
    junit_path, page_path, export_dir = tmp / f"{name}.xml", tmp / f"{name}.html", tmp / name
    check, report, export = _shadow_all(
        ["check", "--db", str(db), "--min-parity", "99", "--min-samples", "20",
         "--junit", str(junit_path)],
        ["report", "--db", str(db), "-o", str(page_path)],
        ["export", "--db", str(db), "-o", str(export_dir)],
    )  # fmt: skip
    assert "Traceback" not in check.stdout + check.stderr, check.stderr
    assert report.returncode == 0, report.stderr
    assert export.returncode == 0, export.stderr
    return Outcome(
        order=order,
        db=db,
        check=check,
        table=parse_check_table(check.stdout),
        junit=ET.parse(junit_path).getroot(),
        report=report,
        report_html=page_path.read_text(encoding="utf-8"),
        endpoints={
            str(r["endpoint"]): r for r in _parquet(export_dir / "endpoint_outcomes.parquet")
        },
        differences=_parquet(export_dir / "difference_outcomes.parquet"),
        exchanges=_parquet(export_dir / "exchange_outcomes.parquet"),
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    tmp = tmp_path_factory.mktemp("verdict-order")
    yield {name: run_order(name, make(), tmp) for name, make in ORDERS.items()}


# --- the tests ----------------------------------------------------------------------------


def test_orders_are_the_same_multiset_in_another_order() -> None:
    orders = [make() for make in ORDERS.values()]
    assert all(sorted(o) == sorted(orders[0]) for o in orders)
    assert len({tuple(o) for o in orders}) == len(orders)
    assert orders[0][0] == "/api/list"  # grouped: the random-order list comes first


def _judged(table: dict[str, dict[str, str]]) -> dict[str, tuple[str, ...]]:
    """The check table without the p95 ratio (latency is not a verdict on the order)."""
    return {
        e: tuple(cells[c] for c in CHECK_COLUMNS if c != "p95 ratio") for e, cells in table.items()
    }


FIGURES = ("requests", "compared", "matched", "differed", "tolerated", "candidate_errors",
           "secondary_unusable", "status_mismatches")  # fmt: skip


def _figures(o: Outcome) -> dict[str, tuple[Any, ...]]:
    return {e: tuple(row[f] for f in FIGURES) for e, row in o.endpoints.items()}


def test_gate_says_the_same_whatever_the_order(outcomes: dict[str, Outcome]) -> None:
    first, *others = outcomes.values()
    assert set(first.table) == set(GROUPS)
    for other in others:
        assert _judged(other.table) == _judged(first.table)
        assert list(other.table) == list(first.table)  # the same rows in the same order
        assert _figures(other) == _figures(first)
        assert other.check.returncode == first.check.returncode
        assert other.check.stdout.splitlines()[-2] == first.check.stdout.splitlines()[-2]
    assert first.check.returncode == 1  # the requestId-dropping endpoint fails the gate


@pytest.mark.parametrize("order", list(ORDERS))
def test_each_endpoint_gets_its_verdict(outcomes: dict[str, Outcome], order: str) -> None:
    o = outcomes[order]
    table = o.table
    for endpoint in GROUPS:
        assert table[endpoint]["samples"] == str(N), (endpoint, table[endpoint])
        assert table[endpoint]["cand.err"] == "0.00%"
    # the random-order list: noise, so it matches
    assert table[LIST]["parity"] == "100.00%" and table[LIST]["result"] == "PASS"
    # the dropped requestId is a real difference: every exchange differs
    assert table[ITEM]["parity"] == "0.00%" and table[ITEM]["result"] == "FAIL"
    assert table[ITEM]["why"] == "parity 0.00% < 99%"
    # a secondary that failed once changes nothing for identical answers ...
    assert table[OK]["parity"] == "100.00%" and table[OK]["result"] == "PASS"
    # ... nor for a volatile field the candidate keeps
    assert table[STAMPED]["parity"] == "100.00%" and table[STAMPED]["result"] == "PASS"
    # a candidate answering 500 differs every time, whatever the secondary did
    assert table[BROKEN]["parity"] == "0.00%" and table[BROKEN]["result"] == "FAIL"
    summary = o.check.stdout.splitlines()[-2]
    assert summary.startswith("shadow check FAILED: "), o.check.stdout
    failed = sum(1 for cells in table.values() if cells["result"] == "FAIL")
    assert f"{len(GROUPS) - failed} passed, {failed} failed, 0 inconclusive" in summary


@pytest.mark.parametrize("order", list(ORDERS))
def test_noise_is_only_changed_values_with_usable_evidence(
    outcomes: dict[str, Outcome], order: str
) -> None:
    o = outcomes[order]
    by_endpoint: dict[str, list[dict[str, Any]]] = {}
    for d in o.differences:
        by_endpoint.setdefault(str(d["endpoint"]), []).append(d)
    # the list is noise from its first request on: direct evidence in every exchange
    list_diffs = by_endpoint[LIST]
    assert {d["kind"] for d in list_diffs} == {"value_changed"}
    assert {d["cluster_path"] for d in list_diffs} == {"$[*].name", "$[*].rank"}
    assert {(d["status"], d["reason"]) for d in list_diffs} == {("noise", DIRECT)}
    list_exchanges = sorted(
        (e for e in o.exchanges if e["endpoint"] == LIST), key=lambda e: e["ts"]
    )
    assert len(list_exchanges) == N
    assert list_exchanges[0]["verdict"] == "match" and list_exchanges[0]["tolerated"]
    assert all(e["verdict"] == "match" for e in list_exchanges)
    # a removed field and a status are never noise
    assert {(d["path"], d["kind"], d["status"]) for d in by_endpoint[ITEM]} == {
        ("$.requestId", "removed", "real")
    }
    outside = [d for d in o.differences if d["path"].startswith(("$status", "$header", "$body"))]
    assert {d["status"] for d in outside} <= {"real"}
    broken = {(d["path"], d["status"]) for d in by_endpoint[BROKEN]}
    assert ("$status", "real") in broken
    # the secondary's 503s are no evidence: counted as unusable, never as noise rows
    for endpoint in FLAKY:
        assert o.endpoints[endpoint]["secondary_unusable"] == 1, endpoint
    assert all(o.endpoints[e]["secondary_unusable"] == 0 for e in GROUPS if e not in FLAKY)
    noise_status = rows(o.db, "SELECT count(*) FROM noise_differences WHERE path = '$status'")
    assert noise_status == [(0,)]
    # the stamped exchange whose secondary failed matches by the endpoint's statistics
    unusable = [e for e in o.exchanges if e["endpoint"] == STAMPED and e["secondary_unusable"]]
    assert len(unusable) == 1 and unusable[0]["verdict"] == "match"
    reasons = {
        d["reason"] for d in by_endpoint[STAMPED] if d["exchange_id"] == unusable[0]["exchange_id"]
    }
    assert len(reasons) == 1 and next(iter(reasons)).startswith("changes primary-vs-secondary")


def _pct(value: float | None) -> str:
    """As `shadow check` prints it: two decimals, cut."""
    from shadow.review.gate import fmt_pct

    return fmt_pct(value)


@pytest.mark.parametrize("order", list(ORDERS))
def test_report_export_and_junit_quote_the_gate_figures(
    outcomes: dict[str, Outcome], order: str
) -> None:
    o = outcomes[order]
    page = report_parity(o.report_html)
    assert set(page) == set(GROUPS)
    for endpoint, cells in o.table.items():
        exported = o.endpoints[endpoint]
        assert _pct(exported["parity"]) == cells["parity"], endpoint
        assert str(exported["compared"]) == cells["samples"], endpoint
        shown = page[endpoint]
        assert shown is not None and exported["parity"] is not None
        assert shown == pytest.approx(exported["parity"], rel=1e-5), endpoint
        assert _pct(shown) == cells["parity"], endpoint
    # the report's summary line: overall parity over the same matched / compared
    matched = sum(int(e["matched"]) for e in o.endpoints.values())
    compared = sum(int(e["compared"]) for e in o.endpoints.values())
    first = o.report.stdout.splitlines()[0]
    assert f"parity {100.0 * matched / compared:.1f}% ({matched}/{compared} compared)" in first
    assert first.startswith(f"{len(o.order)} exchanges, {len(GROUPS)} endpoints, ")
    # the JUnit file quotes the same numbers and verdicts
    suite = o.junit.find("testsuite")
    assert suite is not None
    cases = {str(c.get("name")): c for c in suite.findall("testcase")}
    assert set(cases) == set(GROUPS)
    for endpoint, cells in o.table.items():
        case = cases[endpoint]
        out = case.findtext("system-out") or ""
        assert f"samples={cells['samples']} " in out, out
        assert f"parity={cells['parity']} threshold=99%" in out, out
        assert f"matched={o.endpoints[endpoint]['matched']} " in out, out
        assert f"secondary_unusable={o.endpoints[endpoint]['secondary_unusable']} " in out
        failure = case.find("failure")
        if cells["result"] == "FAIL":
            assert failure is not None and failure.get("message") == cells["why"]
        else:
            assert failure is None and case.find("skipped") is None
    failures = sum(1 for c in o.table.values() if c["result"] == "FAIL")
    assert suite.get("tests") == str(len(GROUPS)) and suite.get("failures") == str(failures)


@pytest.mark.parametrize("order", list(ORDERS))
def test_top_level_keyed_list_in_random_order_is_noise(
    outcomes: dict[str, Outcome], order: str
) -> None:
    """Records with ids in random order: one `reordered` difference at the list.

    Nested (`$.items`) that is noise by secondary evidence; at the top of the body the
    path is `$`, and it must be noise just the same.
    """
    o = outcomes[order]
    diffs = [d for d in o.differences if d["endpoint"] == CATALOG]
    assert {(d["path"], d["kind"]) for d in diffs} == {("$", "reordered")}
    evidence = rows(
        o.db, "SELECT count(*) FROM noise_differences WHERE endpoint = ? AND path = '$'", [CATALOG]
    )
    assert evidence[0][0] >= N - 1  # the secondary's order differed from the primary's
    assert {d["status"] for d in diffs} == {"noise"}, json.dumps(diffs[:1], default=str)
    assert o.table[CATALOG]["parity"] == "100.00%" and o.table[CATALOG]["result"] == "PASS"
