package incidents

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// The API's view of incidents, proposals and rules. The audit ledger records the same
// view, whether a change came through the API or from a workflow.

var (
	severityEnums = map[string]v1.IncidentSeverity{"low": v1.IncidentSeverity_INCIDENT_SEVERITY_LOW, "medium": v1.IncidentSeverity_INCIDENT_SEVERITY_MEDIUM,
		"high": v1.IncidentSeverity_INCIDENT_SEVERITY_HIGH, "critical": v1.IncidentSeverity_INCIDENT_SEVERITY_CRITICAL}
	statusEnums = map[string]v1.IncidentStatus{"open": v1.IncidentStatus_INCIDENT_STATUS_OPEN, "acknowledged": v1.IncidentStatus_INCIDENT_STATUS_ACKNOWLEDGED,
		"resolved": v1.IncidentStatus_INCIDENT_STATUS_RESOLVED}
	categoryEnums = map[string]v1.IncidentCategory{RunFailure: v1.IncidentCategory_INCIDENT_CATEGORY_RUN_FAILURE, BudgetExceeded: v1.IncidentCategory_INCIDENT_CATEGORY_BUDGET_EXCEEDED,
		CostAnomaly: v1.IncidentCategory_INCIDENT_CATEGORY_COST_ANOMALY, RateLimit: v1.IncidentCategory_INCIDENT_CATEGORY_RATE_LIMIT, PolicyViolation: v1.IncidentCategory_INCIDENT_CATEGORY_POLICY_VIOLATION}
	proposalStatusEnums = map[string]v1.ProposalStatus{"pending": v1.ProposalStatus_PROPOSAL_STATUS_PENDING, "approved": v1.ProposalStatus_PROPOSAL_STATUS_APPROVED,
		"rejected": v1.ProposalStatus_PROPOSAL_STATUS_REJECTED, "expired": v1.ProposalStatus_PROPOSAL_STATUS_EXPIRED}
	ruleStatusEnums = map[string]v1.PolicyRuleStatus{"active": v1.PolicyRuleStatus_POLICY_RULE_STATUS_ACTIVE, "disabled": v1.PolicyRuleStatus_POLICY_RULE_STATUS_DISABLED}
)

// Enum lookups for the API's filters.
func SeverityName(e v1.IncidentSeverity) string     { return nameOf(severityEnums, e) }
func StatusName(e v1.IncidentStatus) string         { return nameOf(statusEnums, e) }
func CategoryName(e v1.IncidentCategory) string     { return nameOf(categoryEnums, e) }
func ProposalStatusName(e v1.ProposalStatus) string { return nameOf(proposalStatusEnums, e) }
func RuleStatusName(e v1.PolicyRuleStatus) string   { return nameOf(ruleStatusEnums, e) }

func nameOf[E comparable](m map[string]E, e E) string {
	for k, v := range m {
		if v == e {
			return k
		}
	}
	return ""
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func tsp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// IncidentView is an incident as the API shows it.
func IncidentView(i dbsqlc.Incident, proposalID string) *v1.Incident {
	return &v1.Incident{
		Id: i.ID, Fingerprint: i.Fingerprint, Category: categoryEnums[i.Category], Severity: severityEnums[i.Severity],
		Status: statusEnums[i.Status], Title: i.Title, ProjectId: deref(i.ProjectID), AgentId: deref(i.AgentID),
		Model: i.Model, Feature: i.Feature, ErrorCode: i.ErrorCode, ErrorSignature: i.ErrorSignature,
		Occurrences: i.Occurrences, RunsAffected: i.RunsAffected, CostMicros: i.CostMicros, SourceType: i.SourceType,
		SourceId: i.SourceID, SourceRunId: deref(i.SourceRunID), FirstSeenTime: ts(i.FirstSeenAt), LastSeenTime: ts(i.LastSeenAt),
		AcknowledgeTime: tsp(i.AcknowledgedAt), AcknowledgedBy: i.AcknowledgedBy, ResolveTime: tsp(i.ResolvedAt),
		ResolvedBy: i.ResolvedBy, ResolutionNote: i.ResolutionNote, ProposalId: proposalID,
		WorkflowId: lifecycle.IncidentWorkflowID(i.Fingerprint),
	}
}

// RuleSpec is what a proposal would activate (stored as the proposal's JSON rule).
type RuleSpec struct {
	ProjectID      string            `json:"project_id,omitempty"`
	AgentID        string            `json:"agent_id,omitempty"`
	Model          string            `json:"model,omitempty"`
	Feature        string            `json:"feature,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
	ErrorSignature string            `json:"error_signature,omitempty"`
	Fingerprint    string            `json:"fingerprint,omitempty"`
}

// Decision is one approver's decision, as stored on a proposal.
type Decision struct {
	Decision  string    `json:"decision"`
	Comment   string    `json:"comment,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	APIKeyID  string    `json:"api_key_id,omitempty"`
	Operator  string    `json:"operator,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	At        time.Time `json:"at"`
}

// DecisionsOf reads the decisions stored on a proposal.
func DecisionsOf(b json.RawMessage) []Decision {
	var ds []Decision
	_ = json.Unmarshal(b, &ds)
	return ds
}

// ProposalView is a proposal as the API shows it.
func ProposalView(p dbsqlc.PolicyProposal, fingerprint string) *v1.PolicyProposal {
	var spec RuleSpec
	_ = json.Unmarshal(p.Rule, &spec)
	out := &v1.PolicyProposal{
		Id: p.ID, IncidentId: p.IncidentID, Status: proposalStatusEnums[p.Status], Title: p.Title, Rationale: p.Rationale,
		Match:          &v1.PolicyMatch{ProjectId: spec.ProjectID, AgentId: spec.AgentID, Model: spec.Model, Feature: spec.Feature, Tags: spec.Tags},
		ErrorSignature: spec.ErrorSignature, RequiredApprovals: p.RequiredApprovals, PolicyRuleId: deref(p.PolicyRuleID),
		RemindTime: ts(p.RemindAt), ExpireTime: ts(p.ExpiresAt), DecideTime: tsp(p.DecidedAt), CreateTime: ts(p.CreatedAt),
	}
	if fingerprint == "" {
		fingerprint = spec.Fingerprint
	}
	if fingerprint != "" {
		out.WorkflowId = lifecycle.IncidentWorkflowID(fingerprint)
	}
	for _, d := range DecisionsOf(p.Decisions) {
		out.Decisions = append(out.Decisions, &v1.ProposalDecision{Decision: d.Decision, Comment: d.Comment, UserId: d.UserID,
			ApiKeyId: d.APIKeyID, Operator: d.Operator, DecideTime: ts(d.At)})
	}
	return out
}

// RuleView is a policy rule as the API shows it.
func RuleView(r dbsqlc.PolicyRule) *v1.PolicyRule {
	var tags map[string]string
	_ = json.Unmarshal(r.MatchTags, &tags)
	return &v1.PolicyRule{
		Id: r.ID, Name: r.Name, Description: r.Description, Status: ruleStatusEnums[r.Status], Action: r.Action,
		Match:          &v1.PolicyMatch{ProjectId: r.MatchProjectID, AgentId: r.MatchAgentID, Model: r.MatchModel, Feature: r.MatchFeature, Tags: tags},
		ErrorSignature: r.ErrorSignature, Fingerprint: r.Fingerprint, SourceIncidentId: deref(r.SourceIncidentID),
		SourceProposalId: deref(r.SourceProposalID), ActivateTime: ts(r.ActivatedAt), DisableTime: tsp(r.DisabledAt),
		CreateTime: ts(r.CreatedAt),
	}
}
