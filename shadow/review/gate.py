"""The CI gate behind `shadow check`: per-endpoint parity, errors and latency vs thresholds.

One SQL query (`GATE_QUERY`) aggregates every endpoint inside DuckDB; the rest
are pure functions over its row dicts: parse thresholds, judge each endpoint,
order and format the table, build JUnit XML.

An endpoint is
- FAIL when a check that has enough samples fails (parity and latency need
  `min_samples` compared exchanges; the candidate error rate needs `min_samples`
  requests sent to the candidate). Latency fails only when the candidate's p95 over the
  primary's is above `max_latency_ratio` and the candidate is significantly slower:
  `shadow_latency_comparison` says 'slower' (a Mann-Whitney test over at least 50
  pairs a side, docs/latency.md); 'same', 'faster' and 'too few' never fail;
- INCONCLUSIVE when it did not fail but has fewer than `min_samples` compared;
- PASS otherwise.
Endpoints whose every request was skipped (never copied, e.g. POST) are listed
as NOT COPIED and are not judged. The gate passes when nothing failed, nothing is
inconclusive (unless allowed) and at least one endpoint was judged.

With `--fail-on-rollback` the CLI also reads the rollback events of the selected
runs (`fetch_rollbacks`, ROLLBACKS_QUERY, one entry per rolled-back route) and
hands them to `passed`, `summary_line` and `junit_xml`: any rollback fails the
gate, and each rolled-back route is a failing testcase of the suite 'shadow cutover'.
`rollbacks=None` (the default) means not checked.

With `--max-data-differences N` it also judges the tables `shadow data diff` compared
(shadow.review.data_gate, `data`): a table with more than N differing rows fails the
gate, and each table is a testcase of the suite 'shadow data'. The tables count as
judged, so a store of table diffs alone (no endpoint) can pass. `data=None` (the
default) means not checked.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import duckdb

from shadow.errors import ConfigError
from shadow.review import data_gate
from shadow.review.data_gate import DataTableResult
from shadow.review.rollbacks import (
    ALL_ROUTES,
    ROLLBACKS_QUERY,
    RouteRollback,
    cutover_suite,
    fetch_rollbacks,
    format_rollbacks,
)

PASS, FAIL, INCONCLUSIVE, NOT_COPIED = "PASS", "FAIL", "INCONCLUSIVE", "NOT COPIED"
_ORDER = {FAIL: 0, INCONCLUSIVE: 1, PASS: 2, NOT_COPIED: 3}

# The endpoint figures and latency comparison of the one outcome definition
# (shadow/store/sql/outcomes.sql); the gate only reads them. Parameters: the run id
# twice (NULL for all runs).
GATE_QUERY = """
SELECT o.endpoint, requests, sent, compared, matched, differed, tolerated, candidate_errors,
       skipped, secondary_unusable, parity, candidate_error_pct,
       primary_q[2] AS primary_p95, candidate_q[2] AS candidate_p95,
       candidate_q[2] / nullif(primary_q[2], 0) AS latency_ratio,
       l.latency_verdict, l.shift_ratio, l.ci_low, l.ci_high, l.samples AS latency_samples
FROM shadow_endpoint_outcomes(CAST(? AS VARCHAR)) o
LEFT JOIN shadow_latency_comparison(CAST(? AS VARCHAR)) l USING (endpoint)
ORDER BY o.endpoint
"""

RUN_EXISTS = """
SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?)
    OR EXISTS (SELECT 1 FROM exchanges WHERE run_id = ?)
