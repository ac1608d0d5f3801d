-- Incidents (deduplicated by fingerprint), policy proposals, policy rules enforced at
-- admission, and prevention records.

CREATE TABLE incidents (
    org_id           text NOT NULL REFERENCES organizations (id),
    id               text PRIMARY KEY,
    -- Same fingerprint, same incident while it is open: (organization, agent, error code,
    -- normalized message) for run failures; what was anomalous for anomalies.
    fingerprint      text NOT NULL,
    category         text NOT NULL CHECK (category IN ('RUN_FAILURE', 'BUDGET_EXCEEDED', 'COST_ANOMALY', 'RATE_LIMIT', 'POLICY_VIOLATION')),
    severity         text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    title            text NOT NULL,
    project_id       text,
    agent_id         text,
    model            text NOT NULL DEFAULT '',
    feature          text NOT NULL DEFAULT '',
    error_code       text NOT NULL DEFAULT '',
    error_signature  text NOT NULL DEFAULT '',
    occurrences      integer NOT NULL DEFAULT 1,
    runs_affected    integer NOT NULL DEFAULT 0,
    cost_micros      bigint NOT NULL DEFAULT 0,
    -- What opened it: the first failed run, an anomaly, a limit.
    source_type      text NOT NULL DEFAULT '',
    source_id        text NOT NULL DEFAULT '',
    source_run_id    text,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text NOT NULL DEFAULT '',
    resolved_at      timestamptz,
    resolved_by      text NOT NULL DEFAULT '',
    resolution_note  text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
-- At most one open (or acknowledged) incident per fingerprint: concurrent failures attach
-- to it instead of opening another.
CREATE UNIQUE INDEX incidents_open_fingerprint ON incidents (org_id, fingerprint) WHERE status <> 'resolved';
CREATE INDEX incidents_org_created ON incidents (org_id, created_at, id);

CREATE TABLE incident_runs (
    incident_id text NOT NULL REFERENCES incidents (id),
    run_id      text NOT NULL REFERENCES runs (id),
    cost_micros bigint NOT NULL DEFAULT 0,
    attached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, run_id)
);
CREATE INDEX incident_runs_run ON incident_runs (run_id);

-- Cross-domain links (seed 000, phase 1.2).
ALTER TABLE cost_records ADD COLUMN incident_id text REFERENCES incidents (id);
CREATE INDEX cost_records_incident ON cost_records (incident_id) WHERE incident_id IS NOT NULL;

CREATE TABLE policy_rules (
    org_id             text NOT NULL REFERENCES organizations (id),
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    description        text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    action             text NOT NULL DEFAULT 'block' CHECK (action IN ('block')),
    -- What runs it matches; empty fields match anything. tags: every pair must be present.
    match_project_id   text NOT NULL DEFAULT '',
    match_agent_id     text NOT NULL DEFAULT '',
    match_model        text NOT NULL DEFAULT '',
    match_feature      text NOT NULL DEFAULT '',
    match_tags         jsonb NOT NULL DEFAULT '{}',
    -- The failure it prevents (for effectiveness).
    error_signature    text NOT NULL DEFAULT '',
    fingerprint        text NOT NULL DEFAULT '',
    source_incident_id text REFERENCES incidents (id),
    source_proposal_id text,
    created_by         text NOT NULL DEFAULT '',
    activated_at       timestamptz NOT NULL DEFAULT now(),
    disabled_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE INDEX policy_rules_active ON policy_rules (org_id) WHERE status = 'active';
CREATE UNIQUE INDEX policy_rules_from_proposal ON policy_rules (source_proposal_id) WHERE source_proposal_id IS NOT NULL;

CREATE TABLE policy_proposals (
    org_id             text NOT NULL REFERENCES organizations (id),
    id                 text PRIMARY KEY,
    incident_id        text NOT NULL UNIQUE REFERENCES incidents (id),
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    title              text NOT NULL,
    rationale          text NOT NULL,
    -- The rule it would activate (same fields as policy_rules' match columns).
    rule               jsonb NOT NULL,
    required_approvals integer NOT NULL DEFAULT 1 CHECK (required_approvals >= 1),
    -- [{"user_id", "api_key_id", "actor", "decision", "comment", "at"}]
    decisions          jsonb NOT NULL DEFAULT '[]',
    policy_rule_id     text,
    remind_at          timestamptz NOT NULL,
    reminded_at        timestamptz,
    expires_at         timestamptz NOT NULL,
    decided_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE INDEX policy_proposals_org_created ON policy_proposals (org_id, created_at, id);

CREATE TABLE prevention_records (
    org_id               text NOT NULL REFERENCES organizations (id),
    id                   text PRIMARY KEY,
    rule_id              text NOT NULL REFERENCES policy_rules (id),
    run_id               text NOT NULL UNIQUE REFERENCES runs (id),
    incident_id          text REFERENCES incidents (id),
    agent_id             text NOT NULL,
    estimated_cost_micros bigint NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prevention_records_rule ON prevention_records (rule_id, created_at);

-- Blocked runs say what blocked them: a limit (blocked_by) or a policy rule.
ALTER TABLE runs ADD COLUMN blocked_by_rule text;

-- Severity rules per organization: an incident's severity is the highest matching rule's.
CREATE TABLE incident_settings (
    org_id                   text PRIMARY KEY REFERENCES organizations (id),
    -- occurrences within window_minutes that raise a RUN_FAILURE incident to high / critical
    high_occurrences         integer NOT NULL DEFAULT 3,
    critical_occurrences     integer NOT NULL DEFAULT 10,
    occurrence_window_minutes integer NOT NULL DEFAULT 60,
    -- cost of the affected runs that raises it to high / critical (micro-dollars)
    high_cost_micros         bigint NOT NULL DEFAULT 50000000,
    critical_cost_micros     bigint NOT NULL DEFAULT 500000000,
    -- error codes that are always high (e.g. {"POLICY_VIOLATION","DATA_LEAK"})
    high_error_codes         text[] NOT NULL DEFAULT '{}',
    critical_error_codes     text[] NOT NULL DEFAULT '{}',
    proposal_remind_after_minutes integer NOT NULL DEFAULT 1440,
    proposal_expire_after_minutes integer NOT NULL DEFAULT 10080,
    proposal_required_approvals   integer NOT NULL DEFAULT 1,
    updated_at               timestamptz NOT NULL DEFAULT now()
);
