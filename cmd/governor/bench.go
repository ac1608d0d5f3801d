package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/internal/bench"
	"github.com/governor-hq/governor/internal/devstack"
	"github.com/governor-hq/governor/internal/lifecycle"
)

func benchCmd() *cobra.Command {
	var o bench.Options
	var e2eClients []int
	var e2eDuration time.Duration
	var skipE2E bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure admission against a bare guarded UPDATE on the same PostgreSQL, and runs/s through the whole lifecycle",
		Long: `bench creates scratch databases (governor_bench, then governor_bench_lifecycle) on the
server that dev would use (DATABASE_URL, else 127.0.0.1:5432, else a private cluster), drops
each when done with it (also on an error or Ctrl-C), and prints:

  - admissions per second and p50/p99 latency at each concurrency, for one hot budget and
    spread over many agents, each beside the baseline measured just before it: a bare
    guarded UPDATE ... WHERE used + x <= limit at the same concurrency;
  - end-to-end runs per second through admit → complete → settled, on a Temporal dev
    server (TEMPORAL_ADDRESS, else one started in memory).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			o.Out = cmd.OutOrStdout()
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			pg, err := devstack.EnsurePostgres(ctx, devstack.PostgresOptions{URL: cfg.DatabaseURL, Database: "postgres", DataDir: cfg.DataDir + "/postgres",
				Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }})
			if err != nil {
				return err
			}
			defer pg.Stop(context.Background()) //nolint:errcheck
			so := bench.SuiteOptions{Options: o, AdminURL: pg.AdminURL, Database: "governor_bench"}
			if !skipE2E {
				so.Lifecycle = &bench.LifecycleOptions{Namespace: cfg.TemporalNamespace, Clients: e2eClients, Duration: e2eDuration}
				so.Temporal = func(ctx context.Context) (string, bool, func(), error) {
					tmp, err := devstack.EnsureTemporal(ctx, devstack.TemporalOptions{Address: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
						KeywordSearchAttributes: lifecycle.SearchAttributeNames(),
						Logf:                    func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }})
					if err != nil {
						return "", false, nil, err
					}
					return tmp.Address, tmp.Started, func() { _ = tmp.Stop(context.Background()) }, nil
				}
			}
			return bench.Suite(ctx, so)
		},
	}
	cmd.Flags().DurationVar(&o.Duration, "duration", 5*time.Second, "length of each measured point")
	cmd.Flags().IntSliceVar(&o.Concurrency, "clients", []int{1, 16, 64}, "concurrent clients per point")
	cmd.Flags().IntVar(&o.Agents, "agents", 1000, "agents (each with its own budget) in the spread scenario")
	cmd.Flags().IntSliceVar(&e2eClients, "e2e-clients", []int{1, 16}, "concurrent clients of the end-to-end lifecycle points")
	cmd.Flags().DurationVar(&e2eDuration, "e2e-duration", 10*time.Second, "length of each end-to-end point")
	cmd.Flags().BoolVar(&skipE2E, "skip-e2e", false, "only the admission benchmark")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file")
	cmd.AddCommand(benchAnomaliesCmd(), benchCallsCmd(), benchExportCmd())
	return cmd
}

func benchAnomaliesCmd() *cobra.Command {
	var o bench.AnomalyOptions
	cmd := &cobra.Command{
		Use:   "anomalies",
		Short: "Measure the anomaly batch on N cost records beside a plain sequential scan of the same table",
		Long: `bench anomalies seeds a fresh scratch database (governor_bench_anomalies, created for
each size and dropped after it, also on an error or Ctrl-C) with N settled runs and their cost records over 29 days, then prints,
for each N, in the same database and run:

  - a plain sequential scan of cost_records summing cost per day (the yardstick);
  - the first (cold) anomaly batch: roll up 29 days, evaluate every series, write findings;
  - the next day's batch: roll up one new day and evaluate.

The 5,000,000 point takes minutes to seed: ask for it with --records 50000,5000000.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			o.Out = cmd.OutOrStdout()
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			pg, err := devstack.EnsurePostgres(ctx, devstack.PostgresOptions{URL: cfg.DatabaseURL, Database: "postgres", DataDir: cfg.DataDir + "/postgres",
				Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }})
			if err != nil {
				return err
			}
			defer pg.Stop(context.Background()) //nolint:errcheck
			_, err = bench.AnomalySuite(ctx, pg.AdminURL, "governor_bench_anomalies", o)
			return err
		},
	}
	cmd.Flags().IntSliceVar(&o.Records, "records", []int{50_000}, "cost-record counts to measure (add 5000000 for seed 001's large point)")
	cmd.Flags().IntVar(&o.Agents, "agents", 50, "agents (each with its own API key)")
	cmd.Flags().IntVar(&o.Models, "models", 5, "models")
	return cmd
}
