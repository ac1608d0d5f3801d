package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresOptions says where the PostgreSQL server comes from; see EnsurePostgres.
type PostgresOptions struct {
	URL      string // DATABASE_URL if the user set one: use as is (create its database if missing), never start anything
	Database string // database name to use/create when reusing or starting a server (default "governor")
	DataDir  string // where a private cluster lives, e.g. "<repo>/.data/postgres" (git-ignored)
	Logf     Logf
}

// Postgres is a usable server. Stop it when done (a no-op unless we started it).
type Postgres struct {
	URL      string // postgres://...?sslmode=disable pointing at Database
	AdminURL string // same server, database "postgres" (tests use it to CREATE DATABASE)
	Started  bool   // true if we started a private cluster (and Stop will stop it); false when reusing any running server, including a cluster already running in DataDir

	cluster *cluster
	port    int
}

const (
	defaultDatabase = "governor"
	adminDatabase   = "postgres"
)

// localServerAddr is where EnsurePostgres looks for a server to reuse (tests may point it
// elsewhere).
var localServerAddr = "127.0.0.1:5432"

// EnsurePostgres returns a PostgreSQL server with database o.Database in it:
//
//  1. o.URL if set: used as is, its database created if missing; nothing is started.
//  2. else a server on 127.0.0.1:5432, logging in (trust auth) as $PGUSER, "postgres" or
//     the current OS user, whichever works first;
//  3. else a private cluster under o.DataDir, created and started as needed (see
//     ensurePrivateCluster); a cluster already running there is reused.
func EnsurePostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	if o.Database == "" {
		o.Database = defaultDatabase
	}
	if o.URL != "" {
		return usePostgresURL(ctx, o)
	}
	p, reuseErr := reuseLocalPostgres(ctx, o)
	if reuseErr == nil {
		o.Logf.printf("postgres: reusing the server on %s (database %s)", localServerAddr, o.Database)
		return p, nil
	}
	if o.DataDir == "" {
		return nil, fmt.Errorf("postgres: DATABASE_URL is not set; %v; and no data directory was given for a private cluster", reuseErr)
	}
	o.Logf.printf("postgres: %v; using a private cluster in %s", reuseErr, o.DataDir)
	p, err := ensurePrivateCluster(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("postgres: DATABASE_URL is not set; %v; private cluster in %s: %w", reuseErr, o.DataDir, err)
	}
	return p, nil
}

// Stop stops the private cluster if EnsurePostgres started it, and waits until its port is
// released. It is a no-op otherwise.
func (p *Postgres) Stop(ctx context.Context) error {
	if p == nil || !p.Started || p.cluster == nil {
		return nil
	}
	if err := p.cluster.stop(ctx); err != nil {
		return err
	}
	p.Started = false
	return waitPortFree(ctx, p.port, 10*time.Second)
}

func usePostgresURL(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: DATABASE_URL is not a valid connection string: %w", err)
	}
	admin, err := withDatabase(o.URL, adminDatabase)
	if err != nil {
		return nil, fmt.Errorf("postgres: DATABASE_URL: %w", err)
	}
	p := &Postgres{URL: o.URL, AdminURL: admin}
	err = ping(ctx, o.URL)
	if err == nil {
		return p, nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" || cfg.Database == "" { // 3D000: invalid_catalog_name
		return nil, fmt.Errorf("postgres: cannot connect to DATABASE_URL (%s): %w", redact(o.URL), err)
	}
	o.Logf.printf("postgres: database %s does not exist on the DATABASE_URL server; creating it", cfg.Database)
	if err := ensureDatabase(ctx, admin, cfg.Database); err != nil {
		return nil, fmt.Errorf("postgres: DATABASE_URL names database %q, which does not exist, and creating it through %s failed: %w",
			cfg.Database, redact(admin), err)
	}
	return p, nil
}

func reuseLocalPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	if err := dialable(ctx, localServerAddr, 2*time.Second); err != nil {
		return nil, fmt.Errorf("no server answers on %s (%v)", localServerAddr, err)
	}
	var errs []string
	for _, u := range candidateUsers() {
		admin := pgURL(u, localServerAddr, adminDatabase)
		if err := ensureDatabase(ctx, admin, o.Database); err != nil {
			errs = append(errs, fmt.Sprintf("as user %q: %v", u, err))
			continue
		}
		return &Postgres{URL: pgURL(u, localServerAddr, o.Database), AdminURL: admin}, nil
	}
	return nil, fmt.Errorf("the server on %s is not usable with trust auth: %v", localServerAddr, joinErrs(errs))
}

// candidateUsers lists the roles tried against a reused server: $PGUSER, postgres, the OS user.
func candidateUsers() []string {
	var out []string
	add := func(u string) {
		if u == "" {
			return
		}
		for _, x := range out {
			if x == u {
				return
			}
		}
		out = append(out, u)
	}
	add(os.Getenv("PGUSER"))
	add("postgres")
	if u, err := user.Current(); err == nil {
		add(u.Username)
	}
	return out
}

// pgURL builds postgres://user@hostport/db?sslmode=disable.
func pgURL(user, hostport, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(user),
		Host:     hostport,
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// withDatabase returns connString pointing at database db instead, for URL and
// keyword/value connection strings alike.
func withDatabase(connString, db string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", err
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	// Keyword/value form: a later keyword overrides an earlier one.
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db)
	return strings.TrimSpace(connString) + " dbname='" + quoted + "'", nil
}

var kvPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redact hides a password in a connection string for error messages.
func redact(connString string) string {
	if !strings.Contains(connString, "://") {
		return kvPassword.ReplaceAllString(connString, "${1}xxxxx")
	}
	u, err := url.Parse(connString)
	if err != nil || u.User == nil {
		return connString
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, connString)
}

func ping(ctx context.Context, connString string) error {
	conn, err := connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// ensureDatabase creates database db through adminURL unless it exists. Concurrent
// creators are tolerated.
func ensureDatabase(ctx context.Context, adminURL, db string) error {
	conn, err := connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %q: %w", db, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil // created meanwhile by someone else (duplicate_database / unique_violation)
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", db, err)
	}
	return nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// PrivatePostgres starts (creating it first if needed) a private cluster in dataDir with
// database db, whatever else runs on the machine: for tests that must be alone on their
// server, e.g. to count the transaction ids it assigns. Stop it when done.
func PrivatePostgres(ctx context.Context, dataDir, db string, logf Logf) (*Postgres, error) {
	return ensurePrivateCluster(ctx, PostgresOptions{Database: db, DataDir: dataDir, Logf: logf})
}
