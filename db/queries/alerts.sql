-- name: ChannelCreate :one
-- url is the endpoint's display form; the endpoint and the signing secret are sealed.
INSERT INTO alert_channels (org_id, id, name, type, url, url_enc, email_to, secret_enc, max_per_hour, max_per_day,
                            retry_initial_ms, retry_max_interval_ms, retry_max_age_ms, disable_after_ms)
VALUES (@org_id, @id, @name, @type, @url, sqlc.narg('url_enc'), @email_to, sqlc.narg('secret_enc'), @max_per_hour, @max_per_day,
        @retry_initial_ms, @retry_max_interval_ms, @retry_max_age_ms, @disable_after_ms)
RETURNING *;

-- name: ChannelEnsureInApp :exec
-- Makes the organization's in-app channel if it has none.
INSERT INTO alert_channels (org_id, id, name, type)
VALUES (@org_id, @id, 'In-app notifications', 'in_app')
ON CONFLICT DO NOTHING;

-- name: ChannelInApp :one
SELECT * FROM alert_channels WHERE org_id = @org_id AND type = 'in_app' AND deleted_at IS NULL;

-- name: ChannelGet :one
SELECT * FROM alert_channels WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL;

-- name: ChannelGetByID :one
SELECT * FROM alert_channels WHERE id = @id;

-- name: ChannelGetForUpdate :one
SELECT * FROM alert_channels WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL FOR UPDATE;

-- name: ChannelLockByID :one
SELECT * FROM alert_channels WHERE id = @id FOR UPDATE;

-- name: ChannelList :many
SELECT * FROM alert_channels
WHERE org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: ChannelsOfOrg :many
-- Every live channel of an organization (enabled or not), for routing.
SELECT * FROM alert_channels WHERE org_id = @org_id AND deleted_at IS NULL ORDER BY id;

-- name: ChannelUpdate :one
UPDATE alert_channels
SET name                  = coalesce(sqlc.narg('name'), name),
    url                   = coalesce(sqlc.narg('url'), url),
    url_enc               = coalesce(sqlc.narg('url_enc'), url_enc),
    email_to              = coalesce(sqlc.narg('email_to')::text[], email_to),
    max_per_hour          = coalesce(sqlc.narg('max_per_hour'), max_per_hour),
    max_per_day           = coalesce(sqlc.narg('max_per_day'), max_per_day),
    retry_initial_ms      = coalesce(sqlc.narg('retry_initial_ms'), retry_initial_ms),
    retry_max_interval_ms = coalesce(sqlc.narg('retry_max_interval_ms'), retry_max_interval_ms),
    retry_max_age_ms      = coalesce(sqlc.narg('retry_max_age_ms'), retry_max_age_ms),
    disable_after_ms      = coalesce(sqlc.narg('disable_after_ms'), disable_after_ms),
    updated_at            = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: ChannelSetEnabled :one
-- Enabling clears the failure streak; disabling records why.
UPDATE alert_channels
SET enabled = @enabled,
    disabled_reason = CASE WHEN @enabled::boolean THEN '' ELSE @reason::text END,
    disabled_at = CASE WHEN @enabled::boolean THEN NULL ELSE now() END,
    failing_since = CASE WHEN @enabled::boolean THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE id = @id
RETURNING *;

-- name: ChannelDelete :one
UPDATE alert_channels SET deleted_at = now(), enabled = false, updated_at = now()
WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL
RETURNING *;

-- name: ChannelRotateSecret :one
-- Both secrets are sealed anew by the caller (each is bound to its own field).
UPDATE alert_channels
SET secret_enc = @secret_enc, prev_secret_enc = sqlc.narg('prev_secret_enc'), prev_secret_expires_at = @prev_expires_at,
    secret = '', prev_secret = '', updated_at = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: ChannelsWithPlaintext :many
-- Channels written before credentials were sealed, locked (other processes sealing at the
-- same time skip them).
SELECT * FROM alert_channels
WHERE secret <> '' OR prev_secret <> '' OR (type IN ('webhook', 'slack') AND url <> '' AND url_enc IS NULL)
ORDER BY id
LIMIT @max
FOR UPDATE SKIP LOCKED;

