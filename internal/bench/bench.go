// Package bench measures admission against its baseline on the same PostgreSQL in the
// same run: a bare guarded UPDATE ... WHERE used + x <= limit, the cheapest correct way to
// take from a budget. It prints figures; it asserts nothing (targets belong in the note,
// not in a timed test).
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/money"
	"github.com/governor-hq/governor/internal/runs"
)

// Result is one measured point.
type Result struct {
	Name        string
	Clients     int
	Ops         int
	Errors      int
	Elapsed     time.Duration
	P50, P99    time.Duration
	OpsPerSec   float64
	BatchFactor float64 // admissions per transaction, where known
}

func (r Result) String() string {
	return fmt.Sprintf("%-34s %4d clients %9.0f ops/s  p50 %8s  p99 %8s  (%d ops, %d errors)",
		r.Name, r.Clients, r.OpsPerSec, round(r.P50), round(r.P99), r.Ops, r.Errors)
}

func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d.Microseconds()))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	}
	return d.Round(time.Millisecond).String()
}

// measure runs op from `clients` goroutines for d and reports throughput and latency.
func measure(ctx context.Context, name string, clients int, d time.Duration, op func(ctx context.Context, client int) error) Result {
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				if err := op(ctx, c); err != nil {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := Result{Name: name, Clients: clients, Ops: len(lat), Errors: int(errs.Load()), Elapsed: elapsed}
	if len(lat) > 0 {
		r.P50 = lat[len(lat)/2]
		r.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
		r.OpsPerSec = float64(len(lat)) / elapsed.Seconds()
	}
	return r
}

// Options choose what to run.
type Options struct {
	Duration    time.Duration // per point
	Concurrency []int
	Agents      int // for the spread scenario
	Out         io.Writer
	Log         *slog.Logger
}

// fixture is an organization with agents, an ingest principal and limits.
type fixture struct {
	org    api.BootstrapResult
	agents []string
	caller authz.Principal
}

func setupFixture(ctx context.Context, pool *pgxpool.Pool, agents int, perAgentLimit bool) (fixture, error) {
	var f fixture
	res, err := api.Bootstrap(ctx, pool, "bench", api.BootstrapInput{OrgName: "bench " + ids.New("b"), AdminEmail: "bench@example.com"})
	if err != nil {
		return f, err
	}
	f.org = res
	q := dbsqlc.New()
	prj, err := q.ProjectCreate(ctx, pool, dbsqlc.ProjectCreateParams{OrgID: res.Organization.Id, ID: ids.New(ids.Project), Name: "bench"})
	if err != nil {
		return f, err
	}
	for i := range agents {
		a, err := q.AgentCreate(ctx, pool, dbsqlc.AgentCreateParams{OrgID: res.Organization.Id, ID: ids.New(ids.Agent), ProjectID: prj.ID, Name: fmt.Sprintf("agent-%d", i)})
		if err != nil {
			return f, err
		}
		f.agents = append(f.agents, a.ID)
		if perAgentLimit {
			if _, err := q.LimitCreate(ctx, pool, dbsqlc.LimitCreateParams{OrgID: res.Organization.Id, ID: ids.New(ids.Limit), ScopeType: "agent", ScopeID: a.ID,
				Metric: "cost", WindowKind: "day", Amount: money.MaxAmount, Enforcement: "block", Thresholds: []int32{80}, Inheritance: "merge"}); err != nil {
				return f, err
			}
		}
	}
	if !perAgentLimit {
		if _, err := q.LimitCreate(ctx, pool, dbsqlc.LimitCreateParams{OrgID: res.Organization.Id, ID: ids.New(ids.Limit), ScopeType: "organization", ScopeID: res.Organization.Id,
			Metric: "cost", WindowKind: "day", Amount: money.MaxAmount, Enforcement: "block", Thresholds: []int32{80}, Inheritance: "merge"}); err != nil {
			return f, err
		}
	}
	f.caller = authz.Principal{OrgID: res.Organization.Id, APIKeyID: res.APIKey.Id, KeyKind: "user", UserID: res.Admin.Id, Role: authz.RoleAdmin}
	return f, nil
}

// baselineTable is the bare guarded update's table. It lives only in the benchmark's own
// database; this is the one place Governor writes SQL outside sqlc, because it is the
// yardstick, not the product.
const baselineTable = `CREATE TABLE IF NOT EXISTS bench_budget (id integer PRIMARY KEY, used bigint NOT NULL, lim bigint NOT NULL)`

func setupBaseline(ctx context.Context, pool *pgxpool.Pool, rows int) error {
	if _, err := pool.Exec(ctx, baselineTable); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `TRUNCATE bench_budget`); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, `INSERT INTO bench_budget SELECT g, 0, 1::bigint << 60 FROM generate_series(1, $1) g`, rows)
	return err
}

