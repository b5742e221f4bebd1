-- The outcome definition, version 1: difference status, exchange verdict and endpoint
-- figures, derived at read time from stored facts. Every reader (report, check, export,
-- rules suggest, and later metrics and rollback) uses these macros and nothing else.
--
-- A reader installs them on its own connection (shadow.store.outcomes.install), after
-- filling the temp table `accepted_rules` (the [[accepted]] entries that apply). Each
-- macro takes `run`: a run id, or NULL for every run. See docs/verdicts.md.

-- A usable secondary answered, and with the primary's status: only then is it evidence.
CREATE OR REPLACE TEMP MACRO shadow_usable_secondary(secondary_status, secondary_error,
                                                     primary_status) AS
secondary_error IS NULL AND secondary_status IS NOT NULL
AND coalesce(secondary_status = primary_status, false);

-- Exchanges with a usable secondary whose candidate was compared: the noise evidence.
CREATE OR REPLACE TEMP MACRO shadow_noise_exchanges(run) AS TABLE
SELECT exchange_id, run_id, endpoint
FROM exchanges
WHERE (CAST(run AS VARCHAR) IS NULL OR run_id = run)
  AND verdict IN ('match', 'differ')
  AND shadow_usable_secondary(secondary_status, secondary_error, primary_status);

-- Differences that secondary evidence can explain: a value that changes (or a keyed list
-- in another order) in the JSON body or in a message of a conversation (`$ws...`, `$sse[`).
-- Removed, added, retyped fields, the status, headers
-- and whole-body differences are never noise by secondary evidence.
CREATE OR REPLACE TEMP MACRO shadow_noise_kind(kind, path) AS
kind IN ('value_changed', 'reordered')
AND (path = '$' OR starts_with(path, '$.') OR starts_with(path, '$[')
     OR starts_with(path, '$sse[') OR starts_with(path, '$ws'));

-- Per endpoint, clustered path and kind, over the usable exchanges in scope:
-- n exchanges; k_s with the change primary-vs-secondary; k_c primary-vs-candidate;
-- b with it only vs the candidate, c only vs the secondary (the discordant pairs).
-- Noise when k_s >= 1, n >= 10, and McNemar's paired one-sided test does not find the
-- candidate changing more often than the legacy varies: z = (b - c - 1) / sqrt(b + c)
-- < 2.326 (alpha 0.01), and the excess (k_c - k_s) / n < 0.10.
-- `cluster_first` counts each exchange once per clustered change; `secondary_same` is
-- NULL exactly when the exchange had no usable secondary.
CREATE OR REPLACE TEMP MACRO shadow_noise_fields(run) AS TABLE
WITH sizes AS (
    SELECT endpoint, count(*) AS n FROM shadow_noise_exchanges(run) GROUP BY endpoint
),
candidate AS (
    SELECT endpoint, cluster_path, kind,
           count(*) AS k_c, count(*) FILTER (WHERE secondary_same) AS k_both
    FROM differences
    WHERE (CAST(run AS VARCHAR) IS NULL OR run_id = run)
      AND cluster_first AND secondary_same IS NOT NULL AND shadow_noise_kind(kind, path)
    GROUP BY ALL
),
secondary AS (
    SELECT endpoint, cluster_path, kind, count(*) AS k_s
    FROM noise_differences
    WHERE (CAST(run AS VARCHAR) IS NULL OR run_id = run)
      AND cluster_first AND shadow_noise_kind(kind, path)
    GROUP BY ALL
),
counts AS (
    SELECT coalesce(s.endpoint, c.endpoint) AS endpoint,
           coalesce(s.cluster_path, c.cluster_path) AS cluster_path,
           coalesce(s.kind, c.kind) AS kind,
           coalesce(s.k_s, 0) AS k_s,
           coalesce(c.k_c, 0) AS k_c,
           coalesce(c.k_c, 0) - coalesce(c.k_both, 0) AS b,
           coalesce(s.k_s, 0) - coalesce(c.k_both, 0) AS c
    FROM secondary s FULL OUTER JOIN candidate c
      ON s.endpoint = c.endpoint AND s.cluster_path = c.cluster_path AND s.kind = c.kind
)
SELECT *,
       k_s >= 1 AND n >= 10 AND NOT candidate_worse AS is_noise
