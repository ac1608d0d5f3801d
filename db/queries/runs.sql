-- name: AgentsForAdmission :many
-- The agents (with their project and organization time zone) of a batch of admissions.
SELECT a.org_id, a.id, a.project_id, o.time_zone
FROM agents a JOIN organizations o ON o.id = a.org_id
WHERE a.id = ANY (@agent_ids::text[]);

-- name: RunsByClientID :many
SELECT * FROM runs
WHERE (org_id, client_run_id) IN (
    SELECT unnest(@org_ids::text[]), unnest(@client_run_ids::text[]));

-- name: RunsInsert :copyfrom
INSERT INTO runs (org_id, id, project_id, agent_id, api_key_id, model, feature, tags,
                  client_run_id, status, est_cost_micros, est_input_tokens, est_output_tokens,
                  blocked_by, warnings, admitted_at, lease_expires_at)
VALUES (@org_id, @id, @project_id, @agent_id, @api_key_id, @model, @feature, @tags,
        @client_run_id, @status, @est_cost_micros, @est_input_tokens, @est_output_tokens,
        @blocked_by, @warnings, @admitted_at, @lease_expires_at);

-- name: ReservationsInsert :copyfrom
INSERT INTO run_reservations (run_id, limit_id, window_start, metric, amount, expires_at)
VALUES (@run_id, @limit_id, @window_start, @metric, @amount, @expires_at);

-- name: EventsInsert :copyfrom
INSERT INTO domain_events (id, org_id, occurred_at, domain, type, entity_type, entity_id,
                           related, correlation_id, summary, data, actor_kind,
                           actor_api_key_id, actor_user_id, actor_system)
VALUES (@id, @org_id, @occurred_at, @domain, @type, @entity_type, @entity_id, @related,
        @correlation_id, @summary, @data, @actor_kind, @actor_api_key_id, @actor_user_id,
        @actor_system);

-- name: OutboxInsert :copyfrom
INSERT INTO workflow_outbox (org_id, kind, workflow_type, workflow_id, signal_name, payload)
VALUES (@org_id, @kind, @workflow_type, @workflow_id, @signal_name, @payload);

-- name: OutboxAdd :exec
INSERT INTO workflow_outbox (org_id, kind, workflow_type, workflow_id, signal_name, payload)
VALUES (@org_id, @kind, @workflow_type, @workflow_id, @signal_name, @payload);

-- name: OutboxClaim :many
-- Claims up to @max ready rows for @claim_seconds; rows a crashed relay claimed become
-- ready again when their claim lapses.
UPDATE workflow_outbox o
SET claimed_until = now() + make_interval(secs => @claim_seconds::float8), attempts = o.attempts + 1
WHERE o.id IN (
    SELECT id FROM workflow_outbox
    WHERE claimed_until <= now()
    ORDER BY id
    LIMIT @max
    FOR UPDATE SKIP LOCKED)
RETURNING o.*;

-- name: OutboxDone :exec
DELETE FROM workflow_outbox WHERE id = @id;

-- name: OutboxRetryLater :exec
UPDATE workflow_outbox
SET claimed_until = now() + make_interval(secs => @delay_seconds::float8), last_error = @last_error
WHERE id = @id;

-- name: OutboxPending :one
SELECT count(*) FROM workflow_outbox;

-- name: RunGet :one
SELECT * FROM runs WHERE org_id = @org_id AND id = @id;

-- name: RunGetForUpdate :one
SELECT * FROM runs WHERE id = @id FOR UPDATE;

-- name: RunList :many
SELECT * FROM runs
WHERE org_id = @org_id
  AND (cardinality(@statuses::text[]) = 0 OR status = ANY (@statuses::text[]))
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND (@project_id::text = '' OR project_id = @project_id)
  AND (@api_key_id::text = '' OR api_key_id = @api_key_id)
  AND (@model::text = '' OR model = @model)
  AND (@feature::text = '' OR feature = @feature)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR admitted_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR admitted_at < sqlc.narg('end_time'))
  AND (admitted_at, id) < (@before_time::timestamptz, @before_id::text)
ORDER BY admitted_at DESC, id DESC
LIMIT @max;

-- name: RunReport :one
-- Records the completion a client reported. Settlement applies it.
UPDATE runs
SET reported_status = @reported_status, input_tokens = @input_tokens,
    output_tokens = @output_tokens, reported_cost_micros = sqlc.narg('reported_cost_micros'),
    latency_ms = @latency_ms, error_code = @error_code, error_message = @error_message,
    reported_at = now()
WHERE id = @id AND reported_at IS NULL
RETURNING *;

-- name: RunExtendLease :one
UPDATE runs SET lease_expires_at = @lease_expires_at
WHERE id = @id
RETURNING *;

-- name: ReservationsExtend :execrows
-- Extends the live reservations of a run; expired ones stay expired.
UPDATE run_reservations SET expires_at = @expires_at
WHERE run_id = @run_id AND NOT released AND expires_at > now();

-- name: ReservationsOfRun :many
SELECT * FROM run_reservations WHERE run_id = @run_id ORDER BY limit_id, window_start;

-- name: ReservationsReleaseRun :exec
UPDATE run_reservations SET released = true WHERE run_id = @run_id;

-- name: RunSettle :one
UPDATE runs
SET status = @status, cost_micros = @cost_micros, input_tokens = @input_tokens,
    output_tokens = @output_tokens, settled_at = now()
WHERE id = @id
RETURNING *;

-- name: CostRecordInsert :one
INSERT INTO cost_records (org_id, id, run_id, project_id, agent_id, api_key_id, model,
                          feature, cost_micros, input_tokens, output_tokens, run_status)
VALUES (@org_id, @id, @run_id, @project_id, @agent_id, @api_key_id, @model, @feature,
        @cost_micros, @input_tokens, @output_tokens, @run_status)
ON CONFLICT (run_id) DO NOTHING
RETURNING *;

-- name: CostRecordForRun :one
SELECT * FROM cost_records WHERE org_id = @org_id AND run_id = @run_id;

-- name: CostRecordList :many
SELECT * FROM cost_records
WHERE org_id = @org_id
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND (@api_key_id::text = '' OR api_key_id = @api_key_id)
  AND (@project_id::text = '' OR project_id = @project_id)
  AND (@model::text = '' OR model = @model)
  AND (@feature::text = '' OR feature = @feature)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR recorded_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR recorded_at < sqlc.narg('end_time'))
  AND (recorded_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY recorded_at, id
LIMIT @max;

-- name: CostRecordTotals :one
SELECT coalesce(sum(cost_micros), 0)::bigint AS cost_micros,
       coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
       coalesce(sum(output_tokens), 0)::bigint AS output_tokens,
       count(*) AS records
FROM cost_records
WHERE org_id = @org_id
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND (@api_key_id::text = '' OR api_key_id = @api_key_id)
  AND (@project_id::text = '' OR project_id = @project_id)
  AND (@model::text = '' OR model = @model)
  AND (@feature::text = '' OR feature = @feature)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR recorded_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR recorded_at < sqlc.narg('end_time'));

-- name: SpendByKeys :many
-- Settled cost per API key since a time (the start of the month, in the organization's
-- time zone).
SELECT api_key_id, coalesce(sum(cost_micros), 0)::bigint AS cost_micros
FROM cost_records
WHERE org_id = @org_id AND api_key_id = ANY (@api_key_ids::text[]) AND recorded_at >= @since
GROUP BY api_key_id;
