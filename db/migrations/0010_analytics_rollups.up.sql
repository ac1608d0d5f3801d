-- Pre-aggregated analytics (issue 14 §3, §7): a queue of what is not rolled up yet, filled
-- by triggers in the transactions that write the raw records, and rollups that a roller
-- fills from it. A queue row is deleted in the transaction that adds it to the rollups,
-- so every record is rolled up exactly once by construction, whatever the concurrency,
-- however late it arrives, and however often a writer retries (a retried insert that
-- inserts nothing enqueues nothing).
--
-- The roller reads the raw rows a queue row points at (cost_records, runs, llm_calls):
-- nothing may delete a raw row while a queue row points at it. Retention deletes none of
-- these tables, nor the rollups.

CREATE TABLE analytics_pending (
    seq        bigserial PRIMARY KEY,
    org_id     text NOT NULL,
    -- admitted: a run was decided (admitted or blocked; ref_id = run id, at = admitted_at)
    -- settled:  a run's cost record was written (ref_id = cost record id)
    -- expired:  a run's lease ended unreported (ref_id = run id, at = settled_at)
    -- unexpired: an expired run was reported late; takes back its expiry (at = the expiry)
    -- call:     an LLM call that is not part of a run's settlement: recorded without a
    --           run, or after its run settled (ref_id = llm_calls.id)
    kind       text NOT NULL CHECK (kind IN ('admitted', 'settled', 'expired', 'unexpired', 'call')),
    ref_id     text NOT NULL,
    at         timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analytics_pending_org ON analytics_pending (org_id, seq);

-- One rollup row per organization, cube (which dimensions it keeps; the others are ''),
-- grain (15, 60 or 1440 minutes, aligned in UTC) and bucket. Quarter-hours are what make
-- day, week and month buckets exact in every time zone, :30 and :45 offsets included;
-- hours and days keep long ranges cheap. Latency sketches are {bucket index: count}
-- (internal/analytics/sketch).
CREATE TABLE analytics_rollups (
    org_id             text NOT NULL REFERENCES organizations (id),
    cube               smallint NOT NULL,
    grain              smallint NOT NULL CHECK (grain IN (15, 60, 1440)),
    bucket_start       timestamptz NOT NULL,
    project_id         text NOT NULL DEFAULT '',
    agent_id           text NOT NULL DEFAULT '',
    api_key_id         text NOT NULL DEFAULT '',
    provider           text NOT NULL DEFAULT '',
    model              text NOT NULL DEFAULT '',
    feature            text NOT NULL DEFAULT '',
    run_status         text NOT NULL DEFAULT '',
    tag                text NOT NULL DEFAULT '',
    cost_micros        bigint NOT NULL DEFAULT 0,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    reasoning_tokens   bigint NOT NULL DEFAULT 0,
    runs_succeeded     bigint NOT NULL DEFAULT 0,
    runs_failed        bigint NOT NULL DEFAULT 0,
    runs_cancelled     bigint NOT NULL DEFAULT 0,
    runs_expired       bigint NOT NULL DEFAULT 0,
    runs_blocked       bigint NOT NULL DEFAULT 0,
    admitted           bigint NOT NULL DEFAULT 0,
    blocked_limit      bigint NOT NULL DEFAULT 0,
    blocked_policy     bigint NOT NULL DEFAULT 0,
    blocked_rate       bigint NOT NULL DEFAULT 0,
    warned             bigint NOT NULL DEFAULT 0,
    calls              bigint NOT NULL DEFAULT 0,
    call_errors        bigint NOT NULL DEFAULT 0,
    cache_hit_calls    bigint NOT NULL DEFAULT 0,
    run_latency        jsonb NOT NULL DEFAULT '{}',
    call_latency       jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (org_id, cube, grain, bucket_start, project_id, agent_id, api_key_id, provider, model, feature, run_status, tag),
    -- Sums saturate at money.Ceiling. A row's totals are never negative, but the rows a
    -- roll upserts are deltas (taking back an expiry is negative) and PostgreSQL checks
    -- the proposed row before it sees the conflict, so the bound is on magnitude.
    CONSTRAINT analytics_rollups_bounded CHECK (
        abs(cost_micros) <= 4000000000000000000 AND abs(input_tokens) <= 4000000000000000000 AND abs(output_tokens) <= 4000000000000000000 AND abs(cache_read_tokens) <= 4000000000000000000
        AND abs(cache_write_tokens) <= 4000000000000000000 AND abs(reasoning_tokens) <= 4000000000000000000 AND abs(runs_succeeded) <= 4000000000000000000 AND abs(runs_failed) <= 4000000000000000000
        AND abs(runs_cancelled) <= 4000000000000000000 AND abs(runs_expired) <= 4000000000000000000 AND abs(runs_blocked) <= 4000000000000000000 AND abs(admitted) <= 4000000000000000000
        AND abs(blocked_limit) <= 4000000000000000000 AND abs(blocked_policy) <= 4000000000000000000 AND abs(blocked_rate) <= 4000000000000000000 AND abs(warned) <= 4000000000000000000
        AND abs(calls) <= 4000000000000000000 AND abs(call_errors) <= 4000000000000000000 AND abs(cache_hit_calls) <= 4000000000000000000)
);

-- Per organization: which tag key is the tag dimension, and how fresh its rollups are.
CREATE TABLE analytics_settings (
    org_id     text PRIMARY KEY REFERENCES organizations (id),
    -- The key of runs' tags (AdmitRun tags) that is the tag dimension; '' = none.
    tag_key    text NOT NULL DEFAULT '',
    -- Every record committed before this time is in the rollups (set by a roll that
    -- emptied the organization's queue); NULL while a rebuild is under way.
    rolled_through timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Adds two latency sketches: counts per bucket index, buckets that reach 0 dropped.
CREATE FUNCTION analytics_sketch_add(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb) FROM (
        SELECT x.k, sum(x.v::bigint) AS n
        FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) AS x(k, v)
        GROUP BY x.k HAVING sum(x.v::bigint) <> 0) s
$$;
CREATE AGGREGATE analytics_sketch_sum(jsonb) (SFUNC = analytics_sketch_add, STYPE = jsonb, INITCOND = '{}');

-- The write path's only cost: one small insert per statement (admission batches insert
-- many runs in one statement) or per status change that matters.
CREATE FUNCTION analytics_enqueue_runs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_pending (org_id, kind, ref_id, at)
    SELECT n.org_id, 'admitted', n.id, n.admitted_at FROM analytics_new n
    UNION ALL
    SELECT n.org_id, 'expired', n.id, coalesce(n.settled_at, n.admitted_at) FROM analytics_new n WHERE n.status = 'expired';
    RETURN NULL;
END
$$;

CREATE FUNCTION analytics_enqueue_run_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'expired' THEN
        INSERT INTO analytics_pending (org_id, kind, ref_id, at) VALUES (NEW.org_id, 'unexpired', NEW.id, coalesce(OLD.settled_at, OLD.admitted_at));
    END IF;
    IF NEW.status = 'expired' THEN
        INSERT INTO analytics_pending (org_id, kind, ref_id, at) VALUES (NEW.org_id, 'expired', NEW.id, coalesce(NEW.settled_at, now()));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION analytics_enqueue_cost_records() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_pending (org_id, kind, ref_id, at)
    SELECT n.org_id, 'settled', n.id, n.recorded_at FROM analytics_new n;
    RETURN NULL;
END
$$;

-- Calls recorded before their run settled are rolled up with the run's settlement.
CREATE FUNCTION analytics_enqueue_llm_calls() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_pending (org_id, kind, ref_id, at)
    SELECT n.org_id, 'call', n.id, n.started_at FROM analytics_new n WHERE n.late OR n.run_id IS NULL;
    RETURN NULL;
END
$$;

-- Triggers first, then the backfill: creating a trigger locks its table against writes
-- until this migration commits, so every row is enqueued exactly once (by the backfill if
-- it was committed before, by the trigger after).
CREATE TRIGGER analytics_runs_insert AFTER INSERT ON runs
    REFERENCING NEW TABLE AS analytics_new FOR EACH STATEMENT EXECUTE FUNCTION analytics_enqueue_runs();
CREATE TRIGGER analytics_runs_status AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND (OLD.status = 'expired' OR NEW.status = 'expired'))
    EXECUTE FUNCTION analytics_enqueue_run_status();
CREATE TRIGGER analytics_cost_records_insert AFTER INSERT ON cost_records
    REFERENCING NEW TABLE AS analytics_new FOR EACH STATEMENT EXECUTE FUNCTION analytics_enqueue_cost_records();
CREATE TRIGGER analytics_llm_calls_insert AFTER INSERT ON llm_calls
    REFERENCING NEW TABLE AS analytics_new FOR EACH STATEMENT EXECUTE FUNCTION analytics_enqueue_llm_calls();

-- Existing records. An expired run that was reported later counts once, as reported
-- (its expiry and the taking back of it cancel out).
INSERT INTO analytics_pending (org_id, kind, ref_id, at)
SELECT org_id, 'admitted', id, admitted_at FROM runs
UNION ALL
SELECT org_id, 'expired', id, coalesce(settled_at, admitted_at) FROM runs WHERE status = 'expired'
UNION ALL
SELECT org_id, 'settled', id, recorded_at FROM cost_records
UNION ALL
SELECT org_id, 'call', id, started_at FROM llm_calls WHERE late OR run_id IS NULL;
