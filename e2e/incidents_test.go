package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/testenv"
)

// fail admits a run and completes it as failed with the error, and waits for it to settle.
func fail(t *testing.T, tn *tenant, kit agentKit, code, msg string, cost int64, model, feature string) *v1.Run {
	t.Helper()
	ctx := context.Background()
	resp, err := kit.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: kit.agentID, Model: model, Feature: feature,
		Estimate: &v1.Estimate{CostMicros: cost}}))
	require.NoError(t, err)
	_, err = kit.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: resp.Msg.Run.Id, Status: v1.RunStatus_RUN_STATUS_FAILED,
		CostMicros: &cost, ErrorCode: code, ErrorMessage: msg}))
	require.NoError(t, err)
	return waitSettled(t, tn.admin, resp.Msg.Run.Id)
}

// incidentOf waits until the run's failure is attached to an incident.
func incidentOf(t *testing.T, c clients, runID string) *v1.Incident {
	t.Helper()
	var inc *v1.Incident
	eventually(t, patience, func() bool {
		r, err := c.runs.ListRunIncidents(context.Background(), connect.NewRequest(&v1.ListRunIncidentsRequest{RunId: runID}))
		require.NoError(t, err)
		if len(r.Msg.Incidents) == 0 {
			return false
		}
		inc = r.Msg.Incidents[0]
		return true
	})
	return inc
}

// proposalOf waits until the incident's workflow has proposed a policy.
func proposalOf(t *testing.T, c clients, incidentID string) *v1.PolicyProposal {
	t.Helper()
	ctx := context.Background()
	var id string
	eventually(t, patience, func() bool {
		inc, err := c.incidents.GetIncident(ctx, connect.NewRequest(&v1.GetIncidentRequest{Id: incidentID}))
		require.NoError(t, err)
		id = inc.Msg.Incident.ProposalId
		return id != ""
	}, "the incident proposes a policy")
	p, err := c.policies.GetProposal(ctx, connect.NewRequest(&v1.GetProposalRequest{Id: id}))
	require.NoError(t, err)
	return p.Msg.Proposal
}

func highWhenCode(t *testing.T, tn *tenant, code string) {
	t.Helper()
	ctx := context.Background()
	st, err := tn.admin.incidents.GetIncidentSettings(ctx, connect.NewRequest(&v1.GetIncidentSettingsRequest{}))
	require.NoError(t, err)
	s := st.Msg.Settings
	s.HighErrorCodes = []string{code}
	_, err = tn.admin.incidents.UpdateIncidentSettings(ctx, connect.NewRequest(&v1.UpdateIncidentSettingsRequest{Settings: s}))
	require.NoError(t, err)
}

