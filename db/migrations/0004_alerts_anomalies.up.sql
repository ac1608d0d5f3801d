-- Anomaly detection (daily usage rollups, per-organization settings, anomalies and the
-- batches that found them) and alerting (channels, routes, alerts, deliveries with every
-- attempt, in-app notifications).

-- ---------------------------------------------------------------------------------------
-- Anomalies
-- ---------------------------------------------------------------------------------------

-- Detection settings per organization; an organization without a row uses the defaults.
-- Thresholds are in standard deviations (z-score) or their robust equivalent (IQR / 1.349).
CREATE TABLE anomaly_settings (
    org_id             text PRIMARY KEY REFERENCES organizations (id),
    enabled            boolean NOT NULL DEFAULT true,
    metrics            text[] NOT NULL DEFAULT '{cost,tokens,error_rate,latency}',
    methods            text[] NOT NULL DEFAULT '{zscore,iqr}',
    info_threshold     float8 NOT NULL DEFAULT 2,
    warning_threshold  float8 NOT NULL DEFAULT 3,
    high_threshold     float8 NOT NULL DEFAULT 4,
    critical_threshold float8 NOT NULL DEFAULT 5,
    lookback_days      integer NOT NULL DEFAULT 28 CHECK (lookback_days BETWEEN 3 AND 366),
    min_data_points    integer NOT NULL DEFAULT 7 CHECK (min_data_points >= 3),
    -- error_rate and latency of a day count only when the entity had this many runs.
    min_daily_runs     integer NOT NULL DEFAULT 20 CHECK (min_daily_runs >= 1),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (0 < info_threshold AND info_threshold <= warning_threshold
           AND warning_threshold <= high_threshold AND high_threshold <= critical_threshold)
);

