-- Retention (internal/retention): indexes that let the housekeeping pass find what is past
-- its period without scanning, and the one deletion that spans several tables.

-- Released reservations, by the end of their lease.
CREATE INDEX run_reservations_released ON run_reservations (expires_at) WHERE released;
CREATE INDEX domain_events_time ON domain_events (occurred_at);
CREATE INDEX idempotency_records_expiry ON idempotency_records (expires_at);

-- Deletes up to p_max alerts created before p_before that are done with: no delivery still
-- pending, no open digest, not the alert of an anomaly (anomalies are kept, with their
-- alert). Their deliveries, attempts and in-app notifications (and reads) go with them;
-- a delivery of a younger alert folded into a deleted digest keeps its row, unlinked.
CREATE FUNCTION retention_alerts(p_before timestamptz, p_max integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
    n integer;
BEGIN
    SELECT array_agg(s.id) INTO ids FROM (
        SELECT a.id FROM alerts a
        WHERE a.created_at < p_before
          AND coalesce(a.digest_status, 'closed') = 'closed'
          AND NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.id AND d.status = 'pending')
          AND NOT EXISTS (SELECT 1 FROM anomalies x WHERE x.alert_id = a.id)
        ORDER BY a.created_at
        LIMIT p_max
        FOR UPDATE SKIP LOCKED) s;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE alert_deliveries SET digest_alert_id = NULL
    WHERE digest_alert_id = ANY (ids) AND NOT (alert_id = ANY (ids));
    DELETE FROM alert_delivery_attempts
    WHERE delivery_id IN (SELECT id FROM alert_deliveries WHERE alert_id = ANY (ids));
    DELETE FROM alert_deliveries WHERE alert_id = ANY (ids);
    DELETE FROM notification_reads
    WHERE notification_id IN (SELECT id FROM notifications WHERE alert_id = ANY (ids));
    DELETE FROM notifications WHERE alert_id = ANY (ids);
    DELETE FROM alerts WHERE id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
