package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Pipeline sends several statements in one network round trip, using sqlc's generated
// query methods unchanged. It works in two steps:
//
//  1. Queue: call query methods with the Pipeline as their connection (dbsqlc.DBTX).
//     Nothing runs; each call queues its statement (methods returning rows get
//     ErrQueued back, which the caller ignores).
//  2. Send, then call the same methods, in the same order, with Results() as their
//     connection: each gets its own statement's result and scans it as usual.
//
// Methods that only execute (:exec) need not be called again: Send reports their errors.
type Pipeline struct {
	b     pgx.Batch
	names []string
	kinds []kind
	res   pgx.BatchResults
}

type kind int

const (
	kindExec kind = iota
	kindRows
)

// ErrQueued is what a query method returns while its statement is only queued.
var ErrQueued = errors.New("db.Pipeline: statement queued, not run yet")

func (p *Pipeline) queue(sql string, args []any, k kind) {
	p.b.Queue(sql, args...)
	p.names = append(p.names, firstLine(sql))
	p.kinds = append(p.kinds, k)
}

// Exec queues a statement.
func (p *Pipeline) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p.queue(sql, args, kindExec)
	return pgconn.CommandTag{}, nil
}

// Query queues a statement that returns rows; read them after Send through Results().
func (p *Pipeline) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	p.queue(sql, args, kindRows)
	return nil, ErrQueued
}

// QueryRow queues a statement that returns a row; read it after Send through Results().
func (p *Pipeline) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	p.queue(sql, args, kindRows)
	return errRow{ErrQueued}
}

// Len is the number of queued statements.
func (p *Pipeline) Len() int { return p.b.Len() }

// Send runs every queued statement on conn in one round trip. Statements that only
// execute are checked here, in order, up to the first statement that returns rows: the
// rest are checked as Results() hands them out, or by Close, which must always follow.
func (p *Pipeline) Send(ctx context.Context, conn interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}) error {
	p.res = conn.SendBatch(ctx, &p.b)
	return p.drainExecs()
}

// drainExecs consumes the results of leading exec statements.
func (p *Pipeline) drainExecs() error {
	for len(p.kinds) > 0 && p.kinds[0] == kindExec {
		name := p.names[0]
		p.names, p.kinds = p.names[1:], p.kinds[1:]
		if _, err := p.res.Exec(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// Results hands out the results of the queued statements that return rows, in order.
func (p *Pipeline) Results() *Results { return &Results{p: p} }

// Close checks the remaining results and releases the connection's batch state.
func (p *Pipeline) Close() error {
	if p.res == nil {
		return nil
	}
	var first error
	for i := range p.names {
		var err error
		if p.kinds[i] == kindExec {
			_, err = p.res.Exec()
		} else {
			var rows pgx.Rows
			if rows, err = p.res.Query(); err == nil {
				rows.Close()
				err = rows.Err()
			}
		}
		if err != nil && first == nil {
			first = fmt.Errorf("%s: %w", p.names[i], err)
		}
	}
	p.names, p.kinds = nil, nil
	if err := p.res.Close(); err != nil && first == nil {
		first = err
	}
	p.res = nil
	return first
}

// Results is a dbsqlc.DBTX that answers each query with the next queued result.
type Results struct{ p *Pipeline }

func (r *Results) next() (string, error) {
	if err := r.p.drainExecs(); err != nil {
		return "", err
	}
	if len(r.p.kinds) == 0 || r.p.kinds[0] != kindRows {
		return "", errors.New("db.Pipeline: results read out of order")
	}
	name := r.p.names[0]
	r.p.names, r.p.kinds = r.p.names[1:], r.p.kinds[1:]
	return name, nil
}

// Query returns the next statement's rows (the arguments are those already sent).
func (r *Results) Query(context.Context, string, ...any) (pgx.Rows, error) {
	name, err := r.next()
	if err != nil {
		return nil, err
	}
	rows, err := r.p.res.Query()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rows, nil
}

// QueryRow returns the next statement's row.
func (r *Results) QueryRow(context.Context, string, ...any) pgx.Row {
	if _, err := r.next(); err != nil {
		return errRow{err}
	}
	return r.p.res.QueryRow()
}

// Exec is refused: executed statements are checked by Send and Close.
func (r *Results) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errors.New("db.Pipeline: read exec results through Send or Close")
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
