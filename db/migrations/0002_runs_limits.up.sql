-- Unified limits, run admission with leased reservations, settlement, cost records, the
-- model price catalog and the workflow outbox.

-- One table for every limit: cost budgets, token and run quotas, request rate limits.
CREATE TABLE limits (
    org_id      text NOT NULL REFERENCES organizations (id),
    id          text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    -- Whose runs it governs: the organization, a project, an agent or an API key.
    scope_type  text NOT NULL CHECK (scope_type IN ('organization', 'project', 'agent', 'api_key')),
    scope_id    text NOT NULL,
    -- Optional narrowing: only runs of this model / feature ('' = any).
    model       text NOT NULL DEFAULT '',
    feature     text NOT NULL DEFAULT '',
    -- cost (micro-dollars), tokens (input + output), runs (admitted runs that ran),
    -- requests (admissions granted, never refunded: a rate limit).
    metric      text NOT NULL CHECK (metric IN ('cost', 'tokens', 'runs', 'requests')),
    -- Calendar-aligned in the organization's time zone.
    window_kind text NOT NULL CHECK (window_kind IN ('minute', 'hour', 'day', 'week', 'month')),
    amount      bigint NOT NULL CHECK (amount > 0),
    enforcement text NOT NULL DEFAULT 'block' CHECK (enforcement IN ('block', 'warn')),
    thresholds  integer[] NOT NULL DEFAULT '{80,90,100}',
    inheritance text NOT NULL DEFAULT 'merge' CHECK (inheritance IN ('inherit', 'override', 'merge')),
    priority    integer NOT NULL DEFAULT 0,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    UNIQUE (org_id, id)
);
CREATE INDEX limits_org_scope ON limits (org_id, scope_type, scope_id) WHERE deleted_at IS NULL;
-- Admission looks limits up by the ids of a run's scopes (ids are unique across kinds).
CREATE INDEX limits_scope_id ON limits (scope_id) WHERE deleted_at IS NULL;

-- Usage of one limit in one window. `reserved` is the sum of the amounts of this window's
-- reservations that are not released; `used` is what settled runs consumed.
CREATE TABLE limit_counters (
    limit_id     text NOT NULL REFERENCES limits (id),
    window_start timestamptz NOT NULL,
    used         bigint NOT NULL DEFAULT 0,
    reserved     bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (limit_id, window_start)
);

-- Prepares the counters an admission batch needs: creates missing ones, locks them all in
-- one global order (the caller passes them sorted by limit then window, so concurrent
-- batches and settlements never deadlock), releases their expired reservations, and
-- returns their usage. One statement, so a batch pays one round trip for all of it.
CREATE FUNCTION limit_counters_acquire(p_limit_ids text[], p_window_starts timestamptz[])
RETURNS TABLE (limit_id text, window_start timestamptz, used bigint, reserved bigint)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO limit_counters (limit_id, window_start)
    SELECT k.l, k.w FROM unnest(p_limit_ids, p_window_starts) AS k(l, w)
    ON CONFLICT DO NOTHING;

    PERFORM 1
    FROM limit_counters c
    JOIN unnest(p_limit_ids, p_window_starts) AS k(l, w) ON c.limit_id = k.l AND c.window_start = k.w
    ORDER BY c.limit_id, c.window_start
    FOR UPDATE OF c;

    WITH expired AS (
        UPDATE run_reservations r SET released = true
        FROM unnest(p_limit_ids, p_window_starts) AS k(l, w)
        WHERE r.limit_id = k.l AND r.window_start = k.w AND NOT r.released AND r.expires_at <= now()
        RETURNING r.limit_id AS l, r.window_start AS w, r.amount
    ), totals AS (
        SELECT e.l, e.w, sum(e.amount)::bigint AS amount FROM expired e GROUP BY e.l, e.w
    )
    UPDATE limit_counters c SET reserved = c.reserved - t.amount
    FROM totals t WHERE c.limit_id = t.l AND c.window_start = t.w;

    RETURN QUERY
    SELECT c.limit_id, c.window_start, c.used, c.reserved
    FROM limit_counters c
    JOIN unnest(p_limit_ids, p_window_starts) AS k(l, w) ON c.limit_id = k.l AND c.window_start = k.w;
END
$$;

