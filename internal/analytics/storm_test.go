package analytics_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/analytics"
	"github.com/governor-hq/governor/internal/analytics/bucket"
	"github.com/governor-hq/governor/internal/analytics/usage"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/retention"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

type fixture struct {
	pool   *pgxpool.Pool
	org    string
	caller authz.Principal
	agents []string
	svc    *analytics.Service
}

func setup(t *testing.T, zone string, agents int) fixture {
	t.Helper()
	pool := testenv.DB(t)
	ctx := context.Background()
	res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: t.Name() + ids.New("o"), TimeZone: zone, AdminEmail: "a@example.com"})
	require.NoError(t, err)
	org := res.Organization.Id
	q := dbsqlc.New()
	prj, err := q.ProjectCreate(ctx, pool, dbsqlc.ProjectCreateParams{OrgID: org, ID: ids.New(ids.Project), Name: "p"})
	require.NoError(t, err)
	f := fixture{pool: pool, org: org, svc: analytics.New(pool, quiet()),
		caller: authz.Principal{OrgID: org, APIKeyID: res.APIKey.Id, KeyKind: "user", UserID: res.Admin.Id, Role: authz.RoleAdmin}}
	for i := range agents {
		a, err := q.AgentCreate(ctx, pool, dbsqlc.AgentCreateParams{OrgID: org, ID: ids.New(ids.Agent), ProjectID: prj.ID, Name: fmt.Sprintf("a%d", i)})
		require.NoError(t, err)
		f.agents = append(f.agents, a.ID)
	}
	return f
}

