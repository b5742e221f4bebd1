-- Schema version 8: data-migration verification (`shadow data diff`, docs/data.md).
-- A table diff is a run of its own (source 'data:<table>'); these are its facts.
--   data_tables       one row per table compared: both sides' row counts (rows in flight
--                     excluded), what differed (rows only in old, only in new, changed,
--                     keys held twice), and what the comparison cost (segments checked,
--                     segments and rows read from each side)
--   data_differences  the differences of up to --max-rows differing rows (rows_dropped
--                     in data_tables counts the others): `$row[id=42].created_at`, kind,
--                     both values as JSON text (secrets redacted)
--   data_columns      per column, how many changed rows differ in it (every such row,
--                     stored or not)
-- The figures readers show are defined once: shadow_data_tables (outcomes.sql).
CREATE TABLE IF NOT EXISTS data_tables (
    run_id           VARCHAR NOT NULL,
    table_name       VARCHAR NOT NULL,
    old_table        VARCHAR,
    new_table        VARCHAR,
    key_columns      VARCHAR,
    old_url          VARCHAR,
    new_url          VARCHAR,
    old_rows         BIGINT,
    new_rows         BIGINT,
    missing_rows     BIGINT,
    extra_rows       BIGINT,
    changed_rows     BIGINT,
    duplicate_keys   BIGINT,
    in_flight        BIGINT,
    rows_dropped     BIGINT,
    rows_read_old    BIGINT,
    rows_read_new    BIGINT,
    segments_checked BIGINT,
    segments_read    BIGINT,
    bisect           BOOLEAN,
    segments         INTEGER,
    threshold        INTEGER,
    since_column     VARCHAR,
    cutoff           TIMESTAMP,
    only_old         VARCHAR,
    only_new         VARCHAR,
    elapsed_s        DOUBLE
);

CREATE TABLE IF NOT EXISTS data_differences (
    run_id       VARCHAR NOT NULL,
    table_name   VARCHAR NOT NULL,
    row_key      VARCHAR NOT NULL,
    path         VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    column_name  VARCHAR,
    old_value    VARCHAR,
    new_value    VARCHAR
);

CREATE TABLE IF NOT EXISTS data_columns (
    run_id       VARCHAR NOT NULL,
    table_name   VARCHAR NOT NULL,
    column_name  VARCHAR NOT NULL,
    changed_rows BIGINT
);
