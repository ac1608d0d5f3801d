-- Analytics (internal/analytics): the roller's queue and rollups, and the queries that
-- read them. Every read is of one cube (usage.Cubes) over pieces of rollup buckets
-- (bucket.Decompose): @piece_* name, for each run of buckets of one grain, the chart
-- bucket it belongs to.

-- name: AnalyticsRollLock :one
-- Serialises the rolls of one organization (the roller's and a query's catch-up), so a
-- query that waited for it sees everything the roll took from the queue. at: every
-- record committed before it is visible to the statements that follow.
SELECT pg_advisory_xact_lock(1414, hashtext(@org_id::text))::text AS locked, statement_timestamp()::timestamptz AS at;

-- name: AnalyticsRollTryLock :one
SELECT pg_try_advisory_xact_lock(1414, hashtext(@org_id::text))::boolean AS locked, statement_timestamp()::timestamptz AS at;

-- name: AnalyticsPendingClaim :many
-- Takes up to @max of the organization's queue, oldest first. The rows are gone only if
-- the transaction that adds them to the rollups commits. claimed_at: every record
-- committed before it was in the queue this statement read.
DELETE FROM analytics_pending p
WHERE p.seq IN (SELECT q.seq FROM analytics_pending q WHERE q.org_id = @org_id ORDER BY q.seq LIMIT @max)
RETURNING p.seq, p.kind, p.ref_id, p.at, statement_timestamp()::timestamptz AS claimed_at;

-- name: AnalyticsPendingOrgs :many
-- Organizations with something to roll up.
WITH RECURSIVE o AS (
    (SELECT org_id FROM analytics_pending ORDER BY org_id LIMIT 1)
    UNION ALL
    SELECT (SELECT p.org_id FROM analytics_pending p WHERE p.org_id > o.org_id ORDER BY p.org_id LIMIT 1)
    FROM o WHERE o.org_id IS NOT NULL
)
SELECT org_id::text FROM o WHERE org_id IS NOT NULL LIMIT @max;

-- name: AnalyticsPendingCount :one
SELECT count(*) FROM (SELECT 1 FROM analytics_pending WHERE org_id = @org_id LIMIT @max) s;

-- name: AnalyticsSettingsGet :one
SELECT * FROM analytics_settings WHERE org_id = @org_id;

-- name: AnalyticsMarkRolled :exec
-- The organization's queue was empty at @at: everything committed before is rolled up.
INSERT INTO analytics_settings (org_id, rolled_through) VALUES (@org_id, @at)
ON CONFLICT (org_id) DO UPDATE
SET rolled_through = greatest(analytics_settings.rolled_through, EXCLUDED.rolled_through);

-- name: AnalyticsSetTagKey :one
INSERT INTO analytics_settings (org_id, tag_key, rolled_through, updated_at) VALUES (@org_id, @tag_key, NULL, now())
ON CONFLICT (org_id) DO UPDATE SET tag_key = EXCLUDED.tag_key, rolled_through = NULL, updated_at = now()
RETURNING *;

