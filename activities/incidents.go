package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// IncidentSnapshot reads an incident and its proposal.
func (a *Activities) IncidentSnapshot(ctx context.Context, incidentID string) (incidents.Snapshot, error) {
	return incidents.Snap(ctx, a.pool, incidentID)
}

// ProposePolicy creates the incident's policy proposal (once).
func (a *Activities) ProposePolicy(ctx context.Context, incidentID string) (*incidents.ProposalState, error) {
	return incidents.Propose(ctx, a.pool, incidentID, actorOf(ctx))
}

// ErrTypeUnknownProposal marks a decision about a proposal that does not exist: retrying
// cannot help.
const ErrTypeUnknownProposal = "UnknownProposal"

// DecideProposal applies an approver's decision (idempotently).
func (a *Activities) DecideProposal(ctx context.Context, d lifecycle.ProposalDecision) (*incidents.ProposalState, error) {
	st, err := incidents.Decide(ctx, a.pool, d, actorOf(ctx))
	if errors.Is(err, incidents.ErrUnknownProposal) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUnknownProposal, err)
	}
	return st, err
}

// RemindProposal records that a proposal still waits for a decision.
func (a *Activities) RemindProposal(ctx context.Context, proposalID string) (*incidents.ProposalState, error) {
	return incidents.Remind(ctx, a.pool, proposalID, actorOf(ctx))
}

// ExpireProposal closes a proposal nobody decided on in time.
func (a *Activities) ExpireProposal(ctx context.Context, proposalID string) (*incidents.ProposalState, error) {
	return incidents.Expire(ctx, a.pool, proposalID, actorOf(ctx))
}
