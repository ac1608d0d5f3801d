DROP FUNCTION retention_alerts(timestamptz, integer);
DROP INDEX idempotency_records_expiry;
DROP INDEX domain_events_time;
DROP INDEX run_reservations_released;
