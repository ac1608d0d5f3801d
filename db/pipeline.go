package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Pipeline collects statements into one pgx.Batch so that many of them cost a single
// network round trip. It satisfies dbsqlc.DBTX for sqlc's :exec queries: pass it where a
// query method wants a connection, and the statement is queued instead of run. Queries that
// return rows cannot be deferred and are refused.
type Pipeline struct {
	b     pgx.Batch
	names []string
}

// Exec queues a statement.
func (p *Pipeline) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p.b.Queue(sql, args...)
	p.names = append(p.names, firstLine(sql))
	return pgconn.CommandTag{}, nil
}

// Query is refused: a pipeline cannot hand back rows before it runs.
func (p *Pipeline) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("db.Pipeline: only :exec queries can be queued")
}

// QueryRow is refused, as Query.
func (p *Pipeline) QueryRow(context.Context, string, ...any) pgx.Row {
	return errRow{errors.New("db.Pipeline: only :exec queries can be queued")}
}

// Len is the number of queued statements.
func (p *Pipeline) Len() int { return p.b.Len() }

// Send runs every queued statement on conn in one round trip and reports the first error,
// naming the statement.
func (p *Pipeline) Send(ctx context.Context, conn interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}) error {
	res := conn.SendBatch(ctx, &p.b)
	var first error
	for i := range p.names {
		if _, err := res.Exec(); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", p.names[i], err)
		}
	}
	if err := res.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func firstLine(sql string) string {
	for i, c := range sql {
		if c == '\n' {
			return sql[:i]
		}
	}
	return sql
}
