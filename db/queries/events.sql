-- name: EventInsert :one
INSERT INTO domain_events (id, org_id, occurred_at, domain, type, entity_type, entity_id,
                           related, correlation_id, summary, data, actor_kind,
                           actor_api_key_id, actor_user_id, actor_system)
VALUES (@id, @org_id, now(), @domain, @type, @entity_type, @entity_id, @related,
        @correlation_id, @summary, @data, @actor_kind, @actor_api_key_id, @actor_user_id,
        @actor_system)
RETURNING seq, occurred_at;

-- name: EventGet :one
SELECT * FROM domain_events WHERE seq = @seq;

-- name: EventListAsc :many
SELECT * FROM domain_events
WHERE org_id = @org_id
  AND (cardinality(@domains::text[]) = 0 OR domain = ANY (@domains::text[]))
  AND (cardinality(@types::text[]) = 0 OR type = ANY (@types::text[]))
  AND (@entity_id::text = ''
       OR (entity_type = @entity_type AND entity_id = @entity_id)
       OR related @> jsonb_build_array(jsonb_build_object('type', @entity_type::text, 'id', @entity_id::text)))
  AND (@correlation_id::text = '' OR correlation_id = @correlation_id)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR occurred_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR occurred_at < sqlc.narg('end_time'))
  AND (occurred_at, seq) > (@after_time::timestamptz, @after_seq::bigint)
ORDER BY occurred_at, seq
LIMIT @max;

-- name: EventListDesc :many
SELECT * FROM domain_events
WHERE org_id = @org_id
  AND (cardinality(@domains::text[]) = 0 OR domain = ANY (@domains::text[]))
  AND (cardinality(@types::text[]) = 0 OR type = ANY (@types::text[]))
  AND (@entity_id::text = ''
       OR (entity_type = @entity_type AND entity_id = @entity_id)
       OR related @> jsonb_build_array(jsonb_build_object('type', @entity_type::text, 'id', @entity_id::text)))
  AND (@correlation_id::text = '' OR correlation_id = @correlation_id)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR occurred_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR occurred_at < sqlc.narg('end_time'))
  AND (occurred_at, seq) < (@before_time::timestamptz, @before_seq::bigint)
ORDER BY occurred_at DESC, seq DESC
LIMIT @max;

-- name: EventListAfterSeq :many
-- For watchers resuming from a sequence number.
SELECT * FROM domain_events
WHERE org_id = @org_id AND seq > @after_seq
ORDER BY seq
LIMIT @max;

-- name: EventLastSeq :one
-- The newest sequence number of all: a watcher that asks for no history starts after it.
SELECT coalesce(max(seq), 0)::bigint FROM domain_events;
