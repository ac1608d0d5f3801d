-- name: ProposalCreate :one
-- One proposal per incident: a retried activity gets the existing one back.
INSERT INTO policy_proposals (org_id, id, incident_id, title, rationale, rule, required_approvals,
                              remind_at, expires_at)
VALUES (@org_id, @id, @incident_id, @title, @rationale, @rule, @required_approvals,
        @remind_at, @expires_at)
ON CONFLICT (incident_id) DO UPDATE SET updated_at = policy_proposals.updated_at
RETURNING *, (xmax = 0)::boolean AS created;

-- name: ProposalGet :one
SELECT * FROM policy_proposals WHERE org_id = @org_id AND id = @id;

-- name: ProposalGetByID :one
SELECT * FROM policy_proposals WHERE id = @id;

-- name: ProposalForIncident :one
SELECT * FROM policy_proposals WHERE incident_id = @incident_id;

-- name: ProposalGetForUpdate :one
SELECT * FROM policy_proposals WHERE id = @id FOR UPDATE;

-- name: ProposalList :many
SELECT * FROM policy_proposals
WHERE org_id = @org_id
  AND (cardinality(@statuses::text[]) = 0 OR status = ANY (@statuses::text[]))
  AND (created_at, id) < (@before_time::timestamptz, @before_id::text)
ORDER BY created_at DESC, id DESC
LIMIT @max;

-- name: ProposalRecordDecision :one
UPDATE policy_proposals
SET decisions = decisions || @decision::jsonb, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: ProposalClose :one
UPDATE policy_proposals
SET status = @status, decided_at = now(), policy_rule_id = sqlc.narg('policy_rule_id'), updated_at = now()
WHERE id = @id AND status = 'pending'
RETURNING *;

-- name: ProposalMarkReminded :execrows
UPDATE policy_proposals SET reminded_at = now(), updated_at = now()
WHERE id = @id AND status = 'pending' AND reminded_at IS NULL;

-- name: PolicyRuleCreate :one
INSERT INTO policy_rules (org_id, id, name, description, match_project_id, match_agent_id,
                          match_model, match_feature, match_tags, error_signature, fingerprint,
                          source_incident_id, source_proposal_id, created_by)
VALUES (@org_id, @id, @name, @description, @match_project_id, @match_agent_id, @match_model,
        @match_feature, @match_tags, @error_signature, @fingerprint,
        sqlc.narg('source_incident_id'), sqlc.narg('source_proposal_id'), @created_by)
RETURNING *;

-- name: PolicyRuleGet :one
SELECT * FROM policy_rules WHERE org_id = @org_id AND id = @id;

-- name: PolicyRuleGetForUpdate :one
SELECT * FROM policy_rules WHERE org_id = @org_id AND id = @id FOR UPDATE;

-- name: PolicyRuleList :many
SELECT * FROM policy_rules
WHERE org_id = @org_id AND (@status::text = '' OR status = @status) AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: PolicyRuleDisable :one
UPDATE policy_rules SET status = 'disabled', disabled_at = now(), updated_at = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: PolicyRulesActive :many
-- The active rules of the organizations in an admission batch.
SELECT * FROM policy_rules WHERE org_id = ANY (@org_ids::text[]) AND status = 'active' ORDER BY id;

-- name: PreventionsInsertMany :exec
INSERT INTO prevention_records (org_id, id, rule_id, run_id, incident_id, agent_id, estimated_cost_micros)
SELECT x.org_id, x.id, x.rule_id, x.run_id, nullif(x.incident_id, ''), x.agent_id, x.cost
FROM (SELECT unnest(@org_ids::text[]) AS org_id, unnest(@ids::text[]) AS id,
             unnest(@rule_ids::text[]) AS rule_id, unnest(@run_ids::text[]) AS run_id,
             unnest(@incident_ids::text[]) AS incident_id, unnest(@agent_ids::text[]) AS agent_id,
             unnest(@costs::bigint[]) AS cost) AS x;

-- name: RunsSetBlockedByRule :exec
UPDATE runs SET blocked_by_rule = x.rule_id
FROM (SELECT unnest(@run_ids::text[]) AS run_id, unnest(@rule_ids::text[]) AS rule_id) AS x
WHERE runs.id = x.run_id;

-- name: PolicyEffectiveness :one
SELECT
    (SELECT count(*) FROM prevention_records p WHERE p.rule_id = r.id)::bigint AS runs_prevented,
    (SELECT least(coalesce(sum(p.estimated_cost_micros), 0), 4000000000000000000) FROM prevention_records p WHERE p.rule_id = r.id)::bigint AS cost_saved,
    (SELECT count(*) FROM prevention_records p WHERE p.rule_id = r.id AND p.estimated_cost_micros = 0)::bigint AS without_estimate,
    coalesce((SELECT max(p.created_at) FROM prevention_records p WHERE p.rule_id = r.id), r.activated_at)::timestamptz AS last_prevented_at,
    (SELECT count(*) FROM incidents i
      WHERE r.fingerprint <> '' AND i.org_id = r.org_id AND i.fingerprint = r.fingerprint
        AND i.created_at >= r.activated_at)::bigint AS incidents_since,
    (SELECT count(*) FROM incident_runs ir JOIN incidents i ON i.id = ir.incident_id
      WHERE r.fingerprint <> '' AND i.org_id = r.org_id AND i.fingerprint = r.fingerprint
        AND ir.attached_at >= r.activated_at)::bigint AS failures_since
FROM policy_rules r
WHERE r.org_id = @org_id AND r.id = @id;

-- name: PreventionsForIncident :one
SELECT count(*)::bigint AS runs, least(coalesce(sum(estimated_cost_micros), 0), 4000000000000000000)::bigint AS cost_micros,
       count(*) FILTER (WHERE estimated_cost_micros = 0)::bigint AS without_estimate
FROM prevention_records WHERE org_id = @org_id AND incident_id = @incident_id;