-- The last day (in the organization's time zone) scheduled batches have evaluated, so a
-- batch after an outage catches up on the days it missed.
CREATE TABLE anomaly_progress (
    org_id            text PRIMARY KEY REFERENCES organizations (id),
    evaluated_through date NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Usage per organization, day (the organization's calendar day) and entity: the series
-- detection reads. A day that has ended never changes (cost records are stamped when they
-- are written), so its rollup is computed once and reused by every later batch.
CREATE TABLE usage_daily (
    org_id         text NOT NULL REFERENCES organizations (id),
    entity_type    text NOT NULL CHECK (entity_type IN ('organization', 'agent', 'api_key', 'model')),
    entity_id      text NOT NULL,
    day            date NOT NULL,
    cost_micros    bigint NOT NULL,
    tokens         bigint NOT NULL,
    runs           bigint NOT NULL,
    failed         bigint NOT NULL,
    latency_sum_ms bigint NOT NULL,
    latency_count  bigint NOT NULL,
    PRIMARY KEY (org_id, entity_type, entity_id, day)
);
CREATE INDEX usage_daily_org_day ON usage_daily (org_id, day);

-- Which days of an organization are rolled up; complete: the day had ended when it was.
CREATE TABLE usage_days (
    org_id    text NOT NULL REFERENCES organizations (id),
    day       date NOT NULL,
    records   bigint NOT NULL,
    complete  boolean NOT NULL,
    rolled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, day)
);

-- Each cost record carries its run's latency (settlement writes it), so that rollups read
-- cost_records alone (joining runs for it cost a hash of the whole runs table per day
-- rolled up).
ALTER TABLE cost_records ADD COLUMN latency_ms bigint;
UPDATE cost_records c SET latency_ms = r.latency_ms FROM runs r WHERE r.id = c.run_id;

-- Rolls one day of an organization up from its cost records: one pass with grouping sets
-- for the organization, every agent, API key and model. Recomputes the day from scratch, so it is idempotent; concurrent calls for the
-- same day serialise on an advisory lock.
CREATE FUNCTION usage_daily_rollup(p_org_id text, p_day date, p_start timestamptz, p_end timestamptz, p_complete boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('usage_daily:' || p_org_id), (p_day - date '2000-01-01'));
    DELETE FROM usage_daily WHERE org_id = p_org_id AND day = p_day;
    INSERT INTO usage_daily (org_id, entity_type, entity_id, day, cost_micros, tokens, runs, failed, latency_sum_ms, latency_count)
    SELECT p_org_id,
           CASE WHEN GROUPING(c.agent_id) = 0 THEN 'agent'
                WHEN GROUPING(c.api_key_id) = 0 THEN 'api_key'
                WHEN GROUPING(c.model) = 0 THEN 'model'
                ELSE 'organization' END,
           CASE WHEN GROUPING(c.agent_id) = 0 THEN c.agent_id
                WHEN GROUPING(c.api_key_id) = 0 THEN c.api_key_id
                WHEN GROUPING(c.model) = 0 THEN c.model
                ELSE p_org_id END,
           p_day,
           sum(c.cost_micros), sum(c.input_tokens + c.output_tokens), count(*),
           count(*) FILTER (WHERE c.run_status = 'failed'),
           coalesce(sum(c.latency_ms), 0), count(c.latency_ms)
    FROM cost_records c
    WHERE c.org_id = p_org_id AND c.recorded_at >= p_start AND c.recorded_at < p_end
    GROUP BY GROUPING SETS ((), (c.agent_id), (c.api_key_id), (c.model))
    HAVING count(*) > 0;
    SELECT coalesce(sum(u.runs), 0) INTO n FROM usage_daily u
    WHERE u.org_id = p_org_id AND u.day = p_day AND u.entity_type = 'organization';
    INSERT INTO usage_days (org_id, day, records, complete, rolled_at)
    VALUES (p_org_id, p_day, n, p_complete, now())
    ON CONFLICT (org_id, day) DO UPDATE
    SET records = EXCLUDED.records, complete = EXCLUDED.complete, rolled_at = EXCLUDED.rolled_at;
    RETURN n;
END
$$;

-- One execution of detection for one organization: on demand (RunAnomalyDetection) or by
-- the daily schedule.
CREATE TABLE anomaly_runs (
    org_id            text NOT NULL REFERENCES organizations (id),
    id                text PRIMARY KEY,
    workflow_id       text NOT NULL,
    trigger           text NOT NULL CHECK (trigger IN ('schedule', 'api')),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    -- The day asked for (on demand), or NULL for "the days due".
    requested_day     date,
    days              date[] NOT NULL DEFAULT '{}',
    series_evaluated  bigint NOT NULL DEFAULT 0,
    anomalies_found   integer NOT NULL DEFAULT 0,
    anomalies_created integer NOT NULL DEFAULT 0,
    incidents_linked  integer NOT NULL DEFAULT 0,
    alerts_raised     integer NOT NULL DEFAULT 0,
    error             text NOT NULL DEFAULT '',
    requested_by      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    UNIQUE (org_id, id),
    UNIQUE (org_id, workflow_id)
);
CREATE INDEX anomaly_runs_org_created ON anomaly_runs (org_id, created_at, id);

CREATE TABLE anomalies (
    org_id      text NOT NULL REFERENCES organizations (id),
    id          text PRIMARY KEY,
    -- One anomaly per (type, entity, metric, day) or per (budget, window): a batch run
    -- twice finds the same key and creates nothing.
    dedupe_key  text NOT NULL,
    type        text NOT NULL CHECK (type IN ('METRIC_SPIKE', 'BUDGET_EXCEEDED')),
    entity_type text NOT NULL,
    entity_id   text NOT NULL,
    metric      text NOT NULL CHECK (metric IN ('cost', 'tokens', 'error_rate', 'latency')),
    method      text NOT NULL CHECK (method IN ('zscore', 'iqr', 'budget')),
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'high', 'critical')),
    -- The day evaluated (METRIC_SPIKE), or the first day of the budget's window.
    day         date NOT NULL,
    window_start timestamptz NOT NULL,
    window_end  timestamptz NOT NULL,
    baseline    float8 NOT NULL,
    observed    float8 NOT NULL,
    -- Standard deviations (or robust equivalents) from the baseline; for BUDGET_EXCEEDED,
    -- percent over the budget.
    deviation   float8 NOT NULL,
    score       integer NOT NULL CHECK (score BETWEEN 0 AND 100),
    confidence  float8 NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    context     jsonb NOT NULL DEFAULT '{}',
    limit_id    text REFERENCES limits (id),
    incident_id text REFERENCES incidents (id),
    alert_id    text,
    run_id      text REFERENCES anomaly_runs (id),
    detected_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    UNIQUE (org_id, dedupe_key)
);
CREATE INDEX anomalies_org_detected ON anomalies (org_id, detected_at, id);
CREATE INDEX anomalies_incident ON anomalies (incident_id) WHERE incident_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- Alerts
-- ---------------------------------------------------------------------------------------

