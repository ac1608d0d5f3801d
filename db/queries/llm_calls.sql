-- name: LlmCallRunsLock :many
-- The runs a batch of calls belongs to, locked FOR SHARE: a settlement (which locks its run
-- FOR UPDATE and sums the run's calls) cannot happen between reading whether a run is
-- settled and inserting its calls, so every call is either in the sum or marked late.
SELECT id, org_id, project_id, agent_id, feature, status, settled_at, reported_at,
       reported_cost_micros, input_tokens, output_tokens
FROM runs
WHERE id = ANY (@ids::text[])
ORDER BY id
FOR SHARE;

-- name: LlmCallRunsWithCostReservation :many
-- Which of these runs hold a reservation on a cost limit (their calls must be priced), with
-- one such limit each.
SELECT DISTINCT ON (run_id) run_id, limit_id FROM run_reservations
WHERE run_id = ANY (@run_ids::text[]) AND metric = 'cost'
ORDER BY run_id, limit_id;

-- name: LlmCallAgents :many
-- The project of each agent calls are attributed to without a run.
SELECT id, org_id, project_id FROM agents WHERE id = ANY (@ids::text[]);

-- name: LlmCallPrices :many
SELECT * FROM model_prices WHERE org_id = @org_id AND model = ANY (@models::text[]);

-- name: LlmCallsInsertMany :many
-- One statement per batch. A call id already recorded (a retried batch) is skipped; the
-- call ids returned are those this statement inserted. Empty run ids are stored as NULL,
-- latencies of -1 as NULL (not reported).
INSERT INTO llm_calls (org_id, id, call_id, run_id, project_id, agent_id, api_key_id, model,
                       provider, operation, feature, input_tokens, output_tokens,
                       cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_micros,
                       cost_source, latency_ms, status, error_type, started_at, late, source,
                       trace_id, span_id, attributes)
SELECT @org_id::text, x.id, x.call_id, nullif(x.run_id, ''), x.project_id, x.agent_id,
       x.api_key_id, x.model, x.provider, x.operation, x.feature, x.input_tokens,
       x.output_tokens, x.cache_read_tokens, x.cache_write_tokens, x.reasoning_tokens,
       x.cost_micros, x.cost_source, nullif(x.latency_ms, -1), x.status, x.error_type,
       x.started_at, x.late, @source::text, x.trace_id, x.span_id, x.attributes
FROM (SELECT unnest(@ids::text[]) AS id, unnest(@call_ids::text[]) AS call_id,
             unnest(@run_ids::text[]) AS run_id, unnest(@project_ids::text[]) AS project_id,
             unnest(@agent_ids::text[]) AS agent_id, unnest(@api_key_ids::text[]) AS api_key_id,
             unnest(@models::text[]) AS model, unnest(@providers::text[]) AS provider,
             unnest(@operations::text[]) AS operation, unnest(@features::text[]) AS feature,
             unnest(@input_tokens::bigint[]) AS input_tokens,
             unnest(@output_tokens::bigint[]) AS output_tokens,
             unnest(@cache_read_tokens::bigint[]) AS cache_read_tokens,
             unnest(@cache_write_tokens::bigint[]) AS cache_write_tokens,
             unnest(@reasoning_tokens::bigint[]) AS reasoning_tokens,
             unnest(@cost_micros::bigint[]) AS cost_micros,
             unnest(@cost_sources::text[]) AS cost_source,
             unnest(@latency_ms::bigint[]) AS latency_ms, unnest(@statuses::text[]) AS status,
             unnest(@error_types::text[]) AS error_type,
             unnest(@started_ats::timestamptz[]) AS started_at, unnest(@lates::boolean[]) AS late,
             unnest(@trace_ids::text[]) AS trace_id, unnest(@span_ids::text[]) AS span_id,
             unnest(@attributes::jsonb[]) AS attributes) AS x
ON CONFLICT (org_id, call_id) DO NOTHING
RETURNING call_id;

-- name: LlmCallRunTotals :one
-- What a run's calls add up to, for a settlement that charges them (the run reported no
-- cost and no tokens). Input counts cache reads and writes, output counts reasoning, as a
-- run's token limits do.
SELECT count(*) AS calls,
       least(coalesce(sum(cost_micros), 0), 4000000000000000000)::bigint AS cost_micros,
       least(coalesce(sum(input_tokens::numeric + cache_read_tokens + cache_write_tokens), 0), 4000000000000000000)::bigint AS input_tokens,
       least(coalesce(sum(output_tokens::numeric + reasoning_tokens), 0), 4000000000000000000)::bigint AS output_tokens
FROM llm_calls
WHERE org_id = @org_id AND run_id = @run_id;

-- name: LlmCallListAsc :many
SELECT * FROM llm_calls
WHERE org_id = @org_id
  AND (@run_id::text = '' OR run_id = @run_id)
  AND (@project_id::text = '' OR project_id = @project_id)
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND (@api_key_id::text = '' OR api_key_id = @api_key_id)
  AND (@model::text = '' OR model = @model)
  AND (@provider::text = '' OR provider = @provider)
  AND (@feature::text = '' OR feature = @feature)
  AND (@status::text = '' OR status = @status)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR started_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR started_at < sqlc.narg('end_time'))
  AND (started_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY started_at, id
LIMIT @max;

-- name: LlmCallListDesc :many
SELECT * FROM llm_calls
WHERE org_id = @org_id
  AND (@run_id::text = '' OR run_id = @run_id)
  AND (@project_id::text = '' OR project_id = @project_id)
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND (@api_key_id::text = '' OR api_key_id = @api_key_id)
  AND (@model::text = '' OR model = @model)
  AND (@provider::text = '' OR provider = @provider)
  AND (@feature::text = '' OR feature = @feature)
  AND (@status::text = '' OR status = @status)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR started_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR started_at < sqlc.narg('end_time'))
  AND (started_at, id) < (@before_time::timestamptz, @before_id::text)
ORDER BY started_at DESC, id DESC
LIMIT @max;

-- name: LlmCallsOfRunAfter :many
-- A run's calls in time order, after a position (its logs).
SELECT * FROM llm_calls
WHERE org_id = @org_id AND run_id = @run_id
  AND (started_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY started_at, id
LIMIT @max;

-- name: LlmCallsOfIncidentAsc :many
-- The calls of the runs attached to an incident.
SELECT c.* FROM incident_runs ir
JOIN llm_calls c ON c.org_id = @org_id AND c.run_id = ir.run_id
WHERE ir.incident_id = @incident_id
  AND (c.started_at, c.id) > (@after_time::timestamptz, @after_id::text)
ORDER BY c.started_at, c.id
LIMIT @max;

-- name: LlmCallsOfIncidentDesc :many
SELECT c.* FROM incident_runs ir
JOIN llm_calls c ON c.org_id = @org_id AND c.run_id = ir.run_id
WHERE ir.incident_id = @incident_id
  AND (c.started_at, c.id) < (@before_time::timestamptz, @before_id::text)
ORDER BY c.started_at DESC, c.id DESC
LIMIT @max;
