-- Schema version 7: real-time answers (docs/realtime.md).
--   conversations  one row per WebSocket conversation or event stream compared: how many
--                  messages each side had, how each ended ("closed" | "limit" | "error")
--                  and its close code. The messages themselves are the exchange's bodies
--                  (the conversation as JSON, comparators/envelope.py) and their
--                  differences rows of `differences` ($ws[3].progress, $sse[2].data).
CREATE TABLE IF NOT EXISTS conversations (
    exchange_id          VARCHAR,
    run_id               VARCHAR,
    kind                 VARCHAR,
    client_messages      INTEGER,
    primary_messages     INTEGER,
    candidate_messages   INTEGER,
    primary_ended        VARCHAR,
    candidate_ended      VARCHAR,
    primary_close_code   INTEGER,
    candidate_close_code INTEGER,
    dropped              INTEGER
);