FROM (
    SELECT counts.*, sizes.n,
           CASE WHEN b + c = 0 THEN 0.0 ELSE (b - c - 1) / sqrt(b + c) END AS z,
           (k_c - k_s) / sizes.n AS excess,
           -- enough exchanges show the candidate changing it more often than the legacy
           -- varies: a real difference wherever it shows, direct evidence or not
           sizes.n >= 10
               AND ((CASE WHEN b + c = 0 THEN 0.0 ELSE (b - c - 1) / sqrt(b + c) END) >= 2.326
                    OR (k_c - k_s) / sizes.n >= 0.10) AS candidate_worse
    FROM counts JOIN sizes USING (endpoint)
);

-- Every difference in scope with its status (real | noise | accepted) and the reason:
-- 0. never noise when shadow_noise_fields shows the candidate changing that path and
--    kind more often than the legacy varies (candidate_worse), direct evidence or not;
-- 1. noise, direct: the same change (clustered path and kind) also happened between
--    primary and a usable secondary in the same exchange;
-- 2. noise, statistical: shadow_noise_fields says so for the endpoint, path and kind;
-- 3. accepted: the first matching entry of accepted_rules;
-- 4. real otherwise.
CREATE OR REPLACE TEMP MACRO shadow_difference_outcomes_judged(run) AS TABLE
WITH fields AS (
    -- reasons are built once per field, not once per difference
    SELECT endpoint, cluster_path, kind, is_noise, candidate_worse,
           CASE WHEN candidate_worse
                THEN printf('the candidate changes it in %d/%d exchanges, the legacy varies '
                            || 'in %d/%d (McNemar z=%.2f, excess %.0f%%): not noise',
                            k_c, n, k_s, n, z, 100 * excess)
                ELSE printf('changes primary-vs-secondary in %d/%d exchanges and '
                            || 'primary-vs-candidate in %d/%d (McNemar z=%.2f < 2.326)',
                            k_s, n, k_c, n, z)
           END AS why
    FROM shadow_noise_fields(run) WHERE is_noise OR candidate_worse
),
-- Matching depends only on these columns: match each distinct combination once, and
-- only for differences at a path some entry names.
keys AS (
    SELECT DISTINCT run_id, endpoint, path, cluster_path, kind FROM differences
    WHERE (CAST(run AS VARCHAR) IS NULL OR run_id = run)
      AND (path IN (SELECT path FROM accepted_rules)
           OR cluster_path IN (SELECT path FROM accepted_rules))
),
accepted AS (
    SELECT k.run_id, k.endpoint, k.path, k.kind, min(a.entry) AS entry,
           arg_min(printf('accepted by %s [[accepted]] #%d: %s', a.source, a.entry, a.reason),
                   a.entry) AS why
    FROM keys k JOIN accepted_rules a
      ON (a.run_id IS NULL OR a.run_id = k.run_id)
     AND a.endpoint = k.endpoint  -- patterns expanded by the installer (endpoint_matches)
     AND (a.path = k.path OR a.path = k.cluster_path)
     AND (a.kind IS NULL OR a.kind = k.kind)
    GROUP BY ALL
)
SELECT d.exchange_id, d.run_id, d.endpoint, d.path, d.cluster_path, d.kind,
       d.primary_value, d.candidate_value, d.cluster_first,
       CASE WHEN coalesce(f.candidate_worse, false) THEN
                CASE WHEN a.entry IS NOT NULL THEN 'accepted' ELSE 'real' END
            WHEN d.direct OR coalesce(f.is_noise, false) THEN 'noise'
            WHEN a.entry IS NOT NULL THEN 'accepted'
            ELSE 'real' END AS status,
       CASE WHEN coalesce(f.candidate_worse, false) THEN coalesce(a.why, f.why)
            WHEN d.direct
                THEN 'the same change also happened between primary and secondary here'
            WHEN coalesce(f.is_noise, false) THEN f.why
            ELSE a.why
       END AS reason
