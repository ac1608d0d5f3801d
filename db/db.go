// Package db holds Governor's schema (numbered up/down migrations, embedded in the binary
// and used by sqlc as the schema), the migrator, and the generated queries (dbsqlc).
package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is what data-layer helpers return for a missing row, whatever the driver
// says; the API turns it into connect.CodeNotFound.
var ErrNotFound = errors.New("not found")

// NotFound maps pgx.ErrNoRows to ErrNotFound and leaves other errors alone.
func NotFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// Timeouts are the PostgreSQL session limits of a service's connections, so that one
// stuck statement, lock wait or forgotten transaction cannot hold a connection (and the
// rows it locked) forever. Zero leaves a limit off.
type Timeouts struct {
	// Statement bounds any one statement (statement_timeout).
	Statement time.Duration
	// Lock bounds a wait for a row or table lock (lock_timeout).
	Lock time.Duration
	// IdleInTransaction ends a session that sits in an open transaction doing nothing
	// (idle_in_transaction_session_timeout).
	IdleInTransaction time.Duration
}

// DefaultTimeouts are the service defaults (GOVERNOR_DB_*_TIMEOUT).
var DefaultTimeouts = Timeouts{Statement: time.Minute, Lock: 10 * time.Second, IdleInTransaction: time.Minute}

// Open connects a pool without session timeouts (migrations, operator commands and
// benchmarks may run long statements) and checks the server answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	return OpenWith(ctx, url, Timeouts{})
}

// OpenWith connects a pool whose sessions have the given timeouts.
func OpenWith(ctx context.Context, url string, t Timeouts) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	for name, d := range map[string]time.Duration{
		"statement_timeout": t.Statement, "lock_timeout": t.Lock, "idle_in_transaction_session_timeout": t.IdleInTransaction,
	} {
		if d > 0 {
			cfg.ConnConfig.RuntimeParams[name] = fmt.Sprint(d.Milliseconds())
		}
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	// pgxpool's default (the CPU count, at least 4) starves a server with many concurrent
	// requests on a small machine; PostgreSQL's default max_connections is 100.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, nil
}

// InTx runs fn in a transaction, committing if it returns nil.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}

// Constraint returns the name of the constraint a PostgreSQL error is about, and its SQL
// state, or "" when err is not a constraint violation.
func Constraint(err error) (name, code string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName != "" {
		return pgErr.ConstraintName, pgErr.Code
	}
	return "", ""
}

// Unique violation and foreign key violation SQL states.
const (
	CodeUniqueViolation     = "23505"
	CodeForeignKeyViolation = "23503"
)

// Permanent reports whether err is a PostgreSQL error that retrying the same statement
// cannot fix: a data exception (class 22, e.g. a value out of range) or an integrity
// constraint violation (class 23). Connection failures, timeouts, serialization failures
// and deadlocks are not permanent.
func Permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23":
		return true
	}
	return false
}

// Busy reports whether err means a statement gave up waiting: a lock wait past
// lock_timeout (55P03), a statement past statement_timeout or cancelled by its context's
// deadline (57014), or the deadline itself.
func Busy(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "57014")
}
