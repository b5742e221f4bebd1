"""Generate a large synthetic shadow store inside DuckDB, for the report/check benchmark.

    python benchmarks/make_store.py [--exchanges 1000000] [--out PATH] [--force]

The schema comes from `shadow.store.schema.migrate` on an empty file; the rows are then
made by SQL over `range()` with `hash(i, salt)` as a deterministic random source
(the same file every time, whatever the thread count), never by Python loops:

- 30 endpoints with a skewed traffic share (a few hot ones, a long tail); two
  POST endpoints are only ever `skipped`, as the proxy does by default;
- per-endpoint differ rates from 2 % to 38 % (about 20 % overall), 1 % candidate
  errors (timeouts), 0.3 % primary errors; long-tailed latencies;
- 1-5 differences per differing exchange (value/type changes, added/removed,
  status, header), the first one always 'real', later ones 7 % with primary-vs-secondary
  evidence rows (noise when that exchange had a usable secondary, as read-time judging
  decides) and 3 % 'accepted' provisionally; a request id that differs
  primary-vs-secondary on a third of the exchanges with a secondary; two [[accepted]]
  entries per run;
- headers on every row, bodies (~0.6 KB JSON) on 2 % of rows only;
- three runs over one day.

The file is cached at benchmarks/results/big-<N>.duckdb (gitignored) and rebuilt
only when missing, of another schema version, or with --force.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shadow.store.schema import SCHEMA_VERSION, migrate, schema_version  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_EXCHANGES = 1_000_000

ENDPOINTS = [
    "GET /api/analysis/{id}", "GET /api/analysis/{id}/insights", "GET /api/reports",
    "GET /api/reports/{id}", "GET /api/users/{id}", "GET /api/users/{id}/settings",
    "GET /api/orders", "GET /api/orders/{id}", "GET /api/orders/{id}/items",
    "GET /api/products", "GET /api/products/{id}", "GET /api/products/{id}/reviews",
    "GET /api/search", "GET /api/health", "GET /api/metrics/daily",
    "GET /api/metrics/weekly", "GET /api/insights", "GET /api/insights/{id}",
    "GET /api/teams/{id}", "GET /api/teams/{id}/members", "GET /api/invoices",
    "GET /api/invoices/{id}", "GET /api/catalog", "GET /api/catalog/{id}",
    "GET /api/notifications", "GET /api/exports/{id}", "HEAD /api/health",
    "OPTIONS /api/orders", "POST /api/start-analysis", "POST /api/orders",
]  # fmt: skip

RUNS = """
INSERT INTO runs VALUES
  ('run-1', 'proxy', TIMESTAMP '2024-05-01 00:00:00', TIMESTAMP '2024-05-01 08:00:00',
   'http://legacy:3000', 'http://candidate:8000', NULL, '{}', 12, $n1, 0),
  ('run-2', 'replay:traffic.har', TIMESTAMP '2024-05-01 08:00:00',
   TIMESTAMP '2024-05-01 16:00:00', 'http://legacy:3000', 'http://candidate:8000',
   'http://legacy-2:3000', '{"sample": 1.0}', 0, $n2, 0),
  ('run-3', 'proxy', TIMESTAMP '2024-05-01 16:00:00', NULL,
   'http://legacy:3000', 'http://candidate:8000', 'http://legacy-2:3000', '{}', 3, $n3, 0)
