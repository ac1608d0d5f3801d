// Package testenv gives tests real dependencies: a PostgreSQL database cloned from a
// migrated template (one per test package, or a private one per test), and the address
// of a Temporal server.
//
// `make test` starts or reuses both and exports GOVERNOR_TEST_DATABASE_URL (a URL of the
// server's maintenance database, used to create databases) and
// GOVERNOR_TEST_TEMPORAL_ADDRESS. Without them, tests fall back to PostgreSQL on
// 127.0.0.1:5432. A missing dependency fails the test; it never skips.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db"
)

const fallbackAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the URL of the test PostgreSQL server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("GOVERNOR_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return fallbackAdminURL
}

// templateName names the template by the migrations' content, so a changed migration
// gets a new template and never a stale one.
func templateName() (string, error) {
	ms, err := db.Migrations()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%d\x00%s\x00%s\x00", m.Version, m.Up, m.Down)
	}
	return "governor_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// The advisory lock that serialises template creation across test processes.
const templateLock = 7_291_004_114

func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	name, err := templateName()
	if err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		return "", err
	}
	defer admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLock) //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	pool, err := db.Open(ctx, withDatabase(admin.Config(), building))
	if err != nil {
		return "", err
	}
	_, err = db.MigrateUp(ctx, pool)
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	// Renaming last makes the template appear complete or not at all.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	return name, nil
}

func withDatabase(cfg *pgx.ConnConfig, database string) string {
	c := cfg.Copy()
	c.Database = database
	// Rebuild a URL from the parsed configuration.
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", c.User, c.Host, c.Port, database)
	if c.Password != "" {
		url = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", c.User, c.Password, c.Host, c.Port, database)
	}
	return url
}

// NewDatabase creates a fresh, migrated database and returns its URL and a function
// that drops it.
func NewDatabase(ctx context.Context) (url string, drop func(), err error) {
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", nil, fmt.Errorf("connect to the test PostgreSQL at %s (run `make test`, or set GOVERNOR_TEST_DATABASE_URL): %w", AdminURL(), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	tmpl, err := ensureTemplate(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "governor_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
		return "", nil, fmt.Errorf("clone template: %w", err)
	}
	url = withDatabase(admin.Config(), name)
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return url, drop, nil
}

var shared struct {
	once sync.Once
	url  string
	drop func()
	pool *pgxpool.Pool
	err  error
}

// DB returns a pool on the test package's database, created on first use from the
// migrated template and dropped by Main. Tests share it; they stay apart by each making
// its own organization (every row belongs to one).
func DB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	shared.once.Do(func() {
		ctx := context.Background()
		shared.url, shared.drop, shared.err = NewDatabase(ctx)
		if shared.err == nil {
			shared.pool, shared.err = db.OpenWith(ctx, shared.url, db.DefaultTimeouts)
		}
	})
	if shared.err != nil {
		t.Fatalf("test database: %v", shared.err)
	}
	return shared.pool
}

// DBURL returns the URL of the package's database (for starting a second server process).
func DBURL(t testing.TB) string {
	DB(t)
	return shared.url
}

// FreshDB returns a pool on a database of the test's own, dropped when the test ends.
func FreshDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	url, drop, err := NewDatabase(ctx)
	if err != nil {
		t.Fatalf("test database: %v", err)
	}
	pool, err := db.OpenWith(ctx, url, db.DefaultTimeouts)
	if err != nil {
		drop()
		t.Fatalf("test database: %v", err)
	}
	t.Cleanup(func() { pool.Close(); drop() })
	return pool, url
}

var atExit []func()

// AtExit registers fn to run after the package's tests, before its database is dropped
// (to stop servers and workers that use it).
func AtExit(fn func()) { atExit = append(atExit, fn) }

// Main runs a package's tests and then drops its database and stops what it started.
// Use it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	for i := len(atExit) - 1; i >= 0; i-- {
		atExit[i]()
	}
	if shared.pool != nil {
		shared.pool.Close()
	}
	if shared.drop != nil {
		shared.drop()
	}
	stopTemporal()
	os.Exit(code)
}
