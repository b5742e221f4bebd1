-- Schema version 3: verdicts are derived at read time (shadow/store/sql/outcomes.sql).
-- exchanges.verdict and differences.status/reason are kept as written, but are now the
-- provisional (write-time) judgement; readers use the outcome macros instead.
-- The [[accepted]] entries of the config each run started with, applied to that run's
-- exchanges when a reader is given no config of its own.
CREATE TABLE IF NOT EXISTS run_accepted (
    run_id    VARCHAR NOT NULL,
    entry     INTEGER NOT NULL,     -- position in the config, from 1
    endpoint  VARCHAR NOT NULL,
    path      VARCHAR NOT NULL,
    kind      VARCHAR,
    reason    VARCHAR NOT NULL
);
-- Facts about each exchange's comparisons, so readers count without joining rows:
-- whether the secondary showed the same change, and one row per clustered change.
ALTER TABLE differences ADD COLUMN secondary_same BOOLEAN;
ALTER TABLE differences ADD COLUMN cluster_first BOOLEAN;
ALTER TABLE noise_differences ADD COLUMN cluster_first BOOLEAN;
-- Rows that could not be written to the store and were saved to the spill file
-- `<db>.unflushed-<run>.jsonl` beside it instead (never silently lost).
ALTER TABLE runs ADD COLUMN rows_spilled BIGINT DEFAULT 0;
