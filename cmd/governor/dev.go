package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/config"
	"github.com/governor-hq/governor/internal/devstack"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/lifecycle"
)

func devCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole service on this machine: PostgreSQL, Temporal (with its Web UI), migrations, worker and API",
		Long: `dev starts or reuses everything Governor needs and serves until Ctrl-C:

  PostgreSQL  DATABASE_URL if set; else a server on 127.0.0.1:5432 (database "governor",
              created if missing); else a private cluster under the data folder.
  Temporal    TEMPORAL_ADDRESS if set; else the Temporal CLI's dev server with its Web UI,
              keeping history in the data folder.

Then it migrates the database and runs the worker and the API in this process. Ctrl-C
stops everything it started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			_, envSet := os.LookupEnv("GOVERNOR_HTTP_ADDR")
			explicit := envSet || cmd.Flags().Changed("http-addr")
			if cfg.HTTPAddr, err = devHTTPAddr(cfg.HTTPAddr, explicit, os.Stderr); err != nil {
				return err
			}
			return runDev(cmd.Context(), cfg)
		},
	}
	cmd.AddCommand(devExecCmd())
	return cmd
}

type deps struct {
	pg       *devstack.Postgres
	temporal *devstack.Temporal
}

func (d deps) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d.temporal != nil {
		if err := d.temporal.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "governor: stop Temporal:", err)
		}
	}
	if d.pg != nil {
		if err := d.pg.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "governor: stop PostgreSQL:", err)
		}
	}
}

// startDeps starts or reuses PostgreSQL and Temporal. memory runs a Temporal dev server
// without history on disk and without the UI (for tests).
func startDeps(ctx context.Context, cfg config.Config, memory bool) (deps, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "governor dev: "+format+"\n", args...) }
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return deps{}, err
	}
	var d deps
	d.pg, err = devstack.EnsurePostgres(ctx, devstack.PostgresOptions{
		URL: cfg.DatabaseURL, Database: "governor", DataDir: filepath.Join(dataDir, "postgres"), Logf: logf,
	})
	if err != nil {
		return d, err
	}
	topts := devstack.TemporalOptions{
		Address: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Logf: logf,
		LogFile:                 filepath.Join(dataDir, "temporal.log"),
		KeywordSearchAttributes: lifecycle.SearchAttributeNames(),
	}
	if !memory {
		// Temporal's usual ports when free, so the Web UI stays at one address.
		topts.DBFile = filepath.Join(dataDir, "temporal.db")
		topts.UI, topts.Port, topts.UIPort = true, 7233, 8233
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		d.stop()
		return deps{}, err
	}
	d.temporal, err = devstack.EnsureTemporal(ctx, topts)
	if err != nil {
		d.stop()
		return deps{}, err
	}
	return d, nil
}

// devHTTPAddr checks, before anything is started, that the API's address is free. A taken
// default falls back to a free port (printed, as Temporal's ports do); a taken address the
// user chose is an error naming the setting.
func devHTTPAddr(addr string, explicit bool, out io.Writer) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return addr, ln.Close()
	}
	if explicit {
		return "", fmt.Errorf("the API address %s (GOVERNOR_HTTP_ADDR / --http-addr) is not available: %v; set it to a free one, e.g. GOVERNOR_HTTP_ADDR=127.0.0.1:8081", addr, err)
	}
	host, _, splitErr := net.SplitHostPort(addr)
	if splitErr != nil {
		host = "127.0.0.1"
	}
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return "", fmt.Errorf("the API address %s is taken (%v) and no free port was found: %v", addr, err, err2)
	}
	free := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "governor dev: %s is taken; the API will listen on %s instead (set GOVERNOR_HTTP_ADDR to choose)\n", addr, free)
	return free, nil
}

func runDev(ctx context.Context, cfg config.Config) error {
	d, err := startDeps(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer d.stop()
	cfg.DatabaseURL = d.pg.URL
	cfg.TemporalAddress = d.temporal.Address
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := devSecrets(&cfg, dataDir, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "governor dev: "+format+"\n", args...)
	}); err != nil {
		return err
	}
	log := cfg.Logger()
	kr, err := devSecurity(&cfg, log)
	if err != nil {
		return err
	}

	applied, err := migrateUp(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	pool, err := db.OpenWith(ctx, cfg.DatabaseURL, dbTimeouts(cfg))
	if err != nil {
		return err
	}
	defer pool.Close()
	if len(applied) > 0 {
		log.Info("migrated", "applied", applied)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "governor dev: "+format+"\n", args...) }
	if dir, err := buildConsole(ctx, logf); err != nil {
		log.Warn("the web console did not build; serving the one embedded in this binary", "err", err)
	} else {
		consoleDir = dir
	}
	if d.temporal.UIAddress != "" && cfg.TemporalUIURL == defaultTemporalUIURL {
		// The UI governor dev started may not be on its usual port.
		cfg.TemporalUIURL = d.temporal.UIAddress
	}
	err = runAll(ctx, cfg, kr, pool, log, func(addr net.Addr) {
		ui := d.temporal.UIAddress
		if ui == "" {
			ui = "(not started by governor dev; TEMPORAL_ADDRESS is " + cfg.TemporalAddress + ")"
		}
		fmt.Fprintf(os.Stderr, `
  Governor is running.

    Console                        http://%s/
    API (Connect, gRPC, gRPC-Web)  http://%s
    Metrics                        http://%s/metrics
    Temporal                       %s
    Temporal Web UI                %s
    PostgreSQL                     %s

  First API key (in another terminal; sign in to the console with it):

    DATABASE_URL='%s' GOVERNOR_HTTP_ADDR=%s \
      go run ./cmd/governor admin bootstrap --org "My org" --email you@example.com

  Ctrl-C stops everything governor dev started.

