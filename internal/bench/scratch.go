package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db"
)

// Scratch is a database a benchmark makes for itself on a PostgreSQL server and drops
// when it is done: a benchmark's data (gigabytes, for the large anomaly point) must not
// outlive it.
type Scratch struct {
	Name string
	Pool *pgxpool.Pool

	adminURL string
	dropOnce sync.Once
	dropErr  error
}

// scratchName keeps database names to what may go into DROP/CREATE DATABASE unquoted.
var scratchName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// NewScratch creates the database name (dropping one left over by a benchmark killed
// too hard to clean up) on the server adminURL points at, migrates it and opens a pool.
// On error nothing is left behind.
func NewScratch(ctx context.Context, adminURL, name string) (_ *Scratch, err error) {
	if !scratchName.MatchString(name) {
		return nil, fmt.Errorf("scratch database name %q: lower-case letters, digits and _ only", name)
	}
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, err
	}
	s := &Scratch{Name: name, adminURL: adminURL}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Drop())
		}
	}()
	if s.Pool, err = db.Open(ctx, dbURL); err != nil {
		return nil, err
	}
	if _, err := db.MigrateUp(ctx, s.Pool); err != nil {
		return nil, err
	}
	return s, nil
}

// withDatabase returns adminURL pointing at another database.
func withDatabase(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("benchmarks need a postgres:// URL of the server, not %q", adminURL)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Drop closes the pool and drops the database (once; later calls return the first
// outcome). It works on a context of its own, because it runs when the benchmark's was
// cancelled (Ctrl-C) too.
func (s *Scratch) Drop() error {
	s.dropOnce.Do(func() {
		if s.Pool != nil {
			s.Pool.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.adminURL)
		if err != nil {
			s.dropErr = fmt.Errorf("drop scratch database %s: %w", s.Name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.Name+" WITH (FORCE)"); err != nil {
			s.dropErr = fmt.Errorf("drop scratch database %s: %w", s.Name, err)
		}
	})
	return s.dropErr
}