-- name: AnalyticsRebuild :one
-- Starts the organization's rollups over: drops them and queues every record again, in
-- one statement (one snapshot), so a record committed meanwhile is queued by its trigger
-- or by this, never both and never neither. Run under AnalyticsRollLock.
WITH gone AS (
    DELETE FROM analytics_rollups g WHERE g.org_id = @org_id RETURNING 1
), dropped AS (
    DELETE FROM analytics_pending d WHERE d.org_id = @org_id RETURNING 1
), queued AS (
    INSERT INTO analytics_pending (org_id, kind, ref_id, at)
    SELECT r.org_id, 'admitted', r.id, r.admitted_at FROM runs r WHERE r.org_id = @org_id
    UNION ALL
    SELECT r.org_id, 'expired', r.id, coalesce(r.settled_at, r.admitted_at) FROM runs r WHERE r.org_id = @org_id AND r.status = 'expired'
    UNION ALL
    SELECT c.org_id, 'settled', c.id, c.recorded_at FROM cost_records c WHERE c.org_id = @org_id
    UNION ALL
    SELECT l.org_id, 'call', l.id, l.started_at FROM llm_calls l WHERE l.org_id = @org_id AND (l.late OR l.run_id IS NULL)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS rollups_dropped, (SELECT count(*) FROM dropped) AS pending_dropped,
       (SELECT count(*) FROM queued) AS queued;

-- name: AnalyticsRuns :many
-- The runs the roller needs, with their value of the tag key.
SELECT r.id, r.project_id, r.agent_id, r.api_key_id, r.model, r.feature, r.status, r.admitted_at,
       (r.warnings IS NOT NULL AND r.warnings <> '[]'::jsonb)::boolean AS warned,
       (r.blocked_by_rule IS NOT NULL)::boolean AS blocked_by_policy,
       coalesce(r.blocked_by -> 0 ->> 'metric', '')::text AS blocked_metric,
       (CASE WHEN @tag_key::text = '' THEN '' ELSE coalesce(r.tags ->> @tag_key::text, '') END)::text AS tag
FROM runs r
WHERE r.org_id = @org_id AND r.id = ANY (@ids::text[]);

-- name: AnalyticsCostRecords :many
SELECT id, run_id, cost_micros, input_tokens, output_tokens, run_status, latency_ms, recorded_at
FROM cost_records
WHERE org_id = @org_id AND id = ANY (@ids::text[]);

-- name: AnalyticsCallsOfRuns :many
-- The calls recorded before their runs settled (the rest are rolled up on their own).
SELECT id, run_id, project_id, agent_id, api_key_id, model, provider, feature, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms, status, started_at
FROM llm_calls
WHERE org_id = @org_id AND run_id = ANY (@run_ids::text[]) AND NOT late;

-- name: AnalyticsCalls :many
SELECT c.id, c.run_id, c.project_id, c.agent_id, c.api_key_id, c.model, c.provider, c.feature, c.input_tokens,
       c.output_tokens, c.cache_read_tokens, c.cache_write_tokens, c.reasoning_tokens, c.cost_micros, c.latency_ms,
       c.status, c.started_at,
       (CASE WHEN @tag_key::text = '' THEN '' ELSE coalesce(c.attributes ->> @tag_key::text, '') END)::text AS tag
FROM llm_calls c
WHERE c.org_id = @org_id AND c.id = ANY (@ids::text[]);

-- name: AnalyticsRollupsAdd :exec
-- Adds a roll's rows to the rollups. Rows arrive sorted by key, and one organization's
-- rolls never overlap (AnalyticsRollLock), so upserts cannot deadlock.
INSERT INTO analytics_rollups AS r (org_id, cube, grain, bucket_start, project_id, agent_id, api_key_id, provider, model, feature, run_status, tag, cost_micros, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, runs_succeeded, runs_failed, runs_cancelled, runs_expired, runs_blocked, admitted, blocked_limit, blocked_policy, blocked_rate, warned, calls, call_errors, cache_hit_calls, run_latency, call_latency)
SELECT @org_id, x.* FROM (
SELECT unnest(@cubes::smallint[]) AS cube,
       unnest(@grains::smallint[]) AS grain,
       unnest(@bucket_starts::timestamptz[]) AS bucket_start,
       unnest(@project_ids::text[]) AS project_id,
       unnest(@agent_ids::text[]) AS agent_id,
       unnest(@api_key_ids::text[]) AS api_key_id,
       unnest(@providers::text[]) AS provider,
       unnest(@models::text[]) AS model,
       unnest(@features::text[]) AS feature,
       unnest(@run_statuss::text[]) AS run_status,
       unnest(@tags::text[]) AS tag,
       unnest(@cost_micros::bigint[]) AS cost_micros,
       unnest(@input_tokens::bigint[]) AS input_tokens,
       unnest(@output_tokens::bigint[]) AS output_tokens,
       unnest(@cache_read_tokens::bigint[]) AS cache_read_tokens,
       unnest(@cache_write_tokens::bigint[]) AS cache_write_tokens,
       unnest(@reasoning_tokens::bigint[]) AS reasoning_tokens,
       unnest(@runs_succeeded::bigint[]) AS runs_succeeded,
       unnest(@runs_failed::bigint[]) AS runs_failed,
       unnest(@runs_cancelled::bigint[]) AS runs_cancelled,
       unnest(@runs_expired::bigint[]) AS runs_expired,
       unnest(@runs_blocked::bigint[]) AS runs_blocked,
       unnest(@admitted::bigint[]) AS admitted,
       unnest(@blocked_limit::bigint[]) AS blocked_limit,
       unnest(@blocked_policy::bigint[]) AS blocked_policy,
       unnest(@blocked_rate::bigint[]) AS blocked_rate,
       unnest(@warned::bigint[]) AS warned,
       unnest(@calls::bigint[]) AS calls,
       unnest(@call_errors::bigint[]) AS call_errors,
       unnest(@cache_hit_calls::bigint[]) AS cache_hit_calls,
       unnest(@run_latencies::jsonb[]) AS run_latency,
       unnest(@call_latencies::jsonb[]) AS call_latency
) AS x
ON CONFLICT (org_id, cube, grain, bucket_start, project_id, agent_id, api_key_id, provider, model, feature, run_status, tag) DO UPDATE
SET cost_micros = least(r.cost_micros + EXCLUDED.cost_micros, 4000000000000000000),
    input_tokens = least(r.input_tokens + EXCLUDED.input_tokens, 4000000000000000000),
    output_tokens = least(r.output_tokens + EXCLUDED.output_tokens, 4000000000000000000),
    cache_read_tokens = least(r.cache_read_tokens + EXCLUDED.cache_read_tokens, 4000000000000000000),
    cache_write_tokens = least(r.cache_write_tokens + EXCLUDED.cache_write_tokens, 4000000000000000000),
    reasoning_tokens = least(r.reasoning_tokens + EXCLUDED.reasoning_tokens, 4000000000000000000),
    runs_succeeded = least(r.runs_succeeded + EXCLUDED.runs_succeeded, 4000000000000000000),
    runs_failed = least(r.runs_failed + EXCLUDED.runs_failed, 4000000000000000000),
    runs_cancelled = least(r.runs_cancelled + EXCLUDED.runs_cancelled, 4000000000000000000),
    runs_expired = least(r.runs_expired + EXCLUDED.runs_expired, 4000000000000000000),
    runs_blocked = least(r.runs_blocked + EXCLUDED.runs_blocked, 4000000000000000000),
    admitted = least(r.admitted + EXCLUDED.admitted, 4000000000000000000),
    blocked_limit = least(r.blocked_limit + EXCLUDED.blocked_limit, 4000000000000000000),
    blocked_policy = least(r.blocked_policy + EXCLUDED.blocked_policy, 4000000000000000000),
    blocked_rate = least(r.blocked_rate + EXCLUDED.blocked_rate, 4000000000000000000),
    warned = least(r.warned + EXCLUDED.warned, 4000000000000000000),
    calls = least(r.calls + EXCLUDED.calls, 4000000000000000000),
    call_errors = least(r.call_errors + EXCLUDED.call_errors, 4000000000000000000),
    cache_hit_calls = least(r.cache_hit_calls + EXCLUDED.cache_hit_calls, 4000000000000000000),
    run_latency = analytics_sketch_add(r.run_latency, EXCLUDED.run_latency),
    call_latency = analytics_sketch_add(r.call_latency, EXCLUDED.call_latency);

-- name: AnalyticsRollupsPrune :exec
-- Rows whose retractions took everything back.
DELETE FROM analytics_rollups
WHERE org_id = @org_id AND cube = ANY (@cubes::smallint[]) AND grain = ANY (@grains::smallint[])
  AND bucket_start = ANY (@bucket_starts::timestamptz[])
  AND cost_micros = 0 AND input_tokens = 0 AND output_tokens = 0 AND cache_read_tokens = 0 AND cache_write_tokens = 0 AND reasoning_tokens = 0 AND runs_succeeded = 0 AND runs_failed = 0 AND runs_cancelled = 0 AND runs_expired = 0 AND runs_blocked = 0 AND admitted = 0 AND blocked_limit = 0 AND blocked_policy = 0 AND blocked_rate = 0 AND warned = 0 AND calls = 0 AND call_errors = 0 AND cache_hit_calls = 0 AND run_latency = '{}'::jsonb AND call_latency = '{}'::jsonb;

-- name: AnalyticsQuery :many
-- One cube over the pieces, grouped by the chart bucket and the grouped dimensions
-- (@g_*); a grouped dimension folded to its top values (@fold_*, @top_*) reads '' with
-- *_other set for every other value. Filters include (@in_*, none: any) and exclude (@out_*).
SELECT p.b::integer AS bucket,
       (CASE WHEN NOT @g_project::boolean OR (@fold_project::boolean AND NOT (r.project_id = ANY (@top_project::text[]))) THEN '' ELSE r.project_id END)::text AS project_id,
       (@g_project::boolean AND @fold_project::boolean AND NOT (r.project_id = ANY (@top_project::text[])))::boolean AS project_other,
       (CASE WHEN NOT @g_agent::boolean OR (@fold_agent::boolean AND NOT (r.agent_id = ANY (@top_agent::text[]))) THEN '' ELSE r.agent_id END)::text AS agent_id,
       (@g_agent::boolean AND @fold_agent::boolean AND NOT (r.agent_id = ANY (@top_agent::text[])))::boolean AS agent_other,
       (CASE WHEN NOT @g_api_key::boolean OR (@fold_api_key::boolean AND NOT (r.api_key_id = ANY (@top_api_key::text[]))) THEN '' ELSE r.api_key_id END)::text AS api_key_id,
       (@g_api_key::boolean AND @fold_api_key::boolean AND NOT (r.api_key_id = ANY (@top_api_key::text[])))::boolean AS api_key_other,
       (CASE WHEN NOT @g_provider::boolean OR (@fold_provider::boolean AND NOT (r.provider = ANY (@top_provider::text[]))) THEN '' ELSE r.provider END)::text AS provider,
       (@g_provider::boolean AND @fold_provider::boolean AND NOT (r.provider = ANY (@top_provider::text[])))::boolean AS provider_other,
       (CASE WHEN NOT @g_model::boolean OR (@fold_model::boolean AND NOT (r.model = ANY (@top_model::text[]))) THEN '' ELSE r.model END)::text AS model,
       (@g_model::boolean AND @fold_model::boolean AND NOT (r.model = ANY (@top_model::text[])))::boolean AS model_other,
       (CASE WHEN NOT @g_feature::boolean OR (@fold_feature::boolean AND NOT (r.feature = ANY (@top_feature::text[]))) THEN '' ELSE r.feature END)::text AS feature,
       (@g_feature::boolean AND @fold_feature::boolean AND NOT (r.feature = ANY (@top_feature::text[])))::boolean AS feature_other,
       (CASE WHEN NOT @g_run_status::boolean OR (@fold_run_status::boolean AND NOT (r.run_status = ANY (@top_run_status::text[]))) THEN '' ELSE r.run_status END)::text AS run_status,
       (@g_run_status::boolean AND @fold_run_status::boolean AND NOT (r.run_status = ANY (@top_run_status::text[])))::boolean AS run_status_other,
       (CASE WHEN NOT @g_tag::boolean OR (@fold_tag::boolean AND NOT (r.tag = ANY (@top_tag::text[]))) THEN '' ELSE r.tag END)::text AS tag,
       (@g_tag::boolean AND @fold_tag::boolean AND NOT (r.tag = ANY (@top_tag::text[])))::boolean AS tag_other,
       least(coalesce(sum(r.cost_micros), 0), 4000000000000000000)::bigint AS cost_micros,
       least(coalesce(sum(r.input_tokens), 0), 4000000000000000000)::bigint AS input_tokens,
       least(coalesce(sum(r.output_tokens), 0), 4000000000000000000)::bigint AS output_tokens,
       least(coalesce(sum(r.cache_read_tokens), 0), 4000000000000000000)::bigint AS cache_read_tokens,
       least(coalesce(sum(r.cache_write_tokens), 0), 4000000000000000000)::bigint AS cache_write_tokens,
       least(coalesce(sum(r.reasoning_tokens), 0), 4000000000000000000)::bigint AS reasoning_tokens,
       least(coalesce(sum(r.runs_succeeded), 0), 4000000000000000000)::bigint AS runs_succeeded,
       least(coalesce(sum(r.runs_failed), 0), 4000000000000000000)::bigint AS runs_failed,
       least(coalesce(sum(r.runs_cancelled), 0), 4000000000000000000)::bigint AS runs_cancelled,
       least(coalesce(sum(r.runs_expired), 0), 4000000000000000000)::bigint AS runs_expired,
       least(coalesce(sum(r.runs_blocked), 0), 4000000000000000000)::bigint AS runs_blocked,
       least(coalesce(sum(r.admitted), 0), 4000000000000000000)::bigint AS admitted,
       least(coalesce(sum(r.blocked_limit), 0), 4000000000000000000)::bigint AS blocked_limit,
       least(coalesce(sum(r.blocked_policy), 0), 4000000000000000000)::bigint AS blocked_policy,
       least(coalesce(sum(r.blocked_rate), 0), 4000000000000000000)::bigint AS blocked_rate,
       least(coalesce(sum(r.warned), 0), 4000000000000000000)::bigint AS warned,
       least(coalesce(sum(r.calls), 0), 4000000000000000000)::bigint AS calls,
       least(coalesce(sum(r.call_errors), 0), 4000000000000000000)::bigint AS call_errors,
       least(coalesce(sum(r.cache_hit_calls), 0), 4000000000000000000)::bigint AS cache_hit_calls,
       analytics_sketch_sum(CASE WHEN @with_latency::boolean THEN r.run_latency END)::jsonb AS run_latency,
       analytics_sketch_sum(CASE WHEN @with_latency::boolean THEN r.call_latency END)::jsonb AS call_latency
FROM (SELECT unnest(@piece_grains::smallint[]) AS grain, unnest(@piece_starts::timestamptz[]) AS s,
             unnest(@piece_ends::timestamptz[]) AS e, unnest(@piece_buckets::integer[]) AS b) AS p
JOIN analytics_rollups r ON r.org_id = @org_id AND r.cube = @cube AND r.grain = p.grain
 AND r.bucket_start >= p.s AND r.bucket_start < p.e
WHERE TRUE
  AND (cardinality(@in_project::text[]) = 0 OR r.project_id = ANY (@in_project::text[])) AND NOT (r.project_id = ANY (@out_project::text[]))
  AND (cardinality(@in_agent::text[]) = 0 OR r.agent_id = ANY (@in_agent::text[])) AND NOT (r.agent_id = ANY (@out_agent::text[]))
  AND (cardinality(@in_api_key::text[]) = 0 OR r.api_key_id = ANY (@in_api_key::text[])) AND NOT (r.api_key_id = ANY (@out_api_key::text[]))
  AND (cardinality(@in_provider::text[]) = 0 OR r.provider = ANY (@in_provider::text[])) AND NOT (r.provider = ANY (@out_provider::text[]))
  AND (cardinality(@in_model::text[]) = 0 OR r.model = ANY (@in_model::text[])) AND NOT (r.model = ANY (@out_model::text[]))
  AND (cardinality(@in_feature::text[]) = 0 OR r.feature = ANY (@in_feature::text[])) AND NOT (r.feature = ANY (@out_feature::text[]))
  AND (cardinality(@in_run_status::text[]) = 0 OR r.run_status = ANY (@in_run_status::text[])) AND NOT (r.run_status = ANY (@out_run_status::text[]))
  AND (cardinality(@in_tag::text[]) = 0 OR r.tag = ANY (@in_tag::text[])) AND NOT (r.tag = ANY (@out_tag::text[]))
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17;

-- name: AnalyticsMarginals :many
-- Each value of one dimension (@dim: 0 project … 7 tag) with its totals over the pieces:
-- what a top-N ranks.
SELECT (CASE @dim::integer WHEN 0 THEN r.project_id WHEN 1 THEN r.agent_id WHEN 2 THEN r.api_key_id
            WHEN 3 THEN r.provider WHEN 4 THEN r.model WHEN 5 THEN r.feature WHEN 6 THEN r.run_status
            ELSE r.tag END)::text AS value,
       least(coalesce(sum(r.cost_micros), 0), 4000000000000000000)::bigint AS cost_micros,
       least(coalesce(sum(r.input_tokens), 0), 4000000000000000000)::bigint AS input_tokens,
       least(coalesce(sum(r.output_tokens), 0), 4000000000000000000)::bigint AS output_tokens,
       least(coalesce(sum(r.cache_read_tokens), 0), 4000000000000000000)::bigint AS cache_read_tokens,
       least(coalesce(sum(r.cache_write_tokens), 0), 4000000000000000000)::bigint AS cache_write_tokens,
       least(coalesce(sum(r.reasoning_tokens), 0), 4000000000000000000)::bigint AS reasoning_tokens,
       least(coalesce(sum(r.runs_succeeded), 0), 4000000000000000000)::bigint AS runs_succeeded,
       least(coalesce(sum(r.runs_failed), 0), 4000000000000000000)::bigint AS runs_failed,
       least(coalesce(sum(r.runs_cancelled), 0), 4000000000000000000)::bigint AS runs_cancelled,
       least(coalesce(sum(r.runs_expired), 0), 4000000000000000000)::bigint AS runs_expired,
       least(coalesce(sum(r.runs_blocked), 0), 4000000000000000000)::bigint AS runs_blocked,
       least(coalesce(sum(r.admitted), 0), 4000000000000000000)::bigint AS admitted,
       least(coalesce(sum(r.blocked_limit), 0), 4000000000000000000)::bigint AS blocked_limit,
       least(coalesce(sum(r.blocked_policy), 0), 4000000000000000000)::bigint AS blocked_policy,
       least(coalesce(sum(r.blocked_rate), 0), 4000000000000000000)::bigint AS blocked_rate,
       least(coalesce(sum(r.warned), 0), 4000000000000000000)::bigint AS warned,
       least(coalesce(sum(r.calls), 0), 4000000000000000000)::bigint AS calls,
       least(coalesce(sum(r.call_errors), 0), 4000000000000000000)::bigint AS call_errors,
       least(coalesce(sum(r.cache_hit_calls), 0), 4000000000000000000)::bigint AS cache_hit_calls
FROM (SELECT unnest(@piece_grains::smallint[]) AS grain, unnest(@piece_starts::timestamptz[]) AS s,
             unnest(@piece_ends::timestamptz[]) AS e, unnest(@piece_buckets::integer[]) AS b) AS p
JOIN analytics_rollups r ON r.org_id = @org_id AND r.cube = @cube AND r.grain = p.grain
 AND r.bucket_start >= p.s AND r.bucket_start < p.e
WHERE TRUE
  AND (cardinality(@in_project::text[]) = 0 OR r.project_id = ANY (@in_project::text[])) AND NOT (r.project_id = ANY (@out_project::text[]))
  AND (cardinality(@in_agent::text[]) = 0 OR r.agent_id = ANY (@in_agent::text[])) AND NOT (r.agent_id = ANY (@out_agent::text[]))
  AND (cardinality(@in_api_key::text[]) = 0 OR r.api_key_id = ANY (@in_api_key::text[])) AND NOT (r.api_key_id = ANY (@out_api_key::text[]))
  AND (cardinality(@in_provider::text[]) = 0 OR r.provider = ANY (@in_provider::text[])) AND NOT (r.provider = ANY (@out_provider::text[]))
  AND (cardinality(@in_model::text[]) = 0 OR r.model = ANY (@in_model::text[])) AND NOT (r.model = ANY (@out_model::text[]))
  AND (cardinality(@in_feature::text[]) = 0 OR r.feature = ANY (@in_feature::text[])) AND NOT (r.feature = ANY (@out_feature::text[]))
  AND (cardinality(@in_run_status::text[]) = 0 OR r.run_status = ANY (@in_run_status::text[])) AND NOT (r.run_status = ANY (@out_run_status::text[]))
  AND (cardinality(@in_tag::text[]) = 0 OR r.tag = ANY (@in_tag::text[])) AND NOT (r.tag = ANY (@out_tag::text[]))
GROUP BY 1;

-- name: OverviewDecisions :many
-- The latest decisions (admissions and blocks), with what decided.
SELECT id, status, reported_at, agent_id, project_id, api_key_id, model, feature, admitted_at,
       coalesce(blocked_by -> 0 ->> 'limit_id', '')::text AS limit_id,
       coalesce(blocked_by -> 0 ->> 'limit_name', '')::text AS limit_name,
       coalesce(blocked_by_rule, '')::text AS policy_rule_id,
       coalesce((SELECT array_agg(w ->> 'limit_id') FROM jsonb_array_elements(coalesce(warnings, '[]'::jsonb)) AS w), '{}')::text[] AS warning_limit_ids
FROM runs
WHERE org_id = @org_id
ORDER BY admitted_at DESC, id DESC
LIMIT @max;

-- name: OverviewAnomalyCounts :many
SELECT severity, count(*) AS n FROM anomalies
WHERE org_id = @org_id AND detected_at >= @since
GROUP BY severity;

-- name: OverviewAnomalies :many
SELECT id, type, entity_type, entity_id, metric, method, severity, day, window_start, window_end, baseline, observed,
       deviation, score, confidence, coalesce(incident_id, '')::text AS incident_id, coalesce(alert_id, '')::text AS alert_id,
       coalesce(limit_id, '')::text AS limit_id, coalesce(run_id, '')::text AS detection_run_id, detected_at
FROM anomalies
WHERE org_id = @org_id AND detected_at >= @since
ORDER BY detected_at DESC, id DESC
LIMIT @max;

-- name: OverviewRecovery :one
-- Failed runs admitted since @since, the runs that retried them (retry_of, followed
-- through retries of retries, at most 10 deep), and what those cost.
WITH RECURSIVE failed AS (
    SELECT r.id, coalesce(r.cost_micros, 0) AS cost
    FROM runs r WHERE r.org_id = @org_id::text AND r.status = 'failed' AND r.admitted_at >= @since::timestamptz
), chain AS (
    SELECT f.id AS root, r2.id, r2.status, coalesce(r2.cost_micros, 0) AS cost, 1 AS depth
    FROM failed f JOIN runs r2 ON r2.org_id = @org_id::text AND r2.retry_of = f.id
    UNION ALL
    SELECT c.root, r3.id, r3.status, coalesce(r3.cost_micros, 0), c.depth + 1
    FROM chain c JOIN runs r3 ON r3.org_id = @org_id::text AND r3.retry_of = c.id
    WHERE c.depth < 10
)
SELECT (SELECT count(*) FROM failed)::bigint AS failed_runs,
       (SELECT least(coalesce(sum(cost), 0), 4000000000000000000) FROM failed)::bigint AS failed_cost_micros,
       (SELECT count(DISTINCT root) FROM chain)::bigint AS retried,
       (SELECT count(DISTINCT root) FROM chain WHERE status = 'succeeded')::bigint AS recovered,
       (SELECT count(*) FROM chain)::bigint AS retry_runs,
       (SELECT least(coalesce(sum(cost), 0), 4000000000000000000) FROM chain)::bigint AS recovery_cost_micros,
       coalesce((SELECT array_agg(x.root) FROM (SELECT DISTINCT root FROM chain WHERE status = 'succeeded' ORDER BY root DESC LIMIT 10) x), '{}')::text[] AS recovered_run_ids;

-- name: OverviewFeedback :one
SELECT count(*) AS n, coalesce(avg(score), 0)::float8 AS average_score,
       count(*) FILTER (WHERE score >= 0.5) AS positive, count(*) FILTER (WHERE score < 0.5) AS negative
FROM run_feedback WHERE org_id = @org_id AND created_at >= @since;

-- name: OverviewWorstFeedback :many
SELECT feedback_id, run_id, score, label, comment, created_at FROM run_feedback
WHERE org_id = @org_id AND created_at >= @since
ORDER BY score, created_at DESC
LIMIT @max;

-- name: OverviewIncidentCounts :many
SELECT severity, count(*) AS n FROM incidents
WHERE org_id = @org_id AND status <> 'resolved'
GROUP BY severity;

-- name: OverviewIncidentHighlights :many
-- Open BUDGET_EXCEEDED incidents (newest five) and the newest open critical one.
SELECT i.id, i.title, i.severity, i.category, i.created_at, i.cost_micros,
       (CASE WHEN i.category = 'BUDGET_EXCEEDED' THEN 'budget_exceeded' ELSE 'newest_critical' END)::text AS reason
FROM incidents i
WHERE i.org_id = @org_id AND i.status <> 'resolved'
  AND (i.id IN (SELECT b.id FROM incidents b WHERE b.org_id = @org_id AND b.status <> 'resolved' AND b.category = 'BUDGET_EXCEEDED'
                ORDER BY b.created_at DESC LIMIT 5)
       OR i.id = (SELECT c.id FROM incidents c WHERE c.org_id = @org_id AND c.status <> 'resolved' AND c.severity = 'critical'
                  ORDER BY c.created_at DESC LIMIT 1))
ORDER BY i.created_at DESC;

-- name: OverviewDeliveryCounts :one
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'pending' AND last_error <> '') AS failing,
       count(*) FILTER (WHERE status = 'failed') AS dead_lettered
FROM alert_deliveries WHERE org_id = @org_id;

-- name: OverviewTroubledDeliveries :many
SELECT id, status FROM alert_deliveries
WHERE org_id = @org_id AND (status = 'failed' OR (status = 'pending' AND last_error <> ''))
ORDER BY created_at DESC, id DESC
LIMIT @max;

-- name: OverviewDisabledChannels :many
SELECT id, name, disabled_reason, disabled_at FROM alert_channels
WHERE org_id = @org_id AND NOT enabled AND deleted_at IS NULL
ORDER BY disabled_at DESC NULLS LAST, id;