// insertCall records an LLM call the way RunService.RecordLlmCalls does (a test-only
// stand-in until that RPC is merged: same table, same late rule under the run's lock).
func insertCall(ctx context.Context, pool *pgxpool.Pool, org, callID string, runID *string, agent, model string, cost, in, cacheRead int64, latency int64, errored bool, started time.Time) error {
	status := "ok"
	if errored {
		status = "error"
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	late := false
	project, key := "", ""
	if runID != nil {
		var settled *time.Time
		if err := tx.QueryRow(ctx, `SELECT settled_at, project_id, api_key_id FROM runs WHERE id = $1 FOR SHARE`, *runID).Scan(&settled, &project, &key); err != nil {
			return err
		}
		late = settled != nil
	} else {
		if err := tx.QueryRow(ctx, `SELECT project_id FROM agents WHERE id = $1`, agent).Scan(&project); err != nil {
			return err
		}
		key = "key_none"
	}
	_, err = tx.Exec(ctx, `INSERT INTO llm_calls (org_id, id, call_id, run_id, project_id, agent_id, api_key_id, model, provider,
		input_tokens, output_tokens, cache_read_tokens, cost_micros, cost_source, latency_ms, status, started_at, late)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'prov-' || $8, $9, 7, $10, $11, 'reported', $12, $13, $14, $15)
		ON CONFLICT (org_id, call_id) DO NOTHING`,
		org, ids.New("llm"), callID, runID, project, agent, key, model, in, cacheRead, cost, latency, status, started, late)
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// rawTotals computes, from the raw tables alone, what the rollups must hold in total.
func rawTotals(t *testing.T, pool *pgxpool.Pool, org string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	var cost, in, out2, cr, calls, errs, succeeded, failed, cancelled, expired, blocked, admitted, blockedLimit, blockedRate int64
	// Settled runs: their charge; their on-time calls' tokens (or the run's own).
	require.NoError(t, pool.QueryRow(context.Background(), `
		WITH oc AS (SELECT run_id, sum(input_tokens) i, sum(output_tokens) o, sum(cache_read_tokens) cr, count(*) n,
		                   count(*) FILTER (WHERE status = 'error') e, sum(cost_micros) c
		            FROM llm_calls WHERE org_id = $1 AND run_id IS NOT NULL AND NOT late GROUP BY run_id),
		     settled AS (SELECT c.cost_micros, coalesce(oc.i, c.input_tokens) i, coalesce(oc.o, c.output_tokens) o,
		                        coalesce(oc.cr, 0) cr, coalesce(oc.n, 0) n, coalesce(oc.e, 0) e
		                 FROM cost_records c LEFT JOIN oc ON oc.run_id = c.run_id WHERE c.org_id = $1),
		     expired AS (SELECT coalesce(oc.c, 0) c, coalesce(oc.i, 0) i, coalesce(oc.o, 0) o, coalesce(oc.cr, 0) cr,
		                        coalesce(oc.n, 0) n, coalesce(oc.e, 0) e
		                 FROM runs r LEFT JOIN oc ON oc.run_id = r.id WHERE r.org_id = $1 AND r.status = 'expired'),
		     lone AS (SELECT cost_micros c, input_tokens i, output_tokens o, cache_read_tokens cr, 1 n, (status = 'error')::int e
		              FROM llm_calls WHERE org_id = $1 AND (late OR run_id IS NULL)),
		     allf AS (SELECT * FROM settled UNION ALL SELECT * FROM expired UNION ALL SELECT * FROM lone)
		SELECT coalesce(sum(cost_micros), 0), coalesce(sum(i), 0), coalesce(sum(o), 0), coalesce(sum(cr), 0), coalesce(sum(n), 0), coalesce(sum(e), 0) FROM allf`,
		org).Scan(&cost, &in, &out2, &cr, &calls, &errs))
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
		       count(*) FILTER (WHERE status = 'cancelled'), count(*) FILTER (WHERE status = 'expired'),
		       count(*) FILTER (WHERE status = 'blocked'), count(*) FILTER (WHERE status <> 'blocked'),
		       count(*) FILTER (WHERE status = 'blocked' AND blocked_by -> 0 ->> 'metric' <> 'requests'),
		       count(*) FILTER (WHERE status = 'blocked' AND blocked_by -> 0 ->> 'metric' = 'requests')
		FROM runs WHERE org_id = $1`, org).Scan(&succeeded, &failed, &cancelled, &expired, &blocked, &admitted, &blockedLimit, &blockedRate))
	out["cost"], out["input"], out["output"], out["cache_read"], out["calls"], out["call_errors"] = cost, in, out2, cr, calls, errs
	out["succeeded"], out["failed"], out["cancelled"], out["expired"], out["blocked"] = succeeded, failed, cancelled, expired, blocked
	out["admitted"], out["blocked_limit"], out["blocked_rate"] = admitted, blockedLimit, blockedRate
	return out
}

func measuresMap(m usage.Measures) map[string]int64 {
	return map[string]int64{"cost": m.Cost, "input": m.Input, "output": m.Output, "cache_read": m.CacheRead, "calls": m.Calls,
		"call_errors": m.CallErrors, "succeeded": m.Succeeded, "failed": m.Failed, "cancelled": m.Cancelled, "expired": m.Expired,
		"blocked": m.Blocked, "admitted": m.Admitted, "blocked_limit": m.BlockedLimit, "blocked_rate": m.BlockedRate}
}

// Many goroutines admit, report, settle (twice, concurrently), record calls before and
// after settlement and without runs, let leases expire and report late, while rollers
// roll concurrently and retention passes run: afterwards every cube, at every grain,
// adds up to exactly what the raw tables say. Nothing is counted twice or lost.
func TestRollupsEqualRawAfterConcurrentStorm(t *testing.T) {
	t.Parallel()
	f := setup(t, "Asia/Kolkata", 8)
	ctx := context.Background()
	q := dbsqlc.New()
	// A rate limit (requests) and a small cost budget on one agent, so some admissions
	// are blocked for each reason.
	_, err := q.LimitCreate(ctx, f.pool, dbsqlc.LimitCreateParams{OrgID: f.org, ID: ids.New(ids.Limit), ScopeType: "agent", ScopeID: f.agents[0],
		Metric: "requests", WindowKind: "minute", Amount: 15, Enforcement: "block", Thresholds: []int32{80}, Inheritance: "merge"})
	require.NoError(t, err)
	_, err = q.LimitCreate(ctx, f.pool, dbsqlc.LimitCreateParams{OrgID: f.org, ID: ids.New(ids.Limit), ScopeType: "agent", ScopeID: f.agents[1],
		Metric: "cost", WindowKind: "day", Amount: 40_000, Enforcement: "block", Thresholds: []int32{80}, Inheritance: "merge"})
	require.NoError(t, err)

	adm := runs.NewAdmitter(f.pool, quiet(), runs.AdmitterOptions{})
	actx, stop := context.WithCancel(ctx)
	defer stop()
	go adm.Run(actx)
	settler := runs.NewSettler(f.pool)

	var errMu sync.Mutex
	var errs []error
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	var wg sync.WaitGroup
	rolling, stopRolling := context.WithCancel(ctx)
	for range 3 {
		wg.Go(func() {
			for rolling.Err() == nil {
				if _, err := f.svc.Roll(ctx, f.org, 7+rand.IntN(50), rand.IntN(2) == 0); err != nil {
					fail(fmt.Errorf("roll: %w", err))
				}
			}
		})
	}
	wg.Go(func() {
		for rolling.Err() == nil {
			if _, err := retention.Run(ctx, f.pool, retention.Periods{}, time.Now(), 100); err != nil {
				fail(fmt.Errorf("retention: %w", err))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	models := []string{"gpt-4o", "claude", "gemini"}
	var workers sync.WaitGroup
	for w := range 12 {
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := range 25 {
				agent := f.agents[rng.IntN(len(f.agents))]
				lease := time.Minute
				expire := rng.IntN(8) == 0
				if expire {
					lease = 300 * time.Millisecond
				}
				res, err := adm.Admit(ctx, runs.AdmitRequest{Caller: f.caller, AgentID: agent, Model: models[rng.IntN(3)], Feature: "f",
					Tags: map[string]string{"team": fmt.Sprint("t", rng.IntN(2))}, Lease: lease,
					Estimate: runs.Estimate{CostMicros: 1000 + rng.Int64N(9000)}})
				if err != nil {
					fail(fmt.Errorf("admit: %w", err))
					continue
				}
				if res.IsBlocked() {
					continue
				}
				run := res.Run.ID
				var callCost int64
				for c := range rng.IntN(4) {
					cost := rng.Int64N(5000)
					callCost += cost
					if err := insertCall(ctx, f.pool, f.org, fmt.Sprintf("%s-%d", run, c), &run, agent, models[rng.IntN(3)], cost, rng.Int64N(500), rng.Int64N(50), rng.Int64N(3000), rng.IntN(5) == 0, time.Now()); err != nil {
						fail(fmt.Errorf("call: %w", err))
					}
				}
				if expire {
					time.Sleep(400 * time.Millisecond)
					if _, err := settler.Settle(ctx, run, "test"); err != nil {
						fail(fmt.Errorf("settle expired: %w", err))
					}
					if rng.IntN(2) == 0 {
						continue // stays expired
					}
				}
				cost := callCost
				if rng.IntN(3) == 0 {
					cost = rng.Int64N(20000) // a reported cost that differs from the calls'
				}
				status := []string{"succeeded", "failed", "cancelled"}[rng.IntN(3)]
				if _, err := runs.RecordReport(ctx, f.pool, f.caller, run, runs.Report{Status: status, CostMicros: &cost, InputTokens: 10, OutputTokens: 5, LatencyMs: rng.Int64N(5000)}); err != nil {
					fail(fmt.Errorf("report %s: %w", run, err))
					continue
				}
				// Two workflow attempts settle at once: one settlement.
				var both sync.WaitGroup
				for range 2 {
					both.Go(func() {
						if _, err := settler.Settle(ctx, run, "test"); err != nil {
							fail(fmt.Errorf("settle: %w", err))
						}
					})
				}
				both.Wait()
				// Late calls (one retried) and a call without a run.
				if rng.IntN(2) == 0 {
					id := fmt.Sprintf("%s-late", run)
					for range 2 {
						if err := insertCall(ctx, f.pool, f.org, id, &run, agent, "late-model", 777, 5, 0, 10, false, time.Now().Add(-time.Duration(rng.IntN(48))*time.Hour)); err != nil {
							fail(fmt.Errorf("late call: %w", err))
						}
					}
				}
				if i%5 == 0 {
					if err := insertCall(ctx, f.pool, f.org, fmt.Sprintf("lone-%d-%d", w, i), nil, agent, "otlp-model", 123, 1, 0, 99, true, time.Now().Add(-3*24*time.Hour)); err != nil {
						fail(fmt.Errorf("lone call: %w", err))
					}
				}
			}
		})
	}
	workers.Wait()
	stopRolling()
	wg.Wait()
	require.Empty(t, errs)

	// Drain the queue, then compare every cube at every grain with the raw tables.
	require.NoError(t, f.svc.RollAll(ctx))
	n, err := q.AnalyticsPendingCount(ctx, f.pool, dbsqlc.AnalyticsPendingCountParams{OrgID: f.org, Max: 1})
	require.NoError(t, err)
	require.Zero(t, n)
	raw := rawTotals(t, f.pool, f.org)
	require.Positive(t, raw["blocked_rate"], "the storm blocked some admissions by rate")
	require.Positive(t, raw["blocked_limit"], "the storm blocked some admissions by budget")
	require.Positive(t, raw["expired"], "some runs stayed expired")
	require.Positive(t, raw["calls"])
	var rows []struct {
		cube, grain int16
		m           usage.Measures
	}
	rs, err := f.pool.Query(ctx, `SELECT cube, grain, sum(cost_micros), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
		sum(calls), sum(call_errors), sum(runs_succeeded), sum(runs_failed), sum(runs_cancelled), sum(runs_expired), sum(runs_blocked),
		sum(admitted), sum(blocked_limit), sum(blocked_rate) FROM analytics_rollups WHERE org_id = $1 GROUP BY 1, 2`, f.org)
	require.NoError(t, err)
	for rs.Next() {
		var r struct {
			cube, grain int16
			m           usage.Measures
		}
		m := &r.m
		require.NoError(t, rs.Scan(&r.cube, &r.grain, &m.Cost, &m.Input, &m.Output, &m.CacheRead, &m.Calls, &m.CallErrors,
			&m.Succeeded, &m.Failed, &m.Cancelled, &m.Expired, &m.Blocked, &m.Admitted, &m.BlockedLimit, &m.BlockedRate))
		rows = append(rows, r)
	}
	require.NoError(t, rs.Err())
	want := 0
	for _, c := range usage.Cubes {
		want += len(c.Grains)
	}
	require.Len(t, rows, want, "every cube at every grain has rows")
	for _, r := range rows {
		require.Equal(t, raw, measuresMap(r.m), "cube %d grain %d", r.cube, r.grain)
	}
	var negative int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM analytics_rollups WHERE org_id = $1 AND least(cost_micros,
		input_tokens, output_tokens, cache_read_tokens, calls, call_errors, runs_succeeded, runs_failed, runs_cancelled, runs_expired,
		runs_blocked, admitted, blocked_limit, blocked_rate) < 0`, f.org).Scan(&negative))
	require.Zero(t, negative, "no rollup row is negative")

	// The query agrees, in the org's :30 zone by day and grouped three ways.
	ans, err := f.svc.QueryUsage(ctx, analytics.Query{OrgID: f.org, CatchUp: true, Start: time.Now().Add(-10 * 24 * time.Hour), End: time.Now().Add(time.Hour),
		Granularity: bucket.Day, GroupBy: []usage.Dim{usage.Agent, usage.Model, usage.RunStatus}, TopN: 2, Latency: true})
	require.NoError(t, err)
	require.Equal(t, raw, measuresMap(ans.Result.Total))
	require.NotNil(t, ans.AsOf)
	var groups usage.Measures
	for _, g := range ans.Result.Groups {
		groups.Add(g.Total)
	}
	require.True(t, groups.Equal(ans.Result.Total), "groups add up to the total")
	require.Positive(t, ans.OtherOf[usage.Agent], "agents beyond the top 2 are other")
}