// Seed 000, scenario 2 (incident → policy loop) and scenario 3 (cross-domain tracing).
func TestScenario2And3IncidentPolicyLoopAndTracing(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	ag := tn.newAgent(t, "looping researcher")
	highWhenCode(t, tn, "TOOL_LOOP")
	approver, _ := tn.newUser(t, v1.Role_ROLE_APPROVER)
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)

	// 1–2: a run fails with error X; an incident opens by itself.
	failed := fail(t, tn, ag, "TOOL_LOOP", "agent called tool \"search\" 50 times in a row", 4*dollar, "gpt-4o", "research")
	require.Equal(t, v1.RunStatus_RUN_STATUS_FAILED, failed.Status)
	inc := incidentOf(t, tn.admin, failed.Id)
	require.Equal(t, v1.IncidentCategory_INCIDENT_CATEGORY_RUN_FAILURE, inc.Category)
	require.Equal(t, v1.IncidentSeverity_INCIDENT_SEVERITY_HIGH, inc.Severity)
	require.Equal(t, failed.Id, inc.SourceRunId)
	require.Equal(t, "incident/"+inc.Fingerprint, inc.WorkflowId)

	// 3: it proposes a policy "prevent error X".
	prop := proposalOf(t, tn.admin, inc.Id)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_PENDING, prop.Status)
	require.Equal(t, ag.agentID, prop.Match.AgentId)
	require.Equal(t, "gpt-4o", prop.Match.Model)
	require.Contains(t, prop.Rationale, "TOOL_LOOP")
	require.Equal(t, inc.WorkflowId, prop.WorkflowId)

	// Only approvers and admins decide.
	_, err := viewer.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = ag.ingest.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id}))
	requireCode(t, connect.CodePermissionDenied, err)

	// 4: the approver approves; the rule is active.
	approved, err := approver.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id, Comment: "until the loop guard ships"}))
	require.NoError(t, err)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_APPROVED, approved.Msg.Proposal.Status)
	ruleID := approved.Msg.Proposal.PolicyRuleId
	require.NotEmpty(t, ruleID)
	rule, err := tn.admin.policies.GetPolicyRule(ctx, connect.NewRequest(&v1.GetPolicyRuleRequest{Id: ruleID}))
	require.NoError(t, err)
	require.Equal(t, v1.PolicyRuleStatus_POLICY_RULE_STATUS_ACTIVE, rule.Msg.Rule.Status)
	require.Equal(t, inc.Id, rule.Msg.Rule.SourceIncidentId)
	// Approving again changes nothing.
	again, err := approver.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id}))
	require.NoError(t, err)
	require.Equal(t, ruleID, again.Msg.Proposal.PolicyRuleId)

	// 5–6: a similar run is blocked by the policy, with a prevention record.
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o", Feature: "research",
		Estimate: &v1.Estimate{CostMicros: 3 * dollar}}))
	requireCode(t, connect.CodePermissionDenied, err)
	var ce *connect.Error
	require.True(t, errors.As(err, &ce))
	var blocked *v1.RunBlocked
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if rb, ok := v.(*v1.RunBlocked); ok {
				blocked = rb
			}
		}
	}
	require.NotNil(t, blocked)
	require.Equal(t, ruleID, blocked.PolicyRuleId)
	require.Equal(t, inc.Id, blocked.PolicyIncidentId)
	br, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: blocked.RunId}))
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_BLOCKED, br.Msg.Run.Status)
	require.Equal(t, ruleID, br.Msg.Run.BlockedByPolicyRuleId)
	// A different run of the same agent still goes through.
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o-mini", Feature: "research"}))
	require.NoError(t, err)

	// 7: effectiveness shows one prevented run (and no new incident for it).
	eff, err := tn.admin.policies.GetPolicyEffectiveness(ctx, connect.NewRequest(&v1.GetPolicyEffectivenessRequest{Id: ruleID}))
	require.NoError(t, err)
	require.EqualValues(t, 1, eff.Msg.RunsPrevented)
	require.EqualValues(t, 3*dollar, eff.Msg.EstimatedCostSavedMicros)
	require.EqualValues(t, 0, eff.Msg.FailuresSinceActivation)
	incs, err := tn.admin.incidents.ListIncidents(ctx, connect.NewRequest(&v1.ListIncidentsRequest{}))
	require.NoError(t, err)
	require.Len(t, incs.Msg.Incidents, 1)

	// Scenario 3: navigate across domains.
	runIncs, err := tn.admin.runs.ListRunIncidents(ctx, connect.NewRequest(&v1.ListRunIncidentsRequest{RunId: failed.Id}))
	require.NoError(t, err)
	require.Equal(t, inc.Id, runIncs.Msg.Incidents[0].Id)
	src, err := tn.admin.incidents.GetIncidentSourceRun(ctx, connect.NewRequest(&v1.GetIncidentSourceRunRequest{Id: inc.Id}))
	require.NoError(t, err)
	require.Equal(t, failed.Id, src.Msg.Run.Id)
	impact, err := tn.admin.incidents.GetIncidentCostImpact(ctx, connect.NewRequest(&v1.GetIncidentCostImpactRequest{Id: inc.Id}))
	require.NoError(t, err)
	require.EqualValues(t, 4*dollar, impact.Msg.TotalCostMicros)
	require.EqualValues(t, 1, impact.Msg.RunsAffected)
	require.EqualValues(t, 1, impact.Msg.RunsPrevented)
	require.EqualValues(t, 3*dollar, impact.Msg.EstimatedSavingMicros)
	costs, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.EqualValues(t, 4*dollar, costs.Msg.TotalCostMicros)

	chain := []string{"run_failed", "incident_opened", "proposal_created", "proposal_approved", "policy_activated", "run_blocked"}
	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{Types: chain}}))
	require.NoError(t, err)
	var got []string
	byType := map[string]*v1.Event{}
	for _, e := range evs.Msg.Events {
		got = append(got, e.Type)
		byType[e.Type] = e
	}
	require.Equal(t, chain, got, "the timeline tells the story in order")
	has := func(e *v1.Event, typ, id string) bool {
		if e.Entity.Type == typ && e.Entity.Id == id {
			return true
		}
		for _, r := range e.Related {
			if r.Type == typ && r.Id == id {
				return true
			}
		}
		return false
	}
	require.True(t, has(byType["run_failed"], "run", failed.Id))
	require.True(t, has(byType["incident_opened"], "run", failed.Id) && has(byType["incident_opened"], "incident", inc.Id))
	require.True(t, has(byType["proposal_created"], "incident", inc.Id) && has(byType["proposal_created"], "proposal", prop.Id))
	require.True(t, has(byType["proposal_approved"], "policy_rule", ruleID))
	require.True(t, has(byType["policy_activated"], "proposal", prop.Id))
	require.True(t, has(byType["run_blocked"], "policy_rule", ruleID) && has(byType["run_blocked"], "incident", inc.Id))
	for _, typ := range chain[:5] {
		require.Equal(t, failed.Id, byType[typ].CorrelationId, "%s is correlated with the failed run", typ)
	}
	audit, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "policy_proposal.approve"}))
	require.NoError(t, err)
	require.Len(t, audit.Msg.Entries, 1, "one approval, one entry, however often it was sent")
	require.Equal(t, approver.userID, audit.Msg.Entries[0].Actor.UserId)
	activations, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "policy_rule.activate"}))
	require.NoError(t, err)
	require.Len(t, activations.Msg.Entries, 1)

	// People were alerted: the high incident when it opened, the proposal while it waited.
	for entity, kind := range map[string]v1.AlertKind{inc.Id: v1.AlertKind_ALERT_KIND_INCIDENT, prop.Id: v1.AlertKind_ALERT_KIND_PROPOSAL_PENDING} {
		typ := "incident"
		if kind == v1.AlertKind_ALERT_KIND_PROPOSAL_PENDING {
			typ = "proposal"
		}
		al, err := tn.admin.alerts.ListAlerts(ctx, connect.NewRequest(&v1.ListAlertsRequest{Entity: &v1.EntityRef{Type: typ, Id: entity}}))
		require.NoError(t, err)
		require.Len(t, al.Msg.Alerts, 1, "one %s alert", kind)
		require.Equal(t, kind, al.Msg.Alerts[0].Kind)
	}

	// Resolution ends the workflow; its history replays against the current code.
	_, err = approver.incidents.ResolveIncident(ctx, connect.NewRequest(&v1.ResolveIncidentRequest{Id: inc.Id, Note: "loop guard shipped"}))
	require.NoError(t, err)
	keepHistory(t, "incident_approved_resolved", historyOf(t, tn, inc.WorkflowId))
}

