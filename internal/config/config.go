// Package config is Governor's configuration: one typed struct, read once at start from
// command-line flags and environment variables (a flag wins over its variable). Every
// setting is listed in `settings` below and in the README's table; a test keeps the two
// in step.
package config

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Config is every setting of every subcommand.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string. `governor dev` may leave it empty
	// and start or reuse a server itself.
	DatabaseURL string
	// TemporalAddress is host:port of the Temporal frontend. `governor dev` may leave it
	// empty and start the dev server itself.
	TemporalAddress   string
	TemporalNamespace string
	// TaskQueue is the Temporal task queue Governor's workers poll.
	TaskQueue string
	// HTTPAddr is where the Connect API (and /metrics) listens.
	HTTPAddr  string
	LogLevel  slog.Level
	LogFormat string // "text" or "json"
	// DataDir is where `governor dev` keeps its private PostgreSQL cluster and the Temporal
	// dev server's history.
	DataDir string
	// IdempotencyTTL is how long a mutating request's Idempotency-Key is remembered.
	IdempotencyTTL time.Duration
	// RunLease is how long an admitted run's reservation holds without a heartbeat.
	RunLease time.Duration
	// FaultExitAfterAdmit makes the API process exit right after it commits its first
	// admission batch, before starting the runs' workflows. Crash-safety tests only.
	FaultExitAfterAdmit bool
	// SMTP is the mail server email alert channels send through (Addr empty: none).
	SMTPAddr     string
	SMTPFrom     string
	SMTPUsername string
	SMTPPassword string
	// AnomalySchedule is the cron expression (UTC) of the daily anomaly batch's Temporal
	// Schedule, or "off"; AnomalyCatchup its catch-up window.
	AnomalySchedule string
	AnomalyCatchup  time.Duration

	// Secrets and the Temporal connection's security (security.go).
	Security
}

// Setting documents one configuration variable.
type Setting struct {
	Env     string
	Flag    string
	Default string
	Help    string
	apply   func(*Config, string) error
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func dur(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration (e.g. 90s, 15m, 24h)", v)
		}
		*dst(c) = d
		return nil
	}
}

