-- name: SystemRecordInsert :exec
-- A record written twice with the same (derived) id is recorded once.
INSERT INTO system_records (id, org_id, kind, severity, message, run_id, incident_id, alert_id,
                            workflow_id, data)
VALUES (@id, sqlc.narg('org_id'), @kind, @severity, @message, @run_id, @incident_id, @alert_id,
        @workflow_id, @data)
ON CONFLICT (id) DO NOTHING;

-- name: SystemRecordListAsc :many
SELECT * FROM system_records
WHERE org_id = @org_id
  AND (cardinality(@kinds::text[]) = 0 OR kind = ANY (@kinds::text[]))
  AND (cardinality(@severities::text[]) = 0 OR severity = ANY (@severities::text[]))
  AND (@run_id::text = '' OR run_id = @run_id)
  AND (@incident_id::text = '' OR incident_id = @incident_id)
  AND (@alert_id::text = '' OR alert_id = @alert_id)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR occurred_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR occurred_at < sqlc.narg('end_time'))
  AND (occurred_at, seq) > (@after_time::timestamptz, @after_seq::bigint)
ORDER BY occurred_at, seq
LIMIT @max;

-- name: SystemRecordListDesc :many
SELECT * FROM system_records
WHERE org_id = @org_id
  AND (cardinality(@kinds::text[]) = 0 OR kind = ANY (@kinds::text[]))
  AND (cardinality(@severities::text[]) = 0 OR severity = ANY (@severities::text[]))
  AND (@run_id::text = '' OR run_id = @run_id)
  AND (@incident_id::text = '' OR incident_id = @incident_id)
  AND (@alert_id::text = '' OR alert_id = @alert_id)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR occurred_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR occurred_at < sqlc.narg('end_time'))
  AND (occurred_at, seq) < (@before_time::timestamptz, @before_seq::bigint)
ORDER BY occurred_at DESC, seq DESC
LIMIT @max;

-- name: SystemRecordsOfRunAfter :many
-- A run's system records in time order, after a position (its logs).
SELECT * FROM system_records
WHERE org_id = @org_id AND run_id = @run_id
  AND (occurred_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY occurred_at, id
LIMIT @max;

-- name: EventsOfRunAfter :many
-- A run's domain events (about the run, or correlated with it) in time order, after a
-- position (its logs).
SELECT * FROM domain_events
WHERE org_id = @org_id
  AND (correlation_id = @run_id::text OR (entity_type = 'run' AND entity_id = @run_id::text))
  AND (occurred_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY occurred_at, id
LIMIT @max;
