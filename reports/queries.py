"""SQL the report runs; every aggregate is computed inside DuckDB.

Each query takes one parameter twice: a run id, or NULL for all runs.
"""

RUN_FILTER = "(CAST(? AS VARCHAR) IS NULL OR run_id = ?)"

SUMMARY = f"""
SELECT count(*)                                               AS exchanges,
       count(*) FILTER (WHERE verdict IN ('match', 'differ')) AS compared,
       count(*) FILTER (WHERE verdict = 'match')              AS matched,
       count(*) FILTER (WHERE verdict = 'differ')             AS differed,
       count(*) FILTER (WHERE verdict = 'candidate_error')    AS candidate_errors,
       count(*) FILTER (WHERE verdict = 'primary_error')      AS primary_errors,
       count(*) FILTER (WHERE verdict = 'skipped')            AS skipped,
       count(DISTINCT endpoint)                               AS endpoints,
       min(ts)                                                AS first_ts,
       max(ts)                                                AS last_ts
FROM exchanges WHERE {RUN_FILTER}
"""

RUNS = f"""
SELECT run_id, source, started_at, ended_at, primary_url, candidate_url, copies_dropped, exchanges
FROM runs WHERE {RUN_FILTER} ORDER BY started_at
"""

ENDPOINTS = f"""
SELECT endpoint,
       count(*)                                               AS requests,
       count(*) FILTER (WHERE verdict IN ('match', 'differ')) AS compared,
       count(*) FILTER (WHERE verdict = 'match')              AS matched,
       count(*) FILTER (WHERE verdict = 'differ')             AS differed,
       count(*) FILTER (WHERE verdict = 'candidate_error')    AS candidate_errors,
       count(*) FILTER (WHERE verdict = 'primary_error')      AS primary_errors,
       count(*) FILTER (WHERE verdict = 'skipped')            AS skipped,
       count(*) FILTER (WHERE verdict IN ('match', 'differ')
                          AND primary_status <> candidate_status) AS status_mismatches,
       quantile_cont(primary_ms, 0.5)   AS primary_p50,
       quantile_cont(primary_ms, 0.95)  AS primary_p95,
       quantile_cont(candidate_ms, 0.5)  FILTER (WHERE candidate_error IS NULL) AS candidate_p50,
       quantile_cont(candidate_ms, 0.95) FILTER (WHERE candidate_error IS NULL) AS candidate_p95
FROM exchanges WHERE {RUN_FILTER}
GROUP BY endpoint
"""

TOP_FIELDS = f"""
SELECT endpoint, path, kind,
       count(*)                    AS occurrences,
       count(DISTINCT exchange_id) AS exchanges,
       any_value(primary_value)    AS primary_example,
       any_value(candidate_value)  AS candidate_example
FROM differences WHERE {RUN_FILTER}
GROUP BY endpoint, path, kind
QUALIFY row_number() OVER (PARTITION BY endpoint ORDER BY count(*) DESC, path) <= ?
ORDER BY endpoint, occurrences DESC, path
"""

SAMPLES = f"""
SELECT exchange_id, endpoint, ts, method, path, query, verdict, skip_reason,
       primary_status, candidate_status, primary_ms, candidate_ms,
       primary_error, candidate_error, diff_count, diffs_truncated,
       request_headers, request_body, request_body_truncated,
       primary_headers, primary_body, primary_body_truncated,
       candidate_headers, candidate_body, candidate_body_truncated
FROM exchanges WHERE {RUN_FILTER} AND verdict IN ('differ', 'candidate_error')
QUALIFY row_number() OVER (PARTITION BY endpoint ORDER BY ts DESC, exchange_id) <= ?
ORDER BY endpoint, ts DESC
"""

SAMPLE_DIFFERENCES = """
SELECT exchange_id, path, kind, primary_value, candidate_value
FROM differences WHERE exchange_id IN (SELECT unnest(?::VARCHAR[]))
ORDER BY exchange_id, path
"""
