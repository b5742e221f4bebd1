"""examples/monitoring: the Prometheus rules, their unit tests and the Grafana dashboard.

- `promtool` checks the rules and prometheus.yml and runs shadow-alerts.test.yml.
- Every metric and label the rules and the dashboard's PromQL use is one a real
  `shadow proxy --metrics` exports: the example apps run with the proxy between them,
  traffic makes every family carry samples (a cutover and an automatic rollback
  included), and one scrape, parsed by prometheus_client, is the reference.
- A real Prometheus scrapes that proxy with the rules loaded: every rule evaluates
  without error, and every dashboard query parses and returns series.

Without promtool or prometheus the tests that need them skip with the reason, except
in CI (CI=true), where they fail: scripts/ensure-services installs them.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from comparators.model import Verdict
from shadow.monitoring.proxy_metrics import MODES
from tests.conftest import ROOT, free_port, run_proxy, shadow_cmd, wait_port
from tests.integration.prom_helpers import binary

EXAMPLES = ROOT / "examples" / "monitoring"
RULES = EXAMPLES / "shadow-alerts.yml"
RULE_TESTS = EXAMPLES / "shadow-alerts.test.yml"
PROMETHEUS_CONFIG = EXAMPLES / "prometheus.yml"
DASHBOARD = EXAMPLES / "grafana-dashboard.json"
CUT_OVER = "/api/insights"  # the route the scenario cuts over and sees rolled back


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def panels(within: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in within:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation of the dashboard."""
    board = dashboard()
    found = [
        (f"panel {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in panels(board["panels"])
        for target in panel.get("targets", [])
    ]
    found += [
        (f"annotation {a['name']!r}", a["expr"])
        for a in board["annotations"]["list"]
        if "expr" in a
    ]
    return found


# --- promtool ---------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_prometheus_config_and_its_rule_files() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, result.stdout  # rule_files resolved


def test_promtool_runs_the_rule_unit_tests() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_see_every_alert_fire_and_stay_quiet() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    fires, quiet = set(), set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts - fires == set(), "alerts never seen firing"
    assert alerts - quiet == set(), "alerts never seen quiet"
    assert fires | quiet <= alerts, "tests of alerts that do not exist"


def test_prometheus_config_scrapes_the_proxy_with_the_rules() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "shadow"  # ShadowProxyDown selects up{job="shadow"}
    assert job["scrape_interval"] == "5s"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    assert config["rule_files"] == [RULES.name]


# --- the dashboard's shape ---------------------------------------------------------------


def test_dashboard_is_ready_for_file_provisioning() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["id"] is None  # provisioning assigns the id
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    route = variables["route"]
    assert route["datasource"]["uid"] == "${datasource}"
    assert route["definition"] == "label_values(shadow_requests_total, route)"
    assert route["query"] == route["definition"]
    assert route["includeAll"] and route["multi"]
    ids = [p["id"] for p in panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"]["uid"] == "${datasource}"


def test_dashboard_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_grafana_provisioning_files() -> None:
    (provider,) = load_yaml(EXAMPLES / "grafana-provisioning.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    (source,) = load_yaml(EXAMPLES / "grafana-datasource.yml")["datasources"]
    assert source["type"] == "prometheus"


def test_dashboard_reads_the_shared_ratios_from_the_rules() -> None:
    """Parity, the error ratios and the latency ratio are the rules' series, not copies."""
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for name in (
        "shadow:parity:ratio_rate10m",
        "shadow:candidate_failed:ratio_rate5m",
        "shadow:latency_p95:ratio_rate10m",
    ):
        assert name in exprs
    assert 'verdict="match"' not in exprs  # parity is not re-derived in a panel


# --- PromQL: the names an expression uses -------------------------------------------------

FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "group", "histogram_quantile", "holt_winters", "hour",
    "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10",
    "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round",
    "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
    "sum", "min", "max", "avg", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile",
})  # fmt: skip
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}) | GROUPING
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})
TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every scraped series
SYNTHETIC = {"up": set(TARGET_LABELS)}  # series Prometheus itself writes per target
# Labels with a closed set of values: a matcher's value must be one of them.
ENUMERATED = frozenset({"verdict", "mode", "backend", "stage", "queue", "served_by", "process"})