func baselineOp(pool *pgxpool.Pool, rows int) func(context.Context, int) error {
	return func(ctx context.Context, _ int) error {
		id := 1
		if rows > 1 {
			id = 1 + rand.IntN(rows)
		}
		tag, err := pool.Exec(ctx, `UPDATE bench_budget SET used = used + $1 WHERE id = $2 AND used + $1 <= lim`, 1+rand.Int64N(1000), id)
		if err == nil && tag.RowsAffected() != 1 {
			err = fmt.Errorf("baseline update refused")
		}
		return err
	}
}

func admitOp(adm *runs.Admitter, f fixture, spread bool) func(context.Context, int) error {
	return func(ctx context.Context, client int) error {
		agent := f.agents[0]
		if spread {
			agent = f.agents[rand.IntN(len(f.agents))]
		}
		res, err := adm.Admit(ctx, runs.AdmitRequest{Caller: f.caller, AgentID: agent, Model: "gpt-4o",
			Estimate: runs.Estimate{CostMicros: 1 + rand.Int64N(1000)}})
		if err == nil && res.IsBlocked() {
			err = fmt.Errorf("blocked")
		}
		return err
	}
}

// Admission runs the admission benchmark: the baseline and the Admitter, for one hot
// budget and spread over many agents, at each concurrency.
func Admission(ctx context.Context, pool *pgxpool.Pool, o Options) ([]Result, error) {
	var out []Result
	print := func(r Result) {
		out = append(out, r)
		fmt.Fprintln(o.Out, r)
	}
	for _, scenario := range []struct {
		name   string
		spread bool
		rows   int
	}{{"one hot budget", false, 1}, {fmt.Sprintf("spread over %d agents", o.Agents), true, o.Agents}} {
		fmt.Fprintf(o.Out, "\n== %s ==\n", scenario.name)
		agents := 1
		if scenario.spread {
			agents = o.Agents
		}
		f, err := setupFixture(ctx, pool, agents, scenario.spread)
		if err != nil {
			return out, err
		}
		if err := setupBaseline(ctx, pool, scenario.rows); err != nil {
			return out, err
		}
		admCtx, stop := context.WithCancel(ctx)
		adm := runs.NewAdmitter(pool, o.Log, runs.AdmitterOptions{})
		done := make(chan struct{})
		go func() { defer close(done); adm.Run(admCtx) }()
		for _, c := range o.Concurrency {
			base := measure(ctx, "baseline: bare guarded UPDATE", c, o.Duration, baselineOp(pool, scenario.rows))
			print(base)
			r := measure(ctx, "governor: AdmitRun decision", c, o.Duration, admitOp(adm, f, scenario.spread))
			print(r)
			if base.OpsPerSec > 0 && base.P50 > 0 {
				fmt.Fprintf(o.Out, "%-34s %4d clients throughput %.2f× baseline (goal ≥ 0.5), p50 %.2f× baseline (goal ≤ 3)\n",
					"  ratio", c, r.OpsPerSec/base.OpsPerSec, float64(r.P50)/float64(base.P50))
			}
		}
		stop()
		<-done
	}
	return out, nil
}
