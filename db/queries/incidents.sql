-- name: IncidentRecordOccurrence :one
-- Opens the incident of a fingerprint, or attaches the occurrence to the open one.
-- Concurrent occurrences serialise on the open incident's row: exactly one is inserted.
INSERT INTO incidents (org_id, id, fingerprint, category, severity, title, project_id, agent_id,
                       model, feature, error_code, error_signature, occurrences, runs_affected,
                       cost_micros, source_type, source_id, source_run_id)
VALUES (@org_id, @id, @fingerprint, @category, @severity, @title, sqlc.narg('project_id'),
        sqlc.narg('agent_id'), @model, @feature, @error_code, @error_signature, 1,
        @runs_affected, @cost_micros, @source_type, @source_id, sqlc.narg('source_run_id'))
ON CONFLICT (org_id, fingerprint) WHERE status <> 'resolved' DO UPDATE
SET occurrences   = least(incidents.occurrences::bigint + 1, 2147483647)::integer,
    runs_affected = least(incidents.runs_affected::bigint + EXCLUDED.runs_affected, 2147483647)::integer,
    cost_micros   = least(incidents.cost_micros + EXCLUDED.cost_micros, 4000000000000000000),
    last_seen_at  = now(),
    updated_at    = now()
RETURNING *, (xmax = 0)::boolean AS opened;

-- name: IncidentSetSeverity :one
UPDATE incidents SET severity = @severity, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: IncidentRunAttach :execrows
INSERT INTO incident_runs (incident_id, run_id, cost_micros)
VALUES (@incident_id, @run_id, @cost_micros)
ON CONFLICT DO NOTHING;

-- name: IncidentRecentRuns :one
SELECT count(*) FROM incident_runs
WHERE incident_id = @incident_id AND attached_at > now() - make_interval(mins => @minutes::integer);

-- name: CostRecordLinkIncident :exec
UPDATE cost_records SET incident_id = @incident_id WHERE run_id = @run_id AND incident_id IS NULL;

-- name: IncidentSettingsGet :one
SELECT * FROM incident_settings WHERE org_id = @org_id;

-- name: IncidentSettingsUpsert :one
INSERT INTO incident_settings (org_id, high_occurrences, critical_occurrences, occurrence_window_minutes,
                               high_cost_micros, critical_cost_micros, high_error_codes,
                               critical_error_codes, proposal_remind_after_minutes,
                               proposal_expire_after_minutes, proposal_required_approvals)
VALUES (@org_id, @high_occurrences, @critical_occurrences, @occurrence_window_minutes,
        @high_cost_micros, @critical_cost_micros, @high_error_codes, @critical_error_codes,
        @proposal_remind_after_minutes, @proposal_expire_after_minutes, @proposal_required_approvals)
ON CONFLICT (org_id) DO UPDATE
SET high_occurrences = EXCLUDED.high_occurrences, critical_occurrences = EXCLUDED.critical_occurrences,
    occurrence_window_minutes = EXCLUDED.occurrence_window_minutes,
    high_cost_micros = EXCLUDED.high_cost_micros, critical_cost_micros = EXCLUDED.critical_cost_micros,
    high_error_codes = EXCLUDED.high_error_codes, critical_error_codes = EXCLUDED.critical_error_codes,
    proposal_remind_after_minutes = EXCLUDED.proposal_remind_after_minutes,
    proposal_expire_after_minutes = EXCLUDED.proposal_expire_after_minutes,
    proposal_required_approvals = EXCLUDED.proposal_required_approvals,
    updated_at = now()
RETURNING *;

-- name: IncidentGet :one
SELECT * FROM incidents WHERE org_id = @org_id AND id = @id;

-- name: IncidentGetByID :one
SELECT * FROM incidents WHERE id = @id;

-- name: IncidentGetForUpdate :one
SELECT * FROM incidents WHERE org_id = @org_id AND id = @id FOR UPDATE;

-- name: IncidentList :many
SELECT * FROM incidents
WHERE org_id = @org_id
  AND (cardinality(@statuses::text[]) = 0 OR status = ANY (@statuses::text[]))
  AND (cardinality(@severities::text[]) = 0 OR severity = ANY (@severities::text[]))
  AND (cardinality(@categories::text[]) = 0 OR category = ANY (@categories::text[]))
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR created_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR created_at < sqlc.narg('end_time'))
  AND (created_at, id) < (@before_time::timestamptz, @before_id::text)
ORDER BY created_at DESC, id DESC
LIMIT @max;

-- name: IncidentAcknowledge :one
UPDATE incidents SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = @by, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: IncidentResolve :one
UPDATE incidents SET status = 'resolved', resolved_at = now(), resolved_by = @by,
       resolution_note = @note, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: IncidentRunsList :many
SELECT r.* FROM incident_runs ir JOIN runs r ON r.id = ir.run_id
WHERE ir.incident_id = @incident_id AND r.org_id = @org_id
  AND (r.admitted_at, r.id) < (@before_time::timestamptz, @before_id::text)
ORDER BY r.admitted_at DESC, r.id DESC
LIMIT @max;

-- name: IncidentsOfRun :many
SELECT i.* FROM incident_runs ir JOIN incidents i ON i.id = ir.incident_id
WHERE ir.run_id = @run_id AND i.org_id = @org_id
ORDER BY i.created_at;

-- name: IncidentCostImpact :one
-- Cost of the runs attached to an incident. Retries are runs of the same agent admitted
-- with the same client run id prefix… approximated here as the affected runs after the
-- first (each a repeat of a known failure).
SELECT count(*)::bigint AS runs_affected,
       least(coalesce(sum(coalesce(r.cost_micros, 0)), 0), 4000000000000000000)::bigint AS total_cost_micros,
       least(coalesce(sum(coalesce(r.cost_micros, 0)) FILTER (WHERE r.id <> coalesce(i.source_run_id, '')), 0), 4000000000000000000)::bigint AS repeat_cost_micros,
       coalesce(avg(coalesce(r.cost_micros, 0)), 0)::bigint AS avg_cost_micros
FROM incidents i
JOIN incident_runs ir ON ir.incident_id = i.id
JOIN runs r ON r.id = ir.run_id
WHERE i.org_id = @org_id AND i.id = @id;