FROM (SELECT *, coalesce(secondary_same, false) AND shadow_noise_kind(kind, path) AS direct
      FROM differences WHERE CAST(run AS VARCHAR) IS NULL OR run_id = run) d
LEFT JOIN fields f
  ON f.endpoint = d.endpoint AND f.cluster_path = d.cluster_path AND f.kind = d.kind
 AND shadow_noise_kind(d.kind, d.path)
LEFT JOIN accepted a
  ON a.run_id = d.run_id AND a.endpoint = d.endpoint AND a.path = d.path AND a.kind = d.kind;

-- What readers select from; `shadow.store.outcomes.cache` may replace it (and
-- shadow_real_exchanges) by a version that reads the same rows from a table computed
-- once for one scope.
CREATE OR REPLACE TEMP MACRO shadow_difference_outcomes(run) AS TABLE
SELECT * FROM shadow_difference_outcomes_judged(run);

-- Every exchange in scope with its verdict:
-- match | differ (a real difference, or more differences than were kept) |
-- candidate_error | primary_error | skipped.
-- `tolerated`: a match that has differences, all of them noise or accepted.
-- `secondary_unusable`: a secondary was asked but answered with an error or another
-- status than the primary, so the exchange is no evidence of noise.
-- Exchanges with at least one real difference.
CREATE OR REPLACE TEMP MACRO shadow_real_exchanges_judged(run) AS TABLE
SELECT DISTINCT exchange_id, run_id FROM shadow_difference_outcomes(run) WHERE status = 'real';

CREATE OR REPLACE TEMP MACRO shadow_real_exchanges(run) AS TABLE
SELECT * FROM shadow_real_exchanges_judged(run);

CREATE OR REPLACE TEMP MACRO shadow_exchange_outcomes(run) AS TABLE
WITH real AS (FROM shadow_real_exchanges(run)),
judged AS (
    -- Only an exchange with stored differences can be judged otherwise than written,
    -- so only those are joined (half the cost on a large store).
    SELECT e.*,
           CASE WHEN e.verdict NOT IN ('match', 'differ') THEN e.verdict
                WHEN r.exchange_id IS NOT NULL THEN 'differ'
                WHEN coalesce(e.diffs_truncated, false) THEN 'differ'
                ELSE 'match' END AS outcome
    FROM exchanges e LEFT JOIN real r USING (exchange_id, run_id)
    WHERE (CAST(run AS VARCHAR) IS NULL OR e.run_id = run) AND e.diff_count <> 0
    UNION ALL
    -- the writer stores difference rows only with diff_count > 0: as written (a differ
    -- without rows stays differ)
    SELECT e.*, e.verdict AS outcome
    FROM exchanges e
    WHERE (CAST(run AS VARCHAR) IS NULL OR e.run_id = run) AND e.diff_count = 0
)
SELECT * EXCLUDE (verdict, outcome), outcome AS verdict, verdict AS provisional_verdict,
       outcome = 'match' AND diff_count > 0 AS tolerated,
       (secondary_status IS NOT NULL OR secondary_error IS NOT NULL)
           AND verdict IN ('match', 'differ')
           AND NOT shadow_usable_secondary(secondary_status, secondary_error, primary_status)
           AS secondary_unusable
FROM judged;

-- A latency sample fit to compare (schema 6, docs/latency.md): at most 2 ms of our own
-- delay (lag_ms: a copy sent late, or the event loop that timed it stalled at its send or
-- at its answer). The bound is fixed, not a share of the sample's own time: that would
-- keep slow samples and drop fast ones with the same lag, a bias towards "slower".
-- NULL lag (rows before v6, or timed where nothing watched the loop) is taken as it is.
CREATE OR REPLACE TEMP MACRO shadow_latency_usable(lag_ms) AS
lag_ms IS NULL OR lag_ms <= 2.0;

