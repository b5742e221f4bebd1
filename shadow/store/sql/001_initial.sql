-- Schema version 1: runs, exchanges, differences.
CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,
    source          VARCHAR NOT NULL,      -- 'proxy' or 'replay:<file>'
    started_at      TIMESTAMP NOT NULL,
    ended_at        TIMESTAMP,
    primary_url     VARCHAR,
    candidate_url   VARCHAR,
    secondary_url   VARCHAR,
    options         VARCHAR,               -- JSON text of the run's options
    copies_dropped  BIGINT DEFAULT 0,      -- copies not sent because the queue was full
    exchanges       BIGINT DEFAULT 0
);

CREATE TABLE IF NOT EXISTS exchanges (
    exchange_id              VARCHAR NOT NULL,
    run_id                   VARCHAR NOT NULL,
    ts                       TIMESTAMP NOT NULL,
    source                   VARCHAR NOT NULL,
    method                   VARCHAR NOT NULL,
    endpoint                 VARCHAR NOT NULL,   -- 'GET /api/analysis/{id}'
    path                     VARCHAR NOT NULL,
    query                    VARCHAR,
    verdict                  VARCHAR NOT NULL,   -- match | differ | candidate_error | primary_error | skipped
    skip_reason              VARCHAR,
    primary_status           INTEGER,
    candidate_status         INTEGER,
    primary_ms               DOUBLE,
    candidate_ms             DOUBLE,
    primary_error            VARCHAR,
    candidate_error          VARCHAR,
    diff_count               INTEGER NOT NULL DEFAULT 0,
    diffs_truncated          BOOLEAN NOT NULL DEFAULT false,
    body_kind                VARCHAR,
    notes                    VARCHAR,
    request_headers          VARCHAR,            -- JSON [[name, value], ...], secrets redacted
    request_body             VARCHAR,
    request_body_truncated   BOOLEAN,
    primary_headers          VARCHAR,
    primary_body             VARCHAR,
    primary_body_truncated   BOOLEAN,
    candidate_headers        VARCHAR,
    candidate_body           VARCHAR,
    candidate_body_truncated BOOLEAN
);

CREATE TABLE IF NOT EXISTS differences (
    exchange_id     VARCHAR NOT NULL,
    run_id          VARCHAR NOT NULL,
    endpoint        VARCHAR NOT NULL,
    path            VARCHAR NOT NULL,   -- '$.items[3].name', '$status', '$header.content-type', '$body'
    kind            VARCHAR NOT NULL,   -- value_changed | type_changed | added | removed | status | header
    primary_value   VARCHAR,            -- JSON text
    candidate_value VARCHAR             -- JSON text
);
