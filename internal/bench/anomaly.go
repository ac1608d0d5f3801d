package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/anomaly"
)

// AnomalyOptions configure the anomaly batch benchmark.
type AnomalyOptions struct {
	// Records are the table sizes to measure, one fresh database each.
	Records []int
	Agents  int
	Models  int
	Out     io.Writer
	Log     *slog.Logger
}

// AnomalyResult is one measured table size.
type AnomalyResult struct {
	Records      int
	Seed         time.Duration
	Scan         time.Duration // plain sequential scan: cost per day over the whole table
	Cold         time.Duration // first batch: roll up 29 days, evaluate, write findings
	Daily        time.Duration // next day's batch: roll up the new day, evaluate
	Series       int64
	Anomalies    int
	SpikedAgents int
}

// The records span 28 days of history and yesterday: the default lookback and the day
// evaluated.
const benchDays = 29

// AnomalySuite runs the anomaly benchmark in a scratch database (database, default
// governor_bench_anomalies; made afresh for each size) on the server adminURL points at,
// dropped after each size and before AnomalySuite returns: on success, on error and when
// ctx is cancelled (Ctrl-C) alike.
func AnomalySuite(ctx context.Context, adminURL, database string, o AnomalyOptions) ([]AnomalyResult, error) {
	name := cmp.Or(database, "governor_bench_anomalies")
	fresh := func(ctx context.Context) (*pgxpool.Pool, func() error, error) {
		s, err := NewScratch(ctx, adminURL, name)
		if err != nil {
			return nil, nil, err
		}
		return s.Pool, s.Drop, nil
	}
	var version string
	if conn, err := pgx.Connect(ctx, adminURL); err == nil {
		_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&version)
		_ = conn.Close(ctx)
	}
	fmt.Fprintf(o.Out, "PostgreSQL %s, GOMAXPROCS %d, records %v, scratch database %s (dropped when done)\n", version, runtime.GOMAXPROCS(0), o.Records, name)
	out, err := Anomalies(ctx, fresh, o)
	return out, cmp.Or(ctx.Err(), err)
}

// Anomalies measures the anomaly batch against a plain sequential scan of the same
// cost_records table, in the same database and run, for each table size. fresh gives a
// new migrated database for each size (so each scan reads exactly that many records) and
// how to drop it, which Anomalies does once the size is measured, whatever happened.
func Anomalies(ctx context.Context, fresh func(context.Context) (*pgxpool.Pool, func() error, error), o AnomalyOptions) ([]AnomalyResult, error) {
	if o.Agents <= 0 {
		o.Agents = 50
	}
	if o.Models <= 0 {
		o.Models = 5
	}
	fmt.Fprintf(o.Out, "\n== anomaly batch: %d agents (one API key each), %d models, %d days (28 of history + yesterday), 3 agents spiking yesterday ==\n",
		o.Agents, o.Models, benchDays)
	var out []AnomalyResult
	for _, n := range o.Records {
		pool, drop, err := fresh(ctx)
		if err != nil {
			return out, err
		}
		r, err := anomalyPoint(ctx, pool, n, o)
		if err := errors.Join(err, drop()); err != nil {
			return out, err
		}
		out = append(out, r)
		fmt.Fprintf(o.Out, "%10d records  seed %8s | sequential scan %9s | batch cold %9s (%.1fx scan) | batch daily %9s (%.2fx scan) | %d series, %d anomalies (%d spiked agents)\n",
			r.Records, r.Seed.Round(time.Millisecond), round(r.Scan), round(r.Cold), r.Cold.Seconds()/r.Scan.Seconds(),
			round(r.Daily), r.Daily.Seconds()/r.Scan.Seconds(), r.Series, r.Anomalies, r.SpikedAgents)
	}
	return out, nil
}

