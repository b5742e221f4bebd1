"""The one outcome definition, installed on a reader's connection.

`shadow/store/sql/outcomes.sql` defines, as DuckDB table macros, the status of
every difference (real / noise / accepted), the verdict of every exchange and
the figures of every endpoint, all derived at read time from stored facts. Every
reader (report, check, export, rules suggest, and later metrics and rollback)
calls `install` on its connection and selects from these macros; none derives a
verdict, a parity or an error rate on its own.

The [[accepted]] entries that apply are those of the config the reader was
given; without one, each run's own entries (stored in `run_accepted` when the
run started) apply to that run.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

import duckdb

from shadow.config.endpoints import endpoint_matches

if TYPE_CHECKING:
    from shadow.config.loader import Accepted


OUTCOMES_VERSION = 1

# Macro names, for readers: each takes the run id (or NULL for every run).
DIFFERENCES = "shadow_difference_outcomes"
EXCHANGES = "shadow_exchange_outcomes"
ENDPOINTS = "shadow_endpoint_outcomes"
NOISE_FIELDS = "shadow_noise_fields"

_ACCEPTED_TABLE = """
CREATE OR REPLACE TEMP TABLE accepted_rules (
    run_id VARCHAR, entry INTEGER, endpoint VARCHAR, path VARCHAR, kind VARCHAR,
    reason VARCHAR, source VARCHAR
)
"""
_STORED_ENTRIES = "SELECT run_id, entry, endpoint, path, kind, reason FROM run_accepted"
# The (run, endpoint) pairs an entry could apply to: differences at a path some entry names.
_CANDIDATES = """
SELECT DISTINCT run_id, endpoint FROM differences
WHERE path IN (SELECT unnest(CAST(? AS VARCHAR[])))
   OR cluster_path IN (SELECT unnest(CAST(? AS VARCHAR[])))
"""
_GLOB_CHARS = frozenset("*?[")


def _definition() -> str:
    return resources.files("shadow.store").joinpath("sql", "outcomes.sql").read_text("utf-8")


def _fill_rules(
    con: duckdb.DuckDBPyConnection,
    entries: Sequence[tuple[str | None, int, str, str, str | None, str, str]],
) -> None:
    """One row of accepted_rules per entry and (run, endpoint) it names.

    Only endpoints with a difference at a path some entry names are candidates, and
    a run-scoped entry only meets its own run's endpoints; plain (non-glob) patterns
    are looked up, not matched one by one.
    """
    paths = sorted({e[3] for e in entries})
    candidates = con.execute(_CANDIDATES, [paths, paths]).fetchall()
    by_run: dict[str, set[str]] = {}
    for run, endpoint in candidates:
        by_run.setdefault(run, set()).add(endpoint)
    everywhere = set().union(*by_run.values()) if by_run else set()
    rows = []
    for run, entry, pattern, path, kind, reason, where in entries:
        pool = everywhere if run is None else by_run.get(run, set())
        if _GLOB_CHARS.isdisjoint(pattern):
            names = [pattern] if pattern in pool else []
        else:
            names = [ep for ep in pool if endpoint_matches(pattern, ep)]
        rows += [(run, entry, name, path, kind, reason, where) for name in names]
    if not rows:
        return
    import pyarrow as pa  # only when there are rows to load (readers start without it)

    cols = list(zip(*rows, strict=True))
    names = ["run_id", "entry", "endpoint", "path", "kind", "reason", "source"]
    table = pa.table(dict(zip(names, cols, strict=True)))
    con.register("_accepted_rows", table)
    try:
        con.execute("INSERT INTO accepted_rules SELECT * FROM _accepted_rows")
    finally:
        con.unregister("_accepted_rows")


def install(
    con: duckdb.DuckDBPyConnection,
    accepted: Sequence[Accepted] | None = None,
    source: str = "config",
) -> None:
    """Define the outcome macros on `con` (a read-only connection will do).

    `accepted`: the [[accepted]] entries of the reader's config, applied to every
    run; None: each run's stored entries apply to that run. An entry's endpoint
    pattern is matched here, in Python, by the same function the writer uses
    (`endpoint_matches`), against the endpoints of the stored differences:
    `accepted_rules` holds one row per entry and (run, endpoint) it names.
    """
    con.execute(_ACCEPTED_TABLE)
    entries: list[tuple[str | None, int, str, str, str | None, str, str]]
    if accepted is None:
        entries = [
            (run, entry, endpoint, path, kind, reason, f"run {run}")
            for run, entry, endpoint, path, kind, reason in con.execute(_STORED_ENTRIES).fetchall()
        ]
    else:
        entries = [
            (None, i + 1, a.endpoint, a.path, a.kind, a.reason, source)
            for i, a in enumerate(accepted)
        ]
    if entries:
        _fill_rules(con, entries)
    con.execute(_definition())


# Macros a reader may cache for one scope (in this order: the second reads the first);
# each `X` is by definition `SELECT * FROM X_judged(run)`.
_CACHEABLE = ("shadow_difference_outcomes", "shadow_real_exchanges")


def _literal(run_id: str | None) -> str:
    return "NULL" if run_id is None else "'" + run_id.replace("'", "''") + "'"


def cache(con: duckdb.DuckDBPyConnection, run_id: str | None) -> None:
    """Judge the differences of one scope once, for a reader that asks many questions.

    The statuses of `run_id`'s scope (and the exchanges with a real difference) are
    computed by the definition into temp tables, and `shadow_difference_outcomes` /
    `shadow_real_exchanges` then read them from there for that scope; any other
    scope is still judged afresh. Nothing changes in what the macros answer; the
    report calls this so that its queries share one judgement.
    """
    scope = _literal(run_id)
    for macro in _CACHEABLE:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {macro}_cache AS "
            f"SELECT * FROM {macro}_judged(CAST(? AS VARCHAR))",
            [run_id],
        )
        # The scope is a literal, so the optimizer drops the branch that cannot apply.
        con.execute(
            f"""
            CREATE OR REPLACE TEMP MACRO {macro}(run) AS TABLE
            SELECT * FROM {macro}_cache WHERE run IS NOT DISTINCT FROM {scope}
            UNION ALL
            SELECT * FROM {macro}_judged(run) WHERE run IS DISTINCT FROM {scope}
            """,
            [],
        )


def verdict_counts(con: duckdb.DuckDBPyConnection, run_id: str | None) -> dict[str, int]:
    """Exchanges per judged verdict (installed macros; `run_id` None: every run)."""
    found = con.execute(
        f"SELECT verdict, count(*) FROM {EXCHANGES}(CAST(? AS VARCHAR)) GROUP BY verdict",
        [run_id],
    ).fetchall()
    return {str(v): int(n) for v, n in found}


__all__ = [
    "DIFFERENCES",
    "ENDPOINTS",
    "EXCHANGES",
    "NOISE_FIELDS",
    "OUTCOMES_VERSION",
    "cache",
    "install",
    "verdict_counts",
]
