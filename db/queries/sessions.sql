-- name: ConsoleSessionCreate :exec
INSERT INTO console_sessions (token_hash, org_id, api_key_id, secret_hash, expires_at, user_agent)
VALUES (@token_hash, @org_id, @api_key_id, @secret_hash, @expires_at, @user_agent);

-- name: ConsoleSessionAuthenticate :one
-- The key a live session stands for, with the same columns ApiKeyAuthenticate returns, as
-- long as the secret the session was opened with still authenticates the key.
SELECT k.id, k.org_id, k.kind, k.status, k.user_id, k.project_id, k.agent_id,
       k.requests_per_minute, k.expires_at, k.last_used_at,
       coalesce(u.role, '')::text AS user_role,
       (u.deactivated_at IS NOT NULL)::boolean AS user_deactivated,
       s.expires_at AS session_expires_at
FROM console_sessions s
JOIN api_keys k ON k.org_id = s.org_id AND k.id = s.api_key_id
LEFT JOIN users u ON u.org_id = k.org_id AND u.id = k.user_id
WHERE s.token_hash = @token_hash
  AND s.expires_at > now()
  AND (k.secret_hash = s.secret_hash
       OR (k.prev_secret_hash = s.secret_hash AND k.prev_secret_expires_at > now()));

-- name: ConsoleSessionDelete :execrows
DELETE FROM console_sessions WHERE token_hash = @token_hash;

-- name: ConsoleSessionDeleteExpired :execrows
-- Housekeeping on sign-in: sessions past their end are useless.
DELETE FROM console_sessions WHERE expires_at <= now();
