package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/bench"
	"github.com/governor-hq/governor/internal/devstack"
)

// benchPool makes a fresh scratch database on the server dev would use and migrates it.
func benchPool(cmd *cobra.Command, name string) (*pgxpool.Pool, func(), error) {
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
	url, err := scratchDatabase(ctx, pg.AdminURL, name)
	if err != nil {
		_ = pg.Stop(context.Background())
		return nil, nil, err
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		_ = pg.Stop(context.Background())
		return nil, nil, err
	}
	if _, err := db.MigrateUp(ctx, pool); err != nil {
		pool.Close()
		_ = pg.Stop(context.Background())
		return nil, nil, err
	}
	var version string
	_ = pool.QueryRow(ctx, "SHOW server_version").Scan(&version)
	fmt.Fprintf(cmd.OutOrStdout(), "PostgreSQL %s, GOMAXPROCS %d\n", version, runtimeProcs())
	return pool, func() { pool.Close(); _ = pg.Stop(context.Background()) }, nil
}

func benchCallsCmd() *cobra.Command {
	var o bench.CallsOptions
	cmd := &cobra.Command{
		Use:   "calls",
		Short: "Measure recording LLM calls (RunService.RecordLlmCalls' write path) beside a bare multi-row INSERT of the same rows",
		Long: `bench calls creates a scratch database (governor_bench_calls, dropped and recreated) and prints,
for each concurrency, calls recorded per second through the write path of RecordLlmCalls
(validate, lock the run, price every call by token kind, one multi-row INSERT with
ON CONFLICT per batch) beside rows per second of a bare multi-row INSERT of the same rows
into a table like llm_calls (same keys, indexes and checks), measured just before it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, done, err := benchPool(cmd, "governor_bench_calls")
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
		Long: `bench export creates a scratch database (governor_bench_export, dropped and recreated), seeds N
LLM calls for each size, and prints the export's rows per second as CSV and NDJSON and the
highest heap in use while it ran, beside COPY (SELECT … ORDER BY …) TO STDOUT CSV of the same
rows: how fast PostgreSQL itself writes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, done, err := benchPool(cmd, "governor_bench_export")
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