CREATE TABLE runs (
    org_id            text NOT NULL REFERENCES organizations (id),
    id                text PRIMARY KEY,
    project_id        text NOT NULL,
    agent_id          text NOT NULL,
    api_key_id        text NOT NULL,
    model             text NOT NULL DEFAULT '',
    feature           text NOT NULL DEFAULT '',
    tags              jsonb NOT NULL DEFAULT '{}',
    -- Set for admitted runs only, so a client may retry a blocked attempt under the same id.
    client_run_id     text,
    status            text NOT NULL CHECK (status IN ('admitted', 'succeeded', 'failed', 'cancelled', 'expired', 'blocked')),
    est_cost_micros   bigint NOT NULL DEFAULT 0,
    est_input_tokens  bigint NOT NULL DEFAULT 0,
    est_output_tokens bigint NOT NULL DEFAULT 0,
    -- The completion as the client reported it (CompleteRun); settlement applies it.
    reported_status   text CHECK (reported_status IN ('succeeded', 'failed', 'cancelled')),
    input_tokens      bigint,
    output_tokens     bigint,
    reported_cost_micros bigint,
    cost_micros       bigint,
    latency_ms        bigint,
    error_code        text NOT NULL DEFAULT '',
    error_message     text NOT NULL DEFAULT '',
    -- For blocked runs: the limit checks that refused it, first one first.
    blocked_by        jsonb,
    warnings          jsonb,
    admitted_at       timestamptz NOT NULL DEFAULT now(),
    lease_expires_at  timestamptz,
    reported_at       timestamptz,
    settled_at        timestamptz,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, project_id) REFERENCES projects (org_id, id),
    FOREIGN KEY (org_id, agent_id) REFERENCES agents (org_id, id),
    FOREIGN KEY (org_id, api_key_id) REFERENCES api_keys (org_id, id)
);
CREATE UNIQUE INDEX runs_client_run_id ON runs (org_id, client_run_id) WHERE client_run_id IS NOT NULL;
CREATE INDEX runs_org_admitted ON runs (org_id, admitted_at, id);
CREATE INDEX runs_org_agent ON runs (org_id, agent_id, admitted_at);
CREATE INDEX runs_org_key ON runs (org_id, api_key_id, admitted_at);

-- What a run holds on each limit window that governs it. A reservation is a lease: past
-- expires_at it no longer counts, whether or not anything has released it yet (the next
-- admission on the same counter releases expired ones first). Rows stay after release:
-- settlement charges the run's actual usage to the same counters.
CREATE TABLE run_reservations (
    run_id       text NOT NULL REFERENCES runs (id),
    limit_id     text NOT NULL REFERENCES limits (id),
    window_start timestamptz NOT NULL,
    metric       text NOT NULL,
    amount       bigint NOT NULL,
    expires_at   timestamptz NOT NULL,
    released     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, limit_id)
);
CREATE INDEX run_reservations_live ON run_reservations (limit_id, window_start, expires_at) WHERE NOT released;

-- Settled cost, attributed to everything a run belongs to.
CREATE TABLE cost_records (
    org_id        text NOT NULL REFERENCES organizations (id),
    id            text PRIMARY KEY,
    run_id        text NOT NULL UNIQUE REFERENCES runs (id),
    project_id    text NOT NULL,
    agent_id      text NOT NULL,
    api_key_id    text NOT NULL,
    model         text NOT NULL,
    feature       text NOT NULL,
    cost_micros   bigint NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    run_status    text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cost_records_org_time ON cost_records (org_id, recorded_at, id);
CREATE INDEX cost_records_org_key ON cost_records (org_id, api_key_id, recorded_at);
CREATE INDEX cost_records_org_agent ON cost_records (org_id, agent_id, recorded_at);

-- Prices per organization and model, in micro-dollars per million tokens. Models without
-- a row use Governor's built-in defaults.
CREATE TABLE model_prices (
    org_id                       text NOT NULL REFERENCES organizations (id),
    model                        text NOT NULL,
    input_micros_per_mtok        bigint NOT NULL CHECK (input_micros_per_mtok >= 0),
    output_micros_per_mtok       bigint NOT NULL CHECK (output_micros_per_mtok >= 0),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, model)
);

-- Workflow starts and signals owed to Temporal, written in the transaction that decided
-- them and relayed after commit: a crash between the two cannot lose one.
CREATE TABLE workflow_outbox (
    id            bigserial PRIMARY KEY,
    org_id        text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('start', 'signal_with_start')),
    workflow_type text NOT NULL,
    workflow_id   text NOT NULL,
    signal_name   text NOT NULL DEFAULT '',
    -- The signal's argument (a workflow-specific string, e.g. an incident id).
    signal_arg    text NOT NULL DEFAULT '',
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- A relay claims rows until this time; a crashed relay's claims lapse.
    claimed_until timestamptz NOT NULL DEFAULT '-infinity',
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text NOT NULL DEFAULT ''
);
CREATE INDEX workflow_outbox_ready ON workflow_outbox (claimed_until, id);
