"""A real Prometheus scraping `shadow proxy --metrics` computes the report's figures.

The acceptance test of the metrics: Prometheus (tests/integration/prom_helpers.py;
skipped without it, failed under CI=true) scrapes the proxy every second while
traffic with matches, differences, candidate errors and skipped requests goes
through; once it has the final counters, PromQL's parity and candidate error rate,
overall and per route, equal `shadow_endpoint_outcomes` of the same run.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.prom_helpers import (
    MetricsProxy,
    PrometheusServer,
    backends,
    binary,
    get,
    metrics_proxy,
    mixed_traffic,
    query,
    scrape,
    send,
    wait_stored,
    wait_until,
)

pytestmark = pytest.mark.integration

V = "shadow_verdicts_total"
PARITY = f'sum({V}{{verdict="match"}}) / sum({V}{{verdict=~"match|differ"}})'
ERRORS = f'sum({V}{{verdict="candidate_error"}}) / sum({V}{{verdict!="skipped"}})'
# Per route; `or ... * 0` gives a route without a single match (error) a 0, as SQL does.
PARITY_BY_ROUTE = (
    f'(sum by (route) ({V}{{verdict="match"}}) or sum by (route) ({V}) * 0)'
    f' / sum by (route) ({V}{{verdict=~"match|differ"}})'
)
ERRORS_BY_ROUTE = (
    f'(sum by (route) ({V}{{verdict="candidate_error"}}) or sum by (route) ({V}) * 0)'
    f' / sum by (route) ({V}{{verdict!="skipped"}})'
)


@dataclass
class Scraped:
    proxy: MetricsProxy
    prom: PrometheusServer
    sent: int
    text: str  # the proxy's exposition at the end


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    tmp = tmp_path_factory.mktemp("prometheus")
    binary("prometheus")  # skip (fail in CI) before starting anything
    with backends() as (primary, candidate), metrics_proxy(primary, candidate, tmp) as p:
        port = p.metrics_port
        wait_until("the proxy is ready", lambda: get(port, "/readyz", timeout=5)[0] == 200, 90)
        with PrometheusServer(tmp / "prom", [f"127.0.0.1:{port}"]) as prom:
            wait_until(
                "Prometheus scrapes the proxy and its worker",
                lambda: prom.value('max(shadow_worker_up{job="shadow"})') == 1.0,
                60,
                0.25,
            )
            traffic = mixed_traffic(items=30, flaky=40)
            send(p.url, traffic)
            wait_stored(p, len(traffic))  # the store has every row: the counters are final
            # The proxy keeps running until Prometheus has scraped the final numbers.
            wait_until(
                "Prometheus has the final counters",
                lambda: prom.value("sum(shadow_requests_total)") == len(traffic),
                60,
                0.25,
            )
            yield Scraped(p, prom, len(traffic), scrape(port))


def _same(promql: float | None, sql: float | None) -> bool:
    if sql is None:
        return promql is None or math.isnan(promql)
    return promql is not None and abs(promql - sql) <= 1e-9


def test_promql_parity_and_error_rate_equal_the_report(scraped: Scraped) -> None:
    p, prom = scraped.proxy, scraped.prom
    [(matched, compared, errors, sent, moved)] = query(
        p.db,
        "SELECT sum(matched), sum(compared), sum(candidate_errors), sum(sent), "
        "(SELECT count(*) FROM shadow_exchange_outcomes(?) WHERE verdict <> provisional_verdict) "
        "FROM shadow_endpoint_outcomes(?)",
        [p.run_id, p.run_id],
    )
    # no secondary, no accepted entries: what the worker counted is the final verdict
    assert moved == 0
    assert 0 < matched < compared and errors > 0 and sent < scraped.sent  # not vacuous
    parity, error_rate = prom.value(PARITY), prom.value(ERRORS)
    assert _same(parity, matched / compared), (parity, matched, compared)
    assert _same(error_rate, errors / sent), (error_rate, errors, sent)


def test_promql_figures_by_route_equal_the_report(scraped: Scraped) -> None:
    p, prom = scraped.proxy, scraped.prom
    rows = query(
        p.db,
        "SELECT endpoint, parity, candidate_error_pct FROM shadow_endpoint_outcomes(?)",
        [p.run_id],
    )
    report = {str(e).split(" ", 1)[1]: (par, err) for e, par, err in rows}
    assert len(report) == len(rows)  # one method per route here: by (route) is by endpoint
    parity, errors = prom.values(PARITY_BY_ROUTE, "route"), prom.values(ERRORS_BY_ROUTE, "route")
    for route, (par, err) in report.items():
        want_parity = None if par is None else float(par) / 100
        want_errors = None if err is None else float(err) / 100
        assert _same(parity.get(route), want_parity), (route, parity.get(route), par)
        assert _same(errors.get(route), want_errors), (route, errors.get(route), err)
    # routes only Prometheus knows would be a bug of their own
    assert set(parity) <= set(report) and set(errors) <= set(report)
    # the figures differ from route to route: a mix-up would show
    assert report["/api/health"][0] == 100 and report["/api/item/{id}"][0] < 100
    assert report["/api/submit"] == (None, None)  # skipped only: nothing compared or sent
    assert report["/api/flaky/{id}"][1] > 0


def test_prometheus_reads_the_exposition_cleanly(scraped: Scraped) -> None:
    prom = scraped.prom
    assert prom.value('up{job="shadow"}') == 1.0
    targets = prom.query('scrape_samples_post_metric_relabeling{job="shadow"}')
    assert targets and float(targets[0]["value"][1]) > 0
    # promtool's linter: names, types, units and help texts of the exposition
    promtool = binary("promtool")
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=scraped.text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_worker_families_reach_prometheus_with_the_run(scraped: Scraped) -> None:
    p, prom = scraped.proxy, scraped.prom
    assert prom.values("shadow_run_info", "run_id") == {p.run_id: 1.0}
    [(pairs, excluded, compared)] = query(
        p.db,
        "SELECT sum(latency_pairs), sum(latency_excluded), sum(compared) "
        "FROM shadow_endpoint_outcomes(?)",
        [p.run_id],
    )
    # every compared exchange here is a fair pair or left out for our own delay
    assert pairs + excluded == compared > 0
    counts = prom.values("sum by (backend) (shadow_latency_seconds_count)", "backend")
    for backend in ("primary", "candidate"):  # both sides of each fair pair
        assert counts.get(backend, 0.0) == pairs, (backend, counts, pairs)
    assert (prom.value("sum(shadow_latency_excluded_total)") or 0.0) == excluded
    proxied = prom.value("sum(shadow_proxy_requests_total)")
    assert proxied is not None and proxied >= scraped.sent
