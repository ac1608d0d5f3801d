package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one numbered schema change with its way back.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// MigrationStatus is a migration and whether (and when) it is applied.
type MigrationStatus struct {
	Migration
	AppliedAt *time.Time
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// Migrations returns the embedded migrations in order. Every version must have both an up
// and a down file.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.(up|down).sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mig
		}
		if mig.Name != m[2] {
			return nil, fmt.Errorf("migration %04d has two names: %q and %q", v, mig.Name, m[2])
		}
		if m[3] == "up" {
			mig.Up = string(body)
		} else {
			mig.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %04d_%s needs both an up and a down file", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions must run 1, 2, 3…; found %04d at position %d", m.Version, i+1)
		}
	}
	return out, nil
}

// migrationLock is the advisory lock key that makes concurrent migrators (two servers
// starting together) take turns.
const migrationLock = 7_291_004_113

// The migrator's own bookkeeping is the one piece of SQL that cannot be a sqlc query: it
// must exist before any migration has run.
const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// MigrateUp applies every pending migration, each in its own transaction, and returns the
// versions it applied.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	return migrate(ctx, pool, func(ctx context.Context, conn *pgxpool.Conn, all []Migration, applied map[int]time.Time) ([]int, error) {
		var done []int
		for _, m := range all {
			if _, ok := applied[m.Version]; ok {
				continue
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Up); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
				return err
			})
			if err != nil {
				return done, fmt.Errorf("migration %04d_%s up: %w", m.Version, m.Name, err)
			}
			done = append(done, m.Version)
		}
		return done, nil
	})
}

// MigrateDown reverts the latest `steps` applied migrations and returns their versions.
func MigrateDown(ctx context.Context, pool *pgxpool.Pool, steps int) ([]int, error) {
	return migrate(ctx, pool, func(ctx context.Context, conn *pgxpool.Conn, all []Migration, applied map[int]time.Time) ([]int, error) {
		var done []int
		for i := len(all) - 1; i >= 0 && len(done) < steps; i-- {
			m := all[i]
			if _, ok := applied[m.Version]; !ok {
				continue
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Down); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, m.Version)
				return err
			})
			if err != nil {
				return done, fmt.Errorf("migration %04d_%s down: %w", m.Version, m.Name, err)
			}
			done = append(done, m.Version)
		}
		return done, nil
	})
}

// MigrationStatuses lists every migration and whether it is applied.
func MigrationStatuses(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	var out []MigrationStatus
	_, err := migrate(ctx, pool, func(ctx context.Context, conn *pgxpool.Conn, all []Migration, applied map[int]time.Time) ([]int, error) {
		for _, m := range all {
			s := MigrationStatus{Migration: m}
			if at, ok := applied[m.Version]; ok {
				s.AppliedAt = &at
			}
			out = append(out, s)
		}
		return nil, nil
	})
	return out, err
}

func migrate(ctx context.Context, pool *pgxpool.Pool,
	fn func(context.Context, *pgxpool.Conn, []Migration, map[int]time.Time) ([]int, error)) ([]int, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return nil, err
	}
	defer func() {
		// A fresh context: the caller's may be cancelled, and the lock must be released.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	}()
	if _, err := conn.Exec(ctx, migrationsTable); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			return nil, err
		}
		applied[v] = at
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return fn(ctx, conn, all, applied)
}
