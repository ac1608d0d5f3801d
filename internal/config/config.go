// Package config is Governor's configuration: one typed struct, read once at start from
// command-line flags and environment variables (a flag wins over its variable). Every
// setting is listed in `settings` below and in the README; a test keeps the two in step.
// Secrets (the key-encryption key, the SMTP password) come from the environment or a
// file, never from a flag: command lines are visible to every user of the machine.
package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/governor-hq/governor/internal/netguard"
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
	// SMTPPassword comes from GOVERNOR_SMTP_PASSWORD or the file GOVERNOR_SMTP_PASSWORD_FILE.
	SMTPPassword     string
	SMTPPasswordFile string
	// AlertAllowCIDRs are internal ranges webhook and Slack channels may reach anyway
	// (loopback, private, … are refused otherwise); AlertAllowHTTP accepts http:// webhooks.
	AlertAllowCIDRs []netip.Prefix
	AlertAllowHTTP  bool
	// KEK is the key-encryption key (base64 of 32 bytes) from GOVERNOR_KEK, or KEKFile the
	// file holding it; KEKAcceptFiles hold further KEKs accepted (never used to wrap)
	// while a rotation is under way.
	KEK            string
	KEKFile        string
	KEKAcceptFiles []string
	// AnomalySchedule is the cron expression (UTC) of the daily anomaly batch's Temporal
	// Schedule, or "off"; AnomalyCatchup its catch-up window.
	AnomalySchedule string
	AnomalyCatchup  time.Duration
	// The API's guards against hostile traffic (see api.Limits).
	MaxRequestBytes    int
	RequestReadTimeout time.Duration
	IdleTimeout        time.Duration
	MaxStreamsPerKey   int
	MaxStreamsPerOrg   int
	// RatePerIP and RatePerKey are requests per second (0: no limit).
	RatePerIP  float64
	RatePerKey float64
	// Database session timeouts of the service processes (see db.Timeouts).
	DBStatementTimeout time.Duration
	DBLockTimeout      time.Duration
	DBIdleInTxTimeout  time.Duration
	// AdmitTimeout bounds an admission batch; AdmitLockTimeout its wait for counter locks.
	AdmitTimeout     time.Duration
	AdmitLockTimeout time.Duration
	// Retention periods of the housekeeping pass (see internal/retention).
	HousekeepingEvery   time.Duration
	RetainEvents        time.Duration
	RetainReservations  time.Duration
	RetainShortCounters time.Duration
	RetainCounters      time.Duration
	RetainAlerts        time.Duration
	// TemporalUIURL is the Temporal Web UI the console links workflows to ("" for none).
	TemporalUIURL string

	// Secrets and the Temporal connection's security (security.go).
	Security
	// AuditSigningKey is the Ed25519 private key (base64 of its 32-byte seed) that signs
	// audit checkpoints, from GOVERNOR_AUDIT_SIGNING_KEY, or AuditSigningKeyFile the file
	// holding it; AuditCheckpointEvery how often a worker signs the chain heads.
	AuditSigningKey      string
	AuditSigningKeyFile  string
	AuditCheckpointEvery time.Duration
}

// Setting documents one configuration variable.
type Setting struct {
	Env string
	// Flag is empty for secrets: environment only.
	Flag    string
	Default string
	Help    string
	apply   func(*Config, string) error
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func boolean(dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*dst(c) = b
		return nil
	}
}

func list(dst func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*dst(c) = nil
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*dst(c) = append(*dst(c), part)
			}
		}
		return nil
	}
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

// period reads a positive duration, also in whole days ("400d").
func period(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		if n, ok := strings.CutSuffix(v, "d"); ok {
			days, err := strconv.Atoi(n)
			if err != nil || days <= 0 || days > 100*365 {
				return fmt.Errorf("%q is not a number of days like 30d", v)
			}
			*dst(c) = time.Duration(days) * 24 * time.Hour
			return nil
		}
		return dur(dst)(c, v)
	}
}

func positiveInt(dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a positive integer", v)
		}
		*dst(c) = n
		return nil
	}
}