"""


@dataclass(frozen=True)
class EndpointThreshold:
    """`--endpoint PATTERN=THRESHOLD`: a glob over endpoint names and its minimum parity."""

    pattern: str
    min_parity: float
    order: int  # position on the command line; later wins a tie

    @property
    def specificity(self) -> int:
        return len(re.sub(r"[*?]|\[[^]]*\]", "", self.pattern))


DEFAULT_MAX_CANDIDATE_ERRORS = 1.0  # percent of copied requests


def _best(
    endpoint: str, patterns: Sequence[EndpointThreshold], default: float
) -> tuple[float, str | None]:
    """The value of the most specific pattern matching `endpoint` (later wins a tie)."""
    hits = [t for t in patterns if fnmatchcase(endpoint, t.pattern)]
    if not hits:
        return default, None
    best = max(hits, key=lambda t: (t.specificity, t.order))
    return best.min_parity, best.pattern


@dataclass(frozen=True)
class Thresholds:
    min_parity: float = 100.0
    endpoints: tuple[EndpointThreshold, ...] = ()
    max_candidate_errors: float = DEFAULT_MAX_CANDIDATE_ERRORS
    max_latency_ratio: float | None = None
    min_samples: int = 20
    allow_inconclusive: bool = False
    endpoint_errors: tuple[EndpointThreshold, ...] = ()  # per-pattern max candidate errors

    def parity_for(self, endpoint: str) -> tuple[float, str | None]:
        """Minimum parity for `endpoint` and the pattern it came from (None: --min-parity)."""
        return _best(endpoint, self.endpoints, self.min_parity)

    def errors_for(self, endpoint: str) -> tuple[float, str | None]:
        """Most candidate errors (%) for `endpoint` and the pattern it came from."""
        return _best(endpoint, self.endpoint_errors, self.max_candidate_errors)


@dataclass(frozen=True)
class EndpointResult:
    endpoint: str
    requests: int
    sent: int
    compared: int
    matched: int
    candidate_errors: int
    parity: float | None
    candidate_error_pct: float | None
    latency_ratio: float | None
    min_parity: float
    pattern: str | None
    result: str
    reasons: tuple[str, ...] = field(default=())
    differed: int = 0
    tolerated: int = 0  # matched with only noise or accepted differences
    secondary_unusable: int = 0
    max_errors: float = DEFAULT_MAX_CANDIDATE_ERRORS
    # shadow_latency_comparison: slower | faster | same | too few (None: not read)
    latency_verdict: str | None = None
    shift_ratio: float | None = None  # Hodges-Lehmann: how many times slower
    ci_low: float | None = None  # its 95 % interval
    ci_high: float | None = None
    latency_samples: int = 0

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)

    @property
    def latency(self) -> str:
        """The p95 ratio and the verdict on the shift, e.g. '2.61 slower'."""
        if self.latency_verdict is None or self.latency_ratio is None:
            return fmt_ratio(self.latency_ratio)
        return f"{fmt_ratio(self.latency_ratio)} {self.latency_verdict}"

    @property
    def shift(self) -> str:
        return fmt_shift(self.shift_ratio, self.ci_low, self.ci_high)


def _percent(value: str | float, flag: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: expected a percentage such as 99.5") from None
    if not 0.0 <= number <= 100.0:  # also rejects nan
        shown = f"{number:g}" if isinstance(value, float) else repr(value)
        raise ConfigError(f"{flag} {shown}: expected a percentage between 0 and 100")
    return number


def parse_endpoint_thresholds(
    values: Sequence[str], flag: str = "--endpoint"
) -> tuple[EndpointThreshold, ...]:
    """Parse `PATTERN=THRESHOLD` values (the last '=' separates; patterns may hold '=')."""
    out = []
    for i, value in enumerate(values):
        pattern, sep, number = value.rpartition("=")
        if not sep or not pattern.strip():
            raise ConfigError(
                f"{flag} {value!r}: expected PATTERN=THRESHOLD, e.g. 'GET /api/*=99.5'"
            )
        out.append(EndpointThreshold(pattern.strip(), _percent(number.strip(), flag), i))
    return tuple(out)


def make_thresholds(
    min_parity: float,
    endpoint_values: Sequence[str] = (),
    max_candidate_errors: float = DEFAULT_MAX_CANDIDATE_ERRORS,
    max_latency_ratio: float | None = None,
    min_samples: int = 20,
    allow_inconclusive: bool = False,
    endpoint_errors: Sequence[str] = (),
) -> Thresholds:
    """Validated thresholds from option values; ConfigError on a bad one."""
    _percent(min_parity, "--min-parity")
    _percent(max_candidate_errors, "--max-candidate-errors")
    if max_latency_ratio is not None and not max_latency_ratio > 0:
        raise ConfigError(f"--max-latency-ratio {max_latency_ratio}: expected a number above 0")
    if min_samples < 1:
        raise ConfigError(f"--min-samples {min_samples}: expected at least 1")
    return Thresholds(
        min_parity=min_parity,
        endpoints=parse_endpoint_thresholds(endpoint_values),
        max_candidate_errors=max_candidate_errors,
        max_latency_ratio=max_latency_ratio,
        min_samples=min_samples,
        allow_inconclusive=allow_inconclusive,
        endpoint_errors=parse_endpoint_thresholds(endpoint_errors, "--endpoint-max-errors"),
    )


def fmt_pct(value: float | None) -> str:
    """Percent with two decimals, cut rather than rounded (99.999 never shows as 100.00)."""
    if value is None:
        return "n/a"
    return f"{math.floor(value * 100 + 1e-9) / 100:.2f}%"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def fmt_shift(shift: float | None, low: float | None, high: float | None) -> str:
    """The latency shift with its 95 % interval, e.g. 'x2.40 [2.21-2.63]'."""
    if shift is None or low is None or high is None:
        return "n/a"
    return f"x{shift:.2f} [{low:.2f}-{high:.2f}]"


def judge(row: Mapping[str, Any], t: Thresholds) -> EndpointResult:
    """Judge one row of GATE_QUERY against the thresholds."""
    endpoint = str(row["endpoint"])
    compared, sent = int(row["compared"]), int(row["sent"])
    parity, err_pct, ratio = row["parity"], row["candidate_error_pct"], row["latency_ratio"]
    min_parity, pattern = t.parity_for(endpoint)
    failed: list[str] = []
    if compared >= t.min_samples and parity is not None and parity < min_parity:
        source = f" ({pattern})" if pattern else ""
        failed.append(f"parity {fmt_pct(parity)} < {min_parity:g}%{source}")
    max_errors, errors_pattern = t.errors_for(endpoint)
    if sent >= t.min_samples and err_pct is not None and err_pct > max_errors:
        source = f" ({errors_pattern})" if errors_pattern else ""
        failed.append(f"candidate errors {fmt_pct(err_pct)} > {max_errors:g}%{source}")
    verdict = row.get("latency_verdict")
    shift, low, high = row.get("shift_ratio"), row.get("ci_low"), row.get("ci_high")
    if (
        t.max_latency_ratio is not None
        and compared >= t.min_samples
        and verdict == "slower"  # significantly: never on too few samples
        and ratio is not None
        and ratio > t.max_latency_ratio
    ):
        failed.append(
            f"p95 latency x{ratio:.2f} > x{t.max_latency_ratio:g}, significantly slower "
            f"(shift {fmt_shift(shift, low, high)})"
        )
    if failed:
        result, reasons = FAIL, tuple(failed)
    elif sent == 0:
        result, reasons = NOT_COPIED, ("every request skipped",)
    elif compared < t.min_samples:
        result, reasons = INCONCLUSIVE, (f"{compared} compared < {t.min_samples} samples",)
    else:
        result, reasons = PASS, ()
    return EndpointResult(
        endpoint=endpoint,
        requests=int(row["requests"]),
        sent=sent,
        compared=compared,
        matched=int(row["matched"]),
        candidate_errors=int(row["candidate_errors"]),
        parity=parity,
        candidate_error_pct=err_pct,
        latency_ratio=ratio,
        min_parity=min_parity,
        pattern=pattern,
        result=result,
        reasons=reasons,
        differed=int(row.get("differed") or 0),
        tolerated=int(row.get("tolerated") or 0),
        secondary_unusable=int(row.get("secondary_unusable") or 0),
        max_errors=max_errors,
        latency_verdict=verdict,
        shift_ratio=shift,
        ci_low=low,
        ci_high=high,
        latency_samples=int(row.get("latency_samples") or 0),
    )


def fetch_rows(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[dict[str, Any]]:
    """Run GATE_QUERY; ConfigError when `run_id` names no run in the store.

    `con` comes from `shadow.store.writer.reading`, which installs the outcome macros.
    """
    if run_id is not None:
        row = con.execute(RUN_EXISTS, [run_id, run_id]).fetchone()
        if not row or not row[0]:
            raise ConfigError(f"--run {run_id!r}: no such run in the database")
    cur = con.execute(GATE_QUERY, [run_id, run_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def evaluate(rows: Iterable[Mapping[str, Any]], t: Thresholds) -> list[EndpointResult]:
    """Judge every endpoint; failing rows first, then inconclusive, then by parity."""
    results = [judge(r, t) for r in rows]
    return sorted(
        results,
        key=lambda r: (_ORDER[r.result], r.parity if r.parity is not None else -1, r.endpoint),
    )


def unused_patterns(
    results: Sequence[EndpointResult], t: Thresholds, flag: str = "--endpoint"
) -> list[str]:
    """Patterns of `flag` (--endpoint, --endpoint-max-errors) matching no endpoint (a typo?)."""
    names = [r.endpoint for r in results]
    given = t.endpoints if flag == "--endpoint" else t.endpoint_errors
    return [e.pattern for e in given if not any(fnmatchcase(n, e.pattern) for n in names)]


def passed(
    results: Sequence[EndpointResult],
    t: Thresholds,
    rollbacks: Sequence[RouteRollback] | None = None,
    data: Sequence[DataTableResult] | None = None,
) -> bool:
    """Whether the gate passes (see the module docstring); any rollback fails it."""
    if rollbacks:
        return False
    if data is not None and data_gate.counts(data)[1]:
        return False
    counts = count_results(results)
    if counts[FAIL]:
        return False
    if counts[INCONCLUSIVE] and not t.allow_inconclusive:
        return False
    return counts[PASS] > 0 or bool(data)


def count_results(results: Sequence[EndpointResult]) -> dict[str, int]:
    counts = dict.fromkeys(_ORDER, 0)
    for r in results:
        counts[r.result] += 1
    return counts


def summary_line(
    results: Sequence[EndpointResult],
    t: Thresholds,
    rollbacks: Sequence[RouteRollback] | None = None,
    data: Sequence[DataTableResult] | None = None,
) -> str:
    c = count_results(results)
    verdict = "PASSED" if passed(results, t, rollbacks, data) else "FAILED"
    if data is not None and not results:  # table diffs only: no endpoint to speak of
        text = f"shadow check {verdict}: {data_gate.summary_part(data)}"
    else:
        text = (
            f"shadow check {verdict}: {c[PASS]} passed, {c[FAIL]} failed, "
            f"{c[INCONCLUSIVE]} inconclusive"
        )
        if c[INCONCLUSIVE]:
            text += " (allowed)" if t.allow_inconclusive else " (not allowed: --allow-inconclusive)"
        if c[NOT_COPIED]:
            text += f", {c[NOT_COPIED]} not copied"
        if not c[PASS] and not c[FAIL]:
            text += "; no endpoint had enough samples to judge"
        if data is not None:
            text += f"; {data_gate.summary_part(data)}"
    if rollbacks:
        names = ", ".join(r.name for r in rollbacks[:3])
        more = f" and {len(rollbacks) - 3} more" if len(rollbacks) > 3 else ""
        n = len(rollbacks)
        text += f"; {n} route{'s' if n != 1 else ''} rolled back ({names}{more})"
    elif rollbacks is not None:
        text += "; no rollback"
    return text


HEADER = ("endpoint", "samples", "parity", "threshold", "cand.err", "p95 ratio", "result", "why")


def table_rows(results: Sequence[EndpointResult]) -> list[tuple[str, ...]]:
    return [
        (
            r.endpoint,
            str(r.compared),
            fmt_pct(r.parity),
            f"{r.min_parity:g}%",
            fmt_pct(r.candidate_error_pct),
            r.latency,
            r.result,
            r.why,
        )
        for r in results
    ]


def format_table(results: Sequence[EndpointResult]) -> str:
    """A plain-text table for CI logs (numeric columns right-aligned)."""
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {1, 2, 3, 4}  # the p95 ratio is followed by its verdict: left-aligned
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def junit_xml(
    results: Sequence[EndpointResult],
    t: Thresholds,
    *,
    db: str,
    run_id: str | None,
    rollbacks: Sequence[RouteRollback] | None = None,
    data: Sequence[DataTableResult] | None = None,
) -> ET.ElementTree[ET.Element]:
    """JUnit XML: one testsuite 'shadow parity', one testcase per endpoint.

    FAIL -> <failure>, INCONCLUSIVE and NOT COPIED -> <skipped>. With `rollbacks`
    (checked: --fail-on-rollback) a second testsuite 'shadow cutover': one failing
    testcase per rolled-back route, or one passing testcase 'no rollback'. With `data`
    (checked: --max-data-differences) a testsuite 'shadow data', a testcase per table.
    """
    c = count_results(results)
    skipped = c[INCONCLUSIVE] + c[NOT_COPIED]
    counts = {
        "tests": str(len(results)),
        "failures": str(c[FAIL]),
        "errors": "0",
        "skipped": str(skipped),
        "time": "0",
    }
    totals = dict(counts)
    tests, failures = len(results), c[FAIL]
    if rollbacks is not None:  # the 'shadow cutover' suite: a case per route, or one passing
        tests, failures = tests + max(1, len(rollbacks)), failures + len(rollbacks)
    if data is not None:  # the 'shadow data' suite: a case per table
        tests, failures = tests + len(data), failures + data_gate.counts(data)[1]
    totals["tests"], totals["failures"] = str(tests), str(failures)
    root = ET.Element("testsuites", {"name": "shadow", **totals})
    suite = ET.SubElement(root, "testsuite", {"name": "shadow parity", **counts})
    props = ET.SubElement(suite, "properties")
    values: list[tuple[str, str]] = [
        ("db", db),
        ("run", run_id or "all"),
        ("min_parity", f"{t.min_parity:g}"),
        ("min_samples", str(t.min_samples)),
        ("allow_inconclusive", str(t.allow_inconclusive).lower()),
    ]
    values.append(("max_candidate_errors", f"{t.max_candidate_errors:g}"))
    values += [(f"endpoint_max_errors:{e.pattern}", f"{e.min_parity:g}") for e in t.endpoint_errors]
    if t.max_latency_ratio is not None:
        values.append(("max_latency_ratio", f"{t.max_latency_ratio:g}"))
    values += [(f"endpoint:{e.pattern}", f"{e.min_parity:g}") for e in t.endpoints]
    for name, value in values:
        ET.SubElement(props, "property", {"name": name, "value": value})
    for r in results:
        case = ET.SubElement(
            suite, "testcase", {"classname": "shadow.parity", "name": r.endpoint, "time": "0"}
        )
        detail = (
            f"samples={r.compared} requests={r.requests} matched={r.matched} "
            f"(of which noise/accepted only={r.tolerated}) differed={r.differed} "
            f"parity={fmt_pct(r.parity)} threshold={r.min_parity:g}%"
            f"{f' (from {r.pattern})' if r.pattern else ''} "
            f"candidate_errors={r.candidate_errors} ({fmt_pct(r.candidate_error_pct)}) "
            f"max_candidate_errors={r.max_errors:g}% "
            f"secondary_unusable={r.secondary_unusable} "
            f"p95_ratio={fmt_ratio(r.latency_ratio)} "
            f"latency={r.latency_verdict or 'n/a'} shift={r.shift} "
            f"latency_samples={r.latency_samples}"
        )
        if r.result == FAIL:
            ET.SubElement(
                case, "failure", {"message": r.why, "type": "ParityFailure"}
            ).text = detail
        elif r.result in (INCONCLUSIVE, NOT_COPIED):
            ET.SubElement(case, "skipped", {"message": f"{r.result.lower()}: {r.why}"})
        ET.SubElement(case, "system-out").text = detail
    if rollbacks is not None:
        cutover_suite(root, rollbacks, run_id)
    if data is not None:
        data_gate.data_suite(root, data, run_id)
    ET.indent(root)
    return ET.ElementTree(root)


__all__ = [
    "ALL_ROUTES",
    "FAIL",
    "GATE_QUERY",
    "INCONCLUSIVE",
    "NOT_COPIED",
    "PASS",
    "ROLLBACKS_QUERY",
    "DataTableResult",
    "EndpointResult",
    "EndpointThreshold",
    "RouteRollback",
    "Thresholds",
    "evaluate",
    "fetch_rollbacks",
    "fetch_rows",
    "format_rollbacks",
    "format_table",
    "junit_xml",
    "make_thresholds",
    "parse_endpoint_thresholds",
    "passed",
    "summary_line",
]
