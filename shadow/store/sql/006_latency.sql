-- Schema version 6: latency measured fairly (docs/latency.md).
--   exchanges.lag_ms          how much of our own delay touched the candidate's time (ms):
--                             how late its copy went out against its schedule beyond a
--                             few ms (the worker was behind) plus the longest stall of the
--                             sender's event loop while the copy was in flight.
--   exchanges.primary_lag_ms  the same for the primary's time: the longest stall of the
--                             proxy's event loop while the request was out.
-- NULL: not timed by us (or a row before v6). A pair where either is over
-- shadow_latency_usable's bound is left out of latency comparisons.
ALTER TABLE exchanges ADD COLUMN lag_ms DOUBLE;
ALTER TABLE exchanges ADD COLUMN primary_lag_ms DOUBLE;
