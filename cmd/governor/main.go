// Command governor is Governor's one binary: the API server, the Temporal worker, the
// migrator, operator commands, and `dev`, which runs everything on one machine.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	_ "time/tzdata" // IANA time zones even on hosts without /usr/share/zoneinfo

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "governor:", err)
		stop()
		os.Exit(1)
	}
}

func root() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "governor",
		Short: "Governor: the governance control plane for LLM agents",
		Long: `Governor decides whether each agent run may start (budgets, quotas, rate limits,
policies) and records what it cost and what went wrong afterwards.

Configuration comes from flags or environment variables (see README.md); a flag wins.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	config.Register(cmd.PersistentFlags())
	cmd.AddCommand(devCmd(), apiCmd(), workerCmd(), migrateCmd(), adminCmd(), benchCmd())
	return cmd
}

// loadConfig reads the configuration once, from the command's flags and the environment.
func loadConfig(cmd *cobra.Command) (config.Config, error) {
	return config.Load(cmd.Flags())
}

// openDB loads the configuration and opens DATABASE_URL, whatever its schema version
// (migrate and admin commands work on any).
func openDB(cmd *cobra.Command) (*pgxpool.Pool, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		return nil, fmt.Errorf("DATABASE_URL (or --database-url) is required")
	}
	return db.Open(cmd.Context(), cfg.DatabaseURL)
}
