// Package lifecycle is the contract between Governor's services and its Temporal
// workflows: workflow types and IDs, their inputs, signal names and search attributes.
// Services write outbox rows in these terms; the relay and the workflows read them.
package lifecycle

import (
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/governor-hq/governor/internal/signing"
)

// Workflow types.
const (
	RunWorkflowType      = "RunLifecycle"
	IncidentWorkflowType = "IncidentLifecycle"
	// AlertDeliveryWorkflowType delivers one alert to one channel, with retries.
	AlertDeliveryWorkflowType = "AlertDelivery"
	// AnomalyBatchWorkflowType runs anomaly detection: for one organization (on demand) or
	// for every organization (the daily schedule).
	AnomalyBatchWorkflowType = "AnomalyBatch"
)

// AlertDeliveryWorkflowID is the ID of the workflow delivering an alert to a channel:
// "alert/<alert id>/<channel id>".
func AlertDeliveryWorkflowID(alertID, channelID string) string {
	return "alert/" + alertID + "/" + channelID
}

// AlertDeliveryInput starts an alert delivery's workflow.
type AlertDeliveryInput struct {
	OrgID       string `json:"org_id"`
	AlertID     string `json:"alert_id"`
	ChannelID   string `json:"channel_id"`
	DeliveryID  string `json:"delivery_id"`
	ChannelType string `json:"channel_type"`
	Kind        string `json:"kind"`
	Severity    string `json:"severity"`
	// NotBefore delays the first attempt (digests are sent when the rate-limit window
	// that held their alerts back ends).
	NotBefore time.Time `json:"not_before,omitzero"`
}

// AnomalyBatchWorkflowID is the ID of an on-demand detection run:
// "anomaly-batch/<org id>/<run id>". Scheduled batches get the schedule's IDs
// ("anomaly-batch-<time>").
func AnomalyBatchWorkflowID(orgID, runID string) string {
	return "anomaly-batch/" + orgID + "/" + runID
}

// AnomalyScheduleWorkflowID is the workflow ID prefix of scheduled batches (Temporal adds
// the scheduled time).
const AnomalyScheduleWorkflowID = "anomaly-batch"

// AnomalyScheduleID is the ID of the Temporal Schedule that starts the daily batch of a
// deployment (one per task queue): "anomaly-daily/<task queue>".
func AnomalyScheduleID(taskQueue string) string { return "anomaly-daily/" + taskQueue }

// AnomalyBatchInput starts an anomaly batch. The schedule starts it with no organization:
// every organization, for the days each has due.
type AnomalyBatchInput struct {
	// OrgID and RunID: one organization's on-demand run (RunAnomalyDetection).
	OrgID string `json:"org_id,omitempty"`
	RunID string `json:"run_id,omitempty"`
	// Day to evaluate (YYYY-MM-DD); empty: the last complete day.
	Day string `json:"day,omitempty"`
	// AfterOrg resumes a scheduled batch that continued as new.
	AfterOrg string `json:"after_org,omitempty"`
}

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

// RunStatusDeadLetter is the GovernorStatus of a run workflow whose settlement gave up
// and waits for RunService.RetrySettlement (or the settlement-retry signal).
const RunStatusDeadLetter = "dead_letter"

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
	// SignalSettlementRetry tells a run's workflow whose settlement was dead-lettered to
	// try again (RunService.RetrySettlement sends it; so may an operator with the Temporal
	// CLI, after fixing the cause).
	SignalSettlementRetry = "settlement-retry"
	// SignalAlertRedeliver tells an alert delivery's workflow that RedeliverAlert gave its
	// delivery a new retry period; its argument is the delivery id.
	SignalAlertRedeliver = "alert-redeliver"
)

// ProposalDecision is the argument of SignalProposalDecision.
type ProposalDecision struct {
	ProposalID string `json:"proposal_id"`
	// "approve" or "reject".
	Decision string `json:"decision"`
	Comment  string `json:"comment"`
	// Who decided: a user (through the API) or an operator (through Temporal). A user's
	// identity counts only with the API's Signature; without it the decision is the
	// operator's, whatever user it names.
	UserID   string `json:"user_id,omitempty"`
	APIKeyID string `json:"api_key_id,omitempty"`
	Operator string `json:"operator,omitempty"`
	// RequestID ties the decision to the API request that sent it, so a retried request is
	// recorded once.
	RequestID string `json:"request_id,omitempty"`
	// IssuedAt and Signature: the API's HMAC over the decision (SignDecision).
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	Signature string    `json:"signature,omitempty"`
}

