-- Tenancy, identity, API keys, the audit ledger, domain events and idempotency records.
-- Every tenant-owned table carries org_id, and references within a tenant go through
-- (org_id, id) so a row can never point at another organization's object.

CREATE TABLE organizations (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    time_zone   text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    org_id      text NOT NULL REFERENCES organizations (id),
    id          text PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE agents (
    org_id      text NOT NULL,
    id          text PRIMARY KEY,
    project_id  text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    UNIQUE (project_id, name),
    FOREIGN KEY (org_id, project_id) REFERENCES projects (org_id, id)
);

CREATE TABLE users (
    org_id         text NOT NULL REFERENCES organizations (id),
    id             text PRIMARY KEY,
    email          text NOT NULL,
    display_name   text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('admin', 'approver', 'viewer')),
    deactivated_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE UNIQUE INDEX users_org_email ON users (org_id, lower(email));

CREATE TABLE api_keys (
    org_id                  text NOT NULL REFERENCES organizations (id),
    id                      text PRIMARY KEY,
    name                    text NOT NULL,
    kind                    text NOT NULL CHECK (kind IN ('user', 'ingest')),
    prefix                  text NOT NULL,
    -- SHA-256 of the whole secret. Secrets are 190 bits of randomness, so a fast hash is
    -- the right tool (as for GitHub tokens); a slow password hash would only add latency.
    secret_hash             bytea NOT NULL UNIQUE,
    -- The secret replaced by the last rotation, valid until prev_secret_expires_at.
    prev_secret_hash        bytea,
    prev_secret_expires_at  timestamptz,
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'revoked')),
    user_id                 text,
    project_id              text,
    agent_id                text,
    requests_per_minute     integer NOT NULL DEFAULT 0 CHECK (requests_per_minute >= 0),
    expires_at              timestamptz,
    last_used_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    frozen_at               timestamptz,
    revoked_at              timestamptz,
    rotated_at              timestamptz,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id),
    FOREIGN KEY (org_id, project_id) REFERENCES projects (org_id, id),
    FOREIGN KEY (org_id, agent_id) REFERENCES agents (org_id, id),
    CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CHECK (kind = 'ingest' OR (project_id IS NULL AND agent_id IS NULL))
);
CREATE INDEX api_keys_prev_secret_hash ON api_keys (prev_secret_hash) WHERE prev_secret_hash IS NOT NULL;
CREATE INDEX api_keys_org_user ON api_keys (org_id, user_id);

-- A key with the role it acts with: its user's role for user keys.
CREATE VIEW api_key_details AS
SELECT k.*, coalesce(u.role, '')::text AS user_role
FROM api_keys k
LEFT JOIN users u ON u.org_id = k.org_id AND u.id = k.user_id;

-- One row per key with a requests-per-minute limit: a sliding window over the current and
-- the previous minute, shared by every API server.
CREATE TABLE api_key_rate_windows (
    api_key_id   text PRIMARY KEY REFERENCES api_keys (id),
    window_start timestamptz NOT NULL,
    count        integer NOT NULL,
    prev_count   integer NOT NULL
);

-- Takes one request from the key's sliding one-minute window when the estimate (the
-- previous minute's count weighted by how much of it the window still overlaps, plus this
-- minute's count, plus this request) stays within the limit. One statement, so concurrent
-- requests on any number of servers serialise on the key's row.
CREATE FUNCTION api_key_rate_take(
    p_api_key_id text, p_window_start timestamptz, p_prev_weight float8, p_max integer
) RETURNS boolean
LANGUAGE sql AS $$
    WITH taken AS (
        INSERT INTO api_key_rate_windows AS w (api_key_id, window_start, count, prev_count)
        SELECT p_api_key_id, p_window_start, 1, 0 WHERE p_max >= 1
        ON CONFLICT (api_key_id) DO UPDATE
        SET prev_count   = CASE
                WHEN w.window_start = EXCLUDED.window_start THEN w.prev_count
                WHEN w.window_start = EXCLUDED.window_start - interval '1 minute' THEN w.count
                ELSE 0 END,
            count        = CASE WHEN w.window_start = EXCLUDED.window_start THEN w.count + 1 ELSE 1 END,
            window_start = EXCLUDED.window_start
        WHERE p_prev_weight * (CASE
                WHEN w.window_start = EXCLUDED.window_start THEN w.prev_count
                WHEN w.window_start = EXCLUDED.window_start - interval '1 minute' THEN w.count
                ELSE 0 END)
            + (CASE WHEN w.window_start = EXCLUDED.window_start THEN w.count ELSE 0 END) + 1
            <= p_max
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM taken)
$$;

