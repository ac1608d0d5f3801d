package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/audit/checkpoint"
	"github.com/governor-hq/governor/internal/config"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/retention"
	"github.com/governor-hq/governor/workers"
	"github.com/governor-hq/governor/workflows"
)

// The Temporal UI's usual address, GOVERNOR_TEMPORAL_UI_URL's default.
const defaultTemporalUIURL = "http://127.0.0.1:8233"

func apiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Serve the Connect/gRPC/gRPC-Web API, health, reflection and /metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			kr, err := loadKeyring(cfg)
			if err != nil {
				return err
			}
			log := cfg.Logger()
			pool, err := openCurrent(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer pool.Close()
			return serveAPI(cmd.Context(), cfg, kr, pool, log, nil)
		},
	}
}

func workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker of Governor's workflows and activities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			kr, err := loadKeyring(cfg)
			if err != nil {
				return err
			}
			log := cfg.Logger()
			pool, err := openCurrent(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer pool.Close()
			return runWorker(cmd.Context(), cfg, kr, pool, log)
		},
	}
}

// openCurrent opens the database and refuses to go on if its schema is behind the binary:
// migrations are a deliberate step (`governor migrate up`), not a side effect of a start.
func openCurrent(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	if cfg.DatabaseURL == "" {
		return nil, fmt.Errorf("DATABASE_URL (or --database-url) is required")
	}
	pool, err := db.OpenWith(ctx, cfg.DatabaseURL, dbTimeouts(cfg))
	if err != nil {
		return nil, err
	}
	statuses, err := db.MigrationStatuses(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	for _, s := range statuses {
		if s.AppliedAt == nil {
			pool.Close()
			return nil, fmt.Errorf("the database schema is behind this binary (migration %04d_%s is not applied): run `governor migrate up`", s.Version, s.Name)
		}
	}
	return pool, nil
}

// dbTimeouts are the session timeouts of a service process's connections.
func dbTimeouts(cfg config.Config) db.Timeouts {
	return db.Timeouts{Statement: cfg.DBStatementTimeout, Lock: cfg.DBLockTimeout, IdleInTransaction: cfg.DBIdleInTxTimeout}
}

// sealPlaintext seals alert channels written before credentials were encrypted at rest
// (the migration cannot: the KEK is not in the database). Every process does it at start;
// they share the work, and it finds nothing once done.
func sealPlaintext(ctx context.Context, pool *pgxpool.Pool, kr *envelope.Keyring, log *slog.Logger) error {
	_, err := alerts.SealPlaintext(ctx, pool, kr, log)
	return err
}

func serveAPI(ctx context.Context, cfg config.Config, kr *envelope.Keyring, pool *pgxpool.Pool, log *slog.Logger, ready func(net.Addr)) error {
	if cfg.SignalKeys.Empty() {
		return errNoSignalKey
	}
	if len(cfg.IdempotencyPepper) == 0 {
		return fmt.Errorf("GOVERNOR_IDEMPOTENCY_PEPPER (or GOVERNOR_IDEMPOTENCY_PEPPER_FILE) is required: a secret of at least 32 bytes, the same for every API process, e.g. `openssl rand -base64 32`")
	}
	if err := sealPlaintext(ctx, pool, kr, log); err != nil {
		return err
	}
	topts, err := temporalOptions(cfg, log)
	if err != nil {
		return err
	}
	// A lazy client: the API serves (and admits runs) while Temporal is unreachable; the
	// outbox keeps what it owes Temporal until it is back.
	tc, err := client.NewLazyClient(topts)
	if err != nil {
		return err
	}
	defer tc.Close()
	opts := api.Options{IdempotencyTTL: cfg.IdempotencyTTL, RunLease: cfg.RunLease, Temporal: tc, TaskQueue: cfg.TaskQueue,
		AdmitTimeout: cfg.AdmitTimeout, AdmitLockTimeout: cfg.AdmitLockTimeout,
		Limits: api.Limits{MaxRequestBytes: cfg.MaxRequestBytes, ReadTimeout: cfg.RequestReadTimeout, IdleTimeout: cfg.IdleTimeout,
			MaxStreamsPerKey: cfg.MaxStreamsPerKey, MaxStreamsPerOrg: cfg.MaxStreamsPerOrg, RatePerIP: cfg.RatePerIP, RatePerKey: cfg.RatePerKey},
		Keyring: kr, AlertEndpoints: alertEndpoints(cfg),
		ConsoleDir: consoleDir, TemporalUIURL: cfg.TemporalUIURL, TemporalNamespace: cfg.TemporalNamespace,
		SignalKeys: cfg.SignalKeys, IdempotencyPepper: cfg.IdempotencyPepper}
	if cfg.FaultExitAfterAdmit {
		opts.AfterAdmitCommit = func() {
			log.Error("fault injection: exiting after committing an admission, before starting its workflow")
			os.Exit(3)
		}
	}
	return api.New(pool, log, opts).Run(ctx, cfg.HTTPAddr, ready)
}

// errNoSignalKey: the API and the worker cannot trust each other's decisions without it.
var errNoSignalKey = fmt.Errorf("GOVERNOR_SIGNAL_KEY (or GOVERNOR_SIGNAL_KEY_FILE) is required: a secret of at least 32 bytes shared by the API and the worker, e.g. `openssl rand -base64 32`")

func dialTemporal(cfg config.Config, log *slog.Logger) (client.Client, error) {
	opts, err := temporalOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
	}
	return c, nil
}

func runWorker(ctx context.Context, cfg config.Config, kr *envelope.Keyring, pool *pgxpool.Pool, log *slog.Logger) error {
	if cfg.SignalKeys.Empty() {
		return errNoSignalKey
	}
	if err := sealPlaintext(ctx, pool, kr, log); err != nil {
		return err
	}
	c, err := dialTemporal(cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()
	signer, ok, err := loadAuditSigner(cfg)
	if err != nil {
		return err
	}
	var audit *checkpoint.Signer
	if ok {
		audit = &signer
	} else {
		log.Warn("no audit signing key (GOVERNOR_AUDIT_SIGNING_KEY or GOVERNOR_AUDIT_SIGNING_KEY_FILE): this worker signs no audit checkpoints, " +
			"so a rewrite of a whole audit chain would go unnoticed")
	}
	return workers.Run(ctx, workers.Deps{Client: c, Pool: pool, Log: log, TaskQueue: cfg.TaskQueue, Namespace: cfg.TemporalNamespace,
		AuditSigner: audit, AuditCheckpointEvery: cfg.AuditCheckpointEvery,
		Alerts: alerts.DeliverOptions{Endpoints: alertEndpoints(cfg), Keyring: kr,
			SMTP: alerts.SMTPConfig{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword}},
		AnomalySchedule:   workflows.AnomalyScheduleOptions{Cron: cfg.AnomalySchedule, Catchup: cfg.AnomalyCatchup},
		HousekeepingEvery: cfg.HousekeepingEvery,
		Retention: retention.Periods{Events: cfg.RetainEvents, Reservations: cfg.RetainReservations,
			ShortCounters: cfg.RetainShortCounters, Counters: cfg.RetainCounters, Alerts: cfg.RetainAlerts},
		SignalKeys: cfg.SignalKeys})
}

// runAll runs the API and the worker in one process until ctx ends or one fails.
func runAll(ctx context.Context, cfg config.Config, kr *envelope.Keyring, pool *pgxpool.Pool, log *slog.Logger, ready func(net.Addr)) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runWorker(ctx, cfg, kr, pool, log) })
	g.Go(func() error { return serveAPI(ctx, cfg, kr, pool, log, ready) })
	return g.Wait()
}
