-- Exports read in keyset order (oldest first), one bounded batch per statement, so an
-- export of any size holds one batch in memory. Cost records and audit entries use their
-- list queries (CostRecordList, AuditEntryListAsc).

-- name: RunExportAsc :many
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
  AND (admitted_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY admitted_at, id
LIMIT @max;

-- name: IncidentExportAsc :many
SELECT * FROM incidents
WHERE org_id = @org_id
  AND (cardinality(@statuses::text[]) = 0 OR status = ANY (@statuses::text[]))
  AND (cardinality(@severities::text[]) = 0 OR severity = ANY (@severities::text[]))
  AND (cardinality(@categories::text[]) = 0 OR category = ANY (@categories::text[]))
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR created_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR created_at < sqlc.narg('end_time'))
  AND (created_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY created_at, id
LIMIT @max;

-- name: AnomalyExportAsc :many
SELECT * FROM anomalies
WHERE org_id = @org_id
  AND (cardinality(@types::text[]) = 0 OR type = ANY (@types::text[]))
  AND (cardinality(@severities::text[]) = 0 OR severity = ANY (@severities::text[]))
  AND (cardinality(@metrics::text[]) = 0 OR metric = ANY (@metrics::text[]))
  AND (@entity_type::text = '' OR entity_type = @entity_type)
  AND (@entity_id::text = '' OR entity_id = @entity_id)
  AND (@incident_id::text = '' OR incident_id = @incident_id)
  AND (@run_id::text = '' OR run_id = @run_id)
  AND (sqlc.narg('from_day')::date IS NULL OR day >= sqlc.narg('from_day'))
  AND (sqlc.narg('to_day')::date IS NULL OR day <= sqlc.narg('to_day'))
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR detected_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR detected_at < sqlc.narg('end_time'))
  AND (detected_at, id) > (@after_time::timestamptz, @after_id::text)
ORDER BY detected_at, id
LIMIT @max;

-- name: LlmCallExportAsc :many
-- LlmCallListAsc's rows, with the attributes as text (decoding JSON only to write it out
-- again is a large part of an export's time).
SELECT id, call_id, coalesce(run_id, '')::text AS run_id, project_id, agent_id, api_key_id, model, provider,
       operation, feature, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
       reasoning_tokens, cost_micros, cost_source, latency_ms, status, error_type, started_at,
       recorded_at, late, source, trace_id, span_id, attributes::text AS attributes
FROM llm_calls
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