CREATE TABLE alert_channels (
    org_id                 text NOT NULL REFERENCES organizations (id),
    id                     text PRIMARY KEY,
    name                   text NOT NULL,
    type                   text NOT NULL CHECK (type IN ('webhook', 'slack', 'email', 'in_app')),
    -- webhook and slack: the endpoint; email: the recipients.
    url                    text NOT NULL DEFAULT '',
    email_to               text[] NOT NULL DEFAULT '{}',
    -- Standard Webhooks signing secret ("whsec_" + base64), and the one it replaced while
    -- it stays valid (deliveries carry both signatures until then).
    secret                 text NOT NULL DEFAULT '',
    prev_secret            text NOT NULL DEFAULT '',
    prev_secret_expires_at timestamptz,
    enabled                boolean NOT NULL DEFAULT true,
    disabled_reason        text NOT NULL DEFAULT '',
    disabled_at            timestamptz,
    -- Rate limits (0: none). Alerts beyond them are folded into a digest.
    max_per_hour           integer NOT NULL DEFAULT 0 CHECK (max_per_hour >= 0),
    max_per_day            integer NOT NULL DEFAULT 0 CHECK (max_per_day >= 0),
    -- Retries: exponential backoff from retry_initial_ms, capped at retry_max_interval_ms,
    -- for retry_max_age_ms after the alert; disabled after failing for disable_after_ms.
    retry_initial_ms       bigint NOT NULL DEFAULT 5000 CHECK (retry_initial_ms > 0),
    retry_max_interval_ms  bigint NOT NULL DEFAULT 3600000 CHECK (retry_max_interval_ms > 0),
    retry_max_age_ms       bigint NOT NULL DEFAULT 259200000 CHECK (retry_max_age_ms > 0),
    disable_after_ms       bigint NOT NULL DEFAULT 432000000 CHECK (disable_after_ms > 0),
    -- Since when every attempt has failed (NULL after a success).
    failing_since          timestamptz,
    last_success_at        timestamptz,
    last_failure_at        timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz,
    UNIQUE (org_id, id)
);
-- One in-app channel per organization (made on first use).
CREATE UNIQUE INDEX alert_channels_in_app ON alert_channels (org_id) WHERE type = 'in_app' AND deleted_at IS NULL;
CREATE UNIQUE INDEX alert_channels_org_name ON alert_channels (org_id, lower(name)) WHERE deleted_at IS NULL;

-- Rate-limit usage of a channel: the current hour (UTC) and day (organization time zone).
CREATE TABLE alert_channel_usage (
    channel_id  text PRIMARY KEY REFERENCES alert_channels (id),
    hour_start  timestamptz NOT NULL,
    hour_count  integer NOT NULL,
    day_start   timestamptz NOT NULL,
    day_count   integer NOT NULL
);

-- Takes one alert from a channel's hourly and daily allowances. Returns '' when taken, or
-- the exhausted window ('hour' or 'day'). One statement on the channel's row, so
-- concurrent alerts on any number of processes serialise.
CREATE FUNCTION alert_channel_take(p_channel_id text, p_hour timestamptz, p_day timestamptz, p_max_hour integer, p_max_day integer)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    h integer;
    d integer;
BEGIN
    INSERT INTO alert_channel_usage (channel_id, hour_start, hour_count, day_start, day_count)
    VALUES (p_channel_id, p_hour, 0, p_day, 0)
    ON CONFLICT (channel_id) DO NOTHING;
    SELECT CASE WHEN u.hour_start = p_hour THEN u.hour_count ELSE 0 END,
           CASE WHEN u.day_start = p_day THEN u.day_count ELSE 0 END
    INTO h, d
    FROM alert_channel_usage u WHERE u.channel_id = p_channel_id FOR UPDATE;
    IF p_max_day > 0 AND d >= p_max_day THEN
        RETURN 'day';
    END IF;
    IF p_max_hour > 0 AND h >= p_max_hour THEN
        RETURN 'hour';
    END IF;
    UPDATE alert_channel_usage
    SET hour_start = p_hour, hour_count = h + 1, day_start = p_day, day_count = d + 1
    WHERE channel_id = p_channel_id;
    RETURN '';
END
$$;

