-- name: LimitCreate :one
INSERT INTO limits (org_id, id, name, scope_type, scope_id, model, feature, metric,
                    window_kind, amount, enforcement, thresholds, inheritance, priority)
VALUES (@org_id, @id, @name, @scope_type, @scope_id, @model, @feature, @metric,
        @window_kind, @amount, @enforcement, @thresholds, @inheritance, @priority)
RETURNING *;

-- name: LimitGet :one
SELECT * FROM limits WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL;

-- name: LimitGetForUpdate :one
SELECT * FROM limits WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL FOR UPDATE;

-- name: LimitList :many
SELECT * FROM limits
WHERE org_id = @org_id AND deleted_at IS NULL
  AND (@scope_type::text = '' OR scope_type = @scope_type)
  AND (@scope_id::text = '' OR scope_id = @scope_id)
  AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: LimitUpdate :one
UPDATE limits
SET name        = coalesce(sqlc.narg('name'), name),
    amount      = coalesce(sqlc.narg('amount'), amount),
    enforcement = coalesce(sqlc.narg('enforcement'), enforcement),
    thresholds  = coalesce(sqlc.narg('thresholds')::integer[], thresholds),
    inheritance = coalesce(sqlc.narg('inheritance'), inheritance),
    priority    = coalesce(sqlc.narg('priority'), priority),
    enabled     = coalesce(sqlc.narg('enabled'), enabled),
    updated_at  = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: LimitDelete :one
UPDATE limits SET deleted_at = now(), enabled = false, updated_at = now()
WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL
RETURNING *;

-- name: LimitsForSubjects :many
-- Every enabled limit that could govern a run of one of the given subjects (organization,
-- project, agent, API key, position by position). Model and feature narrowing is applied
-- by the caller.
SELECT DISTINCT l.*
FROM limits l
JOIN (SELECT unnest(@org_ids::text[]) AS org_id, unnest(@project_ids::text[]) AS project_id, unnest(@agent_ids::text[]) AS agent_id, unnest(@api_key_ids::text[]) AS api_key_id) AS s
  ON l.org_id = s.org_id
 AND ((l.scope_type = 'organization')
   OR (l.scope_type = 'project' AND l.scope_id = s.project_id)
   OR (l.scope_type = 'agent' AND l.scope_id = s.agent_id)
   OR (l.scope_type = 'api_key' AND l.scope_id = s.api_key_id))
WHERE l.deleted_at IS NULL AND l.enabled;

-- name: CountersAcquire :many
SELECT c.limit_id::text AS limit_id, c.window_start::timestamptz AS window_start,
       c.used::bigint AS used, c.reserved::bigint AS reserved
FROM limit_counters_acquire(@limit_ids::text[], @window_starts::timestamptz[]) AS c;

-- name: CountersLock :many
-- Locks counters in one global order, so concurrent admissions and settlements never
-- deadlock.
SELECT c.limit_id, c.window_start
FROM limit_counters c
JOIN (SELECT unnest(@limit_ids::text[]) AS limit_id, unnest(@window_starts::timestamptz[]) AS window_start) AS k
  ON c.limit_id = k.limit_id AND c.window_start = k.window_start
ORDER BY c.limit_id, c.window_start
FOR UPDATE OF c;

-- name: CountersPeek :many
-- Counters as a dry run sees them: reservations past their lease do not count, whether or
-- not anything has released them yet.
SELECT k.limit_id::text AS limit_id, k.window_start::timestamptz AS window_start,
       coalesce(c.used, 0)::bigint AS used,
       (coalesce(c.reserved, 0) - coalesce((
           SELECT sum(r.amount) FROM run_reservations r
           WHERE r.limit_id = k.limit_id AND r.window_start = k.window_start
             AND NOT r.released AND r.expires_at <= now()), 0))::bigint AS reserved
FROM (SELECT unnest(@limit_ids::text[]) AS limit_id, unnest(@window_starts::timestamptz[]) AS window_start) AS k
LEFT JOIN limit_counters c ON c.limit_id = k.limit_id AND c.window_start = k.window_start;

-- name: CountersReserve :exec
-- Admission never reserves past money.Ceiling (limits.Decide refuses first), so this sum
-- stays within the counter's bounds.
UPDATE limit_counters c SET reserved = c.reserved + d.amount
FROM (SELECT * FROM (SELECT unnest(@limit_ids::text[]) AS limit_id, unnest(@window_starts::timestamptz[]) AS window_start, unnest(@amounts::bigint[]) AS amount) AS x) d
WHERE c.limit_id = d.limit_id AND c.window_start = d.window_start;

-- name: CountersSettle :many
-- Moves settled amounts: releases what is still reserved (the run's own reservation) and
-- adds what was used, saturating at money.Ceiling. It never takes anything off `used`.
-- Returns each counter's usage after the change.
UPDATE limit_counters c
SET reserved = c.reserved - d.release,
    used = least(c.used + greatest(d.used, 0), 4000000000000000000)
FROM (SELECT * FROM (SELECT unnest(@limit_ids::text[]) AS limit_id, unnest(@window_starts::timestamptz[]) AS window_start, unnest(@releases::bigint[]) AS release, unnest(@useds::bigint[]) AS used) AS x) d
WHERE c.limit_id = d.limit_id AND c.window_start = d.window_start
RETURNING c.limit_id, c.window_start, c.used;

-- name: ModelPriceList :many
SELECT * FROM model_prices WHERE org_id = @org_id ORDER BY model;

-- name: ModelPriceGet :one
SELECT * FROM model_prices WHERE org_id = @org_id AND model = @model;

-- name: ModelPricesForModels :many
SELECT * FROM model_prices WHERE org_id = ANY (@org_ids::text[]) AND model = ANY (@models::text[]);

-- name: ModelPriceUpsert :one
-- The extras (cache reads, cache writes, reasoning) are NULL when not given: they fall back
-- to the input and output prices.
INSERT INTO model_prices (org_id, model, input_micros_per_mtok, output_micros_per_mtok,
                          cache_read_micros_per_mtok, cache_write_micros_per_mtok, reasoning_micros_per_mtok)
VALUES (@org_id, @model, @input_micros_per_mtok, @output_micros_per_mtok,
        sqlc.narg('cache_read_micros_per_mtok'), sqlc.narg('cache_write_micros_per_mtok'),
        sqlc.narg('reasoning_micros_per_mtok'))
ON CONFLICT (org_id, model) DO UPDATE
SET input_micros_per_mtok = EXCLUDED.input_micros_per_mtok,
    output_micros_per_mtok = EXCLUDED.output_micros_per_mtok,
    cache_read_micros_per_mtok = EXCLUDED.cache_read_micros_per_mtok,
    cache_write_micros_per_mtok = EXCLUDED.cache_write_micros_per_mtok,
    reasoning_micros_per_mtok = EXCLUDED.reasoning_micros_per_mtok,
    updated_at = now()
RETURNING *;

-- name: ModelPriceDelete :one
DELETE FROM model_prices WHERE org_id = @org_id AND model = @model RETURNING *;
