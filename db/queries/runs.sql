-- name: AgentsForAdmission :many
-- The agents (with their project and organization time zone) of a batch of admissions.
SELECT a.org_id, a.id, a.project_id, o.time_zone
FROM agents a JOIN organizations o ON o.id = a.org_id
WHERE a.id = ANY (@agent_ids::text[]);

-- name: AdmissionContext :many
-- What admitting a run of an agent with an API key needs: the agent's project and
-- organization time zone, and every enabled limit that could govern the run (one row per
-- limit; limit_id is empty when there is none). Model and feature narrowing is applied by
-- the caller.
SELECT a.org_id, a.project_id, o.time_zone,
       coalesce(l.id, '')::text AS limit_id, coalesce(l.name, '')::text AS limit_name,
       coalesce(l.scope_type, '')::text AS scope_type, coalesce(l.scope_id, '')::text AS scope_id,
       coalesce(l.model, '')::text AS model, coalesce(l.feature, '')::text AS feature,
       coalesce(l.metric, '')::text AS metric, coalesce(l.window_kind, '')::text AS window_kind,
       coalesce(l.amount, 0)::bigint AS amount, coalesce(l.enforcement, '')::text AS enforcement,
       coalesce(l.thresholds, '{}')::integer[] AS thresholds,
       coalesce(l.inheritance, '')::text AS inheritance, coalesce(l.priority, 0)::integer AS priority
FROM agents a
JOIN organizations o ON o.id = a.org_id
-- One index lookup per scope: written as an IN list, the planner scans every limit of
-- the organization instead.
LEFT JOIN LATERAL (
    SELECT * FROM limits WHERE scope_id = a.org_id AND deleted_at IS NULL
    UNION ALL
    SELECT * FROM limits WHERE scope_id = a.project_id AND deleted_at IS NULL
    UNION ALL
    SELECT * FROM limits WHERE scope_id = a.id AND deleted_at IS NULL
    UNION ALL
    SELECT * FROM limits WHERE scope_id = @api_key_id::text AND deleted_at IS NULL
) AS l ON l.org_id = a.org_id AND l.enabled
WHERE a.id = @agent_id;

-- name: RunsByClientID :many
SELECT * FROM runs
WHERE (org_id, client_run_id) IN (
    SELECT unnest(@org_ids::text[]), unnest(@client_run_ids::text[]));

-- name: RunsInsertMany :exec
-- Empty client run ids, retry_of and JSON nulls are stored as SQL NULL; blocked runs have no lease.
INSERT INTO runs (org_id, id, project_id, agent_id, api_key_id, model, feature, tags,
                  client_run_id, status, est_cost_micros, est_input_tokens, est_output_tokens,
                  blocked_by, warnings, admitted_at, lease_expires_at, blocked_by_rule, retry_of)
SELECT x.org_id, x.id, x.project_id, x.agent_id, x.api_key_id, x.model, x.feature, x.tags,
       nullif(x.client_run_id, ''), x.status, x.est_cost_micros, x.est_input_tokens,
       x.est_output_tokens, nullif(x.blocked_by, 'null'::jsonb), nullif(x.warnings, 'null'::jsonb),
       x.admitted_at, CASE WHEN x.status = 'blocked' THEN NULL ELSE x.lease_expires_at END,
       nullif(x.blocked_by_rule, ''), nullif(x.retry_of, '')
FROM (SELECT unnest(@org_ids::text[]) AS org_id, unnest(@ids::text[]) AS id,
             unnest(@project_ids::text[]) AS project_id, unnest(@agent_ids::text[]) AS agent_id,
             unnest(@api_key_ids::text[]) AS api_key_id, unnest(@models::text[]) AS model,
             unnest(@features::text[]) AS feature, unnest(@tags::jsonb[]) AS tags,
             unnest(@client_run_ids::text[]) AS client_run_id, unnest(@statuses::text[]) AS status,
             unnest(@est_cost_micros::bigint[]) AS est_cost_micros,
             unnest(@est_input_tokens::bigint[]) AS est_input_tokens,
             unnest(@est_output_tokens::bigint[]) AS est_output_tokens,
             unnest(@blocked_bys::jsonb[]) AS blocked_by, unnest(@warnings::jsonb[]) AS warnings,
             unnest(@admitted_ats::timestamptz[]) AS admitted_at,
             unnest(@lease_expires_ats::timestamptz[]) AS lease_expires_at,
             unnest(@blocked_by_rules::text[]) AS blocked_by_rule,
             unnest(@retry_ofs::text[]) AS retry_of) AS x;