-- name: ChannelSeal :exec
-- Replaces a channel's plaintext credentials by their sealed form.
UPDATE alert_channels
SET url = @url, url_enc = coalesce(sqlc.narg('url_enc'), url_enc), secret_enc = coalesce(sqlc.narg('secret_enc'), secret_enc),
    prev_secret_enc = coalesce(sqlc.narg('prev_secret_enc'), prev_secret_enc), secret = '', prev_secret = ''
WHERE id = @id;

-- name: ChannelRecordSuccess :exec
UPDATE alert_channels SET failing_since = NULL, last_success_at = now() WHERE id = @id;

-- name: ChannelRecordFailure :one
-- Starts (or continues) the channel's failure streak and returns the channel.
UPDATE alert_channels
SET failing_since = coalesce(failing_since, @failed_at), last_failure_at = @failed_at
WHERE id = @id
RETURNING *;

-- name: ChannelTake :one
SELECT alert_channel_take(@channel_id::text, @hour_start::timestamptz, @day_start::timestamptz,
                          @max_per_hour::integer, @max_per_day::integer)::text AS exhausted;

-- name: RouteCreate :one
INSERT INTO alert_routes (org_id, id, name, kinds, min_severity, channel_ids, enabled)
VALUES (@org_id, @id, @name, @kinds, @min_severity, @channel_ids, @enabled)
RETURNING *;

-- name: RouteGet :one
SELECT * FROM alert_routes WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL;

-- name: RouteGetForUpdate :one
SELECT * FROM alert_routes WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL FOR UPDATE;

-- name: RouteList :many
SELECT * FROM alert_routes
WHERE org_id = @org_id AND deleted_at IS NULL AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: RoutesOfOrg :many
SELECT * FROM alert_routes WHERE org_id = @org_id AND deleted_at IS NULL ORDER BY id;

-- name: RouteUpdate :one
UPDATE alert_routes
SET name         = coalesce(sqlc.narg('name'), name),
    kinds        = coalesce(sqlc.narg('kinds')::text[], kinds),
    min_severity = coalesce(sqlc.narg('min_severity'), min_severity),
    channel_ids  = coalesce(sqlc.narg('channel_ids')::text[], channel_ids),
    enabled      = coalesce(sqlc.narg('enabled'), enabled),
    updated_at   = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: RouteDelete :one
UPDATE alert_routes SET deleted_at = now(), enabled = false, updated_at = now()
WHERE org_id = @org_id AND id = @id AND deleted_at IS NULL
RETURNING *;

-- name: AlertInsert :one
-- Inserts an alert unless its key exists (then no row is returned). A concurrent insert of
-- the same key waits for the first to commit, then finds it.
INSERT INTO alerts (org_id, id, dedupe_key, kind, severity, title, body, entity_type, entity_id, related, data)
VALUES (@org_id, @id, @dedupe_key, @kind, @severity, @title, @body, @entity_type, @entity_id, @related, @data)
ON CONFLICT (org_id, dedupe_key) DO NOTHING
RETURNING *;

-- name: AlertGetByKey :one
SELECT * FROM alerts WHERE org_id = @org_id AND dedupe_key = @dedupe_key;

-- name: AlertGet :one
SELECT * FROM alerts WHERE org_id = @org_id AND id = @id;

-- name: AlertGetByID :one
SELECT * FROM alerts WHERE id = @id;

-- name: AlertList :many
-- Newest first.
SELECT * FROM alerts
WHERE org_id = @org_id
  AND (cardinality(@kinds::text[]) = 0 OR kind = ANY (@kinds::text[]))
  AND (cardinality(@severities::text[]) = 0 OR severity = ANY (@severities::text[]))
  AND (@entity_type::text = '' OR entity_type = @entity_type)
  AND (@entity_id::text = '' OR entity_id = @entity_id)
  AND (@before_id::text = '' OR id < @before_id)