-- The audit ledger: append-only, one hash chain per organization. audit_heads holds each
-- chain's last link; appending locks that row, so entries of one organization are
-- numbered without gaps in commit order.
CREATE TABLE audit_heads (
    org_id    text PRIMARY KEY REFERENCES organizations (id),
    last_seq  bigint NOT NULL,
    last_hash bytea NOT NULL
);

CREATE TABLE audit_entries (
    org_id           text NOT NULL REFERENCES organizations (id),
    seq              bigint NOT NULL,
    id               text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL,
    actor_kind       text NOT NULL CHECK (actor_kind IN ('api_key', 'system')),
    actor_api_key_id text NOT NULL DEFAULT '',
    actor_user_id    text NOT NULL DEFAULT '',
    actor_system     text NOT NULL DEFAULT '',
    action           text NOT NULL,
    entity_type      text NOT NULL,
    entity_id        text NOT NULL,
    before           jsonb,
    after            jsonb,
    request_id       text NOT NULL DEFAULT '',
    prev_hash        bytea NOT NULL,
    hash             bytea NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_entries_entity ON audit_entries (org_id, entity_type, entity_id, seq);
CREATE INDEX audit_entries_created ON audit_entries (org_id, created_at, seq);

-- The hash of an entry covers every column but itself, in a fixed order. Both the write
-- path and the verifier call this one function, so they cannot drift apart. jsonb is
-- hashed in its canonical text form.
CREATE FUNCTION audit_entry_hash(
    p_prev_hash bytea, p_org_id text, p_seq bigint, p_id text, p_created_at timestamptz,
    p_actor_kind text, p_actor_api_key_id text, p_actor_user_id text, p_actor_system text,
    p_action text, p_entity_type text, p_entity_id text, p_before jsonb, p_after jsonb,
    p_request_id text
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev_hash || convert_to(
        json_build_array(
            p_org_id, p_seq, p_id,
            (extract(epoch FROM p_created_at) * 1000000)::bigint,
            p_actor_kind, p_actor_api_key_id, p_actor_user_id, p_actor_system,
            p_action, p_entity_type, p_entity_id,
            coalesce(p_before::text, ''), coalesce(p_after::text, ''), p_request_id
        )::text, 'UTF8'))
$$;

-- The ledger is append-only for the application: updates and deletes are refused. (A
-- superuser can bypass triggers; the hash chain is what exposes that.)
CREATE FUNCTION audit_entries_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_entries_append_only
    BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_refuse_change();
CREATE TRIGGER audit_entries_no_truncate
    BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_refuse_change();

-- Domain events: the cross-domain timeline. seq orders events globally; NOTIFY on commit
-- wakes live watchers.
CREATE TABLE domain_events (
    seq            bigserial PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    org_id         text NOT NULL REFERENCES organizations (id),
    occurred_at    timestamptz NOT NULL,
    domain         text NOT NULL,
    type           text NOT NULL,
    entity_type    text NOT NULL,
    entity_id      text NOT NULL,
    -- [{"type": "...", "id": "..."}, ...]
    related        jsonb NOT NULL DEFAULT '[]',
    correlation_id text NOT NULL DEFAULT '',
    summary        text NOT NULL DEFAULT '',
    data           jsonb NOT NULL DEFAULT '{}',
    actor_kind     text NOT NULL,
    actor_api_key_id text NOT NULL DEFAULT '',
    actor_user_id  text NOT NULL DEFAULT '',
    actor_system   text NOT NULL DEFAULT ''
);
CREATE INDEX domain_events_org_time ON domain_events (org_id, occurred_at, seq);
CREATE INDEX domain_events_entity ON domain_events (org_id, entity_type, entity_id);
CREATE INDEX domain_events_correlation ON domain_events (org_id, correlation_id) WHERE correlation_id <> '';
CREATE INDEX domain_events_related ON domain_events USING gin (related jsonb_path_ops);

-- Idempotency records of mutating RPCs. The key itself is not stored, only its hash, and
-- the response is sealed with a key derived from it: a stored response (which may hold a
-- new API key's secret) is unreadable without the idempotency key the client kept.
CREATE TABLE idempotency_records (
    org_id       text NOT NULL REFERENCES organizations (id),
    key_hash     bytea NOT NULL,
    procedure    text NOT NULL,
    request_hash bytea NOT NULL,
    response     bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, key_hash)
);
CREATE INDEX idempotency_records_expires ON idempotency_records (expires_at);

-- Wakes live timeline watchers. Notifications are delivered at commit, in commit order,
-- and only for committed events.
CREATE FUNCTION domain_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('governor_events', NEW.org_id || ' ' || NEW.seq);
    RETURN NULL;
END
$$;
CREATE TRIGGER domain_events_notify
    AFTER INSERT ON domain_events
    FOR EACH ROW EXECUTE FUNCTION domain_events_notify();
