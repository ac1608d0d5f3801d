package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/bench"
	"github.com/governor-hq/governor/internal/devstack"
)

// recordsBenchDB makes a fresh scratch database on the server dev would use, migrates it,
// and returns it with the function that drops it again (run it also on errors and
// Ctrl-C: a benchmark's data must not outlive it).
func recordsBenchDB(cmd *cobra.Command, name string) (*pgxpool.Pool, func(), error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	ctx := cmd.Context()
	pg, err := devstack.EnsurePostgres(ctx, devstack.PostgresOptions{URL: cfg.DatabaseURL, Database: "postgres", DataDir: cfg.DataDir + "/postgres",
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }})
	if err != nil {
		return nil, nil, err
	}
	admin := func(ctx context.Context, sql string) (*pgx.ConnConfig, error) {
		conn, err := pgx.Connect(ctx, pg.AdminURL)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, sql)
		return conn.Config(), err
	}
	var pool *pgxpool.Pool
	cleanup := func() {
		if pool != nil {
			pool.Close()
		}
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: drop %s: %v\n", name, err)
		}
		_ = pg.Stop(context.Background())
	}
	if _, err := admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		cleanup()
		return nil, nil, err
	}
	c, err := admin(ctx, "CREATE DATABASE "+name)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", c.User, c.Host, c.Port, name)
	if pool, err = db.Open(ctx, url); err == nil {
		_, err = db.MigrateUp(ctx, pool)
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	var version string
	_ = pool.QueryRow(ctx, "SHOW server_version").Scan(&version)
	fmt.Fprintf(cmd.OutOrStdout(), "PostgreSQL %s, GOMAXPROCS %d\n", version, runtime.GOMAXPROCS(0))
	return pool, cleanup, nil
}

func benchCallsCmd() *cobra.Command {
	var o bench.CallsOptions
	cmd := &cobra.Command{
		Use:   "calls",
		Short: "Measure recording LLM calls (RunService.RecordLlmCalls' write path) beside a bare multi-row INSERT of the same rows",
		Long: `bench calls creates a scratch database (governor_bench_calls, dropped when done) and prints,
for each concurrency, calls recorded per second through the write path of RecordLlmCalls
(validate, lock the run, price every call by token kind, one multi-row INSERT with
ON CONFLICT per batch) beside rows per second of a bare multi-row INSERT of the same rows
into a table like llm_calls (same keys, indexes and checks), measured just before it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, done, err := recordsBenchDB(cmd, "governor_bench_calls")
			if err != nil {
				return err
			}
			defer done()
			o.Out = cmd.OutOrStdout()
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			_, err = bench.Calls(cmd.Context(), pool, o)
			return err
		},
	}
	cmd.Flags().DurationVar(&o.Duration, "duration", 5*time.Second, "length of each measured point")
	cmd.Flags().IntSliceVar(&o.Concurrency, "clients", []int{1, 4, 16}, "concurrent clients per point")
	cmd.Flags().IntVar(&o.Batch, "batch", 1000, "calls per batch (at most 1000)")
	return cmd
}

func benchExportCmd() *cobra.Command {
	var o bench.ExportOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Measure exports (rows/s, peak heap) beside PostgreSQL's COPY … TO STDOUT CSV of the same rows",
		Long: `bench export creates a scratch database (governor_bench_export, dropped when done), seeds N
LLM calls for each size, and prints the export's rows per second as CSV and NDJSON and the
highest heap in use while it ran, beside COPY (SELECT … ORDER BY …) TO STDOUT CSV of the same
rows: how fast PostgreSQL itself writes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, done, err := recordsBenchDB(cmd, "governor_bench_export")
			if err != nil {
				return err
			}
			defer done()
			o.Out = cmd.OutOrStdout()
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			_, err = bench.Exports(cmd.Context(), pool, o)
			return err
		},
	}
	cmd.Flags().IntSliceVar(&o.Rows, "rows", []int{100_000, 1_000_000}, "row counts to export")
	return cmd
}