-- A latency pair fit to compare: both backends answered this exchange (compared), and
-- both samples are usable (the candidate's lag_ms, the primary's primary_lag_ms).
CREATE OR REPLACE TEMP MACRO shadow_latency_pair(verdict, primary_ms, candidate_ms,
                                                 primary_error, candidate_error, lag_ms,
                                                 primary_lag_ms) AS
verdict IN ('match', 'differ') AND primary_error IS NULL AND candidate_error IS NULL
AND primary_ms IS NOT NULL AND candidate_ms IS NOT NULL
AND shadow_latency_usable(lag_ms) AND shadow_latency_usable(primary_lag_ms);

-- One row per endpoint: the figures every reader shows and gates on.
-- parity = matched / compared; candidate_error_pct = candidate errors / sent.
-- Latency quantiles (ms, p50 p95 p99) of both backends over the same exchanges: the
-- compared ones whose pair is fit to compare (shadow_latency_pair); latency_pairs counts
-- them, latency_excluded the compared ones left out for our own delay.
CREATE OR REPLACE TEMP MACRO shadow_endpoint_outcomes(run) AS TABLE
SELECT endpoint,
       count(*)                                                 AS requests,
       count(*) FILTER (WHERE verdict <> 'skipped')             AS sent,
       count(*) FILTER (WHERE verdict IN ('match', 'differ'))   AS compared,
       count(*) FILTER (WHERE verdict = 'match')                AS matched,
       count(*) FILTER (WHERE verdict = 'differ')               AS differed,
       count(*) FILTER (WHERE tolerated)                        AS tolerated,
       count(*) FILTER (WHERE verdict = 'differ'
                          AND coalesce(diffs_truncated, false)) AS truncated,
       count(*) FILTER (WHERE verdict = 'candidate_error')      AS candidate_errors,
       count(*) FILTER (WHERE verdict = 'primary_error')        AS primary_errors,
       count(*) FILTER (WHERE verdict = 'skipped')              AS skipped,
       count(*) FILTER (WHERE secondary_unusable)               AS secondary_unusable,
       count(*) FILTER (WHERE verdict IN ('match', 'differ')
                          AND primary_status <> candidate_status) AS status_mismatches,
       100.0 * count(*) FILTER (WHERE verdict = 'match')
           / nullif(count(*) FILTER (WHERE verdict IN ('match', 'differ')), 0) AS parity,
       100.0 * count(*) FILTER (WHERE verdict = 'candidate_error')
           / nullif(count(*) FILTER (WHERE verdict <> 'skipped'), 0)           AS candidate_error_pct,
       quantile_cont(primary_ms, [0.5, 0.95, 0.99])
           FILTER (WHERE shadow_latency_pair(verdict, primary_ms, candidate_ms, primary_error,
                                             candidate_error, lag_ms, primary_lag_ms))
                                                                               AS primary_q,
       quantile_cont(candidate_ms, [0.5, 0.95, 0.99])
           FILTER (WHERE shadow_latency_pair(verdict, primary_ms, candidate_ms, primary_error,
                                             candidate_error, lag_ms, primary_lag_ms))
                                                                               AS candidate_q,
       count(*) FILTER (WHERE shadow_latency_pair(verdict, primary_ms, candidate_ms,
                                                  primary_error, candidate_error, lag_ms,
                                                  primary_lag_ms))             AS latency_pairs,
       count(*) FILTER (WHERE verdict IN ('match', 'differ')
                          AND primary_error IS NULL AND candidate_error IS NULL
                          AND primary_ms IS NOT NULL AND candidate_ms IS NOT NULL
                          AND NOT shadow_latency_pair(verdict, primary_ms, candidate_ms,
                                                      primary_error, candidate_error, lag_ms,
                                                      primary_lag_ms)) AS latency_excluded,
       min(ts) AS first_ts,
       max(ts) AS last_ts
FROM shadow_exchange_outcomes(run)
GROUP BY endpoint;

