-- Schema version 2: a secondary (second legacy instance) and the status of each difference.
ALTER TABLE exchanges ADD COLUMN secondary_status INTEGER;
ALTER TABLE exchanges ADD COLUMN secondary_ms DOUBLE;
ALTER TABLE exchanges ADD COLUMN secondary_error VARCHAR;
-- 'real': counts against parity; 'noise': the field also differs between primary and
-- secondary, so it is nondeterministic; 'accepted': a known difference accepted in the config.
ALTER TABLE differences ADD COLUMN status VARCHAR DEFAULT 'real';
-- Normalized path: list indices as [*], for grouping into clusters.
ALTER TABLE differences ADD COLUMN cluster_path VARCHAR;
-- Why a difference is noise or accepted (the evidence or the reason given).
ALTER TABLE differences ADD COLUMN reason VARCHAR;
-- Differences between primary and secondary: the evidence of noise.
CREATE TABLE IF NOT EXISTS noise_differences (
    exchange_id   VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    endpoint      VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,
    cluster_path  VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL
);
