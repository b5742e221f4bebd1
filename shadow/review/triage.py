"""Rules that come from triage: suggested from the store, and accepted differences.

`suggest_rules(db)` reads a shadow database (aggregates in DuckDB, a bounded body
sample in Python) and proposes per-endpoint comparison rules, each with the
evidence behind it; `suggestions_to_toml` writes them as `[[endpoints]]` entries
for a person to review. Only differences in the JSON body (`$.…` / `$[…]`) are
considered, grouped by cluster path (list indices as `[*]`); differences already
`accepted` are left out. Heuristics, in order of precedence for one path:

1. ignore_path, high: the path is nondeterministic in the primary itself: it has
   differences with status `noise`, or rows in `noise_differences` (primary vs
   secondary). Evidence: how often primary and secondary disagreed there.
2. tolerance, high (medium under 5 compared exchanges): every `value_changed`
   there has numbers on both sides within 1 % of each other; the suggested
   tolerance is the largest absolute delta rounded up to one significant digit
   (so it does cover that delta under the comparator's `<=`).
3. ignore_path, medium: `value_changed` in >= 95 % of the endpoint's compared
   exchanges (at least 5), both sides of every change look volatile (UUID, long hex
   id, ISO timestamp, epoch seconds/ms, prefixed id, random-looking token) and no
   value occurs twice, on either side: a per-request value such as a request id.
4. ignore_order: a list (a cluster path's prefix before `[*]`) that, in a sample
   of at most 200 differing exchanges with both bodies stored, holds the same items
   as a multiset (canonical JSON, sorted) on both sides but in another order.
   High when every sampled exchange in which that list differed was such a
   reordering, medium when some also changed its items. Suggestions 2 and 3 for
   paths inside a list suggested with high confidence are dropped: reordering
   misaligns the items, so their value changes say nothing.

Never suggested, since they are the likely real regressions: ignoring a status or
a header (only body paths are looked at), anything at a path where some difference
is a `type_changed` or a `removed`, and numeric drift beyond 1 %.

`accept_difference` appends an `[[accepted]]` entry to a TOML config file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from comparators.paths import ANY, PatternError, PatternStep, parse_pattern
from shadow.config.endpoints import RoutePattern
from shadow.errors import ConfigError
from shadow.store.writer import reading

if TYPE_CHECKING:
    from shadow.config.loader import Accepted

SuggestionKind = Literal["ignore_path", "ignore_order", "tolerance"]
Confidence = Literal["high", "medium"]

VOLATILE_SHARE = 0.95
MIN_EXCHANGES = 5
RELATIVE_DRIFT = 0.01
ORDER_SAMPLE = 200
_EXAMPLE_CHARS = 40

# JSON text of a value that changes with every request (RE2 syntax, full match).
_VOLATILE_RES = (
    r'"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"',
    r'"(0x)?[0-9a-fA-F]{12,}"',
    r'"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?(Z|[+-]\d{2}:?\d{2})?"',
    r"1\d{9}(\.\d+)?|1\d{12}",  # epoch seconds / milliseconds, 2001-2033
)
# ... and these when they are at least this long (quotes included) and hold a letter.
_GUARDED_RES = (
    (r'"[A-Za-z]{1,12}[_-][A-Za-z0-9]*\d[A-Za-z0-9]*"', 10),  # prefixed ids: req_a1b2c3
    (r'"[A-Za-z0-9_+/=.:-]*\d[A-Za-z0-9_+/=.:-]*"', 18),  # random-looking tokens
)
_NUMBER_RE = r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?"


def _volatile_sql(col: str) -> str:
    tests = [f"regexp_full_match({col}, '{rx}')" for rx in _VOLATILE_RES]
    tests += [
        f"(regexp_full_match({col}, '{rx}') AND length({col}) >= {n}"
        f" AND regexp_matches({col}, '[A-Za-z]'))"
        for rx, n in _GUARDED_RES
    ]
    return "(" + " OR ".join(tests) + ")"


_RUN = "($run::VARCHAR IS NULL OR run_id = $run::VARCHAR)"
_BODY_PATH = "(starts_with(path, '$.') OR starts_with(path, '$['))"
_DIFFS = "shadow_difference_outcomes($run::VARCHAR)"  # statuses from the one definition

ENDPOINTS_SQL = """
SELECT o.endpoint, o.compared, coalesce(s.n, 0) AS with_secondary
FROM shadow_endpoint_outcomes($run::VARCHAR) o
LEFT JOIN (SELECT endpoint, count(*) AS n FROM shadow_noise_exchanges($run::VARCHAR)
           GROUP BY endpoint) s USING (endpoint)
