"""SQL the report runs; every aggregate is computed inside DuckDB.

Queries take named parameters: `$run` is a run id, or NULL for all runs; `$eps`
a list of endpoints (the ones shown in detail); `$n` a per-endpoint limit.

An exchange's *outcome* is its verdict, except that a `differ` whose kept
differences are all `noise` or `accepted` (and were not cut off) is `tolerated`:
it counts as matching for parity, and is shown apart.
"""

RUN_FILTER = "(CAST($run AS VARCHAR) IS NULL OR run_id = $run)"
IN_EPS = "endpoint IN (SELECT unnest(CAST($eps AS VARCHAR[])))"

# Exchanges in scope with their outcome; a prefix for the queries below.
SCOPED = f"""
WITH tolerated AS (
    SELECT exchange_id, run_id FROM differences WHERE {RUN_FILTER}
    GROUP BY exchange_id, run_id
    HAVING bool_and(coalesce(status, 'real') <> 'real')
),
scoped AS (
    SELECT e.*,
           CASE WHEN e.verdict = 'differ' AND t.exchange_id IS NOT NULL
                     AND NOT coalesce(e.diffs_truncated, false)
                THEN 'tolerated' ELSE e.verdict END AS outcome
    FROM exchanges e LEFT JOIN tolerated t USING (exchange_id, run_id)
    WHERE {RUN_FILTER}
)
"""

_COUNTS = """
       count(*)                                                           AS exchanges,
       count(*) FILTER (WHERE outcome IN ('match', 'differ', 'tolerated')) AS compared,
       count(*) FILTER (WHERE outcome IN ('match', 'tolerated'))           AS matched,
       count(*) FILTER (WHERE outcome = 'differ')                          AS differed,
       count(*) FILTER (WHERE outcome = 'tolerated')                       AS tolerated,
       count(*) FILTER (WHERE outcome = 'candidate_error')                 AS candidate_errors,
       count(*) FILTER (WHERE outcome = 'primary_error')                   AS primary_errors,
       count(*) FILTER (WHERE outcome = 'skipped')                         AS skipped
"""

SUMMARY = f"""{SCOPED}
SELECT {_COUNTS},
       count(DISTINCT endpoint) AS endpoints,
       min(ts)                  AS first_ts,
       max(ts)                  AS last_ts
FROM scoped
"""

RUNS = f"""
SELECT run_id, source, started_at, ended_at, primary_url, candidate_url, copies_dropped, exchanges
FROM runs WHERE {RUN_FILTER} ORDER BY started_at, run_id
"""

LATEST_RUN = """
SELECT run_id FROM runs
WHERE CAST($exclude AS VARCHAR) IS NULL OR run_id <> $exclude
ORDER BY started_at DESC, run_id DESC LIMIT 1
"""

RUN_EXISTS = "SELECT count(*) AS n FROM runs WHERE run_id = $run"

ENDPOINTS = f"""{SCOPED}
SELECT endpoint, {_COUNTS},
       count(*) FILTER (WHERE outcome <> 'skipped') AS sent,
       count(*) FILTER (WHERE outcome IN ('match', 'differ', 'tolerated')
                          AND primary_status <> candidate_status) AS status_mismatches,
       quantile_cont(primary_ms, [0.5, 0.95, 0.99])
           FILTER (WHERE primary_error IS NULL)                        AS primary_q,
       quantile_cont(candidate_ms, [0.5, 0.95, 0.99])
           FILTER (WHERE candidate_error IS NULL AND outcome <> 'skipped') AS candidate_q
FROM scoped
GROUP BY endpoint
"""

# Latency histogram: log2 buckets, -1 (< 1 ms) to 15 (>= 32.768 s), per backend.
HIST_LOW, HIST_HIGH = -1, 15
_BUCKET = (
    "least(greatest(CAST(floor(log2(greatest({col}, 0.5))) AS INTEGER), "
    f"{HIST_LOW}), {HIST_HIGH})"
)
HISTOGRAM = f"""
SELECT endpoint, 'primary' AS side, {_BUCKET.format(col="primary_ms")} AS bucket, count(*) AS n
FROM exchanges
WHERE {RUN_FILTER} AND {IN_EPS} AND primary_ms IS NOT NULL AND primary_error IS NULL
GROUP BY endpoint, bucket
UNION ALL
SELECT endpoint, 'candidate' AS side, {_BUCKET.format(col="candidate_ms")} AS bucket, count(*) AS n
FROM exchanges
WHERE {RUN_FILTER} AND {IN_EPS} AND candidate_ms IS NOT NULL AND candidate_error IS NULL
      AND verdict <> 'skipped'
GROUP BY endpoint, bucket
ORDER BY endpoint, side, bucket
"""