// An operator approves with the Temporal CLI: same result, same kind of audit entry.
func TestApprovalThroughTheTemporalCLI(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	ag := tn.newAgent(t, "cli approved")
	highWhenCode(t, tn, "PII_LEAK")
	failed := fail(t, tn, ag, "PII_LEAK", "response contained an email address", dollar, "o3", "support")
	inc := incidentOf(t, tn.admin, failed.Id)
	prop := proposalOf(t, tn.admin, inc.Id)

	cli, err := exec.Command("../scripts/tools.sh", "path", "temporal").Output()
	require.NoError(t, err)
	input, _ := json.Marshal(lifecycle.ProposalDecision{ProposalID: prop.Id, Decision: "approve", Comment: "approved on call", Operator: "alice"})
	out, err := exec.Command(strings.TrimSpace(string(cli)), "workflow", "signal",
		"--address", testenv.TemporalAddress(t), "--namespace", testenv.TemporalNamespace(),
		"--workflow-id", inc.WorkflowId, "--name", lifecycle.SignalProposalDecision, "--input", string(input)).CombinedOutput()
	require.NoError(t, err, string(out))

	var p *v1.PolicyProposal
	eventually(t, patience, func() bool {
		r, err := tn.admin.policies.GetProposal(ctx, connect.NewRequest(&v1.GetProposalRequest{Id: prop.Id}))
		require.NoError(t, err)
		p = r.Msg.Proposal
		return p.Status == v1.ProposalStatus_PROPOSAL_STATUS_APPROVED
	})
	require.NotEmpty(t, p.PolicyRuleId)
	require.Equal(t, "alice", p.Decisions[0].Operator)
	audit, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: prop.Id, Action: "policy_proposal.approve"}))
	require.NoError(t, err)
	require.Len(t, audit.Msg.Entries, 1)
	require.Contains(t, audit.Msg.Entries[0].Actor.System, "operator:alice")
	require.Contains(t, audit.Msg.Entries[0].AfterJson, "PROPOSAL_STATUS_APPROVED")
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "o3", Feature: "support"}))
	requireCode(t, connect.CodePermissionDenied, err)

	// Sending the same signal again changes nothing.
	out, err = exec.Command(strings.TrimSpace(string(cli)), "workflow", "signal",
		"--address", testenv.TemporalAddress(t), "--namespace", testenv.TemporalNamespace(),
		"--workflow-id", inc.WorkflowId, "--name", lifecycle.SignalProposalDecision, "--input", string(input)).CombinedOutput()
	require.NoError(t, err, string(out))
	waitSignalHandled(t, tn.temporal, inc.WorkflowId, lifecycle.SignalProposalDecision, 2)
	rules, err := tn.admin.policies.ListPolicyRules(ctx, connect.NewRequest(&v1.ListPolicyRulesRequest{}))
	require.NoError(t, err)
	require.Len(t, rules.Msg.Rules, 1)
}