"""

PATHS_SQL = f"""
WITH d AS (
    SELECT endpoint, exchange_id, path, kind, status,
           primary_value AS p, candidate_value AS c, cluster_path AS cpath,
           CASE WHEN regexp_full_match(primary_value, '{_NUMBER_RE}')
                THEN TRY_CAST(primary_value AS DOUBLE) END AS pn,
           CASE WHEN regexp_full_match(candidate_value, '{_NUMBER_RE}')
                THEN TRY_CAST(candidate_value AS DOUBLE) END AS cn,
           {_volatile_sql("primary_value")} AND {_volatile_sql("candidate_value")} AS volatile
    FROM {_DIFFS}
    WHERE {_BODY_PATH} AND kind NOT IN ('status', 'header') AND status <> 'accepted'
), changed AS (
    SELECT *, abs(pn - cn) AS delta,
           abs(pn - cn) <= {RELATIVE_DRIFT} * greatest(abs(pn), abs(cn)) AS near
    FROM d WHERE kind = 'value_changed'
), vals AS (
    SELECT endpoint, cpath, count(*) AS n_values, count(DISTINCT v) AS n_distinct
    FROM (SELECT endpoint, cpath, p AS v FROM changed
          UNION ALL SELECT endpoint, cpath, c AS v FROM changed)
    GROUP BY ALL
), agg AS (
    SELECT endpoint, cpath,
           count(DISTINCT exchange_id) AS exchanges,
           count(*) FILTER (WHERE kind IN ('type_changed', 'removed')) AS vetoes,
           count(DISTINCT exchange_id) FILTER (WHERE status = 'noise') AS noise_status
    FROM d GROUP BY ALL
), chg AS (
    SELECT endpoint, cpath,
           count(DISTINCT exchange_id) AS changed_exchanges,
           count(*) AS changed_rows,
           count(*) FILTER (WHERE volatile) AS volatile_rows,
           count(*) FILTER (WHERE near) AS near_rows,
           max(delta) FILTER (WHERE near) AS max_delta,
           max(delta / greatest(abs(pn), abs(cn))) FILTER (WHERE near AND delta > 0) AS max_rel,
           arg_min([p, c], exchange_id || path) AS example,
           arg_max([p, c], delta) FILTER (WHERE near) AS drift_example
    FROM changed GROUP BY ALL
), noise AS (
    -- evidence as the outcome definition counts it: usable, a changed value in the body
    SELECT endpoint, cluster_path AS cpath, count(DISTINCT exchange_id) AS noise_evidence
    FROM noise_differences
    WHERE {_RUN} AND cluster_first AND shadow_noise_kind(kind, path)
    GROUP BY ALL
)
SELECT coalesce(agg.endpoint, noise.endpoint) AS endpoint,
       coalesce(agg.cpath, noise.cpath) AS cpath,
       coalesce(exchanges, 0), coalesce(vetoes, 0), coalesce(noise_status, 0),
       coalesce(noise_evidence, 0), coalesce(changed_exchanges, 0), coalesce(changed_rows, 0),
       coalesce(volatile_rows, 0), coalesce(near_rows, 0), max_delta, max_rel,
       coalesce(n_values, 0), coalesce(n_distinct, 0), example, drift_example
FROM agg
LEFT JOIN chg USING (endpoint, cpath)
LEFT JOIN vals USING (endpoint, cpath)
FULL OUTER JOIN noise ON agg.endpoint = noise.endpoint AND agg.cpath = noise.cpath
ORDER BY 1, 2
"""

ORDER_SAMPLE_SQL = f"""
WITH listed AS (
    SELECT DISTINCT run_id, exchange_id FROM {_DIFFS}
    WHERE {_BODY_PATH} AND contains(cluster_path, '[*]') AND status <> 'accepted'
), candidates AS (
    SELECT e.endpoint, e.exchange_id, e.primary_body, e.candidate_body, e.ts,
           e.primary_body IS NOT NULL AND e.candidate_body IS NOT NULL
           AND NOT coalesce(e.primary_body_truncated, false)
           AND NOT coalesce(e.candidate_body_truncated, false) AS usable
    FROM exchanges e JOIN listed USING (run_id, exchange_id)
), numbered AS (
    SELECT *, row_number() OVER (PARTITION BY endpoint, usable ORDER BY ts, exchange_id) AS rn
    FROM candidates
)
SELECT endpoint, usable, CASE WHEN usable THEN primary_body END,
       CASE WHEN usable THEN candidate_body END