// decisionPurpose separates decision signatures from any other Governor signs.
const decisionPurpose = "governor/proposal-decision"

// DecisionWindow is how long a signed decision stays valid. Generous on purpose: a
// signal waits in the workflow while workers are down (a long outage, a weekend), and a
// replayed signature gains nothing inside the window (it names one proposal of one
// incident, and its request id is recorded once); it only bounds how long a captured
// payload is worth keeping. Skew allows for clocks of the API and worker hosts.
var DecisionWindow = signing.Window{MaxAge: 7 * 24 * time.Hour, MaxSkew: 5 * time.Minute}

// decisionMessage is what the API signs: the decision, who made it, and the organization
// and incident of the workflow it is for (which the workflow knows from its own input, so
// a signature cannot be moved to another tenant's or another incident's workflow).
func (d ProposalDecision) decisionMessage(orgID, incidentID string) signing.Message {
	return signing.Message{Purpose: decisionPurpose, IssuedAt: d.IssuedAt, Fields: []string{
		orgID, incidentID, d.ProposalID, d.Decision, d.UserID, d.APIKeyID, d.RequestID, d.Comment,
	}}
}

// SignDecision sets d's IssuedAt and Signature for the workflow of the incident.
func SignDecision(keys signing.Keyring, orgID, incidentID string, d *ProposalDecision, now time.Time) error {
	d.IssuedAt = now.UTC()
	sig, err := keys.Sign(d.decisionMessage(orgID, incidentID))
	if err != nil {
		return err
	}
	d.Signature = sig
	return nil
}

// VerifyDecision checks that the API signed d for the workflow of this organization and
// incident, within DecisionWindow of now.
func VerifyDecision(keys signing.Keyring, orgID, incidentID string, d ProposalDecision, now time.Time) error {
	return keys.Verify(d.decisionMessage(orgID, incidentID), d.Signature, now, DecisionWindow)
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
	// SearchChannel is the channel an alert delivery goes to.
	SearchChannel = temporal.NewSearchAttributeKeyKeyword("GovernorChannel")
	// SearchIncident is the incident an incident workflow (or an alert about one) is
	// about, so `GovernorIncident = "inc_…"` finds it by the id the API shows.
	SearchIncident = temporal.NewSearchAttributeKeyKeyword("GovernorIncident")
)

// SearchAttributes lists every attribute Governor registers.
func SearchAttributes() []temporal.SearchAttributeKeyKeyword {
	return []temporal.SearchAttributeKeyKeyword{SearchOrg, SearchProject, SearchAgent, SearchAPIKey, SearchStatus, SearchSeverity, SearchChannel, SearchIncident}
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
		if in.IncidentID != "" {
			attrs = append(attrs, SearchIncident.ValueSet(in.IncidentID))
		}
		if in.AgentID != "" {
			attrs = append(attrs, SearchAgent.ValueSet(in.AgentID))
		}
		return Start{Input: in, SearchAttributes: temporal.NewSearchAttributes(attrs...)}, nil
	case AlertDeliveryWorkflowType:
		var in AlertDeliveryInput
		if err := json.Unmarshal(payload, &in); err != nil {
			return Start{}, err
		}
		return Start{Input: in, SearchAttributes: temporal.NewSearchAttributes(
			SearchOrg.ValueSet(in.OrgID), SearchChannel.ValueSet(in.ChannelID), SearchSeverity.ValueSet(in.Severity),
			SearchStatus.ValueSet("pending"),
		)}, nil
	case AnomalyBatchWorkflowType:
		var in AnomalyBatchInput
		if err := json.Unmarshal(payload, &in); err != nil {
			return Start{}, err
		}
		attrs := []temporal.SearchAttributeUpdate{SearchStatus.ValueSet("running")}
		if in.OrgID != "" {
			attrs = append(attrs, SearchOrg.ValueSet(in.OrgID))
		}
		return Start{Input: in, SearchAttributes: temporal.NewSearchAttributes(attrs...)}, nil
	}
	return Start{}, fmt.Errorf("unknown workflow type %q", workflowType)
}

// SearchAttributeNames lists the names of every attribute Governor registers.
func SearchAttributeNames() []string {
	var out []string
	for _, k := range SearchAttributes() {
		out = append(out, k.GetName())
	}
	return out
}