ORDER BY id DESC
LIMIT @max;

-- name: DigestOpen :one
-- Opens a digest for a channel unless one is open (then no row is returned).
INSERT INTO alerts (org_id, id, dedupe_key, kind, severity, title, body, digest_channel_id,
                    digest_status, digest_send_at)
VALUES (@org_id, @id, @dedupe_key, 'digest', 'info', @title, '', @channel_id, 'open', @send_at)
ON CONFLICT (digest_channel_id) WHERE digest_status = 'open' DO NOTHING
RETURNING *;

-- name: DigestLockOpen :one
-- The channel's open digest, locked: folding an alert into it and closing it serialise.
SELECT * FROM alerts WHERE digest_channel_id = @channel_id AND digest_status = 'open' FOR UPDATE;

-- name: DigestFold :exec
-- Counts one more folded alert; a higher severity raises the digest's.
UPDATE alerts
SET digest_count = digest_count + 1,
    severity = CASE WHEN array_position(ARRAY['info','warning','high','critical'], @severity::text)
                       > array_position(ARRAY['info','warning','high','critical'], severity)
                    THEN @severity::text ELSE severity END
WHERE id = @id;

-- name: DigestClose :one
-- Closes an open digest with its final content; no row when it is already closed.
UPDATE alerts
SET digest_status = 'closed', title = @title, body = @body, data = @data
WHERE id = @id AND digest_status = 'open'
RETURNING *;

-- name: DigestFolded :many
-- The alerts folded into a digest, oldest first.
SELECT a.* FROM alerts a
JOIN alert_deliveries d ON d.alert_id = a.id
WHERE d.digest_alert_id = @digest_id
ORDER BY a.id;

-- name: DeliveryInsert :one
INSERT INTO alert_deliveries (org_id, id, alert_id, channel_id, status, digest_alert_id, workflow_id,
                              retry_until, attempts, delivered_at, last_attempt_at)
VALUES (@org_id, @id, @alert_id, @channel_id, @status, sqlc.narg('digest_alert_id'), @workflow_id,
        @retry_until, @attempts, sqlc.narg('delivered_at'), sqlc.narg('last_attempt_at'))
ON CONFLICT (alert_id, channel_id) DO NOTHING
RETURNING *;

-- name: DeliveryGet :one
SELECT * FROM alert_deliveries WHERE org_id = @org_id AND id = @id;

-- name: DeliveryLock :one
SELECT * FROM alert_deliveries WHERE id = @id FOR UPDATE;

-- name: DeliveryList :many
-- Newest first.
SELECT d.*, c.type AS channel_type FROM alert_deliveries d
JOIN alert_channels c ON c.id = d.channel_id
WHERE d.org_id = @org_id
  AND (@alert_id::text = '' OR d.alert_id = @alert_id)
  AND (@channel_id::text = '' OR d.channel_id = @channel_id)
  AND (cardinality(@statuses::text[]) = 0 OR d.status = ANY (@statuses::text[]))
  AND (@before_id::text = '' OR d.id < @before_id)
ORDER BY d.id DESC
LIMIT @max;

-- name: DeliveriesOfAlert :many
SELECT d.*, c.type AS channel_type FROM alert_deliveries d
JOIN alert_channels c ON c.id = d.channel_id
WHERE d.org_id = @org_id AND d.alert_id = @alert_id
ORDER BY d.id;

-- name: DeliveryBeginAttempt :one
-- Counts an attempt; the caller records it as in flight in the same transaction.
UPDATE alert_deliveries
SET attempts = attempts + 1, last_attempt_at = now(), next_attempt_at = NULL, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: DeliverySetBody :exec
UPDATE alert_deliveries SET body = @body WHERE id = @id AND body IS NULL;

-- name: DeliveryFinishAttempt :one
UPDATE alert_deliveries
SET status = @status, last_status_code = @last_status_code, last_error = @last_error,
    last_classification = @last_classification,
    next_attempt_at = sqlc.narg('next_attempt_at'),
    delivered_at = CASE WHEN @status = 'delivered' THEN now() ELSE delivered_at END,
    failed_at = CASE WHEN @status = 'failed' THEN now() ELSE failed_at END,
    updated_at = now()
