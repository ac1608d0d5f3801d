// Package actor says who is acting (an API key and its user, or Governor itself) and in
// which request, for the audit ledger and domain events.
package actor

import "context"

// Kinds of actor, as stored.
const (
	KindAPIKey = "api_key"
	KindSystem = "system"
)

// Actor is who made a change.
type Actor struct {
	Kind     string
	APIKeyID string
	UserID   string // empty for ingest keys and the system
	System   string // what acted, for KindSystem: "workflow:run/run_…", "cli:admin bootstrap"
}

// System returns the actor for Governor's own changes.
func System(what string) Actor { return Actor{Kind: KindSystem, System: what} }

type ctxKey int

const (
	requestIDKey ctxKey = iota
)

// WithRequestID records the id of the request being served.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the id of the request being served, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
