-- The read side's raw records (issue 14): every LLM call inside a run (or outside one,
-- from OpenTelemetry ingest), what the machinery did (system records), the feedback
-- people give on runs, and which run a run retried.

-- One LLM call. Written by RunService.RecordLlmCalls (source 'api') and by OTLP ingest
-- (source 'otlp'), in batches. call_id is the client's id for the call: a retried batch
-- records each call once.
CREATE TABLE llm_calls (
    org_id             text NOT NULL REFERENCES organizations (id),
    id                 text NOT NULL,
    call_id            text NOT NULL,
    -- The run it belongs to; NULL for calls reported without one (still attributed to
    -- the reporting key's agent and counted in analytics).
    run_id             text,
    project_id         text NOT NULL,
    agent_id           text NOT NULL,
    api_key_id         text NOT NULL,
    model              text NOT NULL DEFAULT '',
    provider           text NOT NULL DEFAULT '',
    operation          text NOT NULL DEFAULT '',
    feature            text NOT NULL DEFAULT '',
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    reasoning_tokens   bigint NOT NULL DEFAULT 0,
    cost_micros        bigint NOT NULL DEFAULT 0,
    -- reported (the client's cost), priced (from the catalog), unpriced (no price: 0).
    cost_source        text NOT NULL CHECK (cost_source IN ('reported', 'priced', 'unpriced')),
    latency_ms         bigint,
    status             text NOT NULL CHECK (status IN ('ok', 'error')),
    error_type         text NOT NULL DEFAULT '',
    started_at         timestamptz NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    -- Recorded after its run had settled.
    late               boolean NOT NULL DEFAULT false,
    source             text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'otlp')),
    trace_id           text NOT NULL DEFAULT '',
    span_id            text NOT NULL DEFAULT '',
    attributes         jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, call_id),
    FOREIGN KEY (org_id, run_id) REFERENCES runs (org_id, id),
    CONSTRAINT llm_calls_bounded CHECK (
        input_tokens BETWEEN 0 AND 1000000000000 AND output_tokens BETWEEN 0 AND 1000000000000
        AND cache_read_tokens BETWEEN 0 AND 1000000000000 AND cache_write_tokens BETWEEN 0 AND 1000000000000
        AND reasoning_tokens BETWEEN 0 AND 1000000000000
        AND cost_micros BETWEEN 0 AND 1000000000000000 AND (latency_ms IS NULL OR latency_ms >= 0))
);
CREATE INDEX llm_calls_org_time ON llm_calls (org_id, started_at, id);
CREATE INDEX llm_calls_run ON llm_calls (org_id, run_id, started_at) WHERE run_id IS NOT NULL;

-- Prices of the token kinds beyond input and output (micro-dollars per million tokens);
-- NULL: the input price applies to cache reads and writes, the output price to reasoning.
ALTER TABLE model_prices
    ADD COLUMN cache_read_micros_per_mtok  bigint CHECK (cache_read_micros_per_mtok BETWEEN 0 AND 1000000000000),
    ADD COLUMN cache_write_micros_per_mtok bigint CHECK (cache_write_micros_per_mtok BETWEEN 0 AND 1000000000000),
    ADD COLUMN reasoning_micros_per_mtok   bigint CHECK (reasoning_micros_per_mtok BETWEEN 0 AND 1000000000000);

-- What the machinery did, written by the code that did it: workflow started, settlement
-- retried or dead-lettered, anomaly batch ran, schedule skipped, delivery attempt failed,
-- channel disabled, outbox relay lag, retention pass. org_id is NULL for what concerns no
-- one organization (a retention pass).
CREATE TABLE system_records (
    seq          bigserial PRIMARY KEY,
    id           text NOT NULL UNIQUE,
    org_id       text REFERENCES organizations (id),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    message      text NOT NULL,
    run_id       text NOT NULL DEFAULT '',
    incident_id  text NOT NULL DEFAULT '',
    alert_id     text NOT NULL DEFAULT '',
    workflow_id  text NOT NULL DEFAULT '',
    data         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX system_records_org_time ON system_records (org_id, occurred_at, seq);
CREATE INDEX system_records_run ON system_records (org_id, run_id) WHERE run_id <> '';
CREATE INDEX system_records_incident ON system_records (org_id, incident_id) WHERE incident_id <> '';

-- Feedback people (or agents) attach to runs: a score in [0, 1] (thumbs up = 1, down =
-- 0, five stars = 1.0), an optional label and comment. feedback_id is the client's id.
CREATE TABLE run_feedback (
    org_id      text NOT NULL REFERENCES organizations (id),
    id          text NOT NULL,
    feedback_id text NOT NULL,
    run_id      text NOT NULL,
    score       double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    label       text NOT NULL DEFAULT '',
    comment     text NOT NULL DEFAULT '',
    api_key_id  text NOT NULL,
    user_id     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, feedback_id),
    FOREIGN KEY (org_id, run_id) REFERENCES runs (org_id, id)
);
CREATE INDEX run_feedback_org_time ON run_feedback (org_id, created_at);
CREATE INDEX run_feedback_run ON run_feedback (org_id, run_id);

-- A run admitted as a retry of an earlier one (AdmitRun retry_of): recovery statistics
-- follow these links.
ALTER TABLE runs ADD COLUMN retry_of text;
CREATE INDEX runs_retry_of ON runs (org_id, retry_of) WHERE retry_of IS NOT NULL;
