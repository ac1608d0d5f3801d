package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// fakeIncident plays the database for the incident workflow's activities.
type fakeIncident struct {
	status, severity string
	proposal         *incidents.ProposalState
	proposed         int
	decisions        int
	decided          []activities.DecideProposalInput
	reminders        int
	expired          int
}

func (f *fakeIncident) register(env *testsuite.TestWorkflowEnvironment, start time.Time) {
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.IncidentSnapshot, mock.Anything, "inc_1").Return(func(context.Context, string) (incidents.Snapshot, error) {
		return incidents.Snapshot{IncidentID: "inc_1", Status: f.status, Severity: f.severity, Proposal: f.proposal}, nil
	})
	env.OnActivity(a.ProposePolicy, mock.Anything, "inc_1").Return(func(context.Context, string) (*incidents.ProposalState, error) {
		f.proposed++
		f.proposal = &incidents.ProposalState{ID: "prp_1", Status: "pending", RemindAt: start.Add(24 * time.Hour), ExpiresAt: start.Add(7 * 24 * time.Hour)}
		return f.proposal, nil
	})
	env.OnActivity(a.DecideProposal, mock.Anything, mock.Anything).Return(func(_ context.Context, d activities.DecideProposalInput) (*incidents.ProposalState, error) {
		f.decisions++
		f.decided = append(f.decided, d)
		if d.WorkflowIncidentID != "inc_1" || d.ProposalID != f.proposal.ID {
			return f.proposal, nil // refused: another incident's proposal changes nothing
		}
		if d.Decision == "approve" {
			f.proposal.Status, f.proposal.RuleID = "approved", "pol_1"
		} else {
			f.proposal.Status = "rejected"
		}
		return f.proposal, nil
	})
	env.OnActivity(a.RemindProposal, mock.Anything, "prp_1").Return(func(context.Context, string) (*incidents.ProposalState, error) {
		f.reminders++
		f.proposal.Reminded = true
		return f.proposal, nil
	})
	env.OnActivity(a.ExpireProposal, mock.Anything, "prp_1").Return(func(context.Context, string) (*incidents.ProposalState, error) {
		f.expired++
		f.proposal.Status = "expired"
		return f.proposal, nil
	})
}

func TestIncidentProposesWaitsForApprovalAndEndsWhenResolved(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fakeIncident{status: "open", severity: "high"}
	f.register(env, env.Now())
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(lifecycle.SignalProposalDecision, lifecycle.ProposalDecision{ProposalID: "prp_1", Decision: "approve", UserID: "usr_1"})
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		f.status = "resolved"
		env.SignalWorkflow(lifecycle.SignalIncidentChanged, "inc_1")
	}, 2*time.Hour)
	env.ExecuteWorkflow(IncidentLifecycle, lifecycle.IncidentInput{OrgID: "org_1", IncidentID: "inc_1", Fingerprint: "run-failure-x", Severity: "high"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 1, f.proposed)
	require.Equal(t, 1, f.decisions)
	require.Equal(t, "approved", f.proposal.Status)
	require.Zero(t, f.reminders, "decided before the reminder was due")
}

// The workflow hands every decision to the activity with its own organization and
// incident, whatever the signal says, so the activity can refuse one about a proposal
// that is not this incident's; a refused decision leaves the workflow waiting.
func TestIncidentDecisionsCarryTheWorkflowsScope(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fakeIncident{status: "open", severity: "high"}
	f.register(env, env.Now())
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(lifecycle.SignalProposalDecision, lifecycle.ProposalDecision{ProposalID: "prp_of_another_org", Decision: "approve", UserID: "usr_x"})
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(lifecycle.SignalProposalDecision, lifecycle.ProposalDecision{ProposalID: "prp_1", Decision: "reject", Operator: "alice"})
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() {
		f.status = "resolved"
		env.SignalWorkflow(lifecycle.SignalIncidentChanged, "inc_1")
	}, 3*time.Hour)
	env.ExecuteWorkflow(IncidentLifecycle, lifecycle.IncidentInput{OrgID: "org_1", IncidentID: "inc_1", Fingerprint: "run-failure-x", Severity: "high"})
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, f.decided, 2)
	for _, d := range f.decided {
		require.Equal(t, "org_1", d.WorkflowOrgID)
		require.Equal(t, "inc_1", d.WorkflowIncidentID)
	}
	require.Equal(t, "prp_of_another_org", f.decided[0].ProposalID)
	require.Equal(t, "usr_x", f.decided[0].UserID, "the signal's claims reach the activity unchanged, to be checked there")
	require.Equal(t, "rejected", f.proposal.Status, "the foreign decision changed nothing; the next one applied")
}

// Nobody decides: one reminder after a day, expiry after a week; then resolution ends it.
func TestIncidentProposalRemindsThenExpires(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fakeIncident{status: "open", severity: "critical"}
	start := env.Now()
	f.register(env, start)
	env.RegisterDelayedCallback(func() {
		f.status = "resolved"
		env.SignalWorkflow(lifecycle.SignalIncidentChanged, "inc_1")
	}, 8*24*time.Hour)
	env.ExecuteWorkflow(IncidentLifecycle, lifecycle.IncidentInput{OrgID: "org_1", IncidentID: "inc_1", Fingerprint: "run-failure-x", Severity: "critical"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 1, f.reminders)
	require.Equal(t, 1, f.expired)
	require.Equal(t, "expired", f.proposal.Status)
}

// A low incident proposes nothing, until an occurrence escalates it.
func TestIncidentProposesOnlyWhenHigh(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fakeIncident{status: "open", severity: "low"}
	f.register(env, env.Now())
	env.RegisterDelayedCallback(func() {
		require.Zero(t, f.proposed)
		f.severity = "high"
		env.SignalWorkflow(lifecycle.SignalIncidentOccurrence, "inc_1")
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(lifecycle.SignalProposalDecision, lifecycle.ProposalDecision{ProposalID: "prp_1", Decision: "reject"})
	}, 2*time.Minute)
	env.RegisterDelayedCallback(func() {
		f.status = "resolved"
		env.SignalWorkflow(lifecycle.SignalIncidentChanged, "inc_1")
	}, 3*time.Minute)
	env.ExecuteWorkflow(IncidentLifecycle, lifecycle.IncidentInput{OrgID: "org_1", IncidentID: "inc_1", Fingerprint: "run-failure-x", Severity: "low"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 1, f.proposed)
	require.Equal(t, "rejected", f.proposal.Status)
}
