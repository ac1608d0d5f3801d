-- name: IdempotencyDeleteExpired :exec
DELETE FROM idempotency_records
WHERE org_id = @org_id AND key_hash = @key_hash AND expires_at <= now();

-- name: IdempotencyClaim :execrows
-- Claims the key for this transaction. A concurrent claim of the same key waits here
-- until this transaction ends, then finds the committed record (or the free key).
INSERT INTO idempotency_records (org_id, key_hash, procedure, request_hash, response, expires_at)
VALUES (@org_id, @key_hash, @procedure, @request_hash, '', @expires_at)
ON CONFLICT (org_id, key_hash) DO NOTHING;

-- name: IdempotencyGet :one
SELECT * FROM idempotency_records WHERE org_id = @org_id AND key_hash = @key_hash;

-- name: IdempotencyComplete :exec
UPDATE idempotency_records SET response = @response
WHERE org_id = @org_id AND key_hash = @key_hash;

-- name: IdempotencyPurge :execrows
DELETE FROM idempotency_records WHERE expires_at <= now();
