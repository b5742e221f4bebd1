"""SQL the report runs; every aggregate is computed inside DuckDB.

Queries take named parameters: `$run` is a run id, or NULL for all runs; `$eps`
a list of endpoints (the ones shown in detail); `$n` a per-endpoint limit.

Verdicts, difference statuses and endpoint figures come from the one outcome
definition (`shadow/store/sql/outcomes.sql`, installed on the connection by
`shadow.store.outcomes.install`): the report never judges on its own. An
exchange that matched with only noise or accepted differences is `tolerated`.
"""

RUN_FILTER = "(CAST($run AS VARCHAR) IS NULL OR run_id = $run)"
IN_EPS = "endpoint IN (SELECT unnest(CAST($eps AS VARCHAR[])))"
RUN = "CAST($run AS VARCHAR)"

# A table diff of `shadow data diff` is a run of its own (source 'data:<table>'): no
# traffic, its figures are the Data section's (reports/data.py).
DATA_RUN = "starts_with(source, 'data:')"

RUNS = f"""
SELECT run_id, source, started_at, ended_at, primary_url, candidate_url, copies_dropped, exchanges,
    requests, requests_shed, requests_lost, rows_spilled, worker_restarts,
    coalesce({DATA_RUN}, false) AS data_run
FROM runs WHERE {RUN_FILTER} ORDER BY started_at, run_id
"""

# The latest run of traffic (a baseline compares endpoints: never a table diff).
LATEST_RUN = f"""
SELECT run_id FROM runs
WHERE (CAST($exclude AS VARCHAR) IS NULL OR run_id <> $exclude) AND NOT coalesce({DATA_RUN}, false)
ORDER BY started_at DESC, run_id DESC LIMIT 1
"""

RUN_EXISTS = "SELECT count(*) AS n FROM runs WHERE run_id = $run"

ENDPOINT_FIGURES = f"""
SELECT endpoint, requests AS exchanges, compared, matched, differed, tolerated, truncated,
       candidate_errors, primary_errors, skipped, secondary_unusable, sent,
       status_mismatches, primary_q, candidate_q, first_ts, last_ts,
       latency_pairs, latency_excluded
FROM shadow_endpoint_outcomes({RUN})
"""

# The figures and, in the same query, the latency comparison (reports/latency.py).
ENDPOINTS = f"""
SELECT o.*, l.samples AS latency_samples, l.median_ratio, l.p95_ratio, l.shift_ratio,
       l.ci_low, l.ci_high, l.latency_verdict
FROM ({ENDPOINT_FIGURES}) o
LEFT JOIN shadow_latency_comparison({RUN}) l USING (endpoint)
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
per_exchange AS (
    SELECT endpoint, cluster_path AS cluster, kind, status, exchange_id, run_id,
           count(*) AS n, min(reason) AS reason
    FROM shadow_difference_outcomes({RUN}) WHERE {IN_EPS}
    GROUP BY ALL
),
grouped AS (
    SELECT endpoint, cluster, kind, status,
           sum(n)::BIGINT          AS occurrences,
           count(*)                AS exchanges,
           min(exchange_id)        AS example_id,
           min(reason)             AS reason
    FROM per_exchange
    GROUP BY endpoint, cluster, kind, status
),
examples AS (
    SELECT d.endpoint, d.cluster_path AS cluster, d.kind, d.status,
           arg_min(struct_pack(path := d.path, pv := d.primary_value,
                               cv := d.candidate_value, id := d.exchange_id), d.path) AS example
    FROM shadow_difference_outcomes({RUN}) d
    SEMI JOIN grouped g ON g.example_id = d.exchange_id AND g.endpoint = d.endpoint
                       AND g.cluster = d.cluster_path AND g.kind = d.kind AND g.status = d.status
    GROUP BY ALL
)
SELECT g.* EXCLUDE (example_id), x.example, coalesce(ev.n, 0) AS evidence,
       count(*) OVER (PARTITION BY g.endpoint, g.status) AS status_clusters
FROM grouped g
JOIN examples x USING (endpoint, cluster, kind, status)
LEFT JOIN evidence ev ON ev.endpoint = g.endpoint AND ev.cluster_path = g.cluster
QUALIFY row_number() OVER (PARTITION BY g.endpoint, g.status
                           ORDER BY g.exchanges DESC, g.occurrences DESC, g.cluster, g.kind) <= $n
ORDER BY g.endpoint, g.status, g.exchanges DESC, g.occurrences DESC, g.cluster, g.kind
"""

# Up to $n sample exchanges per endpoint: real differences first, then candidate
# errors, then tolerated ones; newest first. Bodies are cut to $cap characters, but a
# conversation's (WebSocket, SSE) is read whole, so it decodes: the store kept it valid
# JSON within its own cap (`*_body_stored_cut`: it left messages out).
SAMPLES = f"""
WITH picked AS (
    SELECT exchange_id, run_id, CASE WHEN tolerated THEN 'tolerated' ELSE verdict END AS outcome
    FROM shadow_exchange_outcomes({RUN})
    -- diff_count/provisional_verdict only narrow the scan: the judged verdict decides
    WHERE (diff_count > 0 OR provisional_verdict = 'candidate_error')
      AND (verdict IN ('differ', 'candidate_error') OR tolerated) AND {IN_EPS}
    QUALIFY row_number() OVER (
        PARTITION BY endpoint
        ORDER BY CASE verdict WHEN 'differ' THEN 0 WHEN 'candidate_error' THEN 1 ELSE 2 END,
                 ts DESC, exchange_id) <= $n
)
SELECT e.exchange_id, e.run_id, e.endpoint, e.ts, e.method, e.path, e.query, p.outcome,
       e.body_kind,
       e.primary_status, e.candidate_status, e.primary_ms, e.candidate_ms,
       e.primary_error, e.candidate_error, e.diffs_truncated, e.request_headers,
       left(e.request_body, $cap)   AS request_body,
       coalesce(e.request_body_truncated, false) OR length(e.request_body) > $cap
                                                   AS request_body_cut,
       e.primary_headers,
       CASE WHEN e.body_kind IN ('websocket', 'sse') THEN e.primary_body
            ELSE left(e.primary_body, $cap) END     AS primary_body,
       coalesce(e.primary_body_truncated, false)   AS primary_body_stored_cut,
       coalesce(e.primary_body_truncated, false) OR length(e.primary_body) > $cap
                                                   AS primary_body_cut,
       e.candidate_headers,
       CASE WHEN e.body_kind IN ('websocket', 'sse') THEN e.candidate_body
            ELSE left(e.candidate_body, $cap) END     AS candidate_body,
       coalesce(e.candidate_body_truncated, false) AS candidate_body_stored_cut,
       coalesce(e.candidate_body_truncated, false) OR length(e.candidate_body) > $cap
                                                   AS candidate_body_cut
FROM exchanges e JOIN picked p USING (exchange_id, run_id)
ORDER BY e.endpoint,
         CASE p.outcome WHEN 'differ' THEN 0 WHEN 'candidate_error' THEN 1 ELSE 2 END,
         e.ts DESC, e.exchange_id
"""

SAMPLE_DIFFERENCES = f"""
SELECT exchange_id, run_id, path, kind, status, reason, primary_value, candidate_value
FROM shadow_difference_outcomes({RUN})
WHERE exchange_id IN (SELECT unnest(CAST($ids AS VARCHAR[])))
ORDER BY exchange_id, CASE status WHEN 'real' THEN 0 ELSE 1 END, path
"""
