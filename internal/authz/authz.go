// Package authz decides what an authenticated caller may do. It is pure: the API's
// interceptor authenticates the key against the database, then asks this package.
package authz

import (
	"context"

	"github.com/governor-hq/governor/internal/actor"
)

// Roles, as stored on users (admin, approver, viewer) and implied by ingest keys.
const (
	RoleAdmin    = "admin"
	RoleApprover = "approver"
	RoleViewer   = "viewer"
	RoleIngest   = "ingest"
)

// Permission is one kind of action an RPC needs.
type Permission string

const (
	// Read anything of the organization: accounts, keys, limits, runs, incidents, audit…
	Read Permission = "read"
	// Change accounts, API keys, limits, policies, alert routes, anomaly settings.
	Administer Permission = "administer"
	// Approve or reject policy proposals; acknowledge and resolve incidents.
	Approve Permission = "approve"
	// Admit, heartbeat and complete runs.
	Ingest Permission = "ingest"
	// Check which limits apply to a prospective run (agents need it, as do people).
	CheckLimits Permission = "check_limits"
	// Give feedback on runs (people of every role, and agents on their own runs).
	Feedback Permission = "feedback"
)

var grants = map[string]map[Permission]bool{
	RoleAdmin:    {Read: true, Administer: true, Approve: true, Ingest: true, CheckLimits: true, Feedback: true},
	RoleApprover: {Read: true, Approve: true, CheckLimits: true, Feedback: true},
	RoleViewer:   {Read: true, CheckLimits: true, Feedback: true},
	RoleIngest:   {Ingest: true, CheckLimits: true, Feedback: true},
}

// Allows reports whether role carries permission p.
func Allows(role string, p Permission) bool { return grants[role][p] }

// ValidUserRole reports whether role may be given to a user.
func ValidUserRole(role string) bool {
	return role == RoleAdmin || role == RoleApprover || role == RoleViewer
}

// Principal is an authenticated caller.
type Principal struct {
	OrgID    string
	APIKeyID string
	KeyKind  string // "user" or "ingest"
	UserID   string // user keys only
	Role     string
	// Ingest keys may be bound to a project or an agent; empty means the whole
	// organization.
	ProjectID string
	AgentID   string
}

// Actor is the principal as the audit ledger records it.
func (p Principal) Actor() actor.Actor {
	return actor.Actor{Kind: actor.KindAPIKey, APIKeyID: p.APIKeyID, UserID: p.UserID}
}

// MayActForAgent reports whether the principal may admit runs for the agent of the given
// project. Keys of users (admins) may act for any agent of their organization.
func (p Principal) MayActForAgent(projectID, agentID string) bool {
	if p.AgentID != "" && p.AgentID != agentID {
		return false
	}
	if p.ProjectID != "" && p.ProjectID != projectID {
		return false
	}
	return true
}

type ctxKey struct{}

// WithPrincipal stores the authenticated caller in ctx.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the authenticated caller. The API's interceptor guarantees one for
// every RPC that is not public.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