WHERE id = @id
RETURNING *;

-- name: DeliveryRedeliver :one
-- Gives a delivery that gave up a new retry period.
UPDATE alert_deliveries
SET status = 'pending', retry_until = @retry_until, next_attempt_at = NULL, failed_at = NULL, updated_at = now()
WHERE org_id = @org_id AND id = @id AND status = 'failed'
RETURNING *;

-- name: AttemptsAbandon :exec
-- Attempts still in flight when a new one starts were cut short (their worker died).
UPDATE alert_delivery_attempts
SET outcome = 'abandoned', finished_at = now(), error = 'the attempt did not finish (its worker stopped); retried'
WHERE delivery_id = @delivery_id AND outcome = 'in_flight';

-- name: AttemptInsert :exec
INSERT INTO alert_delivery_attempts (delivery_id, number, outcome) VALUES (@delivery_id, @number, 'in_flight');

-- name: AttemptFinish :exec
UPDATE alert_delivery_attempts
SET outcome = @outcome, finished_at = now(), status_code = @status_code, latency_ms = @latency_ms,
    error = @error, retry_after_ms = @retry_after_ms, classification = @classification
WHERE delivery_id = @delivery_id AND number = @number;

-- name: AttemptRecordDone :exec
-- An attempt that finished the moment it began (in-app notifications).
INSERT INTO alert_delivery_attempts (delivery_id, number, finished_at, outcome, classification)
VALUES (@delivery_id, @number, now(), 'delivered', 'ok');

-- name: AttemptsOfDeliveries :many
SELECT * FROM alert_delivery_attempts
WHERE delivery_id = ANY (@delivery_ids::text[])
ORDER BY delivery_id, number;

-- name: NotificationInsert :one
INSERT INTO notifications (org_id, id, alert_id, kind, severity, title, body, entity_type, entity_id)
VALUES (@org_id, @id, @alert_id, @kind, @severity, @title, @body, @entity_type, @entity_id)
ON CONFLICT (alert_id) DO NOTHING
RETURNING *;

-- name: NotificationList :many
-- A user's view of the organization's notifications, newest first.
SELECT n.*, r.read_at FROM notifications n
LEFT JOIN notification_reads r ON r.notification_id = n.id AND r.user_id = @user_id
WHERE n.org_id = @org_id
  AND (NOT @unread_only::boolean OR r.read_at IS NULL)
  AND n.seq < @before_seq
ORDER BY n.seq DESC
LIMIT @max;

-- name: NotificationsAfter :many
-- Notifications with a sequence above @after_seq, oldest first (for live streams).
SELECT n.*, r.read_at FROM notifications n
LEFT JOIN notification_reads r ON r.notification_id = n.id AND r.user_id = @user_id
WHERE n.org_id = @org_id AND n.seq > @after_seq
ORDER BY n.seq
LIMIT @max;

-- name: NotificationUnreadCount :one
SELECT count(*) FROM notifications n
WHERE n.org_id = @org_id
  AND NOT EXISTS (SELECT 1 FROM notification_reads r WHERE r.notification_id = n.id AND r.user_id = @user_id);

-- name: NotificationMarkRead :execrows
INSERT INTO notification_reads (notification_id, user_id)
SELECT n.id, @user_id FROM notifications n
WHERE n.org_id = @org_id AND n.id = ANY (@ids::text[])
ON CONFLICT DO NOTHING;

-- name: NotificationMarkAllRead :execrows
INSERT INTO notification_reads (notification_id, user_id)
SELECT n.id, @user_id FROM notifications n
WHERE n.org_id = @org_id
ON CONFLICT DO NOTHING;

-- name: NotificationMaxSeq :one
SELECT coalesce(max(seq), 0)::bigint FROM notifications WHERE org_id = @org_id;

-- name: LimitsByIDs :many
SELECT * FROM limits WHERE id = ANY (@ids::text[]);