"""

# u(salt): a uniform number in [0, 1) from the row number, deterministic.
EXCHANGES = """
INSERT INTO exchanges
WITH draws AS (
    SELECT i,
           (hash(i, 1) % 1000000) / 1e6 AS u_ep,
           (hash(i, 2) % 1000000) / 1e6 AS u_verdict,
           (hash(i, 3) % 1000000) / 1e6 AS u_lat,
           (hash(i, 4) % 1000000) / 1e6 AS u_cand,
           hash(i, 5) % 100000           AS obj_id,
           hash(i, 6) % 50 = 0           AS with_body,
           hash(i, 7) % 5                AS extra_diffs
    FROM range($n) t(i)
), shaped AS (
    SELECT *,
           least(floor(30 * pow(u_ep, 1.8)), 29)::INTEGER AS e
    FROM draws
), judged AS (
    SELECT *,
           $endpoints[e + 1] AS endpoint,
           CASE
               WHEN starts_with($endpoints[e + 1], 'POST') THEN 'skipped'
               WHEN u_verdict < 0.010 THEN 'candidate_error'
               WHEN u_verdict < 0.013 THEN 'primary_error'
               WHEN u_verdict < 0.013 + 0.02 + 0.36 * ((e * 7) % 11) / 10.0 THEN 'differ'
               ELSE 'match'
           END AS verdict,
           5 + 250 * pow(u_lat, 4) AS p_ms
    FROM shaped
)
SELECT
    'ex' || lpad(i::VARCHAR, 9, '0')                                   AS exchange_id,
    CASE WHEN i < $n * 0.4 THEN 'run-1' WHEN i < $n * 0.8 THEN 'run-2' ELSE 'run-3' END,
    TIMESTAMP '2024-05-01 00:00:00' + to_microseconds((i * (86400000000 // $n))::BIGINT),
    CASE WHEN i < $n * 0.4 OR i >= $n * 0.8 THEN 'proxy' ELSE 'replay:traffic.har' END,
    split_part(endpoint, ' ', 1)                                       AS method,
    endpoint,
    replace(split_part(endpoint, ' ', 2), '{id}', obj_id::VARCHAR)     AS path,
    CASE WHEN endpoint LIKE '%search%' THEN 'q=shoes&page=' || (obj_id % 9) END,
    verdict,
    CASE WHEN verdict = 'skipped' THEN 'POST is not copied' END,
    CASE WHEN verdict = 'primary_error' THEN NULL ELSE 200 END         AS primary_status,
    CASE WHEN verdict IN ('candidate_error', 'skipped') THEN NULL
         WHEN verdict = 'differ' AND extra_diffs = 0 THEN 500
         ELSE 200 END                                                  AS candidate_status,
    CASE WHEN verdict = 'primary_error' THEN 5000 ELSE p_ms END        AS primary_ms,
    CASE WHEN verdict = 'skipped' THEN NULL
         WHEN verdict = 'candidate_error' THEN 5000
         ELSE p_ms * (0.6 + 0.9 * u_cand) END                          AS candidate_ms,
    CASE WHEN verdict = 'primary_error' THEN 'timeout after 5000 ms' END,
    CASE WHEN verdict = 'candidate_error' THEN 'timeout after 5000 ms' END,
    CASE WHEN verdict = 'differ' THEN 1 + extra_diffs ELSE 0 END       AS diff_count,
    false,
    CASE WHEN verdict = 'skipped' THEN NULL ELSE 'json' END,
    CASE WHEN verdict IN ('match', 'differ') AND obj_id % 3 = 0
         THEN 'masked $.requestId' END,
    '[["accept","application/json"],["authorization","[REDACTED]"],["user-agent","bench/1.0"]]',
    NULL, false,
    '[["content-type","application/json"],["x-request-id","' || (hash(i, 8) % 1000000) || '"]]',
    CASE WHEN with_body THEN
        '{"id": ' || obj_id || ', "name": "item-' || obj_id || '", "createdAt": '
        || '"2024-05-02T09:25:00.000Z", "metrics": {"avgOrderValue": 204.63, "orders": '
        || (obj_id % 977) || '}, "items": [' || repeat('{"sku": "A-1", "qty": 2}, ', 12)
        || '{"sku": "Z-9", "qty": 1}], "note": "' || repeat('lorem ipsum ', 8) || '"}' END,
    false,
    CASE WHEN verdict IN ('match', 'differ') THEN
        '[["content-type","application/json"],["server","candidate"]]' END,
    CASE WHEN with_body AND verdict IN ('match', 'differ') THEN
        '{"id": ' || obj_id || ', "name": "item-' || obj_id || '", "createdAt": '
        || CASE WHEN verdict = 'differ'
                THEN '"2024-05-02T09:25:00Z", "metrics": {"avgOrderValue": 204.62, "orders": '
                ELSE '"2024-05-02T09:25:00.000Z", "metrics": {"avgOrderValue": 204.63, "orders": '
           END
        || (obj_id % 977) || '}, "items": [' || repeat('{"sku": "A-1", "qty": 2}, ', 12)
        || '{"sku": "Z-9", "qty": 1}], "note": "' || repeat('lorem ipsum ', 8) || '"}' END,
    false,
    CASE WHEN i >= $n * 0.4 AND verdict <> 'skipped' THEN 200 END,
    CASE WHEN i >= $n * 0.4 AND verdict <> 'skipped' THEN p_ms * 1.02 END,
    NULL
FROM judged
"""

DIFF_PATHS = [
    "$.createdAt", "$.metrics.avgOrderValue", "$.items[{k}].name", "$.items[{k}].price",
    "$.total", "$.currency", "$.updatedAt", "$.owner.email", "$header.content-type", "$.tags",
]  # fmt: skip

DIFFERENCES = """
INSERT INTO differences
WITH picked AS (
    SELECT x.exchange_id, x.run_id, x.endpoint, x.candidate_status, j,
           (hash(x.exchange_id, j) % 10)::INTEGER AS p,
           (hash(x.exchange_id, j, 1) % 100)::INTEGER AS s,
           (hash(x.exchange_id, j, 2) % 20)::INTEGER AS k
    FROM exchanges x, range(5) r(j)
    WHERE x.verdict = 'differ' AND j < x.diff_count
), pathed AS (
    SELECT *,
           CASE WHEN j = 0 AND candidate_status = 500 THEN '$status'
                ELSE replace($paths[p + 1], '{k}', k::VARCHAR) END AS path
    FROM picked
)
SELECT exchange_id, run_id, endpoint, path,
       CASE WHEN path = '$status' THEN 'status'
            WHEN path LIKE '$header.%' THEN 'header'
            WHEN path = '$.tags' THEN 'type_changed'
            WHEN path = '$.owner.email' THEN 'removed'
            WHEN path = '$.updatedAt' THEN 'added'
            ELSE 'value_changed' END AS kind,
       CASE WHEN path = '$status' THEN '200'
            WHEN path = '$.updatedAt' THEN 'null'
            WHEN path = '$.tags' THEN '["a", "b"]'
            ELSE '"2024-05-02T09:25:00.000Z"' END,
       CASE WHEN path = '$status' THEN '500'
            WHEN path = '$.owner.email' THEN 'null'
            WHEN path = '$.tags' THEN '"a,b"'
            ELSE '"2024-05-02T09:25:00Z"' END,
       CASE WHEN path = '$status' OR j = 0 THEN 'real'
            WHEN s < 7 THEN 'noise' WHEN s < 10 THEN 'accepted' ELSE 'real' END AS status,
       CASE WHEN path = '$status' THEN path
            ELSE replace($paths[p + 1], '{k}', '*') END,  -- the cluster path
       CASE WHEN path = '$status' OR j = 0 THEN NULL
            WHEN s < 7 THEN 'differs between primary and secondary'
            WHEN s < 10 THEN 'accepted in shadow.toml' END,
       CASE WHEN run_id = 'run-1' THEN NULL  -- no secondary in the first run
            ELSE path <> '$status' AND j > 0 AND s < 7 END AS secondary_same,
       true AS cluster_first  -- made exact below
FROM pathed
"""

FIRSTS = """
UPDATE differences SET cluster_first = x.rn = 1
FROM (SELECT rowid AS r, row_number() OVER (
          PARTITION BY exchange_id, run_id, cluster_path, kind ORDER BY path) AS rn
      FROM differences) x
WHERE differences.rowid = x.r
"""

# Evidence: the noise-status differences also differed primary-vs-secondary, and a
# volatile request id differs primary-vs-secondary on a third of the exchanges that
# had a secondary (the candidate matching there).
NOISE = """
INSERT INTO noise_differences
SELECT exchange_id, run_id, endpoint, path, cluster_path, kind, cluster_first
FROM differences WHERE secondary_same
UNION ALL
SELECT exchange_id, run_id, endpoint, '$.requestId', '$.requestId', 'value_changed', true
FROM exchanges
WHERE secondary_status IS NOT NULL AND verdict IN ('match', 'differ') AND hash(exchange_id) % 3 = 0
"""

# Two accepted entries per run, so the read-time matching of [[accepted]] does real work.
ACCEPTED = """
INSERT INTO run_accepted
SELECT run_id, e.entry, e.endpoint, e.path, NULL, 'accepted in shadow.toml'
FROM runs, (VALUES (1, 'GET /api/orders/*', '$.currency'),
                   (2, 'GET /api/*', '$.items[*].name')) e(entry, endpoint, path)
"""


def default_path(exchanges: int) -> Path:
    return RESULTS / f"big-{exchanges}.duckdb"


def is_current(path: Path, exchanges: int) -> bool:
    """Whether a cached store exists with this schema version and row count."""
    if not path.exists():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return False
    try:
        if schema_version(con) != SCHEMA_VERSION:
            return False
        row = con.execute("SELECT count(*) FROM exchanges").fetchone()
        return bool(row) and row[0] == exchanges
    except duckdb.Error:
        return False
    finally:
        con.close()


def generate(path: Path, exchanges: int) -> dict[str, float]:
    """Write a new store at `path` (replacing it); return timings and row counts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect(str(tmp))
    try:
        migrate(con)
        n = exchanges
        con.execute(
            RUNS, {"n1": int(n * 0.4), "n2": int(n * 0.8) - int(n * 0.4), "n3": n - int(n * 0.8)}
        )
        con.execute(EXCHANGES, {"n": n, "endpoints": ENDPOINTS})
        t1 = time.perf_counter()
        con.execute(DIFFERENCES, {"paths": DIFF_PATHS})
        con.execute(FIRSTS)
        con.execute(NOISE)
        con.execute(ACCEPTED)
        con.execute("CHECKPOINT")
        counts = {
            t: float(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in ("exchanges", "differences", "noise_differences")
        }
    finally:
        con.close()
    os.replace(tmp, path)
    t2 = time.perf_counter()
    return {
        "exchanges_seconds": t1 - t0,
        "total_seconds": t2 - t0,
        "file_mb": path.stat().st_size / 1e6,
        **counts,
    }


def ensure_store(exchanges: int, path: Path | None = None, force: bool = False) -> Path:
    """The cached store for `exchanges` rows, generated first when needed."""
    path = path or default_path(exchanges)
    if force or not is_current(path, exchanges):
        print(f"generating {exchanges:,} exchanges into {path} ...", flush=True)
        stats = generate(path, exchanges)
        print(describe(stats), flush=True)
    else:
        print(f"using cached {path} ({path.stat().st_size / 1e6:.0f} MB)", flush=True)
    return path


def describe(stats: dict[str, float]) -> str:
    return (
        f"generated {stats['exchanges']:,.0f} exchanges, {stats['differences']:,.0f} differences, "
        f"{stats['noise_differences']:,.0f} noise rows in {stats['total_seconds']:.1f} s "
        f"(exchanges {stats['exchanges_seconds']:.1f} s); file {stats['file_mb']:.0f} MB"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate a large synthetic shadow store.")
    p.add_argument("--exchanges", type=int, default=DEFAULT_EXCHANGES, help="rows in exchanges")
    p.add_argument("--out", default=None, help="file (default: benchmarks/results/big-N.duckdb)")
    p.add_argument("--force", action="store_true", help="regenerate even if cached")
    a = p.parse_args(argv)
    ensure_store(a.exchanges, Path(a.out) if a.out else None, force=a.force)


if __name__ == "__main__":
    main()