_TOKEN = re.compile(
    r"""
      (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<comment>\#[^\n]*)
    | (?P<var>\$\{?\w+\}?)
    | (?P<dur>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*(?![\w.]))
    | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<ident>[A-Za-z_:][\w:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[{}(),=<>+\-*/%^@])
    | (?P<space>\s+)
    """,
    re.VERBOSE,
)


@dataclass
class Uses:
    """What one PromQL expression names."""

    metrics: set[str] = field(default_factory=set)
    matchers: list[tuple[str | None, str, str, str]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)  # by/without/on/ignoring/group_* labels
    by: set[str] = field(default_factory=set)  # by/without labels only
    ignoring: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    counter_args: set[str] = field(default_factory=set)  # metrics given to rate() and kin
    unknown_functions: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read PromQL at {expr[pos : pos + 20]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind not in ("space", "comment"):
            out.append((kind, m.group()))
    return out


def uses(expr: str) -> Uses:
    """The metric names, label matchers, grouping labels and functions of `expr`."""
    toks = tokens(expr)
    found = Uses()
    i = 0

    def at(j: int) -> tuple[str, str]:
        return toks[j] if j < len(toks) else ("", "")

    def selector(metric: str | None, j: int) -> int:
        """Read the matchers of `{...}` starting at toks[j] == '{'; the index after '}'."""
        j += 1
        while at(j)[1] != "}":
            (_, label), (_, op), (kind, value) = at(j), at(j + 1), at(j + 2)
            if kind != "str" or op not in ("=", "!=", "=~", "!~"):
                raise ValueError(f"cannot read the matchers of {metric} in {expr!r}")
            found.matchers.append((metric, label, op, value[1:-1]))
            j += 3
            if at(j)[1] == ",":
                j += 1
        return j + 1

    while i < len(toks):
        kind, text = toks[i]
        if kind == "op" and text == "{":
            i = selector(None, i)
            continue
        if kind != "ident":
            i += 1
            continue
        nxt = at(i + 1)[1]
        if text.lower() in GROUPING:
            if nxt == "(":
                j = i + 2
                while at(j)[1] != ")":
                    if at(j)[0] == "ident":
                        found.grouping.add(at(j)[1])
                        if text.lower() in ("by", "without"):
                            found.by.add(at(j)[1])
                        elif text.lower() == "ignoring":
                            found.ignoring.add(at(j)[1])
                    j += 1
                i = j + 1
            else:
                i += 1
            continue
        if text.lower() in KEYWORDS:
            i += 1
            continue
        if nxt == "(" or (text in FUNCTIONS and nxt in ("by", "without")):
            (found.functions if text in FUNCTIONS else found.unknown_functions).add(text)
            if text in COUNTER_FUNCTIONS and at(i + 2)[0] == "ident":
                found.counter_args.add(at(i + 2)[1])
            i += 1
            continue
        found.metrics.add(text)
        i = selector(text, i + 1) if nxt == "{" else i + 1
    return found


@dataclass
class Exported:
    """The series a real proxy exports: sample name -> labels and its family's type."""

    labels: dict[str, set[str]]
    types: dict[str, str]
    values: dict[str, set[str]]  # label -> values seen (and the code's closed sets)
    families: dict[str, int]  # family name -> samples in the scrape
    series: dict[str, set[str]]  # family name -> its sample names

    @classmethod
    def parse(cls, text: str) -> Exported:
        labels: dict[str, set[str]] = {}
        types: dict[str, str] = {}
        values: dict[str, set[str]] = {
            "verdict": {v.value for v in Verdict},
            "mode": set(MODES),
        }
        families: dict[str, int] = {}
        series: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = len(family.samples)
            series[family.name] = {sample.name for sample in family.samples}
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
                types[sample.name] = family.type
                for key, value in sample.labels.items():
                    values.setdefault(key, set()).add(value)
        return cls(labels, types, values, families, series)


def recorded_labels() -> dict[str, set[str]]:
    """The labels of each recorded series, read from its rule: its by() labels and those of
    the recorded series it reads, less le and the ignoring() ones of a one-to-one match."""
    out: dict[str, set[str]] = {}
    for rule in rules():
        if "record" in rule:
            u = uses(rule["expr"])
            inherited: set[str] = set().union(*(out[m] for m in u.metrics if m in out))
            out[rule["record"]] = (u.by | inherited) - {"le"} - u.ignoring
    return out


def problems(expr: str, exported: Exported, recorded: dict[str, set[str]]) -> list[str]:
    """What in `expr` is not exported (or recorded): metric and label names, values, types."""
    u = uses(expr)
    known: dict[str, set[str]] = {**exported.labels, **recorded, **SYNTHETIC}
    out = [f"unknown function {name}()" for name in sorted(u.unknown_functions)]
    if not u.metrics:
        out.append("names no metric")
    for metric in sorted(u.metrics - known.keys()):
        out.append(f"metric {metric} is not exported (nor recorded)")
    for metric in sorted(u.counter_args & exported.types.keys()):
        if exported.types[metric] not in ("counter", "histogram"):
            out.append(f"rate/increase of {metric}, a {exported.types[metric]}")
    for metric, label, op, value in u.matchers:
        have = known.get(metric or "", set()) | TARGET_LABELS | {"__name__"}
        if metric in known and label not in have:
            out.append(f"{metric} has no label {label!r}")
        if label in ENUMERATED and "$" not in value:
            wanted = set(value.split("|")) if op in ("=~", "!~") else {value}
            for v in sorted(wanted - exported.values.get(label, set())):
                out.append(f"{label}={v!r} is never exported")
    available = set().union(*(known.get(m, set()) for m in u.metrics)) | TARGET_LABELS
    for label in sorted(u.grouping - available):
        out.append(f"grouping label {label!r} is on none of {sorted(u.metrics)}")
    return out


# --- a real proxy between the example apps ------------------------------------------------

CONFIG = """\
[compare]
headers = ["content-type"]

[[endpoints]]
route = "/api/analysis/{id}"

[[endpoints]]
route = "/api/insights"
methods = ["GET"]

[control]
sticky = ["header:x-user-id"]

[control.rollback]
window = 30
min_requests = 5
failures = 1
"""


@dataclass
class Stack:
    proxy: str  # the proxy's base URL
    metrics_port: int
    text: str  # one scrape with every family carrying samples

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def scrape(self) -> str:
        return httpx.get(f"{self.metrics}/metrics", timeout=10).text


def wait_for(what: str, check: Callable[[], Any], timeout: float, poke: Callable[[], Any]) -> Any:
    """Call `poke` until `check` is truthy (its value), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        poke()
        time.sleep(0.2)


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with (at least) `labels` in an exposition, or None."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def nothing() -> None:
    pass


@contextlib.contextmanager
def app(name: str, *args: str) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, f"examples/{name}/app.py", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The example apps, `shadow proxy --metrics` between them, and traffic that gives every
    family samples: shadow-mode comparisons (fair latency pairs, and pairs left out because
    copies queued behind --concurrency 1), a route cut over to the candidate, which then
    fails (503): fallbacks, backend errors and an automatic rollback."""
    tmp = tmp_path_factory.mktemp("monitoring")
    config, flags, faults = tmp / "shadow.toml", tmp / "flags.json", tmp / "faults.txt"
    config.write_text(CONFIG, encoding="utf-8")
    metrics_port = free_port()
    options = (
        "--config", str(config), "--flags", str(flags), "--concurrency", "1",
        "--metrics", f"127.0.0.1:{metrics_port}",
    )  # fmt: skip
    with (
        app("legacy") as primary,
        app("candidate", "--faults", str(faults)) as candidate,
        run_proxy(primary, candidate, tmp / "parity.duckdb", tmp, *options) as proxy,
        httpx.Client(base_url=proxy.url, timeout=30) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        stack = Stack(proxy.url, metrics_port, "")
        wait_port(metrics_port)
        ready = f"{stack.metrics}/readyz"
        wait_for("the proxy's /readyz", lambda: httpx.get(ready).status_code == 200, 60, nothing)
        user = iter(range(10**6))

        def insights() -> None:
            client.get(CUT_OVER, headers={"x-user-id": f"user-{next(user)}"})

        def shadowed() -> None:
            for i in range(10):  # one at a time: fair latency pairs
                client.get(f"/api/analysis/{i}")
                client.get("/api/health")
                insights()
            # at once: the copies queue for the one connection, so they go out late
            list(pool.map(lambda i: client.get(f"/api/analysis/{i}"), range(16)))

        shadowed()
        subprocess.run(
            shadow_cmd(
                "flags", "set", CUT_OVER, "candidate", "--flags", str(flags),
                "--config", str(config), "--by", "test", "--why", "monitoring examples",
            ),
            cwd=ROOT, check=True, capture_output=True, timeout=60,
        )  # fmt: skip

        def now(name: str, **labels: str) -> Callable[[], float | None]:
            return lambda: value(stack.scrape(), name, **labels)

        mode = now("shadow_route_mode", route=CUT_OVER, mode="candidate")
        wait_for("the cutover", mode, 15, nothing)
        served = now("shadow_requests_total", route=CUT_OVER, served_by="candidate")
        wait_for("rows the candidate served", served, 30, insights)
        faults.write_text(CUT_OVER + "\n", encoding="utf-8")
        wait_for("the rollback", now("shadow_rollbacks_total", route=CUT_OVER), 60, insights)
        faults.unlink()

        def complete() -> str:
            text = stack.scrape()
            bare = [n for n, count in Exported.parse(text).families.items() if not count]
            return "" if bare else text

        stack.text = wait_for("samples in every family", complete, 90, shadowed)
        yield stack


@pytest.fixture(scope="module")
def exported(stack: Stack) -> Exported:
    return Exported.parse(stack.text)


@pytest.mark.integration
def test_the_scrape_has_every_family_the_rules_rely_on(exported: Exported) -> None:
    for family in (
        "shadow_requests", "shadow_verdicts", "shadow_backend_errors", "shadow_fallbacks",
        "shadow_latency_seconds", "shadow_latency_excluded", "shadow_copies_dropped",
        "shadow_queue_depth", "shadow_worker_lag_seconds", "shadow_worker_loop_stall_seconds",
        "shadow_store_up", "shadow_rollbacks", "shadow_route_mode", "shadow_route_canary_percent",
        "shadow_flags_stale", "shadow_flags_read_age_seconds", "shadow_proxy_requests",
        "shadow_worker_up", "shadow_worker_restarts", "shadow_process_cpu_seconds",
        "shadow_process_resident_memory_bytes", "shadow_run_info",
    ):  # fmt: skip
        assert exported.families.get(family), f"{family} has no samples"
    assert exported.types["shadow_latency_seconds_bucket"] == "histogram"
    assert "shadow_latency_seconds" not in exported.labels  # a histogram has no bare series
    assert "shadow_requests" not in exported.labels  # counters end in _total
    assert {"primary", "candidate"} <= exported.values["served_by"]


@pytest.mark.integration
def test_rules_use_only_exported_metrics_and_labels(exported: Exported) -> None:
    recorded = recorded_labels()
    found = {
        rule.get("record") or rule["alert"]: problems(rule["expr"], exported, recorded)
        for rule in rules()
    }
    assert {name: p for name, p in found.items() if p} == {}


@pytest.mark.integration
def test_dashboard_uses_only_exported_metrics_and_labels(exported: Exported) -> None:
    recorded = recorded_labels()
    found = {where: problems(expr, exported, recorded) for where, expr in dashboard_queries()}
    assert {where: p for where, p in found.items() if p} == {}
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert m, variable["definition"]
            assert m.group(2) in exported.labels.get(m.group(1), set()), variable["definition"]


@pytest.mark.integration
def test_dashboard_shows_every_exported_family(exported: Exported) -> None:
    recorded = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
    shown: set[str] = set()
    for _, expr in dashboard_queries():
        names = uses(expr).metrics
        shown |= names | {m for n in names & recorded.keys() for m in uses(recorded[n]).metrics}
    families = {f for f in exported.families if not f.endswith("_created")}
    assert {f for f in families if not exported.series[f] & shown} == set()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("rate(shadow_made_up_total[5m])", "metric shadow_made_up_total is not exported"),
        ("rate(shadow_requests[5m])", "metric shadow_requests is not exported"),
        ("histogram_quantile(0.9, rate(shadow_latency_seconds[5m]))", "shadow_latency_seconds"),
        ("sum by (rout) (rate(shadow_requests_total[5m]))", "grouping label 'rout'"),
        ('shadow_verdicts_total{verdit="match"}', "has no label 'verdit'"),
        ('shadow_verdicts_total{verdict="matched"}', "verdict='matched' is never exported"),
        ('shadow_verdicts_total{verdict=~"match|diff"}', "verdict='diff' is never exported"),
        ("rate(shadow_queue_depth[5m])", "rate/increase of shadow_queue_depth, a gauge"),
        ("shadow:parity:ratio_rate1h", "metric shadow:parity:ratio_rate1h is not exported"),
        ("sum by (backend) (shadow:parity:ratio_rate10m)", "grouping label 'backend'"),
        ("rat(shadow_requests_total[5m])", "unknown function rat()"),
    ],
)
def test_made_up_names_are_caught(exported: Exported, expr: str, complaint: str) -> None:
    found = problems(expr, exported, recorded_labels())
    assert any(complaint in p for p in found), found