var settings = []Setting{
	{Env: "DATABASE_URL", Flag: "database-url", Default: "",
		Help:  "PostgreSQL URL, e.g. postgres://user@127.0.0.1:5432/governor?sslmode=disable. `governor dev` without it reuses 127.0.0.1:5432 or starts a private cluster.",
		apply: str(func(c *Config) *string { return &c.DatabaseURL })},
	{Env: "TEMPORAL_ADDRESS", Flag: "temporal-address", Default: "",
		Help:  "Temporal frontend host:port. `governor dev` without it starts the Temporal dev server; `api` and `worker` default to 127.0.0.1:7233.",
		apply: str(func(c *Config) *string { return &c.TemporalAddress })},
	{Env: "TEMPORAL_NAMESPACE", Flag: "temporal-namespace", Default: "default",
		Help:  "Temporal namespace.",
		apply: str(func(c *Config) *string { return &c.TemporalNamespace })},
	{Env: "GOVERNOR_TASK_QUEUE", Flag: "task-queue", Default: "governor",
		Help:  "Temporal task queue of Governor's workflows and activities.",
		apply: str(func(c *Config) *string { return &c.TaskQueue })},
	{Env: "GOVERNOR_HTTP_ADDR", Flag: "http-addr", Default: "127.0.0.1:8080",
		Help:  "Listen address of the Connect/gRPC/gRPC-Web API, health, reflection and /metrics.",
		apply: str(func(c *Config) *string { return &c.HTTPAddr })},
	{Env: "GOVERNOR_LOG_LEVEL", Flag: "log-level", Default: "info",
		Help: "debug, info, warn or error.",
		apply: func(c *Config, v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		}},
	{Env: "GOVERNOR_LOG_FORMAT", Flag: "log-format", Default: "text",
		Help: "text or json (structured logs on stderr).",
		apply: func(c *Config, v string) error {
			if v != "text" && v != "json" {
				return fmt.Errorf("%q is neither text nor json", v)
			}
			c.LogFormat = v
			return nil
		}},
	{Env: "GOVERNOR_DATA_DIR", Flag: "data-dir", Default: ".data",
		Help:  "Where `governor dev` keeps its private PostgreSQL cluster and Temporal history (relative to the working directory).",
		apply: str(func(c *Config) *string { return &c.DataDir })},
	{Env: "GOVERNOR_IDEMPOTENCY_TTL", Flag: "idempotency-ttl", Default: "24h",
		Help:  "How long the response to a request with an Idempotency-Key header is kept for replays.",
		apply: dur(func(c *Config) *time.Duration { return &c.IdempotencyTTL })},
	{Env: "GOVERNOR_RUN_LEASE", Flag: "run-lease", Default: "15m",
		Help:  "How long an admitted run's reservation holds without a heartbeat or completion.",
		apply: dur(func(c *Config) *time.Duration { return &c.RunLease })},
	{Env: "GOVERNOR_FAULT_EXIT_AFTER_ADMIT", Flag: "fault-exit-after-admit", Default: "false",
		Help: "Testing only: the API process exits right after committing an admission, before starting its workflow (to prove the outbox recovers it).",
		apply: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			c.FaultExitAfterAdmit = b
			return nil
		}},
	{Env: "GOVERNOR_SMTP_ADDR", Flag: "smtp-addr", Default: "",
		Help:  "host:port of the SMTP server email alert channels send through (STARTTLS whenever it offers it). Empty: email deliveries fail and are retried until it is set.",
		apply: str(func(c *Config) *string { return &c.SMTPAddr })},
	{Env: "GOVERNOR_SMTP_FROM", Flag: "smtp-from", Default: "Governor <governor@localhost>",
		Help:  "From address of alert emails.",
		apply: str(func(c *Config) *string { return &c.SMTPFrom })},
	{Env: "GOVERNOR_SMTP_USERNAME", Flag: "smtp-username", Default: "",
		Help:  "SMTP user (PLAIN authentication, only over TLS); empty: no authentication.",
		apply: str(func(c *Config) *string { return &c.SMTPUsername })},
	{Env: "GOVERNOR_SMTP_PASSWORD", Flag: "smtp-password", Default: "",
		Help:  "SMTP password.",
		apply: str(func(c *Config) *string { return &c.SMTPPassword })},
	{Env: "GOVERNOR_ANOMALY_SCHEDULE", Flag: "anomaly-schedule", Default: "15 0 * * *",
		Help:  "Cron expression (UTC) of the Temporal Schedule that starts the daily anomaly batch (the worker creates or updates it at start); `off` for none.",
		apply: str(func(c *Config) *string { return &c.AnomalySchedule })},
	{Env: "GOVERNOR_ANOMALY_CATCHUP_WINDOW", Flag: "anomaly-catchup-window", Default: "6h",
		Help:  "How late a missed scheduled anomaly batch may still start after Temporal was unavailable (the next batch catches up on missed days anyway).",
		apply: dur(func(c *Config) *time.Duration { return &c.AnomalyCatchup })},
}

func init() { settings = append(settings, securitySettings...) }

// Settings lists every configuration variable, for documentation.
func Settings() []Setting { return settings }

// Register adds a flag for every setting that has one to fs (secrets have none: a flag's
// value shows in the process list).
func Register(fs *pflag.FlagSet) {
	for _, s := range settings {
		if s.Flag == "" {
			continue
		}
		// pflag reads a back-quoted word in a usage string as the value's name: drop them.
		help := strings.ReplaceAll(s.Help, "`", "")
		fs.String(s.Flag, "", fmt.Sprintf("%s (env %s, default %q)", help, s.Env, s.Default))
	}
}

// Load reads every setting: the flag if given, else the environment variable, else the
// default. fs may be nil (environment and defaults only).
func Load(fs *pflag.FlagSet) (Config, error) {
	var c Config
	var problems []string
	for _, s := range settings {
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			v = s.Default
		}
		if fs != nil && s.Flag != "" {
			if f := fs.Lookup(s.Flag); f != nil && f.Changed {
				v = f.Value.String()
			}
		}
		if err := s.apply(&c, v); err != nil {
			problems = append(problems, fmt.Sprintf("%s / --%s: %v", s.Env, s.Flag, err))
		}
	}
	problems = append(problems, c.Security.resolve()...)
	if len(problems) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// Logger builds the process's structured logger.
func (c Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
