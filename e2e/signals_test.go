package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/signing"
)

// Temporal signals are a way in beside the API: anyone who reaches the frontend can send
// one. These tests send them as such a person would, straight to the incident workflows
// of the shared stack (issue 8, section 4).

// pendingProposal makes a high incident of its own error code in the tenant and waits for
// its proposal. approvals is the tenant's quorum (0: leave the setting alone).
func pendingProposal(t *testing.T, tn *tenant, code string, approvals int32) (*v1.Incident, *v1.PolicyProposal) {
	t.Helper()
	ctx := context.Background()
	st, err := tn.admin.incidents.GetIncidentSettings(ctx, connect.NewRequest(&v1.GetIncidentSettingsRequest{}))
	require.NoError(t, err)
	s := st.Msg.Settings
	s.HighErrorCodes = append(s.HighErrorCodes, code)
	if approvals > 0 {
		s.ProposalRequiredApprovals = approvals
	}
	_, err = tn.admin.incidents.UpdateIncidentSettings(ctx, connect.NewRequest(&v1.UpdateIncidentSettingsRequest{Settings: s}))
	require.NoError(t, err)
	ag := tn.newAgent(t, "agent "+strings.ToLower(code))
	failed := fail(t, tn, ag, code, "failure "+code, dollar, "gpt-4o", "x")
	inc := incidentOf(t, tn.admin, failed.Id)
	prop := proposalOf(t, tn.admin, inc.Id)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_PENDING, prop.Status)
	return inc, prop
}

// sendDecision sends a decision to a workflow as anyone with access to Temporal could.
func sendDecision(t *testing.T, tn *tenant, workflowID string, d lifecycle.ProposalDecision) {
	t.Helper()
	require.NoError(t, tn.temporal.SignalWorkflow(context.Background(), workflowID, "", lifecycle.SignalProposalDecision, d))
}

// refusals waits until the tenant's timeline holds n refused decisions, and returns them.
func refusals(t *testing.T, tn *tenant, n int) []*v1.Event {
	t.Helper()
	var evs []*v1.Event
	eventually(t, patience, func() bool {
		r, err := tn.admin.timeline.ListEvents(context.Background(), connect.NewRequest(&v1.ListEventsRequest{
			Filter: &v1.EventFilter{Types: []string{"proposal_decision_refused"}}}))
		if err != nil {
			return false
		}
		evs = r.Msg.Events
		return len(evs) >= n
	}, "%d refused decisions are recorded", n)
	require.Len(t, evs, n)
	return evs
}

func proposal(t *testing.T, c clients, id string) *v1.PolicyProposal {
	t.Helper()
	r, err := c.policies.GetProposal(context.Background(), connect.NewRequest(&v1.GetProposalRequest{Id: id}))
	require.NoError(t, err)
	return r.Msg.Proposal
}

