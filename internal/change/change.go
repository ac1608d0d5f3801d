// Package change runs a governance change: one transaction in which the change, its audit
// entry and its domain events are written together, or not at all.
package change

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/events"
)

// Tx is a change in progress.
type Tx struct {
	DB        pgx.Tx
	Q         *dbsqlc.Queries
	OrgID     string
	Actor     actor.Actor
	RequestID string
}

// Scope says on whose behalf and in which organization a change is made.
type Scope struct {
	OrgID     string
	Actor     actor.Actor
	RequestID string
}

// Run runs fn in a transaction and commits if it returns nil.
func Run(ctx context.Context, pool *pgxpool.Pool, s Scope, fn func(*Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return fn(On(tx, s))
	})
}

// On wraps a transaction the caller already holds.
func On(tx pgx.Tx, s Scope) *Tx {
	return &Tx{DB: tx, Q: dbsqlc.New(), OrgID: s.OrgID, Actor: s.Actor, RequestID: s.RequestID}
}

// Audit records the change on the audit ledger.
func (c *Tx) Audit(ctx context.Context, action, entityType, entityID string, before, after any) error {
	_, err := audit.Append(ctx, c.DB, audit.Entry{
		OrgID:      c.OrgID,
		Actor:      c.Actor,
		RequestID:  c.RequestID,
		Action:     action,
		EntityType: entityType,
		EntityID:   entityID,
		Before:     before,
		After:      after,
	})
	return err
}

// Emit writes a domain event; the organization and actor default to the change's.
func (c *Tx) Emit(ctx context.Context, e events.Event) (events.Written, error) {
	if e.OrgID == "" {
		e.OrgID = c.OrgID
	}
	if e.Actor.Kind == "" {
		e.Actor = c.Actor
	}
	return events.Emit(ctx, c.DB, e)
}

// Record is the usual pair: an audit entry and an event about the same entity.
func (c *Tx) Record(ctx context.Context, action string, before, after any, e events.Event) error {
	if err := c.Audit(ctx, action, e.Entity.Type, e.Entity.ID, before, after); err != nil {
		return err
	}
	_, err := c.Emit(ctx, e)
	return err
}