// 50 simultaneous matching failures open exactly one incident.
func TestConcurrentFailuresOpenOneIncident(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	ag := tn.newAgent(t, "flaky")
	var runIDs []string
	for range 50 {
		r, err := admit(t, ag.ingest, ag.agentID, dollar)
		require.NoError(t, err)
		runIDs = append(runIDs, r.Id)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(runIDs)) // one per goroutine, asserted once all are done
	for i, id := range runIDs {
		wg.Go(func() {
			cost := int64(dollar)
			_, errs[i] = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: id, Status: v1.RunStatus_RUN_STATUS_FAILED,
				CostMicros: &cost, ErrorCode: "UPSTREAM_5XX", ErrorMessage: "provider returned 503 after " + string(rune('0'+i%10)) + "s"}))
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, id := range runIDs {
		waitSettled(t, tn.admin, id)
	}
	incs, err := tn.admin.incidents.ListIncidents(ctx, connect.NewRequest(&v1.ListIncidentsRequest{}))
	require.NoError(t, err)
	require.Len(t, incs.Msg.Incidents, 1)
	inc := incs.Msg.Incidents[0]
	require.EqualValues(t, 50, inc.Occurrences)
	require.EqualValues(t, 50, inc.RunsAffected)
	require.EqualValues(t, 50*dollar, inc.CostMicros)
	require.Equal(t, v1.IncidentSeverity_INCIDENT_SEVERITY_CRITICAL, inc.Severity, "50 failures within the hour is critical by default")
	runs, err := tn.admin.incidents.ListIncidentRuns(ctx, connect.NewRequest(&v1.ListIncidentRunsRequest{Id: inc.Id, PageSize: 100}))
	require.NoError(t, err)
	require.Len(t, runs.Msg.Runs, 50)
	opened, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{Types: []string{"incident_opened"}}}))
	require.NoError(t, err)
	require.Len(t, opened.Msg.Events, 1)
	// The critical incident proposes a policy (once).
	prop := proposalOf(t, tn.admin, inc.Id)
	props, err := tn.admin.policies.ListProposals(ctx, connect.NewRequest(&v1.ListProposalsRequest{}))
	require.NoError(t, err)
	require.Len(t, props.Msg.Proposals, 1)
	// Rejection closes it without a rule.
	rej, err := tn.admin.policies.RejectProposal(ctx, connect.NewRequest(&v1.RejectProposalRequest{Id: prop.Id, Comment: "provider outage, not ours"}))
	require.NoError(t, err)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_REJECTED, rej.Msg.Proposal.Status)
	require.Empty(t, rej.Msg.Proposal.PolicyRuleId)
	_, err = tn.admin.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id}))
	requireCode(t, connect.CodeFailedPrecondition, err)
}

// A quorum: two distinct approvers; one approver approving twice counts once.
func TestProposalQuorumNeedsDistinctApprovers(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	ag := tn.newAgent(t, "quorum")
	st, err := tn.admin.incidents.GetIncidentSettings(ctx, connect.NewRequest(&v1.GetIncidentSettingsRequest{}))
	require.NoError(t, err)
	s := st.Msg.Settings
	s.HighErrorCodes, s.ProposalRequiredApprovals = []string{"DANGEROUS"}, 2
	_, err = tn.admin.incidents.UpdateIncidentSettings(ctx, connect.NewRequest(&v1.UpdateIncidentSettingsRequest{Settings: s}))
	require.NoError(t, err)
	first, _ := tn.newUser(t, v1.Role_ROLE_APPROVER)
	second, _ := tn.newUser(t, v1.Role_ROLE_APPROVER)

	failed := fail(t, tn, ag, "DANGEROUS", "deleted a production table", dollar, "", "")
	prop := proposalOf(t, tn.admin, incidentOf(t, tn.admin, failed.Id).Id)
	require.EqualValues(t, 2, prop.RequiredApprovals)

	for range 2 {
		r, err := first.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id}))
		require.NoError(t, err)
		require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_PENDING, r.Msg.Proposal.Status)
		require.Len(t, r.Msg.Proposal.Decisions, 1)
	}
	r, err := second.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id, Comment: "second pair of eyes"}))
	require.NoError(t, err)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_APPROVED, r.Msg.Proposal.Status)
	require.Len(t, r.Msg.Proposal.Decisions, 2)
	require.NotEmpty(t, r.Msg.Proposal.PolicyRuleId)
	approvals, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: prop.Id, Action: "policy_proposal.approve"}))
	require.NoError(t, err)
	require.Len(t, approvals.Msg.Entries, 2, "one entry per distinct approval")
}