func anomalyPoint(ctx context.Context, pool *pgxpool.Pool, n int, o AnomalyOptions) (AnomalyResult, error) {
	r := AnomalyResult{Records: n, SpikedAgents: 3}
	f, err := setupFixture(ctx, pool, o.Agents, false)
	if err != nil {
		return r, err
	}
	org := f.org.Organization.Id
	keys := make([]string, len(f.agents))
	for i := range keys {
		keys[i] = fmt.Sprintf("key_bench%020d", i)
	}
	prj, err := dbsqlc.New().ProjectList(ctx, pool, dbsqlc.ProjectListParams{OrgID: org, Max: 1})
	if err != nil || len(prj) == 0 {
		return r, fmt.Errorf("bench project: %v", err)
	}
	project := prj[0].ID
	today := time.Now().UTC().Truncate(24 * time.Hour)
	start := today.AddDate(0, 0, -benchDays)

	t0 := time.Now()
	// Seeding is the benchmark's own business (like the baseline table of the admission
	// benchmark): plain SQL, not the product's queries.
	if _, err := pool.Exec(ctx, `INSERT INTO api_keys (org_id, id, name, kind, prefix, secret_hash, project_id, agent_id)
		SELECT $1, k, 'bench', 'ingest', 'gvk_bench', sha256(convert_to(k, 'UTF8')), $2, a
		FROM unnest($3::text[], $4::text[]) AS x(k, a)`, org, project, keys, f.agents); err != nil {
		return r, fmt.Errorf("seed keys: %w", err)
	}
	// Each agent costs 1-7 dollars a day (spread over its records) with ±10 % noise; the
	// first three agents cost 8x that yesterday.
	if _, err := pool.Exec(ctx, `
		INSERT INTO runs (org_id, id, project_id, agent_id, api_key_id, model, feature, status, admitted_at, settled_at,
		                  cost_micros, input_tokens, output_tokens, latency_ms)
		SELECT $1, 'run_b' || lpad(g::text, 22, '0'), $2, ($3::text[])[(1 + g % $5)::int], ($4::text[])[(1 + g % $5)::int],
		       'model-' || (g % $6), 'chat', CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END, ts, ts,
		       greatest(1, ((1 + (g % $5) % 7) * 1000000.0 * $5 * $8 / $7 * (0.9 + 0.2 * ((g * 7919) % 1000) / 1000.0)
		          * CASE WHEN g % $5 < 3 AND ts >= $10 THEN 8 ELSE 1 END)::bigint),
		       800 + g % 400, 200, 400 + (g * 31) % 400
		FROM generate_series(0::bigint, $7::bigint - 1) g
		CROSS JOIN LATERAL (SELECT $9::timestamptz + (g::float8 / $7) * interval '29 days' AS ts) t`,
		org, project, f.agents, keys, len(f.agents), o.Models, n, benchDays, start, today.AddDate(0, 0, -1)); err != nil {
		return r, fmt.Errorf("seed runs: %w", err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO cost_records (org_id, id, run_id, project_id, agent_id, api_key_id, model, feature, cost_micros,
		                          input_tokens, output_tokens, run_status, recorded_at, latency_ms)
		SELECT org_id, 'cst_b' || substr(id, 6), id, project_id, agent_id, api_key_id, model, feature, cost_micros,
		       input_tokens, output_tokens, status, settled_at, latency_ms
		FROM runs WHERE org_id = $1`, org); err != nil {
		return r, fmt.Errorf("seed cost records: %w", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE runs`); err != nil {
		return r, err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE cost_records`); err != nil {
		return r, err
	}
	r.Seed = time.Since(t0)

	// The yardstick: one pass over the table, summing cost per day.
	t0 = time.Now()
	rows, err := pool.Query(ctx, `SELECT date_trunc('day', recorded_at) AS day, sum(cost_micros) FROM cost_records GROUP BY 1`)
	if err != nil {
		return r, err
	}
	days := 0
	for rows.Next() {
		days++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r, err
	}
	r.Scan = time.Since(t0)

	d := anomaly.NewDetector(pool, o.Log)
	t0 = time.Now()
	sum, err := d.Run(ctx, anomaly.Request{OrgID: org, WorkflowID: "bench-cold"}, anomaly.Progress{}, nil)
	if err != nil {
		return r, fmt.Errorf("cold batch: %w", err)
	}
	r.Cold = time.Since(t0)
	r.Series, r.Anomalies = sum.SeriesEvaluated, sum.AnomaliesFound
	if sum.DaysRolledUp != benchDays+0 {
		o.Log.Warn("bench: unexpected rollup count", "days", sum.DaysRolledUp)
	}

	// The next day's batch rolls up one new day (yesterday's rollup is forgotten to stand for
	// it) and evaluates again.
	if _, err := pool.Exec(ctx, `DELETE FROM usage_days WHERE org_id = $1 AND day = $2`, org, today.AddDate(0, 0, -1)); err != nil {
		return r, err
	}
	t0 = time.Now()
	if _, err := d.Run(ctx, anomaly.Request{OrgID: org, WorkflowID: "bench-daily"}, anomaly.Progress{}, nil); err != nil {
		return r, fmt.Errorf("daily batch: %w", err)
	}
	r.Daily = time.Since(t0)
	return r, nil
}