// A decision sent to one tenant's incident workflow about another tenant's proposal, or
// about another incident's proposal of the same tenant, changes nothing.
func TestForgedSignalForAnotherProposalChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	attacker := newTenant(t, "UTC")
	victim := newTenant(t, "UTC")
	victimApprover, victimKey := victim.newUser(t, v1.Role_ROLE_APPROVER)
	incA, propA := pendingProposal(t, attacker, "FORGE_A", 1)
	_, propA2 := pendingProposal(t, attacker, "FORGE_A2", 0)
	_, propB := pendingProposal(t, victim, "FORGE_B", 1)

	// To the attacker's workflow: approve the victim's proposal (as the operator, and naming
	// the victim's approver), reject it, and approve the attacker's other incident's one.
	sendDecision(t, attacker, incA.WorkflowId, lifecycle.ProposalDecision{ProposalID: propB.Id, Decision: "approve", Operator: "mallory"})
	sendDecision(t, attacker, incA.WorkflowId, lifecycle.ProposalDecision{ProposalID: propB.Id, Decision: "approve",
		UserID: victimApprover.userID, APIKeyID: victimKey.Id, RequestID: "forged-1"})
	sendDecision(t, attacker, incA.WorkflowId, lifecycle.ProposalDecision{ProposalID: propB.Id, Decision: "reject", Operator: "mallory"})
	sendDecision(t, attacker, incA.WorkflowId, lifecycle.ProposalDecision{ProposalID: propA2.Id, Decision: "approve", Operator: "mallory"})
	// A workflow handles its signals in order: once this last one, about its own proposal,
	// is applied, the four before it have been handled.
	sendDecision(t, attacker, incA.WorkflowId, lifecycle.ProposalDecision{ProposalID: propA.Id, Decision: "reject", Operator: "barrier"})
	eventually(t, patience, func() bool {
		return proposal(t, attacker.admin, propA.Id).Status == v1.ProposalStatus_PROPOSAL_STATUS_REJECTED
	}, "the workflow handled its signals")

	for _, p := range []*v1.PolicyProposal{proposal(t, victim.admin, propB.Id), proposal(t, attacker.admin, propA2.Id)} {
		require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_PENDING, p.Status, p.Id)
		require.Empty(t, p.Decisions, p.Id)
		require.Empty(t, p.PolicyRuleId, p.Id)
	}
	ownA := proposal(t, attacker.admin, propA.Id)
	require.Len(t, ownA.Decisions, 1, "only the decision about the workflow's own proposal")
	require.Equal(t, "barrier", ownA.Decisions[0].Operator)
	evs := refusals(t, attacker, 4)
	for _, e := range evs[:3] {
		require.Contains(t, e.Summary, "not one of this organization's")
		require.Equal(t, "incident", e.Entity.Type, "a foreign proposal is not linked")
		require.Equal(t, incA.Id, e.Entity.Id)
		require.Empty(t, e.Related)
	}
	require.Contains(t, evs[3].Summary, "not of this workflow's")

	rules, err := victim.admin.policies.ListPolicyRules(ctx, connect.NewRequest(&v1.ListPolicyRulesRequest{}))
	require.NoError(t, err)
	require.Empty(t, rules.Msg.Rules)
	for tn, want := range map[*tenant]int{attacker: 1, victim: 0} {
		entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "policy_proposal.approve"}))
		require.NoError(t, err)
		require.Empty(t, entries.Msg.Entries)
		entries, err = tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "policy_proposal.reject"}))
		require.NoError(t, err)
		require.Len(t, entries.Msg.Entries, want, "only the barrier's rejection")
	}
	// Nothing reached the victim's timeline either.
	vev, err := victim.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{
		Filter: &v1.EventFilter{Types: []string{"proposal_decision_refused", "proposal_approval_recorded", "proposal_approved", "proposal_rejected"}}}))
	require.NoError(t, err)
	require.Empty(t, vev.Msg.Events)

	// The workflow still works: the victim's own approver decides through the API.
	r, err := victimApprover.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: propB.Id}))
	require.NoError(t, err)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_APPROVED, r.Msg.Proposal.Status)
}