`, addr, addr, addr, cfg.TemporalAddress, ui, d.pg.URL, d.pg.URL, addr)
	})
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// devSecurity gives `governor dev` what production must be given: a key-encryption key
// and an audit signing key (key files in the data folder, made on first start and kept)
// and, so that receivers on
// this machine work, an alert-channel allowlist of loopback and plain http — said out
// loud, since production refuses both.
func devSecurity(cfg *config.Config, log *slog.Logger) (*envelope.Keyring, error) {
	if cfg.KEK == "" && cfg.KEKFile == "" {
		dataDir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.KEKFile = filepath.Join(dataDir, "kek")
		k, made, err := ensureKEKFile(cfg.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("dev key-encryption key: %w", err)
		}
		if made {
			log.Info("made a key-encryption key for governor dev (keep it: the alert channels' credentials need it)", "file", cfg.KEKFile, "kek_id", k.ID())
		} else {
			log.Info("using governor dev's key-encryption key", "file", cfg.KEKFile, "kek_id", k.ID())
		}
	}
	if cfg.AuditSigningKey == "" && cfg.AuditSigningKeyFile == "" {
		dataDir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.AuditSigningKeyFile = filepath.Join(dataDir, "audit-signing-key")
		s, made, err := ensureAuditKeyFile(cfg.AuditSigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("dev audit signing key: %w", err)
		}
		log.Info("governor dev signs audit checkpoints with its own key (governor admin audit-public-key prints it)",
			"file", cfg.AuditSigningKeyFile, "made", made, "public_key", s.Public().String())
	}
	if len(cfg.AlertAllowCIDRs) == 0 {
		cfg.AlertAllowCIDRs = devLoopback
	}
	cfg.AlertAllowHTTP = true
	log.Warn("governor dev: alert channels may reach loopback and use plain http (production refuses both; see GOVERNOR_ALERT_ALLOW_CIDRS and GOVERNOR_ALERT_ALLOW_HTTP)",
		"allowed", fmt.Sprint(cfg.AlertAllowCIDRs))
	return loadKeyring(*cfg)
}

func devExecCmd() *cobra.Command {
	var memory bool
	cmd := &cobra.Command{
		Use:   "exec -- command [args...]",
		Short: "Start or reuse PostgreSQL and Temporal, run a command with them, stop what was started",
		Long: `exec gives a command (the test suite) the dependencies dev would use, exported as
GOVERNOR_TEST_DATABASE_URL (the server's maintenance database, for creating test databases)
and GOVERNOR_TEST_TEMPORAL_ADDRESS, and stops whatever it started when the command ends.
Its exit status is the command's.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			d, err := startDeps(cmd.Context(), cfg, memory)
			if err != nil {
				return err
			}
			defer d.stop()
			c := exec.Command(args[0], args[1:]...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			c.Env = append(os.Environ(),
				"GOVERNOR_TEST_DATABASE_URL="+d.pg.AdminURL,
				"GOVERNOR_TEST_TEMPORAL_ADDRESS="+d.temporal.Address,
				"TEMPORAL_NAMESPACE="+cfg.TemporalNamespace,
			)
			// Interrupts reach the child through the terminal's process group; we wait for it.
			if err := c.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					d.stop()
					os.Exit(exit.ExitCode())
				}
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&memory, "temporal-memory", false, "run the Temporal dev server in memory and without its UI")
	return cmd
}

// migrateUp applies pending migrations on a connection without session timeouts (a
// migration may run long statements).
func migrateUp(ctx context.Context, url string) ([]int, error) {
	pool, err := db.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return db.MigrateUp(ctx, pool)
}
