-- Restores 0004's rollup and drops the bounds and the dead-letter columns.
CREATE OR REPLACE FUNCTION usage_daily_rollup(p_org_id text, p_day date, p_start timestamptz, p_end timestamptz, p_complete boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('usage_daily:' || p_org_id), (p_day - date '2000-01-01'));
    DELETE FROM usage_daily WHERE org_id = p_org_id AND day = p_day;
    INSERT INTO usage_daily (org_id, entity_type, entity_id, day, cost_micros, tokens, runs, failed, latency_sum_ms, latency_count)
    SELECT p_org_id,
           CASE WHEN GROUPING(c.agent_id) = 0 THEN 'agent'
                WHEN GROUPING(c.api_key_id) = 0 THEN 'api_key'
                WHEN GROUPING(c.model) = 0 THEN 'model'
                ELSE 'organization' END,
           CASE WHEN GROUPING(c.agent_id) = 0 THEN c.agent_id
                WHEN GROUPING(c.api_key_id) = 0 THEN c.api_key_id
                WHEN GROUPING(c.model) = 0 THEN c.model
                ELSE p_org_id END,
           p_day,
           sum(c.cost_micros), sum(c.input_tokens + c.output_tokens), count(*),
           count(*) FILTER (WHERE c.run_status = 'failed'),
           coalesce(sum(c.latency_ms), 0), count(c.latency_ms)
    FROM cost_records c
    WHERE c.org_id = p_org_id AND c.recorded_at >= p_start AND c.recorded_at < p_end
    GROUP BY GROUPING SETS ((), (c.agent_id), (c.api_key_id), (c.model))
    HAVING count(*) > 0;
    SELECT coalesce(sum(u.runs), 0) INTO n FROM usage_daily u
    WHERE u.org_id = p_org_id AND u.day = p_day AND u.entity_type = 'organization';
    INSERT INTO usage_days (org_id, day, records, complete, rolled_at)
    VALUES (p_org_id, p_day, n, p_complete, now())
    ON CONFLICT (org_id, day) DO UPDATE
    SET records = EXCLUDED.records, complete = EXCLUDED.complete, rolled_at = EXCLUDED.rolled_at;
    RETURN n;
END
$$;

ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_nonneg;
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('limit_threshold', 'budget_exceeded', 'anomaly',
    'incident', 'proposal_pending', 'channel_disabled', 'digest', 'test')) NOT VALID; -- keeps settlement_failed rows
ALTER TABLE model_prices DROP CONSTRAINT model_prices_bounded;
ALTER TABLE incident_settings DROP CONSTRAINT incident_settings_cost_bounded;
ALTER TABLE prevention_records DROP CONSTRAINT prevention_records_cost_nonneg;
ALTER TABLE incident_runs DROP CONSTRAINT incident_runs_cost_nonneg;
ALTER TABLE incidents DROP CONSTRAINT incidents_cost_nonneg;
ALTER TABLE cost_records DROP CONSTRAINT cost_records_nonneg;
ALTER TABLE run_reservations DROP CONSTRAINT run_reservations_amount_nonneg;
DROP INDEX runs_dead_lettered;
ALTER TABLE runs
    DROP COLUMN dead_letter_error,
    DROP COLUMN dead_lettered_at,
    DROP CONSTRAINT runs_actuals_nonneg,
    DROP CONSTRAINT runs_estimates_nonneg;
ALTER TABLE limit_counters DROP CONSTRAINT limit_counters_bounded, DROP CONSTRAINT limit_counters_used_nonneg;
ALTER TABLE limits DROP CONSTRAINT limits_amount_bounded;