// An unsigned decision naming a real approver, or one signed with another key, is the
// operator's: audited as the operator, never as that user.
func TestForgedUserIdentityIsAuditedAsTheOperator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	approver, key := tn.newUser(t, v1.Role_ROLE_APPROVER)
	inc, prop := pendingProposal(t, tn, "IMPERSONATE", 1)
	incR, propR := pendingProposal(t, tn, "IMPERSONATE_R", 0)

	sendDecision(t, tn, inc.WorkflowId, lifecycle.ProposalDecision{ProposalID: prop.Id, Decision: "approve", Comment: "looks fine",
		UserID: approver.userID, APIKeyID: key.Id, RequestID: "forged-approve"})
	// Signed, but not with this deployment's key.
	other, err := signing.ParseKeyring("an-attackers-own-signal-key-0123456789abcdef")
	require.NoError(t, err)
	bad := lifecycle.ProposalDecision{ProposalID: propR.Id, Decision: "reject", UserID: approver.userID, APIKeyID: key.Id, RequestID: "forged-reject"}
	require.NoError(t, lifecycle.SignDecision(other, tn.org.Organization.Id, incR.Id, &bad, time.Now()))
	sendDecision(t, tn, incR.WorkflowId, bad)

	for id, action := range map[string]string{prop.Id: "policy_proposal.approve", propR.Id: "policy_proposal.reject"} {
		var entries []*v1.AuditEntry
		eventually(t, patience, func() bool {
			r, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: id, Action: action}))
			if err != nil {
				return false
			}
			entries = r.Msg.Entries
			return len(entries) > 0
		}, "the decision on %s is applied", id)
		require.Len(t, entries, 1)
		a := entries[0].Actor
		require.Empty(t, a.UserId, "not audited as the user the payload names")
		require.Empty(t, a.ApiKeyId)
		require.Contains(t, a.System, "operator:temporal")
		p := proposal(t, tn.admin, id)
		require.Len(t, p.Decisions, 1)
		require.Empty(t, p.Decisions[0].UserId)
		require.Empty(t, p.Decisions[0].ApiKeyId)
		require.Equal(t, "temporal", p.Decisions[0].Operator)
	}
	approved := proposal(t, tn.admin, prop.Id)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_APPROVED, approved.Status, "an operator may approve; as the operator")
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_REJECTED, proposal(t, tn.admin, propR.Id).Status)

	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{Types: []string{"proposal_approved", "proposal_rejected"}}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 2)
	for _, e := range evs.Msg.Events {
		require.Contains(t, e.Summary, "named user \""+approver.userID+"\", not believed")
		require.Empty(t, e.Actor.UserId)
	}
	require.Contains(t, evs.Msg.Events[0].Summary+evs.Msg.Events[1].Summary, "not signed")
	require.Contains(t, evs.Msg.Events[0].Summary+evs.Msg.Events[1].Summary, "signed with a key this server does not have")

	// The approver's own history holds nothing they did not do.
	mine, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{ActorUserId: approver.userID}))
	require.NoError(t, err)
	require.Empty(t, mine.Msg.Entries)
}

// Operators count as one approver together, whatever names they send: two operator
// approvals (and a forged user's) do not make a quorum of two; a real approver does.
func TestOperatorSignalsCountAsOneApprover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	approver, key := tn.newUser(t, v1.Role_ROLE_APPROVER)
	inc, prop := pendingProposal(t, tn, "QUORUM_OF_OPERATORS", 2)
	require.EqualValues(t, 2, prop.RequiredApprovals)

	sendDecision(t, tn, inc.WorkflowId, lifecycle.ProposalDecision{ProposalID: prop.Id, Decision: "approve", Operator: "alice"})
	sendDecision(t, tn, inc.WorkflowId, lifecycle.ProposalDecision{ProposalID: prop.Id, Decision: "approve", Operator: "bob"})
	sendDecision(t, tn, inc.WorkflowId, lifecycle.ProposalDecision{ProposalID: prop.Id, Decision: "approve", UserID: approver.userID, APIKeyID: key.Id, Operator: "carol"})
	var p *v1.PolicyProposal
	eventually(t, patience, func() bool {
		p = proposal(t, tn.admin, prop.Id)
		return len(p.Decisions) == 3 || p.Status != v1.ProposalStatus_PROPOSAL_STATUS_PENDING
	}, "all three signals are applied, or the proposal closed")
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_PENDING, p.Status, "three operator approvals are one approver")
	require.Empty(t, p.PolicyRuleId)
	var operators []string
	for _, d := range p.Decisions {
		require.Empty(t, d.UserId)
		operators = append(operators, d.Operator)
	}
	require.ElementsMatch(t, []string{"alice", "bob", "carol"}, operators)
	recorded, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{Types: []string{"proposal_approval_recorded"}}}))
	require.NoError(t, err)
	require.Len(t, recorded.Msg.Events, 3)
	for _, e := range recorded.Msg.Events {
		require.Contains(t, e.Summary, "Approval 1 of 2")
	}

	// A second, real approver makes the quorum.
	r, err := approver.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id, Comment: "second pair of eyes"}))
	require.NoError(t, err)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_APPROVED, r.Msg.Proposal.Status)
	require.NotEmpty(t, r.Msg.Proposal.PolicyRuleId)
	approvals, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: prop.Id, Action: "policy_proposal.approve"}))
	require.NoError(t, err)
	require.Len(t, approvals.Msg.Entries, 4)
	require.Equal(t, approver.userID, approvals.Msg.Entries[3].Actor.UserId, "the API's decision is the user's (the last one)")
	for _, e := range approvals.Msg.Entries[:3] {
		require.Empty(t, e.Actor.UserId)
		require.Contains(t, e.Actor.System, "operator:")
	}
}