-- Cutover (schema version 5; see docs/control.md). The candidate failed a request it was
-- asked to answer: a 5xx or a transport error (a timeout included).
CREATE OR REPLACE TEMP MACRO shadow_candidate_failed(candidate_status, candidate_error) AS
candidate_error IS NOT NULL OR coalesce(candidate_status >= 500, false);

-- The candidate was asked to answer the client: it did, or it failed and the primary did.
CREATE OR REPLACE TEMP MACRO shadow_candidate_asked(served_by, fell_back) AS
coalesce(served_by = 'candidate', false) OR coalesce(fell_back, false);

-- Per route (an endpoint's template, all methods) and time bucket of `bucket_s` seconds
-- (NULL: one bucket) over [since, until) (NULL: unbounded): how the candidate does where
-- it answers users. The rollback controller, the report's timeline and `shadow check`
-- read these figures and nothing else. Rates are NULL where nothing was asked.
--   asked             requests the candidate was asked to answer
--   candidate_errors  of those, shadow_candidate_failed
--   fallbacks         of those, answered by the primary after the candidate failed
--   compared          answered by the candidate and compared with a copy to the primary
--                     (reverse shadow): verdict match or differ in the outcome definition
--   mismatches        of those, verdict differ
--   latency_ratio     the candidate's p95 where it answered / the primary's p95
CREATE OR REPLACE TEMP MACRO shadow_route_figures(run, since, until, bucket_s) AS TABLE
WITH x AS (
    SELECT substr(endpoint, strpos(endpoint, ' ') + 1) AS route,
           CASE WHEN bucket_s IS NULL THEN NULL
                ELSE time_bucket(to_microseconds(CAST(bucket_s * 1000000 AS BIGINT)), ts)
           END AS bucket,
           shadow_candidate_asked(served_by, fell_back) AS asked,
           served_by, fell_back, verdict, candidate_status, candidate_error,
           candidate_ms, primary_ms, primary_status, primary_error, mode, ts, lag_ms,
           primary_lag_ms
    FROM shadow_exchange_outcomes(run)
    WHERE (CAST(since AS TIMESTAMP) IS NULL OR ts >= CAST(since AS TIMESTAMP))
      AND (CAST(until AS TIMESTAMP) IS NULL OR ts < CAST(until AS TIMESTAMP))
),
agg AS (
    SELECT route, bucket,
           count(*) AS requests,
           count(*) FILTER (WHERE asked) AS asked,
           count(*) FILTER (WHERE served_by = 'candidate') AS served,
           count(*) FILTER (WHERE asked AND shadow_candidate_failed(candidate_status,
                                                                    candidate_error))
               AS candidate_errors,
           count(*) FILTER (WHERE coalesce(fell_back, false)) AS fallbacks,
           count(*) FILTER (WHERE served_by = 'candidate' AND verdict IN ('match', 'differ'))
               AS compared,
           count(*) FILTER (WHERE served_by = 'candidate' AND verdict = 'differ')
               AS mismatches,
           count(*) FILTER (WHERE verdict IN ('match', 'differ')) AS parity_compared,
           count(*) FILTER (WHERE verdict = 'match') AS parity_matches,
           quantile_cont(candidate_ms, 0.95)
               FILTER (WHERE served_by = 'candidate' AND candidate_error IS NULL
                         AND shadow_latency_usable(lag_ms))
               AS candidate_p95_ms,
           quantile_cont(primary_ms, 0.95)
               FILTER (WHERE primary_error IS NULL AND primary_status IS NOT NULL
                         AND shadow_latency_usable(primary_lag_ms))
               AS primary_p95_ms,
           arg_max(mode, ts) FILTER (WHERE mode IS NOT NULL) AS last_mode
    FROM x GROUP BY route, bucket
)
SELECT *,
       CASE WHEN asked > 0 THEN candidate_errors / asked END AS error_rate,
       CASE WHEN asked > 0 THEN fallbacks / asked END AS fallback_rate,
       CASE WHEN compared > 0 THEN mismatches / compared END AS mismatch_rate,
       CASE WHEN parity_compared > 0 THEN parity_matches / parity_compared END AS parity,
       CASE WHEN primary_p95_ms > 0 THEN candidate_p95_ms / primary_p95_ms END
           AS latency_ratio
FROM agg;

-- Is the candidate slower than the primary? One row per endpoint in scope (docs/latency.md).
-- The samples are the endpoint's fair pairs (shadow_latency_pair); `verdict` reads the
-- same there on stored rows as when judged (judging only turns match and differ into one
-- another), so this reads `exchanges` and judges no difference.
--   pairs            fair pairs
--   median_ratio     candidate p50 / primary p50, and p95_ratio the same for p95, over
--                    every fair pair (the quantiles of shadow_endpoint_outcomes)
--   samples          pairs the test uses: at most 500, those with the smallest
--                    hash(run_id, exchange_id), so the same store gives the same answer
--                    and an endpoint costs at most 500 x 500 differences, made by a join
--   shift_ratio      the Hodges-Lehmann estimate of how many times slower the candidate
--                    is: exp of the median of the samples x samples differences
--                    ln(candidate_ms) - ln(primary_ms) (times floored at 0.001 ms)
--   ci_low, ci_high  its 95 % confidence interval, from the Mann-Whitney test: with n = m
--                    samples a side, C = floor(n*m/2 - 1.96*sqrt(n*m*(n+m+1)/12)) (the
--                    normal approximation, without a correction for ties), the C-th
--                    smallest and the C-th largest difference, exponentiated; NULL under
--                    50 samples
--   latency_verdict  'too few' under 50 samples a side (Kayenta's minimum), else 'slower'
--                    when ci_low > 1, 'faster' when ci_high < 1, 'same' otherwise
-- The test takes the two sides as independent samples, as Kayenta does, although each
-- pair is one request: that only widens the interval when both backends are slow on the
-- same requests. Order statistics: with 500 samples (N = 250 000 differences, C = 116 049)
-- the ranks are constants and quantile_disc finds them without sorting (a fraction
-- (k - 0.5) / N is rank k); an endpoint with fewer sorts its differences.
CREATE OR REPLACE TEMP MACRO shadow_latency_comparison(run) AS TABLE
WITH scope AS (
    SELECT endpoint, run_id, exchange_id, primary_ms, candidate_ms,
           shadow_latency_pair(verdict, primary_ms, candidate_ms, primary_error,
                               candidate_error, lag_ms, primary_lag_ms) AS fair
    FROM exchanges
    WHERE CAST(run AS VARCHAR) IS NULL OR run_id = run
),
figures AS (
    SELECT endpoint,
           count(*) FILTER (WHERE fair)                                  AS pairs,
           least(count(*) FILTER (WHERE fair), 500)                      AS samples,
           quantile_cont(primary_ms, [0.5, 0.95]) FILTER (WHERE fair)    AS primary_q,
           quantile_cont(candidate_ms, [0.5, 0.95]) FILTER (WHERE fair)  AS candidate_q,
           min_by({x: ln(greatest(primary_ms, 0.001)), y: ln(greatest(candidate_ms, 0.001))},
                  hash(run_id, exchange_id), 500) FILTER (WHERE fair)    AS picked
    FROM scope
    GROUP BY endpoint
),
sides AS (
    SELECT endpoint, samples, unnest(picked, recursive := true)
    FROM figures WHERE samples > 0
),
diffs AS (
    -- every primary sample against every candidate sample of the same endpoint
    SELECT p.endpoint, any_value(p.samples) AS n,
           quantile_disc(c.y - p.x, [
               (floor(125000 - 1.96 * sqrt(250000 * 1001 / 12)) - 0.5) / 250000,
               (250000 - floor(125000 - 1.96 * sqrt(250000 * 1001 / 12)) + 0.5) / 250000,
               124999.5 / 250000,
               125000.5 / 250000]) FILTER (WHERE p.samples = 500)         AS at_500,
           list(c.y - p.x) FILTER (WHERE p.samples < 500)                AS unsorted
    FROM sides p JOIN sides c USING (endpoint)
    GROUP BY p.endpoint
),
ranked AS (
    SELECT endpoint, n, at_500, list_sort(unsorted) AS sorted, n * n AS big_n,
           CAST(floor(n * n / 2 - 1.96 * sqrt(n * n * (2 * n + 1) / 12)) AS BIGINT) AS c
    FROM diffs
),
shifts AS (
    SELECT endpoint,
           CASE WHEN n = 500 THEN (at_500[3] + at_500[4]) / 2
                ELSE (sorted[(big_n + 1) // 2] + sorted[big_n // 2 + 1]) / 2 END  AS shift,
           CASE WHEN n < 50 THEN NULL WHEN n = 500 THEN at_500[1]
                ELSE sorted[c] END                                             AS low,
           CASE WHEN n < 50 THEN NULL WHEN n = 500 THEN at_500[2]
                ELSE sorted[big_n + 1 - c] END                                 AS high
    FROM ranked
)
SELECT f.endpoint, f.pairs, f.samples,
       f.candidate_q[1] / nullif(f.primary_q[1], 0) AS median_ratio,
       f.candidate_q[2] / nullif(f.primary_q[2], 0) AS p95_ratio,
       exp(s.shift) AS shift_ratio,
       exp(s.low)   AS ci_low,
       exp(s.high)  AS ci_high,
       CASE WHEN f.samples < 50 THEN 'too few'
            WHEN s.low > 0 THEN 'slower'
            WHEN s.high < 0 THEN 'faster'
            ELSE 'same' END AS latency_verdict
FROM figures f LEFT JOIN shifts s USING (endpoint);

-- Data verification (`shadow data diff`, docs/data.md): per table, the figures of its
-- latest comparison in scope (with `run` given: that run's tables). A table's differing
-- rows are the rows only in old (missing), only in new (extra), changed, and the keys
-- held by more than one row (duplicate_keys); `stored_rows` of them have their
-- differences in data_differences, the other `rows_dropped` are counted only.
-- The report's data section and `shadow check --max-data-differences` read this.
CREATE OR REPLACE TEMP MACRO shadow_data_tables(run) AS TABLE
SELECT t.run_id, t.table_name, t.old_table, t.new_table, t.key_columns,
       t.old_url, t.new_url, r.started_at,
       t.old_rows, t.new_rows, t.missing_rows, t.extra_rows, t.changed_rows,
       t.duplicate_keys, t.in_flight,
       t.missing_rows + t.extra_rows + t.changed_rows + t.duplicate_keys AS differing_rows,
       t.rows_dropped,
       t.rows_read_old, t.rows_read_new, t.rows_read_old + t.rows_read_new AS rows_read,
       t.segments_checked, t.segments_read, t.bisect, t.segments, t.threshold,
       t.since_column, t.cutoff, t.only_old, t.only_new, t.elapsed_s
FROM data_tables t JOIN runs r USING (run_id)
WHERE CAST(run AS VARCHAR) IS NULL OR t.run_id = run
QUALIFY CAST(run AS VARCHAR) IS NOT NULL
     OR row_number() OVER (PARTITION BY t.table_name
                           ORDER BY r.started_at DESC, t.run_id DESC) = 1;

-- The stored differences of the tables shadow_data_tables shows.
CREATE OR REPLACE TEMP MACRO shadow_data_differences(run) AS TABLE
SELECT d.*
FROM data_differences d JOIN shadow_data_tables(run) t
  ON d.run_id = t.run_id AND d.table_name = t.table_name;

-- Per table and column, the changed rows that differ in it.
CREATE OR REPLACE TEMP MACRO shadow_data_columns(run) AS TABLE
SELECT c.table_name, c.column_name, c.changed_rows
FROM data_columns c JOIN shadow_data_tables(run) t
  ON c.run_id = t.run_id AND c.table_name = t.table_name;
