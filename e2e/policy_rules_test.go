package e2e

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// policyBlocked returns the RunBlocked detail of an admission a policy rule refused.
func policyBlocked(t *testing.T, err error) *v1.RunBlocked {
	t.Helper()
	requireCode(t, connect.CodePermissionDenied, err)
	rb := runBlockedOf(err)
	require.NotNil(t, rb, "no RunBlocked detail in %v", err)
	return rb
}

// An admin writes a policy rule by hand: it is active at once and blocks matching runs
// (and only those) at admission, with a prevention record; disabled, it blocks nothing
// more. Both changes are on the ledger and the timeline.
func TestPolicyRuleCreatedByHandBlocksUntilDisabled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "risky")
	bystander := tn.newAgentIn(t, ag.projectID, "careful")
	run := func(kit agentKit, model string) error {
		_, err := kit.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: kit.agentID, Model: model, Feature: "export",
			Estimate: &v1.Estimate{CostMicros: 2 * dollar}}))
		return err
	}

	created, err := tn.admin.policies.CreatePolicyRule(ctx, connect.NewRequest(&v1.CreatePolicyRuleRequest{Name: "no exports on o3",
		Description: "o3 leaks data in exports", Match: &v1.PolicyMatch{AgentId: ag.agentID, Model: "o3", Feature: "export"}}))
	require.NoError(t, err)
	rule := created.Msg.Rule
	require.Regexp(t, `^pol_[0-9a-z]{26}$`, rule.Id)
	require.Equal(t, v1.PolicyRuleStatus_POLICY_RULE_STATUS_ACTIVE, rule.Status)
	require.Equal(t, "block", rule.Action)
	require.Equal(t, ag.agentID, rule.Match.AgentId)
	require.NotNil(t, rule.ActivateTime)
	require.Empty(t, rule.SourceIncidentId, "written by hand, not from an incident")
	got, err := tn.admin.policies.GetPolicyRule(ctx, connect.NewRequest(&v1.GetPolicyRuleRequest{Id: rule.Id}))
	require.NoError(t, err)
	require.Equal(t, "no exports on o3", got.Msg.Rule.Name)

	rb := policyBlocked(t, run(ag, "o3"))
	require.Equal(t, rule.Id, rb.PolicyRuleId)
	require.Equal(t, "no exports on o3", rb.PolicyRuleName)
	require.Empty(t, rb.PolicyIncidentId)
	blocked, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: rb.RunId}))
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_BLOCKED, blocked.Msg.Run.Status)
	require.Equal(t, rule.Id, blocked.Msg.Run.BlockedByPolicyRuleId)
	require.NoError(t, run(ag, "gpt-4o"), "another model is not matched")
	require.NoError(t, run(bystander, "o3"), "another agent is not matched")
	eff, err := tn.admin.policies.GetPolicyEffectiveness(ctx, connect.NewRequest(&v1.GetPolicyEffectivenessRequest{Id: rule.Id}))
	require.NoError(t, err)
	require.EqualValues(t, 1, eff.Msg.RunsPrevented)
	require.EqualValues(t, 2*dollar, eff.Msg.EstimatedCostSavedMicros)

	// Only admins write rules; a rule must match something; what it names must exist.
	approver, _ := tn.newUser(t, v1.Role_ROLE_APPROVER)
	_, err = approver.policies.CreatePolicyRule(ctx, connect.NewRequest(&v1.CreatePolicyRuleRequest{Name: "x", Match: &v1.PolicyMatch{Model: "o3"}}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = tn.admin.policies.CreatePolicyRule(ctx, connect.NewRequest(&v1.CreatePolicyRuleRequest{Name: "everything", Match: &v1.PolicyMatch{}}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "match")
	_, err = tn.admin.policies.CreatePolicyRule(ctx, connect.NewRequest(&v1.CreatePolicyRuleRequest{Name: "ghost",
		Match: &v1.PolicyMatch{AgentId: "agt_00000000000000000000000000"}}))
	requireCode(t, connect.CodeNotFound, err)
	other := newTenant(t, "UTC")
	_, err = other.admin.policies.DisablePolicyRule(ctx, connect.NewRequest(&v1.DisablePolicyRuleRequest{Id: rule.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = approver.policies.DisablePolicyRule(ctx, connect.NewRequest(&v1.DisablePolicyRuleRequest{Id: rule.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	policyBlocked(t, run(ag, "o3")) // refused attempts to disable it changed nothing

	off, err := tn.admin.policies.DisablePolicyRule(ctx, connect.NewRequest(&v1.DisablePolicyRuleRequest{Id: rule.Id, Reason: "model fixed"}))
	require.NoError(t, err)
	require.Equal(t, v1.PolicyRuleStatus_POLICY_RULE_STATUS_DISABLED, off.Msg.Rule.Status)
	require.NotNil(t, off.Msg.Rule.DisableTime)
	require.NoError(t, run(ag, "o3"), "a disabled rule blocks nothing")
	again, err := tn.admin.policies.DisablePolicyRule(ctx, connect.NewRequest(&v1.DisablePolicyRuleRequest{Id: rule.Id}))
	require.NoError(t, err, "disabling twice is a no-op")
	require.Equal(t, off.Msg.Rule.DisableTime.AsTime(), again.Msg.Rule.DisableTime.AsTime())
	eff, err = tn.admin.policies.GetPolicyEffectiveness(ctx, connect.NewRequest(&v1.GetPolicyEffectivenessRequest{Id: rule.Id}))
	require.NoError(t, err)
	require.EqualValues(t, 2, eff.Msg.RunsPrevented)

	for action, want := range map[string]int{"policy_rule.create": 1, "policy_rule.disable": 1} {
		entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: rule.Id, Action: action}))
		require.NoError(t, err)
		require.Len(t, entries.Msg.Entries, want, action)
		require.Equal(t, tn.org.Admin.Id, entries.Msg.Entries[0].Actor.UserId, action)
	}
	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{
		Types: []string{"policy_activated", "policy_disabled"}, Entity: &v1.EntityRef{Type: "policy_rule", Id: rule.Id}}}))
	require.NoError(t, err)
	var types []string
	for _, e := range evs.Msg.Events {
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"policy_activated", "policy_disabled"}, types)
	require.Contains(t, evs.Msg.Events[1].Summary, "model fixed")
}
