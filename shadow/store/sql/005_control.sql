-- Schema version 5: route by route cutover (shadow.control).
--   exchanges.mode       the route's mode when the request came (legacy | shadow | canary |
--                        candidate); NULL in replays and in rows written before version 5
--   exchanges.served_by  who answered the client: 'primary' or 'candidate' (NULL: primary)
--   exchanges.fell_back  the candidate was asked to answer, failed, and the primary answered
--   events               what happened to the flags and routes: changes (who, why),
--                        rollbacks with their evidence, notifications sent, fallbacks
--                        summarised per minute, flag store outages
ALTER TABLE exchanges ADD COLUMN mode VARCHAR;
ALTER TABLE exchanges ADD COLUMN served_by VARCHAR;
ALTER TABLE exchanges ADD COLUMN fell_back BOOLEAN;
CREATE TABLE IF NOT EXISTS events (
    event_id    VARCHAR,
    run_id      VARCHAR,
    ts          TIMESTAMP,
    kind        VARCHAR,
    route       VARCHAR,
    flag        VARCHAR,
    mode_before VARCHAR,
    mode_after  VARCHAR,
    actor       VARCHAR,
    reason      VARCHAR,
    evidence    VARCHAR
);