-- name: ReservationsInsertMany :exec
INSERT INTO run_reservations (run_id, limit_id, window_start, metric, amount, expires_at)
SELECT unnest(@run_ids::text[]), unnest(@limit_ids::text[]), unnest(@window_starts::timestamptz[]),
       unnest(@metrics::text[]), unnest(@amounts::bigint[]), unnest(@expires_ats::timestamptz[]);

-- name: EventsInsertMany :exec
INSERT INTO domain_events (id, org_id, occurred_at, domain, type, entity_type, entity_id,
                           related, correlation_id, summary, data, actor_kind,
                           actor_api_key_id, actor_user_id, actor_system)
SELECT unnest(@ids::text[]), unnest(@org_ids::text[]), unnest(@occurred_ats::timestamptz[]),
       unnest(@domains::text[]), unnest(@types::text[]), unnest(@entity_types::text[]),
       unnest(@entity_ids::text[]), unnest(@relateds::jsonb[]), unnest(@correlation_ids::text[]),
       unnest(@summaries::text[]), unnest(@datas::jsonb[]), unnest(@actor_kinds::text[]),
       unnest(@actor_api_key_ids::text[]), unnest(@actor_user_ids::text[]),
       unnest(@actor_systems::text[]);

-- name: OutboxInsertMany :exec
INSERT INTO workflow_outbox (org_id, kind, workflow_type, workflow_id, signal_name, payload)
SELECT unnest(@org_ids::text[]), unnest(@kinds::text[]), unnest(@workflow_types::text[]),
       unnest(@workflow_ids::text[]), unnest(@signal_names::text[]), unnest(@payloads::jsonb[]);

-- name: OutboxAdd :exec
INSERT INTO workflow_outbox (org_id, kind, workflow_type, workflow_id, signal_name, signal_arg, payload)
VALUES (@org_id, @kind, @workflow_type, @workflow_id, @signal_name, @signal_arg, @payload);

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
-- Status words are the API's: "admitted" is a run still running, "settling" one that
-- reported its end and waits for settlement (stored as admitted with reported_at).
SELECT * FROM runs
WHERE org_id = @org_id
  AND (cardinality(@statuses::text[]) = 0
       OR (CASE WHEN status = 'admitted' AND reported_at IS NOT NULL THEN 'settling' ELSE status END) = ANY (@statuses::text[]))
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
-- A settlement that succeeds clears any dead letter (an operator retried it).
UPDATE runs
SET status = @status, cost_micros = @cost_micros, input_tokens = @input_tokens,
    output_tokens = @output_tokens, settled_at = now(), dead_lettered_at = NULL, dead_letter_error = ''
WHERE id = @id
RETURNING *;

-- name: RunDeadLetter :one
-- Marks a settlement that gave up; returns nothing when it is settled or dead-lettered
-- already.
UPDATE runs SET dead_lettered_at = now(), dead_letter_error = @error
WHERE id = @id AND dead_lettered_at IS NULL AND (settled_at IS NULL OR (status = 'expired' AND reported_at IS NOT NULL))
RETURNING *;

-- name: RunClearDeadLetter :one
-- An operator's retry: the run's workflow settles it again.
UPDATE runs SET dead_lettered_at = NULL, dead_letter_error = ''
WHERE org_id = @org_id AND id = @id AND dead_lettered_at IS NOT NULL
RETURNING *;

-- name: RunsDeadLetteredCount :one
SELECT count(*) FROM runs WHERE dead_lettered_at IS NOT NULL;

-- name: CostRecordInsert :one
INSERT INTO cost_records (org_id, id, run_id, project_id, agent_id, api_key_id, model,
                          feature, cost_micros, input_tokens, output_tokens, run_status, latency_ms)
VALUES (@org_id, @id, @run_id, @project_id, @agent_id, @api_key_id, @model, @feature,
        @cost_micros, @input_tokens, @output_tokens, @run_status, sqlc.narg('latency_ms'))
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
SELECT least(coalesce(sum(cost_micros), 0), 4000000000000000000)::bigint AS cost_micros,
       least(coalesce(sum(input_tokens), 0), 4000000000000000000)::bigint AS input_tokens,
       least(coalesce(sum(output_tokens), 0), 4000000000000000000)::bigint AS output_tokens,
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
SELECT api_key_id, least(coalesce(sum(cost_micros), 0), 4000000000000000000)::bigint AS cost_micros
FROM cost_records
WHERE org_id = @org_id AND api_key_id = ANY (@api_key_ids::text[]) AND recorded_at >= @since
GROUP BY api_key_id;

-- name: TxSetLockTimeout :exec
-- Bounds this transaction's lock waits (SET LOCAL lock_timeout), e.g. an admission
-- batch's wait for counters another transaction holds.
SELECT set_config('lock_timeout', @timeout::text, true);