FROM numbered WHERE NOT usable OR rn <= {ORDER_SAMPLE}
ORDER BY endpoint, ts, exchange_id
"""


REORDERED_SQL = f"""
SELECT endpoint, cluster_path AS cpath, count(DISTINCT exchange_id) AS exchanges
FROM {_DIFFS}
WHERE kind = 'reordered' AND status = 'real'
GROUP BY ALL ORDER BY ALL
"""


@dataclass(frozen=True)
class Suggestion:
    """One proposed rule for an endpoint, with the evidence a reviewer needs."""

    endpoint: str  # "GET /api/analysis/{id}"
    kind: SuggestionKind
    path: str  # a pattern for the config: "$.items[*].updatedAt"
    value: float | None  # the tolerance; None for the other kinds
    evidence: str
    confidence: Confidence


# --- suggesting --------------------------------------------------------------------------


def suggest_rules(
    db: str, run_id: str | None = None, accepted: Sequence[Accepted] | None = None
) -> list[Suggestion]:
    """Suggested rules from the differences stored in `db` (one run, or all).

    `accepted`: the [[accepted]] entries to apply (None: each run's own).
    """
    params = {"run": run_id}
    with reading(db, accepted=accepted) as con:
        if run_id is not None:
            found = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()
            if not found or not found[0]:
                raise ConfigError(f"--run {run_id!r}: no such run in the database")
        endpoints = {
            row[0]: (int(row[1]), int(row[2]))
            for row in con.execute(ENDPOINTS_SQL, params).fetchall()
        }
        path_rows = con.execute(PATHS_SQL, params).fetchall()
        sample = con.execute(ORDER_SAMPLE_SQL, params).fetchall()
        reordered_rows = con.execute(REORDERED_SQL, params).fetchall()
        clusters: dict[str, set[str]] = {}
        for endpoint, cpath, *_ in path_rows:
            clusters.setdefault(endpoint, set()).add(cpath)
    suggestions = [
        s
        for row in path_rows
        if (s := _path_suggestion(row, *endpoints.get(row[0], (0, 0)))) is not None
    ]
    compared = {e: c for e, (c, _) in endpoints.items()}
    order = list(_order_suggestions(sample, clusters, compared))
    # Keyed lists returned in another order are one `reordered` difference each. Order
    # can matter to clients (newest first), so this is only ever a medium suggestion.
    known = {(s.endpoint, s.path) for s in order}
    order += [
        Suggestion(
            endpoint, "ignore_order", cpath, None,
            f"same records in another order in {_share(int(n), compared.get(endpoint, 0))} "
            "compared exchanges; ignore only if no client relies on the order",
            "medium",
        )
        for endpoint, cpath, n in reordered_rows
        if (endpoint, cpath) not in known and _valid_pattern(cpath)
    ]  # fmt: skip
    # Value changes inside a reordered list compare misaligned items: no evidence.
    reordered = [(s.endpoint, s.path + "[") for s in order if s.confidence == "high"]
    suggestions = [
        s
        for s in suggestions
        if (s.kind == "ignore_path" and s.confidence == "high")
        or not any(s.endpoint == e and s.path.startswith(p) for e, p in reordered)
    ]
    kinds = ("ignore_path", "ignore_order", "tolerance")
    return sorted(
        (s for s in [*suggestions, *order] if _valid_endpoint(s.endpoint)),
        key=lambda s: (s.endpoint, kinds.index(s.kind), s.path),
    )


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100.0 * part / whole:.0f}%)" if whole else f"{part}"


def _example(pair: list[str] | None) -> str:
    if not pair:
        return ""

    def cut(text: str | None) -> str:
        text = "null" if text is None else text
        return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"

    return f"; e.g. {cut(pair[0])} -> {cut(pair[1])}"


def _path_suggestion(row: tuple[Any, ...], compared: int, secondary: int) -> Suggestion | None:
    (endpoint, cpath, exchanges, vetoes, noise_status, noise_evidence, changed_ex, changed_rows,
     volatile_rows, near_rows, max_delta, max_rel, n_values, n_distinct, example,
     drift_example) = row  # fmt: skip
    if vetoes or not _valid_pattern(cpath):
        return None
    if noise_status or noise_evidence:
        parts = []
        if noise_evidence:
            of = _share(noise_evidence, secondary) if secondary >= noise_evidence else ""
            parts.append(
                f"primary and secondary differ here in {of or noise_evidence} exchanges"
                + " with a secondary" * bool(of)
            )
        if noise_status:
            parts.append(f"{noise_status} candidate differences marked noise")
        if exchanges:
            parts.append(f"candidate differs in {_share(exchanges, compared)} compared exchanges")
        evidence = "nondeterministic: " + "; ".join(parts) + _example(example)
        return Suggestion(endpoint, "ignore_path", cpath, None, evidence, "high")
    if changed_rows and near_rows == changed_rows and max_delta:
        tolerance = _ceil_one_digit(max_delta)
        evidence = (
            f"numeric drift in {_share(changed_ex, compared)} compared exchanges, "
            f"max |delta| {max_delta:.3g} (max relative {100 * (max_rel or 0):.2g}%), "
            f"all within {100 * RELATIVE_DRIFT:.0f}%" + _example(drift_example)
        )
        confidence: Confidence = "high" if changed_ex >= MIN_EXCHANGES else "medium"
        return Suggestion(endpoint, "tolerance", cpath, tolerance, evidence, confidence)
    if (
        compared >= MIN_EXCHANGES
        and changed_ex >= VOLATILE_SHARE * compared
        and changed_rows
        and volatile_rows == changed_rows
        and n_distinct == n_values
    ):
        evidence = (
            f"value changed in {_share(changed_ex, compared)} compared exchanges; "
            f"all {n_values} values id/timestamp-like and never repeated" + _example(example)
        )
        return Suggestion(endpoint, "ignore_path", cpath, None, evidence, "medium")
    return None


def _ceil_one_digit(x: float) -> float:
    """Smallest number with one significant digit that is >= x (x > 0)."""
    exp = math.floor(math.log10(x))
    digit = math.ceil(x / 10.0**exp)
    value = float(f"{digit}e{exp}")
    while value < x:  # float error in the division
        digit += 1
        value = float(f"{digit}e{exp}")
    return value


def _valid_pattern(path: str) -> bool:
    try:
        parse_pattern(path)
    except PatternError:
        return False
    return True


def _valid_endpoint(endpoint: str) -> bool:
    method, _, template = endpoint.partition(" ")
    try:
        RoutePattern.parse(template)
    except ValueError:
        return False
    return method.isalpha()


def _list_paths(cpaths: Iterable[str]) -> set[str]:
    """Prefixes before each `[*]`: the lists whose items the differences are in."""
    out = set()
    for cpath in cpaths:
        start = 0
        while (i := cpath.find("[*]", start)) >= 0:
            out.add(cpath[:i] or "$")
            start = i + 3
    return {p for p in out if _valid_pattern(p)}


def _pairs(p: Any, c: Any, steps: tuple[PatternStep, ...]) -> Iterator[tuple[Any, Any]]:
    """Values at the same concrete place under a cluster path, in both bodies."""
    if not steps:
        yield p, c
        return
    match, rest = steps[0].match, steps[1:]
    if isinstance(p, list) and isinstance(c, list):
        if match is ANY:
            for a, b in zip(p, c, strict=False):
                yield from _pairs(a, b, rest)
        elif isinstance(match, int) and match < min(len(p), len(c)):
            yield from _pairs(p[match], c[match], rest)
    elif isinstance(p, dict) and isinstance(c, dict):
        keys = (
            [k for k in p if k in c]
            if match is ANY
            else [match]
            if match in p and match in c
            else []
        )
        for key in keys:
            yield from _pairs(p[key], c[key], rest)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class _OrderTally:
    differing: int = 0  # sampled exchanges in which the list differs
    reordered: int = 0  # ... holding the same items in another order
    changed: int = 0  # ... with other items


def _order_suggestions(
    sample: list[tuple[Any, ...]], clusters: dict[str, set[str]], compared: dict[str, int]
) -> Iterator[Suggestion]:
    tallies: dict[tuple[str, str], _OrderTally] = {}
    with_bodies: dict[str, int] = {}
    without: dict[str, int] = {}
    parsed_steps = {
        ep: {lp: parse_pattern(lp).steps for lp in _list_paths(cps)} for ep, cps in clusters.items()
    }
    for endpoint, usable, primary_body, candidate_body in sample:
        if not usable:
            without[endpoint] = without.get(endpoint, 0) + 1
            continue
        try:
            p, c = json.loads(primary_body), json.loads(candidate_body)
        except ValueError:
            without[endpoint] = without.get(endpoint, 0) + 1
            continue
        with_bodies[endpoint] = with_bodies.get(endpoint, 0) + 1
        for list_path, steps in parsed_steps.get(endpoint, {}).items():
            reordered = changed = False
            for a, b in _pairs(p, c, steps):
                if not (isinstance(a, list) and isinstance(b, list)) or a == b:
                    continue
                same = len(a) == len(b) and sorted(map(_canonical, a)) == sorted(map(_canonical, b))
                reordered, changed = reordered or same, changed or not same
            if reordered or changed:
                tally = tallies.setdefault((endpoint, list_path), _OrderTally())
                tally.differing += 1
                tally.reordered += reordered
                tally.changed += changed
    suggested: list[tuple[str, str]] = []
    for (endpoint, list_path), t in sorted(tallies.items()):
        if not t.reordered:
            continue
        if any(e == endpoint and list_path.startswith(lp + "[") for e, lp in suggested):
            continue  # inside a reordered list: its items are misaligned, not reordered
        evidence = (
            f"same items in another order in {t.reordered} of {t.differing} sampled exchanges "
            f"where the list differs"
            + (f", other items in {t.changed}" if t.changed else "")
            + f"; reordered in {_share(t.reordered, compared.get(endpoint, 0))} compared "
            f"exchanges; sample: {with_bodies.get(endpoint, 0)} exchanges with bodies"
            + (f", {without[endpoint]} without stored bodies" if without.get(endpoint) else "")
        )
        confidence: Confidence = "high" if not t.changed else "medium"
        if confidence == "high":
            suggested.append((endpoint, list_path))
        yield Suggestion(endpoint, "ignore_order", list_path, None, evidence, confidence)


# --- writing -----------------------------------------------------------------------------


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _comment(s: Suggestion) -> str:
    return f"# evidence ({s.confidence}): " + " ".join(s.evidence.split())


def suggestions_to_toml(suggestions: Iterable[Suggestion]) -> str:
    """Suggestions as commented `[[endpoints]]` entries, for review before committing."""
    by_endpoint: dict[str, list[Suggestion]] = {}
    for s in suggestions:
        by_endpoint.setdefault(s.endpoint, []).append(s)
    out = [
        "# Rules suggested by `shadow rules suggest`. Review each one: a rule hides",
        "# differences from then on. Confidence: high = direct evidence (the primary",
        "# disagrees with itself, a pure reordering, drift within 1%); medium = a guess.",
    ]
    for endpoint in sorted(by_endpoint):
        method, _, template = endpoint.partition(" ")
        items = by_endpoint[endpoint]
        out += ["", "[[endpoints]]", f"route = {_toml_str(template)}"]
        out.append(f"methods = [{_toml_str(method)}]")
        lists = {k: [s for s in items if s.kind == k] for k in ("ignore_path", "ignore_order")}
        tolerances = [s for s in items if s.kind == "tolerance" and s.value is not None]
        out += ["", "[endpoints.compare]"]
        for kind, key in (("ignore_path", "ignore_paths"), ("ignore_order", "ignore_order")):
            if lists[kind]:
                out.append(f"{key} = [")
                for s in lists[kind]:
                    out += [f"    {_comment(s)}", f"    {_toml_str(s.path)},"]
                out.append("]")
        if tolerances:
            out += ["", "[endpoints.compare.tolerances]"]
            for s in tolerances:
                out += [_comment(s), f"{_toml_str(s.path)} = {s.value!r}"]
    return "\n".join(out) + "\n"


__all__ = [
    "Suggestion",
    "suggest_rules",
    "suggestions_to_toml",
]
