package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

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

// ErrTypeUnknownProposal marked a decision about a proposal that does not exist. Such a
// decision is now a refused one (DecideProposal returns normally); the type stays because
// the incident workflow still handles it in recorded histories.
const ErrTypeUnknownProposal = "UnknownProposal"

// DecideProposalInput is a decision as the incident workflow received it, with the
// workflow's own organization and incident: the decision may only be about that
// incident's proposal. The decision's fields are embedded (flat in JSON), so an input
// scheduled by an older workflow, a bare ProposalDecision, still decodes (without a scope,
// and is refused).
type DecideProposalInput struct {
	lifecycle.ProposalDecision
	WorkflowOrgID      string `json:"workflow_org_id,omitempty"`
	WorkflowIncidentID string `json:"workflow_incident_id,omitempty"`
}

// DecideProposal applies a decision that arrived as a signal (idempotently). The user it
// names is its decider only if the API's signature over it verifies; otherwise it is the
// operator's. A decision that is refused (another organization's or incident's proposal,
// or a user who may no longer decide) changes nothing, is logged here and recorded as an
// event, and is not an error: retrying could not change the answer.
func (a *Activities) DecideProposal(ctx context.Context, in DecideProposalInput) (*incidents.ProposalState, error) {
	d := in.ProposalDecision
	scope := incidents.DecisionScope{OrgID: in.WorkflowOrgID, IncidentID: in.WorkflowIncidentID}
	who := incidents.OperatorDecider(d, "")
	if d.UserID != "" || d.APIKeyID != "" || d.Signature != "" {
		if err := lifecycle.VerifyDecision(a.signalKeys, scope.OrgID, scope.IncidentID, d, time.Now()); err != nil {
			who = incidents.OperatorDecider(d, err.Error())
			a.log.Warn("proposal decision: the user it names is not believed; it counts as the operator's",
				"workflow", activity.GetInfo(ctx).WorkflowExecution.ID, "proposal", d.ProposalID, "user", d.UserID, "reason", err)
		} else {
			who = incidents.Decider{UserID: d.UserID, APIKeyID: d.APIKeyID}
		}
	}
	out, err := incidents.Decide(ctx, a.pool, d, scope, who, actorOf(ctx))
	if err != nil {
		return nil, err
	}
	if out.Refused != "" {
		a.log.Warn("proposal decision refused", "workflow", activity.GetInfo(ctx).WorkflowExecution.ID,
			"org", scope.OrgID, "incident", scope.IncidentID, "proposal", d.ProposalID, "decision", d.Decision,
			"user", d.UserID, "operator", d.Operator, "reason", out.Refused)
	}
	return out.State, nil
}

// RemindProposal records that a proposal still waits for a decision.
func (a *Activities) RemindProposal(ctx context.Context, proposalID string) (*incidents.ProposalState, error) {
	return incidents.Remind(ctx, a.pool, proposalID, actorOf(ctx))
}

// ExpireProposal closes a proposal nobody decided on in time.
func (a *Activities) ExpireProposal(ctx context.Context, proposalID string) (*incidents.ProposalState, error) {
	return incidents.Expire(ctx, a.pool, proposalID, actorOf(ctx))
}
