-- Retention: each query deletes at most @max rows past their period, oldest first, so
-- that the housekeeping pass works in short transactions that never hold many locks.

-- name: RetentionEvents :execrows
DELETE FROM domain_events
WHERE seq IN (SELECT e.seq FROM domain_events e WHERE e.occurred_at < @before ORDER BY e.seq LIMIT @max);

-- name: RetentionReservations :execrows
-- Released reservations whose lease ended before @before: past the late-report window,
-- nothing will charge through them again.
DELETE FROM run_reservations
WHERE (run_id, limit_id) IN (
    SELECT r.run_id, r.limit_id FROM run_reservations r
    WHERE r.released AND r.expires_at < @before
    ORDER BY r.expires_at LIMIT @max);

-- name: RetentionCounters :execrows
-- Counters of windows that started before their period (minute and hour windows have a
-- shorter one) and hold no reservation.
DELETE FROM limit_counters
WHERE (limit_id, window_start) IN (
    SELECT c.limit_id, c.window_start
    FROM limit_counters c JOIN limits l ON l.id = c.limit_id
    WHERE c.reserved = 0
      AND c.window_start < CASE WHEN l.window_kind IN ('minute', 'hour') THEN @short_before::timestamptz
                                ELSE @long_before::timestamptz END
    LIMIT @max);

-- name: RetentionAlerts :one
SELECT retention_alerts(@before::timestamptz, @max::integer)::bigint AS deleted;

-- name: RetentionIdempotency :execrows
DELETE FROM idempotency_records
WHERE (org_id, key_hash) IN (
    SELECT i.org_id, i.key_hash FROM idempotency_records i WHERE i.expires_at <= now() LIMIT @max);

-- name: RetentionRateWindows :execrows
-- A key's request-rate window that has not moved for a day holds nothing worth keeping.
DELETE FROM api_key_rate_windows
WHERE api_key_id IN (SELECT w.api_key_id FROM api_key_rate_windows w WHERE w.window_start < @before LIMIT @max);
