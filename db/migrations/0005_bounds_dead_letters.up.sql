-- Money and tokens cannot wrap: the database refuses impossible states as the last line of
-- defence behind the API's bounds and the checked arithmetic (internal/money), and the
-- running totals saturate at money.Ceiling (4e18) instead of overflowing bigint.
-- Settlements that can never succeed are dead-lettered, visibly, instead of retried forever.

ALTER TABLE limits ADD CONSTRAINT limits_amount_bounded CHECK (amount <= 1000000000000000);

ALTER TABLE limit_counters
    ADD CONSTRAINT limit_counters_used_nonneg CHECK (used >= 0),
    ADD CONSTRAINT limit_counters_bounded CHECK (used <= 4000000000000000000 AND reserved <= 4000000000000000000);

ALTER TABLE runs
    ADD CONSTRAINT runs_estimates_nonneg CHECK (est_cost_micros >= 0 AND est_input_tokens >= 0 AND est_output_tokens >= 0),
    ADD CONSTRAINT runs_actuals_nonneg CHECK (input_tokens >= 0 AND output_tokens >= 0 AND reported_cost_micros >= 0
                                              AND cost_micros >= 0 AND latency_ms >= 0),
    -- A settlement dead-letters after its bounded retries; an operator's retry clears it.
    ADD COLUMN dead_lettered_at timestamptz,
    ADD COLUMN dead_letter_error text NOT NULL DEFAULT '';
CREATE INDEX runs_dead_lettered ON runs (org_id, dead_lettered_at) WHERE dead_lettered_at IS NOT NULL;

ALTER TABLE run_reservations ADD CONSTRAINT run_reservations_amount_nonneg CHECK (amount >= 0);

ALTER TABLE cost_records ADD CONSTRAINT cost_records_nonneg
    CHECK (cost_micros >= 0 AND input_tokens >= 0 AND output_tokens >= 0 AND latency_ms >= 0);

ALTER TABLE incidents ADD CONSTRAINT incidents_cost_nonneg CHECK (cost_micros >= 0 AND runs_affected >= 0);
ALTER TABLE incident_runs ADD CONSTRAINT incident_runs_cost_nonneg CHECK (cost_micros >= 0);
ALTER TABLE prevention_records ADD CONSTRAINT prevention_records_cost_nonneg CHECK (estimated_cost_micros >= 0);
ALTER TABLE incident_settings ADD CONSTRAINT incident_settings_cost_bounded
    CHECK (high_cost_micros BETWEEN 1 AND 1000000000000000 AND critical_cost_micros BETWEEN 1 AND 1000000000000000);
ALTER TABLE model_prices ADD CONSTRAINT model_prices_bounded
    CHECK (input_micros_per_mtok <= 1000000000000 AND output_micros_per_mtok <= 1000000000000);
ALTER TABLE usage_daily ADD CONSTRAINT usage_daily_nonneg
    CHECK (cost_micros >= 0 AND tokens >= 0 AND runs >= 0 AND failed >= 0 AND latency_sum_ms >= 0 AND latency_count >= 0);

-- A dead-lettered settlement raises an alert of its own kind.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('limit_threshold', 'budget_exceeded', 'anomaly',
    'incident', 'proposal_pending', 'channel_disabled', 'digest', 'test', 'settlement_failed'));

-- The daily rollup's sums saturate like every other running total.
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
           least(sum(c.cost_micros), 4000000000000000000)::bigint,
           least(sum(c.input_tokens::numeric + c.output_tokens), 4000000000000000000)::bigint,
           count(*),
           count(*) FILTER (WHERE c.run_status = 'failed'),
           least(coalesce(sum(c.latency_ms), 0), 4000000000000000000)::bigint, count(c.latency_ms)
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
