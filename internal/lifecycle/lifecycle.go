// Package lifecycle is the contract between Governor's services and its Temporal
// workflows: workflow types and IDs, their inputs, signal names and search attributes.
// Services write outbox rows in these terms; the relay and the workflows read them.
package lifecycle

import (
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
)

// Workflow types.
const (
	RunWorkflowType      = "RunLifecycle"
	IncidentWorkflowType = "IncidentLifecycle"
)

// IncidentWorkflowID is the ID of an incident's workflow: "incident/<fingerprint>". A
// fingerprint has one open incident at a time, and one workflow.
func IncidentWorkflowID(fingerprint string) string { return "incident/" + fingerprint }

// IncidentInput starts an incident's workflow.
type IncidentInput struct {
	OrgID       string `json:"org_id"`
	IncidentID  string `json:"incident_id"`
	Fingerprint string `json:"fingerprint"`
	AgentID     string `json:"agent_id"`
	Severity    string `json:"severity"`
}

// RunWorkflowID is the ID of a run's workflow, e.g. "run/run_06h…", as operators see it
// in the Temporal UI.
func RunWorkflowID(runID string) string { return "run/" + runID }

// RunInput starts a run's workflow.
type RunInput struct {
	OrgID          string    `json:"org_id"`
	RunID          string    `json:"run_id"`
	ProjectID      string    `json:"project_id"`
	AgentID        string    `json:"agent_id"`
	APIKeyID       string    `json:"api_key_id"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
}

// Signals.
const (
	// SignalRunReported tells a run's workflow that CompleteRun recorded its completion.
	SignalRunReported = "run-reported"
	// SignalIncidentOccurrence tells an incident's workflow that an occurrence was
	// recorded; its argument is the incident id.
	SignalIncidentOccurrence = "incident-occurrence"
	// SignalIncidentChanged tells an incident's workflow that people acknowledged or
	// resolved it; its argument is the incident id.
	SignalIncidentChanged = "incident-changed"
	// SignalProposalDecision carries an approver's decision on a policy proposal
	// (ProposalDecision). PolicyService sends it; so may an operator with the Temporal CLI.
	SignalProposalDecision = "proposal-decision"
)

// ProposalDecision is the argument of SignalProposalDecision.
type ProposalDecision struct {
	ProposalID string `json:"proposal_id"`
	// "approve" or "reject".
	Decision string `json:"decision"`
	Comment  string `json:"comment"`
	// Who decided: a user (through the API) or an operator (through Temporal).
	UserID   string `json:"user_id,omitempty"`
	APIKeyID string `json:"api_key_id,omitempty"`
	Operator string `json:"operator,omitempty"`
	// RequestID ties the decision to the API request that sent it, so a retried request is
	// recorded once.
	RequestID string `json:"request_id,omitempty"`
}

// Search attributes Governor sets on its workflows (all Keyword), so operators can filter
// by tenant, agent, key and status in the Temporal UI, e.g.
// `GovernorOrg = "org_…" AND GovernorStatus = "failed"`.
var (
	SearchOrg     = temporal.NewSearchAttributeKeyKeyword("GovernorOrg")
	SearchProject = temporal.NewSearchAttributeKeyKeyword("GovernorProject")
	SearchAgent   = temporal.NewSearchAttributeKeyKeyword("GovernorAgent")
	SearchAPIKey  = temporal.NewSearchAttributeKeyKeyword("GovernorApiKey")
	SearchStatus  = temporal.NewSearchAttributeKeyKeyword("GovernorStatus")
	// SearchSeverity is an incident's (or alert's) severity.
	SearchSeverity = temporal.NewSearchAttributeKeyKeyword("GovernorSeverity")
)

// SearchAttributes lists every attribute Governor registers.
func SearchAttributes() []temporal.SearchAttributeKeyKeyword {
	return []temporal.SearchAttributeKeyKeyword{SearchOrg, SearchProject, SearchAgent, SearchAPIKey, SearchStatus, SearchSeverity}
}

// Start says how to start (or signal-with-start) a workflow from an outbox row.
type Start struct {
	Input            any
	SearchAttributes temporal.SearchAttributes
}

// DecodeStart turns an outbox row's workflow type and JSON payload into the workflow's
// input and initial search attributes.
func DecodeStart(workflowType string, payload []byte) (Start, error) {
	switch workflowType {
	case RunWorkflowType:
		var in RunInput
		if err := json.Unmarshal(payload, &in); err != nil {
			return Start{}, err
		}
		return Start{Input: in, SearchAttributes: temporal.NewSearchAttributes(
			SearchOrg.ValueSet(in.OrgID), SearchProject.ValueSet(in.ProjectID), SearchAgent.ValueSet(in.AgentID),
			SearchAPIKey.ValueSet(in.APIKeyID), SearchStatus.ValueSet("admitted"),
		)}, nil
	case IncidentWorkflowType:
		var in IncidentInput
		if err := json.Unmarshal(payload, &in); err != nil {
			return Start{}, err
		}
		attrs := []temporal.SearchAttributeUpdate{SearchOrg.ValueSet(in.OrgID), SearchStatus.ValueSet("open"), SearchSeverity.ValueSet(in.Severity)}
		if in.AgentID != "" {
			attrs = append(attrs, SearchAgent.ValueSet(in.AgentID))
		}
		return Start{Input: in, SearchAttributes: temporal.NewSearchAttributes(attrs...)}, nil
	}
	return Start{}, fmt.Errorf("unknown workflow type %q", workflowType)
}
