-- name: ApiKeyCreate :one
INSERT INTO api_keys (org_id, id, name, kind, prefix, secret_hash, user_id, project_id,
                      agent_id, requests_per_minute, expires_at)
VALUES (@org_id, @id, @name, @kind, @prefix, @secret_hash, sqlc.narg('user_id'),
        sqlc.narg('project_id'), sqlc.narg('agent_id'), @requests_per_minute,
        sqlc.narg('expires_at'))
RETURNING *;

-- name: ApiKeyGet :one
SELECT * FROM api_key_details WHERE org_id = @org_id AND id = @id;

-- name: ApiKeyGetForUpdate :one
SELECT * FROM api_keys WHERE org_id = @org_id AND id = @id FOR UPDATE;

-- name: ApiKeyList :many
SELECT * FROM api_key_details
WHERE org_id = @org_id
  AND (@status::text = '' OR status = @status)
  AND (@kind::text = '' OR kind = @kind)
  AND (@user_id::text = '' OR user_id = @user_id)
  AND (@agent_id::text = '' OR agent_id = @agent_id)
  AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: ApiKeyUpdate :one
UPDATE api_keys
SET name                = coalesce(sqlc.narg('name'), name),
    requests_per_minute = coalesce(sqlc.narg('requests_per_minute'), requests_per_minute),
    updated_at          = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: ApiKeySetStatus :one
UPDATE api_keys
SET status     = @status,
    frozen_at  = CASE WHEN @status = 'frozen' THEN now() WHEN @status = 'active' THEN NULL ELSE frozen_at END,
    revoked_at = CASE WHEN @status = 'revoked' THEN now() ELSE revoked_at END,
    updated_at = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: ApiKeyRotate :one
UPDATE api_keys
SET prev_secret_hash       = CASE WHEN @grace_seconds::bigint > 0 THEN secret_hash END,
    prev_secret_expires_at = CASE WHEN @grace_seconds::bigint > 0
                                  THEN now() + make_interval(secs => @grace_seconds::bigint) END,
    secret_hash            = @secret_hash,
    prefix                 = @prefix,
    rotated_at             = now(),
    updated_at             = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: ApiKeyAuthenticate :one
-- The key whose current secret, or previous secret still in its grace period, hashes to
-- @secret_hash, with what decides whether it may act now.
SELECT k.id, k.org_id, k.kind, k.status, k.user_id, k.project_id, k.agent_id,
       k.requests_per_minute, k.expires_at, k.last_used_at,
       coalesce(u.role, '')::text AS user_role,
       (u.deactivated_at IS NOT NULL)::boolean AS user_deactivated
FROM api_keys k
LEFT JOIN users u ON u.org_id = k.org_id AND u.id = k.user_id
WHERE k.secret_hash = @secret_hash
   OR (k.prev_secret_hash = @secret_hash AND k.prev_secret_expires_at > now())
LIMIT 1;

-- name: ApiKeyTouch :exec
-- Records use at most once a minute per key, so authentication is not a write per request.
UPDATE api_keys SET last_used_at = now()
WHERE id = @id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: ApiKeyRateTake :one
SELECT api_key_rate_take(@api_key_id, @window_start, @prev_weight, @max_per_minute)::boolean AS allowed;