def test_the_reader_of_promql_sees_through_strings_ranges_and_keywords() -> None:
    u = uses(
        'sum by (route) (increase(shadow_rollbacks_total{route=~"$route"}[$__rate_interval]))'
        " > 0 or on (route) shadow_rollbacks_total unless shadow_rollbacks_total offset 5m"
        ' # a comment naming no_metric\n and ignoring (backend) group_left up{job="shadow"}'
    )
    assert u.metrics == {"shadow_rollbacks_total", "up"}
    assert u.grouping == {"route", "backend"}
    assert u.counter_args == {"shadow_rollbacks_total"}
    assert ("shadow_rollbacks_total", "route", "=~", "$route") in u.matchers


# --- a real Prometheus scraping it --------------------------------------------------------


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping the stack's proxy every second with the rules; its base URL."""
    exe = binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "shadow",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [f"127.0.0.1:{stack.metrics_port}"]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    cmd = [
        exe, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(base: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's series; fails on a query Prometheus rejects."""
    resp = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
    assert resp.status_code == 200, f"{expr!r}: {resp.text}"
    return resp.json()["data"]["result"]  # type: ignore[no-any-return]


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables as Grafana would fill them in (all routes)."""
    for var, value in (
        ("${route}", ".*"), ("$route", ".*"), ("$__rate_interval", "20s"), ("$__interval", "5s"),
    ):  # fmt: skip
        expr = expr.replace(var, value)
    return expr


@pytest.mark.integration
def test_prometheus_evaluates_the_rules_and_every_dashboard_query(
    stack: Stack, prometheus: str
) -> None:
    with httpx.Client(base_url=stack.proxy, timeout=30) as client:

        def traffic() -> None:
            client.get("/api/analysis/1")
            client.get(CUT_OVER)

        def evaluated() -> list[dict[str, Any]]:
            groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
            found = [rule for group in groups for rule in group["rules"]]
            up = query(prometheus, 'count_over_time(up{job="shadow"}[1m]) >= 5')
            return found if up and all(r["health"] != "unknown" for r in found) else []

        found = wait_for("5 scrapes and the rules evaluated", evaluated, 60, traffic)
        assert len(found) == len(rules())
        assert {r["name"]: r.get("lastError") for r in found if r["health"] != "ok"} == {}

        def answered(expr: str) -> Callable[[], list[dict[str, Any]]]:
            return lambda: query(prometheus, expr)

        for rule in rules():
            if "record" in rule:
                wait_for(f"series of {rule['record']}", answered(rule["record"]), 30, traffic)
        for where, expr in dashboard_queries():
            wait_for(f"series for {where}", answered(grafana_to_promql(expr)), 30, traffic)
        routes = httpx.get(
            f"{prometheus}/api/v1/label/route/values",
            params={"match[]": "shadow_requests_total"},
            timeout=10,
        ).json()["data"]
        assert CUT_OVER in routes  # the dashboard's route variable
        firing = f'ALERTS{{alertname="ShadowRollback",alertstate="firing",route="{CUT_OVER}"}}'
        wait_for("ShadowRollback firing", answered(firing), 30, traffic)