-- Which alerts go to which channels. An organization without routes uses the defaults:
-- everything in-app; high and critical also to every enabled external channel.
CREATE TABLE alert_routes (
    org_id       text NOT NULL REFERENCES organizations (id),
    id           text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    -- Alert kinds it matches (empty: every kind).
    kinds        text[] NOT NULL DEFAULT '{}',
    min_severity text NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'high', 'critical')),
    channel_ids  text[] NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    UNIQUE (org_id, id)
);
CREATE INDEX alert_routes_org ON alert_routes (org_id) WHERE deleted_at IS NULL;

CREATE TABLE alerts (
    org_id          text NOT NULL REFERENCES organizations (id),
    id              text PRIMARY KEY,
    -- Exactly one alert per key, e.g. "limit/<id>/<window start>/<threshold>".
    dedupe_key      text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('limit_threshold', 'budget_exceeded', 'anomaly', 'incident',
                                                  'proposal_pending', 'channel_disabled', 'digest', 'test')),
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'high', 'critical')),
    title           text NOT NULL,
    body            text NOT NULL DEFAULT '',
    entity_type     text NOT NULL DEFAULT '',
    entity_id       text NOT NULL DEFAULT '',
    related         jsonb NOT NULL DEFAULT '[]',
    data            jsonb NOT NULL DEFAULT '{}',
    -- Digests: the channel whose rate limit they stand in for, whether alerts are still
    -- being folded in ('open') and when it is sent.
    digest_channel_id text REFERENCES alert_channels (id),
    digest_status   text CHECK (digest_status IN ('open', 'closed')),
    digest_send_at  timestamptz,
    digest_count    integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    UNIQUE (org_id, dedupe_key)
);
CREATE INDEX alerts_org_created ON alerts (org_id, created_at, id);
CREATE UNIQUE INDEX alerts_open_digest ON alerts (digest_channel_id) WHERE digest_status = 'open';

ALTER TABLE anomalies ADD FOREIGN KEY (alert_id) REFERENCES alerts (id);

CREATE TABLE alert_deliveries (
    org_id           text NOT NULL REFERENCES organizations (id),
    id               text PRIMARY KEY,
    alert_id         text NOT NULL REFERENCES alerts (id),
    channel_id       text NOT NULL REFERENCES alert_channels (id),
    -- pending (being delivered or retried), delivered, failed (gave up; RedeliverAlert
    -- tries again), digested (over the channel's rate limit: folded into digest_alert_id).
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'digested')),
    digest_alert_id  text REFERENCES alerts (id),
    workflow_id      text NOT NULL DEFAULT '',
    attempts         integer NOT NULL DEFAULT 0,
    -- Retries stop after this time.
    retry_until      timestamptz NOT NULL,
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    delivered_at     timestamptz,
    failed_at        timestamptz,
    -- The request body, fixed at the first attempt so that every retry sends the same bytes.
    body             bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    UNIQUE (alert_id, channel_id)
);
CREATE INDEX alert_deliveries_org_created ON alert_deliveries (org_id, created_at, id);
CREATE INDEX alert_deliveries_channel ON alert_deliveries (channel_id, created_at);
CREATE INDEX alert_deliveries_digest ON alert_deliveries (digest_alert_id) WHERE digest_alert_id IS NOT NULL;

-- Every attempt: written as in_flight before the request goes out, finished after; an
-- attempt whose worker died stays in_flight until the next attempt marks it abandoned.
CREATE TABLE alert_delivery_attempts (
    delivery_id    text NOT NULL REFERENCES alert_deliveries (id),
    number         integer NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    outcome        text NOT NULL CHECK (outcome IN ('in_flight', 'delivered', 'retry', 'failed', 'abandoned')),
    status_code    integer NOT NULL DEFAULT 0,
    latency_ms     bigint NOT NULL DEFAULT 0,
    error          text NOT NULL DEFAULT '',
    retry_after_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (delivery_id, number)
);

-- In-app notifications (the console's bell). Read state is per user.
CREATE TABLE notifications (
    org_id      text NOT NULL REFERENCES organizations (id),
    id          text PRIMARY KEY,
    seq         bigserial NOT NULL UNIQUE,
    alert_id    text NOT NULL UNIQUE REFERENCES alerts (id),
    kind        text NOT NULL,
    severity    text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    entity_type text NOT NULL DEFAULT '',
    entity_id   text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE INDEX notifications_org_seq ON notifications (org_id, seq);

CREATE TABLE notification_reads (
    notification_id text NOT NULL REFERENCES notifications (id),
    user_id         text NOT NULL REFERENCES users (id),
    read_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, notification_id)
);
