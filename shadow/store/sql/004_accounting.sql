-- Schema version 4: every request a run saw is accounted for.
--   requests       requests the source saw and meant to shadow
--   requests_shed  of those, dropped on purpose: the worker was behind (queue full), or
--                  the request came after the stop (served, not shadowed)
--   requests_lost  of those, neither stored, spilled nor shed: the worker died (or was
--                  killed when it overran the drain deadline by a minute). (Exchanges
--                  cut short at the drain deadline are stored, skipped "shutdown: ...".)
--   worker_restarts  times the proxy restarted a worker that died
-- exchanges (rows) + rows_spilled + requests_shed + requests_lost = requests.
-- (A development build wrote version 3 without rows_spilled: make sure it is there.)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS rows_spilled BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN requests BIGINT;
ALTER TABLE runs ADD COLUMN requests_shed BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN requests_lost BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN worker_restarts INTEGER DEFAULT 0;
