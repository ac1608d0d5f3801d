-- name: OrgKeyInsert :exec
-- Stores an organization's first data key; a concurrent first one wins and this is a no-op.
INSERT INTO org_data_keys (org_id, kek_id, wrapped_key)
VALUES (@org_id, @kek_id, @wrapped_key)
ON CONFLICT (org_id) DO NOTHING;

-- name: OrgKeyGet :one
SELECT * FROM org_data_keys WHERE org_id = @org_id;

-- name: OrgKeysLockAll :many
-- Every data key, locked for a KEK rotation.
SELECT * FROM org_data_keys ORDER BY org_id FOR UPDATE;

-- name: OrgKeyRewrap :exec
UPDATE org_data_keys SET kek_id = @kek_id, wrapped_key = @wrapped_key, rewrapped_at = now()
WHERE org_id = @org_id;

-- name: OrgKeysNotUnder :one
-- How many data keys are wrapped by another KEK than this one.
SELECT count(*) FROM org_data_keys WHERE kek_id <> @kek_id;
