-- name: AnomalySettingsGet :one
SELECT * FROM anomaly_settings WHERE org_id = @org_id;

-- name: AnomalySettingsUpsert :one
INSERT INTO anomaly_settings (org_id, enabled, metrics, methods, info_threshold, warning_threshold,
                              high_threshold, critical_threshold, lookback_days, min_data_points,
                              min_daily_runs, updated_at)
VALUES (@org_id, @enabled, @metrics, @methods, @info_threshold, @warning_threshold, @high_threshold,
        @critical_threshold, @lookback_days, @min_data_points, @min_daily_runs, now())
ON CONFLICT (org_id) DO UPDATE
SET enabled = EXCLUDED.enabled, metrics = EXCLUDED.metrics, methods = EXCLUDED.methods,
    info_threshold = EXCLUDED.info_threshold, warning_threshold = EXCLUDED.warning_threshold,
    high_threshold = EXCLUDED.high_threshold, critical_threshold = EXCLUDED.critical_threshold,
    lookback_days = EXCLUDED.lookback_days, min_data_points = EXCLUDED.min_data_points,
    min_daily_runs = EXCLUDED.min_daily_runs, updated_at = now()
RETURNING *;

-- name: AnomalyProgressGet :one
SELECT evaluated_through FROM anomaly_progress WHERE org_id = @org_id;

-- name: AnomalyProgressAdvance :exec
-- Moves an organization's progress forward (never back).
INSERT INTO anomaly_progress (org_id, evaluated_through) VALUES (@org_id, @evaluated_through)
ON CONFLICT (org_id) DO UPDATE
SET evaluated_through = greatest(anomaly_progress.evaluated_through, EXCLUDED.evaluated_through), updated_at = now();

-- name: AnomalyOrgsPage :many
-- Organizations in id order, a page at a time, for scheduled batches.
SELECT id, time_zone FROM organizations WHERE id > @after_id ORDER BY id LIMIT @max;

-- name: UsageDaysComplete :many
-- The days of a range whose rollup was made after the day had ended (so it is final).
SELECT day FROM usage_days
WHERE org_id = @org_id AND day >= @from_day AND day <= @to_day AND complete;

-- name: UsageDailyRollup :one
SELECT usage_daily_rollup(@org_id::text, @day::date, @start_time::timestamptz, @end_time::timestamptz, @complete::boolean)::bigint AS records;

-- name: UsageDailyEntities :many
-- The next page of entities with usage in a range of days, in (type, id) order.
SELECT DISTINCT entity_type, entity_id FROM usage_daily
WHERE org_id = @org_id AND day >= @from_day AND day <= @to_day
  AND (entity_type, entity_id) > (@after_type::text, @after_id::text)
ORDER BY entity_type, entity_id
LIMIT @max;

-- name: UsageDailySeries :many
-- The daily usage of the entities in [(first_type, first_id), (last_type, last_id)] over a
-- range of days, ordered by entity then day.
SELECT entity_type, entity_id, day, cost_micros, tokens, runs, failed, latency_sum_ms, latency_count
FROM usage_daily
WHERE org_id = @org_id AND day >= @from_day AND day <= @to_day
  AND (entity_type, entity_id) >= (@first_type::text, @first_id::text)
  AND (entity_type, entity_id) <= (@last_type::text, @last_id::text)
ORDER BY entity_type, entity_id, day;

-- name: BudgetBreaches :many
-- Cost budgets whose usage in a window that started at or after @since went past their
-- amount.
SELECT l.id AS limit_id, l.name, l.scope_type, l.scope_id, l.model, l.feature, l.window_kind,
       l.amount, c.window_start, c.used
FROM limits l
JOIN limit_counters c ON c.limit_id = l.id
WHERE l.org_id = @org_id AND l.metric = 'cost' AND l.deleted_at IS NULL
  AND c.window_start >= @since AND c.used > l.amount
ORDER BY l.id, c.window_start;

-- name: AnomalyInsert :one
-- Inserts an anomaly unless one with the same key exists (then no row is returned).
INSERT INTO anomalies (org_id, id, dedupe_key, type, entity_type, entity_id, metric, method,
                       severity, day, window_start, window_end, baseline, observed, deviation,
                       score, confidence, context, limit_id, run_id)
VALUES (@org_id, @id, @dedupe_key, @type, @entity_type, @entity_id, @metric, @method,
        @severity, @day, @window_start, @window_end, @baseline, @observed, @deviation,
        @score, @confidence, @context, sqlc.narg('limit_id'), sqlc.narg('run_id'))
ON CONFLICT (org_id, dedupe_key) DO NOTHING
RETURNING *;

-- name: AnomalyLink :one
UPDATE anomalies
SET incident_id = coalesce(sqlc.narg('incident_id'), incident_id),
    alert_id    = coalesce(sqlc.narg('alert_id'), alert_id)
WHERE id = @id
RETURNING *;

-- name: AnomalyGet :one
SELECT * FROM anomalies WHERE org_id = @org_id AND id = @id;

-- name: AnomalyList :many
-- Newest first.
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
  AND (@before_id::text = '' OR id < @before_id)
ORDER BY id DESC
LIMIT @max;

-- name: AnomalyRunCreate :one
INSERT INTO anomaly_runs (org_id, id, workflow_id, trigger, requested_day, requested_by)
VALUES (@org_id, @id, @workflow_id, @trigger, sqlc.narg('requested_day'), @requested_by)
RETURNING *;

-- name: AnomalyRunForWorkflow :one
-- The run of an organization in a (scheduled) workflow, made on first use.
INSERT INTO anomaly_runs (org_id, id, workflow_id, trigger, requested_by)
VALUES (@org_id, @id, @workflow_id, 'schedule', 'schedule')
ON CONFLICT (org_id, workflow_id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id
RETURNING *;

-- name: AnomalyRunGet :one
SELECT * FROM anomaly_runs WHERE org_id = @org_id AND id = @id;

-- name: AnomalyRunGetByID :one
SELECT * FROM anomaly_runs WHERE id = @id;

-- name: AnomalyRunStart :one
UPDATE anomaly_runs
SET status = 'running', started_at = coalesce(started_at, now()), days = @days
WHERE id = @id
RETURNING *;

-- name: AnomalyRunAdd :exec
-- Adds a committed page's counts to its run.
UPDATE anomaly_runs
SET series_evaluated  = series_evaluated + @series_evaluated,
    anomalies_found   = anomalies_found + @anomalies_found,
    anomalies_created = anomalies_created + @anomalies_created,
    incidents_linked  = incidents_linked + @incidents_linked,
    alerts_raised     = alerts_raised + @alerts_raised
WHERE id = @id;

-- name: AnomalyRunFinish :one
UPDATE anomaly_runs
SET status = @status, error = @error, finished_at = now()
WHERE id = @id
RETURNING *;

-- name: AnomalyRunList :many
SELECT * FROM anomaly_runs
WHERE org_id = @org_id AND (@before_id::text = '' OR id < @before_id)
ORDER BY id DESC
LIMIT @max;

-- name: AnomalyExplaining :one
-- The agent-level spike of the same metric and day with the largest excess over its
-- baseline, if that excess is at least @min_excess: it explains an organization-, key- or
-- model-level spike (one cause, one incident and one alert).
SELECT * FROM anomalies
WHERE org_id = @org_id AND type = 'METRIC_SPIKE' AND entity_type = 'agent' AND metric = @metric AND day = @day
  AND observed - baseline >= @min_excess::float8
ORDER BY observed - baseline DESC, id
LIMIT 1;