// rate reads "N/s", "N/m" (per minute) or "off" as requests per second.
func rate(dst func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "off" || v == "0" {
			*dst(c) = 0
			return nil
		}
		n, unit, ok := strings.Cut(v, "/")
		f, err := strconv.ParseFloat(n, 64)
		if !ok || err != nil || f <= 0 || f > 1e9 || (unit != "s" && unit != "m") {
			return fmt.Errorf("%q is not a rate like 1000/s, 600/m or off", v)
		}
		if unit == "m" {
			f /= 60
		}
		*dst(c) = f
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
		Help:  "Testing only: the API process exits right after committing an admission, before starting its workflow (to prove the outbox recovers it).",
		apply: boolean(func(c *Config) *bool { return &c.FaultExitAfterAdmit })},
	{Env: "GOVERNOR_SMTP_ADDR", Flag: "smtp-addr", Default: "",
		Help:  "host:port of the SMTP server email alert channels send through (STARTTLS whenever it offers it). Empty: email deliveries fail and are retried until it is set.",
		apply: str(func(c *Config) *string { return &c.SMTPAddr })},
	{Env: "GOVERNOR_SMTP_FROM", Flag: "smtp-from", Default: "Governor <governor@localhost>",
		Help:  "From address of alert emails.",
		apply: str(func(c *Config) *string { return &c.SMTPFrom })},
	{Env: "GOVERNOR_SMTP_USERNAME", Flag: "smtp-username", Default: "",
		Help:  "SMTP user (PLAIN authentication, only over TLS); empty: no authentication.",
		apply: str(func(c *Config) *string { return &c.SMTPUsername })},
	{Env: "GOVERNOR_SMTP_PASSWORD", Flag: "", Default: "",
		Help:  "SMTP password (environment only, never a flag); or GOVERNOR_SMTP_PASSWORD_FILE.",
		apply: str(func(c *Config) *string { return &c.SMTPPassword })},
	{Env: "GOVERNOR_SMTP_PASSWORD_FILE", Flag: "smtp-password-file", Default: "",
		Help:  "File holding the SMTP password (a trailing newline is ignored); instead of GOVERNOR_SMTP_PASSWORD.",
		apply: str(func(c *Config) *string { return &c.SMTPPasswordFile })},
	{Env: "GOVERNOR_ALERT_ALLOW_CIDRS", Flag: "alert-allow-cidrs", Default: "",
		Help: "Comma-separated CIDRs (or addresses) that webhook and Slack channels may reach although they are loopback, private, link-local, CGNAT or unique-local, e.g. 10.20.0.0/16. Empty: none. `governor dev` allows loopback.",
		apply: func(c *Config, v string) error {
			p, err := netguard.ParseAllowlist(v)
			c.AlertAllowCIDRs = p
			return err
		}},
	{Env: "GOVERNOR_ALERT_ALLOW_HTTP", Flag: "alert-allow-http", Default: "false",
		Help:  "Accept plain http:// webhook URLs (https only otherwise; Slack is always https). `governor dev` allows them.",
		apply: boolean(func(c *Config) *bool { return &c.AlertAllowHTTP })},
	{Env: "GOVERNOR_KEK", Flag: "", Default: "",
		Help:  "Key-encryption key of the secrets at rest: base64 of 32 random bytes (`openssl rand -base64 32`). Environment only, never a flag; or GOVERNOR_KEK_FILE. `api` and `worker` refuse to start without one.",
		apply: str(func(c *Config) *string { return &c.KEK })},
	{Env: "GOVERNOR_KEK_FILE", Flag: "kek-file", Default: "",
		Help:  "File holding the key-encryption key (base64), instead of GOVERNOR_KEK. `governor dev` makes <data dir>/kek on first start.",
		apply: str(func(c *Config) *string { return &c.KEKFile })},
	{Env: "GOVERNOR_KEK_ACCEPT_FILES", Flag: "kek-accept-files", Default: "",
		Help:  "Comma-separated files of further key-encryption keys accepted for unwrapping (never for wrapping) while a rotation is under way (`governor admin rotate-kek`).",
		apply: list(func(c *Config) *[]string { return &c.KEKAcceptFiles })},
	{Env: "GOVERNOR_ANOMALY_SCHEDULE", Flag: "anomaly-schedule", Default: "15 0 * * *",
		Help:  "Cron expression (UTC) of the Temporal Schedule that starts the daily anomaly batch (the worker creates or updates it at start); `off` for none.",
		apply: str(func(c *Config) *string { return &c.AnomalySchedule })},
	{Env: "GOVERNOR_ANOMALY_CATCHUP_WINDOW", Flag: "anomaly-catchup-window", Default: "6h",
		Help:  "How late a missed scheduled anomaly batch may still start after Temporal was unavailable (the next batch catches up on missed days anyway).",
		apply: dur(func(c *Config) *time.Duration { return &c.AnomalyCatchup })},
	{Env: "GOVERNOR_MAX_REQUEST_BYTES", Flag: "max-request-bytes", Default: "4194304",
		Help:  "Largest request message the API reads, after decompression (and largest request body): bigger ones get ResourceExhausted without being decoded.",
		apply: positiveInt(func(c *Config) *int { return &c.MaxRequestBytes })},
	{Env: "GOVERNOR_REQUEST_READ_TIMEOUT", Flag: "request-read-timeout", Default: "30s",
		Help:  "How long a client may take to send a request's body (streams' responses are not limited).",
		apply: dur(func(c *Config) *time.Duration { return &c.RequestReadTimeout })},
	{Env: "GOVERNOR_IDLE_TIMEOUT", Flag: "idle-timeout", Default: "2m",
		Help:  "How long an idle keep-alive connection stays open.",
		apply: dur(func(c *Config) *time.Duration { return &c.IdleTimeout })},
	{Env: "GOVERNOR_MAX_STREAMS_PER_KEY", Flag: "max-streams-per-key", Default: "16",
		Help:  "Concurrent server streams (WatchEvents, WatchNotifications…) one API key may hold open on one API process.",
		apply: positiveInt(func(c *Config) *int { return &c.MaxStreamsPerKey })},
	{Env: "GOVERNOR_MAX_STREAMS_PER_ORG", Flag: "max-streams-per-org", Default: "64",
		Help:  "Concurrent server streams one organization may hold open on one API process.",
		apply: positiveInt(func(c *Config) *int { return &c.MaxStreamsPerOrg })},
	{Env: "GOVERNOR_RATE_PER_IP", Flag: "rate-per-ip", Default: "1000/s",
		Help:  "Requests per client address (IPv6 by /64), on each API process, before authentication: e.g. 1000/s, 600/m, or off. Bursts of twice the per-second rate pass.",
		apply: rate(func(c *Config) *float64 { return &c.RatePerIP })},
	{Env: "GOVERNOR_RATE_PER_KEY", Flag: "rate-per-key", Default: "1000/s",
		Help:  "Default request rate of an API key without its own requests_per_minute, on each API process: e.g. 1000/s, 600/m, or off.",
		apply: rate(func(c *Config) *float64 { return &c.RatePerKey })},
	{Env: "GOVERNOR_DB_STATEMENT_TIMEOUT", Flag: "db-statement-timeout", Default: "1m",
		Help:  "PostgreSQL statement_timeout of the API's and worker's connections.",
		apply: dur(func(c *Config) *time.Duration { return &c.DBStatementTimeout })},
	{Env: "GOVERNOR_DB_LOCK_TIMEOUT", Flag: "db-lock-timeout", Default: "10s",
		Help:  "PostgreSQL lock_timeout of the API's and worker's connections (admission uses its own, shorter one).",
		apply: dur(func(c *Config) *time.Duration { return &c.DBLockTimeout })},
	{Env: "GOVERNOR_DB_IDLE_IN_TRANSACTION_TIMEOUT", Flag: "db-idle-in-transaction-timeout", Default: "1m",
		Help:  "PostgreSQL idle_in_transaction_session_timeout of the API's and worker's connections.",
		apply: dur(func(c *Config) *time.Duration { return &c.DBIdleInTxTimeout })},
	{Env: "GOVERNOR_ADMIT_TIMEOUT", Flag: "admit-timeout", Default: "5s",
		Help:  "Deadline of one admission batch (its transaction, reads and writes).",
		apply: dur(func(c *Config) *time.Duration { return &c.AdmitTimeout })},
	{Env: "GOVERNOR_ADMIT_LOCK_TIMEOUT", Flag: "admit-lock-timeout", Default: "2s",
		Help:  "How long an admission batch waits for limit counters another transaction holds; past it the organization's admissions fail with Unavailable (retry), others go on.",
		apply: dur(func(c *Config) *time.Duration { return &c.AdmitLockTimeout })},
	{Env: "GOVERNOR_HOUSEKEEPING_INTERVAL", Flag: "housekeeping-interval", Default: "10m",
		Help:  "How often a worker deletes records past their retention (in batches of 5,000 rows).",
		apply: dur(func(c *Config) *time.Duration { return &c.HousekeepingEvery })},
	{Env: "GOVERNOR_RETAIN_EVENTS", Flag: "retain-events", Default: "400d",
		Help:  "How long timeline events (domain_events) are kept. The audit ledger is never deleted.",
		apply: period(func(c *Config) *time.Duration { return &c.RetainEvents })},
	{Env: "GOVERNOR_RETAIN_RESERVATIONS", Flag: "retain-reservations", Default: "35d",
		Help:  "How long a settled run's released reservations are kept: the late-report window, in which a completion reported after its lease expired is still charged to its limit counters (longer than any window, a month).",
		apply: period(func(c *Config) *time.Duration { return &c.RetainReservations })},
	{Env: "GOVERNOR_RETAIN_SHORT_COUNTERS", Flag: "retain-short-counters", Default: "8d",
		Help:  "How long the usage counters of minute and hour windows are kept after their window (anomaly detection reads a week back).",
		apply: period(func(c *Config) *time.Duration { return &c.RetainShortCounters })},
	{Env: "GOVERNOR_RETAIN_COUNTERS", Flag: "retain-counters", Default: "400d",
		Help:  "How long the usage counters of day, week and month windows are kept.",
		apply: period(func(c *Config) *time.Duration { return &c.RetainCounters })},
	{Env: "GOVERNOR_RETAIN_ALERTS", Flag: "retain-alerts", Default: "180d",
		Help:  "How long alerts, their deliveries and attempts and their in-app notifications are kept once delivered or given up (alerts of anomalies are kept with them).",
		apply: period(func(c *Config) *time.Duration { return &c.RetainAlerts })},
	{Env: "GOVERNOR_TEMPORAL_UI_URL", Flag: "temporal-ui-url", Default: "http://127.0.0.1:8233",
		Help: "Base URL of the Temporal Web UI the console links runs, incidents and alerts to (`governor dev` uses the UI it starts when this is left at its default); empty for no links.",
		apply: func(c *Config, v string) error {
			if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return fmt.Errorf("%q is not an http(s) URL", v)
			}
			c.TemporalUIURL = strings.TrimRight(v, "/")
			return nil
		}},
	{Env: "GOVERNOR_AUDIT_SIGNING_KEY", Flag: "", Default: "",
		Help:  "Ed25519 private key that signs the audit ledger's checkpoints: base64 of a 32-byte seed (`governor admin generate-audit-key --out F` makes one). Environment only, never a flag; or GOVERNOR_AUDIT_SIGNING_KEY_FILE. Keep it out of the database and its backups. A worker without one signs no checkpoints (and says so).",
		apply: str(func(c *Config) *string { return &c.AuditSigningKey })},
	{Env: "GOVERNOR_AUDIT_SIGNING_KEY_FILE", Flag: "audit-signing-key-file", Default: "",
		Help:  "File holding the audit signing key, instead of GOVERNOR_AUDIT_SIGNING_KEY. `governor dev` makes <data dir>/audit-signing-key on first start.",
		apply: str(func(c *Config) *string { return &c.AuditSigningKeyFile })},
	{Env: "GOVERNOR_AUDIT_CHECKPOINT_INTERVAL", Flag: "audit-checkpoint-interval", Default: "1h",
		Help:  "How often a worker signs a checkpoint of every audit chain head that moved (and once at start).",
		apply: dur(func(c *Config) *time.Duration { return &c.AuditCheckpointEvery })},
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
			name := s.Env
			if s.Flag != "" {
				name += " / --" + s.Flag
			}
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if err := c.readSecretFiles(); err != nil {
		problems = append(problems, err.Error())
	}
	if c.KEK != "" && c.KEKFile != "" {
		problems = append(problems, "GOVERNOR_KEK and GOVERNOR_KEK_FILE / --kek-file: set one, not both")
	}
	problems = append(problems, c.Security.resolve()...)
	if c.AuditSigningKey != "" && c.AuditSigningKeyFile != "" {
		problems = append(problems, "GOVERNOR_AUDIT_SIGNING_KEY and GOVERNOR_AUDIT_SIGNING_KEY_FILE / --audit-signing-key-file: set one, not both")
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// readSecretFiles reads secrets given as files.
func (c *Config) readSecretFiles() error {
	if c.SMTPPasswordFile == "" {
		return nil
	}
	if c.SMTPPassword != "" {
		return fmt.Errorf("GOVERNOR_SMTP_PASSWORD and GOVERNOR_SMTP_PASSWORD_FILE / --smtp-password-file: set one, not both")
	}
	b, err := os.ReadFile(c.SMTPPasswordFile)
	if err != nil {
		return fmt.Errorf("GOVERNOR_SMTP_PASSWORD_FILE / --smtp-password-file: %v", err)
	}
	c.SMTPPassword = strings.TrimRight(string(b), "\r\n")
	return nil
}

// Logger builds the process's structured logger.
func (c Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