// A decision the API signed counts only if its user may still decide when it is applied:
// one signed for a user who was since deactivated, lost the approver role, or whose key
// was revoked, does not count. The same kind of decision for an active approver does.
func TestSignedDecisionOfAUserWhoLostTheRightDoesNotCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	inc, prop := pendingProposal(t, tn, "STALE_AUTHORITY", 1)
	signed := func(u userKit, k *v1.ApiKey, requestID string) lifecycle.ProposalDecision {
		d := lifecycle.ProposalDecision{ProposalID: prop.Id, Decision: "approve", UserID: u.userID, APIKeyID: k.Id, RequestID: requestID}
		// What the API would have sent for this user, before they lost the right.
		require.NoError(t, lifecycle.SignDecision(signalKeys, tn.org.Organization.Id, inc.Id, &d, time.Now()))
		return d
	}
	gone, goneKey := tn.newUser(t, v1.Role_ROLE_APPROVER)
	demoted, demotedKey := tn.newUser(t, v1.Role_ROLE_APPROVER)
	revoked, revokedKey := tn.newUser(t, v1.Role_ROLE_APPROVER)
	dGone, dDemoted, dRevoked := signed(gone, goneKey, "req-gone"), signed(demoted, demotedKey, "req-demoted"), signed(revoked, revokedKey, "req-revoked")

	yes := true
	_, err := tn.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: gone.userID, Deactivated: &yes}))
	require.NoError(t, err)
	viewer := v1.Role_ROLE_VIEWER
	_, err = tn.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: demoted.userID, Role: &viewer}))
	require.NoError(t, err)
	_, err = tn.admin.keys.RevokeApiKey(ctx, connect.NewRequest(&v1.RevokeApiKeyRequest{Id: revokedKey.Id}))
	require.NoError(t, err)

	for _, d := range []lifecycle.ProposalDecision{dGone, dDemoted, dRevoked} {
		sendDecision(t, tn, inc.WorkflowId, d)
	}
	// The same kind of signed decision, for an approver who still is one, counts and is
	// audited as them. It comes last, so once it is applied the three before it have been
	// handled (a workflow handles its signals in order).
	active, activeKey := tn.newUser(t, v1.Role_ROLE_APPROVER)
	sendDecision(t, tn, inc.WorkflowId, signed(active, activeKey, "req-active"))
	eventually(t, patience, func() bool {
		return proposal(t, tn.admin, prop.Id).Status == v1.ProposalStatus_PROPOSAL_STATUS_APPROVED
	})
	p := proposal(t, tn.admin, prop.Id)
	require.Len(t, p.Decisions, 1, "only the active approver's decision counts")
	require.Equal(t, active.userID, p.Decisions[0].UserId)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: prop.Id, Action: "policy_proposal.approve"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Equal(t, active.userID, entries.Msg.Entries[0].Actor.UserId)
	require.Equal(t, activeKey.Id, entries.Msg.Entries[0].Actor.ApiKeyId)

	evs := refusals(t, tn, 3)
	var reasons []string
	for _, e := range evs {
		require.Equal(t, "proposal", e.Entity.Type)
		require.Equal(t, prop.Id, e.Entity.Id)
		require.Empty(t, e.Actor.UserId, "the refusal is the system's record")
		reasons = append(reasons, e.Summary)
	}
	all := strings.Join(reasons, "\n")
	require.Contains(t, all, "user "+gone.userID+" is deactivated")
	require.Contains(t, all, "user "+demoted.userID+" is now viewer, not an approver or admin")
	require.Contains(t, all, "key "+revokedKey.Id+" is revoked")
}