# Difference clusters per endpoint, cluster path, kind and status; at most $n per status.
CLUSTERS = f"""
WITH evidence AS (
    SELECT endpoint, cluster_path, count(*) AS n FROM noise_differences
    WHERE {RUN_FILTER} AND {IN_EPS}
    GROUP BY endpoint, cluster_path
),
grouped AS (
    SELECT endpoint,
           coalesce(cluster_path, path)    AS cluster,
           kind,
           coalesce(status, 'real')        AS status,
           count(*)                        AS occurrences,
           count(DISTINCT exchange_id)     AS exchanges,
           arg_min(struct_pack(path := path, pv := primary_value, cv := candidate_value,
                               id := exchange_id), exchange_id) AS example,
           min(reason)                     AS reason
    FROM differences WHERE {RUN_FILTER} AND {IN_EPS}
    GROUP BY endpoint, cluster, kind, status
)
SELECT g.*, coalesce(ev.n, 0) AS evidence,
       count(*) OVER (PARTITION BY g.endpoint, g.status) AS status_clusters
FROM grouped g
LEFT JOIN evidence ev ON ev.endpoint = g.endpoint AND ev.cluster_path = g.cluster
QUALIFY row_number() OVER (PARTITION BY g.endpoint, g.status
                           ORDER BY g.exchanges DESC, g.occurrences DESC, g.cluster, g.kind) <= $n
ORDER BY g.endpoint, g.status, g.exchanges DESC, g.occurrences DESC, g.cluster, g.kind
"""

# Up to $n sample exchanges per endpoint: real differences first, then candidate
# errors, then tolerated ones; newest first. Bodies are cut to $cap characters.
SAMPLES = f"""{SCOPED},
picked AS (
    SELECT exchange_id, run_id, outcome FROM scoped
    WHERE outcome IN ('differ', 'candidate_error', 'tolerated') AND {IN_EPS}
    QUALIFY row_number() OVER (
        PARTITION BY endpoint
        ORDER BY CASE outcome WHEN 'differ' THEN 0 WHEN 'candidate_error' THEN 1 ELSE 2 END,
                 ts DESC, exchange_id) <= $n
)
SELECT e.exchange_id, e.run_id, e.endpoint, e.ts, e.method, e.path, e.query, p.outcome,
       e.primary_status, e.candidate_status, e.primary_ms, e.candidate_ms,
       e.primary_error, e.candidate_error, e.diffs_truncated, e.request_headers,
       left(e.request_body, $cap)   AS request_body,
       coalesce(e.request_body_truncated, false) OR length(e.request_body) > $cap
                                                   AS request_body_cut,
       e.primary_headers,
       left(e.primary_body, $cap)   AS primary_body,
       coalesce(e.primary_body_truncated, false) OR length(e.primary_body) > $cap
                                                   AS primary_body_cut,
       e.candidate_headers,
       left(e.candidate_body, $cap) AS candidate_body,
       coalesce(e.candidate_body_truncated, false) OR length(e.candidate_body) > $cap
                                                   AS candidate_body_cut
FROM exchanges e JOIN picked p USING (exchange_id, run_id)
ORDER BY e.endpoint,
         CASE p.outcome WHEN 'differ' THEN 0 WHEN 'candidate_error' THEN 1 ELSE 2 END,
         e.ts DESC, e.exchange_id
"""

SAMPLE_DIFFERENCES = """
SELECT exchange_id, run_id, path, kind, coalesce(status, 'real') AS status, reason,
       primary_value, candidate_value
FROM differences
WHERE exchange_id IN (SELECT unnest(CAST($ids AS VARCHAR[])))
ORDER BY exchange_id, CASE coalesce(status, 'real') WHEN 'real' THEN 0 ELSE 1 END, path
"""
