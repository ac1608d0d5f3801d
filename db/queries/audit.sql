-- name: AuditHeadInit :exec
INSERT INTO audit_heads (org_id, last_seq, last_hash)
VALUES (@org_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
ON CONFLICT (org_id) DO NOTHING;

-- name: AuditHeadGet :one
SELECT * FROM audit_heads WHERE org_id = @org_id;

-- name: AuditAppend :one
-- Appends the next entry of the chain of the organization. The head row is locked for the rest
-- of the transaction, which serialises appends per organization and numbers them in
-- commit order.
WITH head AS (
    SELECT h.last_seq, h.last_hash FROM audit_heads h WHERE h.org_id = @org_id FOR UPDATE
), ins AS (
    INSERT INTO audit_entries (org_id, seq, id, created_at, actor_kind, actor_api_key_id,
                               actor_user_id, actor_system, action, entity_type, entity_id,
                               before, after, request_id, prev_hash, hash)
    SELECT @org_id, head.last_seq + 1, @id, now(), @actor_kind, @actor_api_key_id,
           @actor_user_id, @actor_system, @action, @entity_type, @entity_id,
           sqlc.narg('before')::jsonb, sqlc.narg('after')::jsonb, @request_id, head.last_hash,
           audit_entry_hash(head.last_hash, @org_id, head.last_seq + 1, @id, now(),
                            @actor_kind, @actor_api_key_id, @actor_user_id, @actor_system,
                            @action, @entity_type, @entity_id, sqlc.narg('before')::jsonb,
                            sqlc.narg('after')::jsonb, @request_id)
    FROM head
    RETURNING seq, hash
)
UPDATE audit_heads h
SET last_seq = ins.seq, last_hash = ins.hash
FROM ins
WHERE h.org_id = @org_id
RETURNING h.last_seq, h.last_hash;

-- name: AuditEntryListAsc :many
SELECT * FROM audit_entries
WHERE org_id = @org_id
  AND (@entity_type::text = '' OR entity_type = @entity_type)
  AND (@entity_id::text = '' OR entity_id = @entity_id)
  AND (@actor_api_key_id::text = '' OR actor_api_key_id = @actor_api_key_id)
  AND (@actor_user_id::text = '' OR actor_user_id = @actor_user_id)
  AND (@action::text = '' OR action = @action)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR created_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR created_at < sqlc.narg('end_time'))
  AND seq > @after_seq
ORDER BY seq
LIMIT @max;

-- name: AuditEntryListDesc :many
SELECT * FROM audit_entries
WHERE org_id = @org_id
  AND (@entity_type::text = '' OR entity_type = @entity_type)
  AND (@entity_id::text = '' OR entity_id = @entity_id)
  AND (@actor_api_key_id::text = '' OR actor_api_key_id = @actor_api_key_id)
  AND (@actor_user_id::text = '' OR actor_user_id = @actor_user_id)
  AND (@action::text = '' OR action = @action)
  AND (sqlc.narg('start_time')::timestamptz IS NULL OR created_at >= sqlc.narg('start_time'))
  AND (sqlc.narg('end_time')::timestamptz IS NULL OR created_at < sqlc.narg('end_time'))
  AND seq < @before_seq
ORDER BY seq DESC
LIMIT @max;

-- name: AuditChainScan :many
-- A page of the chain with the hash of each entry recomputed from its stored content.
SELECT seq, id, prev_hash, hash,
       audit_entry_hash(prev_hash, org_id, seq, id, created_at, actor_kind, actor_api_key_id,
                        actor_user_id, actor_system, action, entity_type, entity_id, before,
                        after, request_id) AS computed_hash
FROM audit_entries
WHERE org_id = @org_id AND seq > @after_seq
ORDER BY seq
LIMIT @max;

-- name: AuditChainRead :many
-- A page of the chain as stored, jsonb in its text form ('' for NULL, as the hash takes it),
-- for a verifier that hashes in Go
-- (internal/audit/entryhash) instead of trusting the database's audit_entry_hash.
SELECT seq, id, created_at, actor_kind, actor_api_key_id, actor_user_id, actor_system, action,
       entity_type, entity_id, coalesce(before::text, '')::text AS before_text,
       coalesce(after::text, '')::text AS after_text,
       request_id, prev_hash, hash
FROM audit_entries
WHERE org_id = @org_id AND seq > @after_seq AND seq <= @through_seq
ORDER BY seq
LIMIT @max;

-- name: AuditHeadsUnsigned :many
-- Chain heads that have moved since the last checkpoint signed with the key.
SELECT h.org_id, h.last_seq, h.last_hash
FROM audit_heads h
WHERE h.last_seq > 0
  AND NOT EXISTS (SELECT 1 FROM audit_checkpoints c
                  WHERE c.org_id = h.org_id AND c.seq = h.last_seq AND c.key_id = @key_id)
ORDER BY h.org_id
LIMIT @max;

-- name: AuditCheckpointAdd :exec
INSERT INTO audit_checkpoints (org_id, seq, hash, signed_at, key_id, signature)
VALUES (@org_id, @seq, @hash, @signed_at, @key_id, @signature)
ON CONFLICT DO NOTHING;

-- name: AuditCheckpointsLatest :many
-- Each organization's newest checkpoint (or one organization's), signed with one key (or
-- any).
SELECT DISTINCT ON (org_id) *
FROM audit_checkpoints
WHERE (@org_id::text = '' OR org_id = @org_id)
  AND (@key_id::text = '' OR key_id = @key_id)
ORDER BY org_id, seq DESC, signed_at DESC;
