package incidents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// ProposalState is what the incident workflow needs to know of its proposal.
type ProposalState struct {
	ID        string
	Status    string // pending, approved, rejected, expired
	RemindAt  time.Time
	ExpiresAt time.Time
	Reminded  bool
	RuleID    string
}

// Snapshot is an incident as its workflow sees it.
type Snapshot struct {
	IncidentID string
	Status     string
	Severity   string
	Proposal   *ProposalState
}

func proposalState(p dbsqlc.PolicyProposal) *ProposalState {
	return &ProposalState{ID: p.ID, Status: p.Status, RemindAt: p.RemindAt, ExpiresAt: p.ExpiresAt,
		Reminded: p.RemindedAt != nil, RuleID: deref(p.PolicyRuleID)}
}

// Snap reads an incident and its proposal.
func Snap(ctx context.Context, db dbsqlc.DBTX, incidentID string) (Snapshot, error) {
	q := dbsqlc.New()
	inc, err := q.IncidentGetByID(ctx, db, incidentID)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{IncidentID: inc.ID, Status: inc.Status, Severity: inc.Severity}
	p, err := q.ProposalForIncident(ctx, db, inc.ID)
	switch {
	case err == nil:
		s.Proposal = proposalState(p)
	case !errors.Is(err, pgx.ErrNoRows):
		return s, err
	}
	return s, nil
}

// NeedsProposal reports whether an incident in this state should propose a policy: high
// or critical, not resolved, none proposed yet, and about runs (a rule needs an agent to
// match).
func (s Snapshot) NeedsProposal() bool {
	return s.Proposal == nil && s.Status != "resolved" && SeverityRank(s.Severity) >= SeverityRank("high")
}

// Propose creates the policy proposal of a high or critical incident: a rule blocking
// runs like the failing ones, with its rationale. Idempotent: one proposal per incident.
func Propose(ctx context.Context, pool *pgxpool.Pool, incidentID, by string) (*ProposalState, error) {
	var out *ProposalState
	q := dbsqlc.New()
	inc, err := q.IncidentGetByID(ctx, pool, incidentID)
	if err != nil {
		return nil, err
	}
	err = change.Run(ctx, pool, change.Scope{OrgID: inc.OrgID, Actor: actor.System(by)}, func(c *change.Tx) error {
		settings, err := c.Q.IncidentSettingsGet(ctx, c.DB, inc.OrgID)
		if errors.Is(err, pgx.ErrNoRows) {
			settings = DefaultSettings(inc.OrgID)
		} else if err != nil {
			return err
		}
		spec := RuleSpec{AgentID: deref(inc.AgentID), Model: inc.Model, Feature: inc.Feature,
			ErrorSignature: inc.ErrorSignature, Fingerprint: inc.Fingerprint}
		if spec.AgentID == "" {
			spec.ProjectID = deref(inc.ProjectID)
		}
		rule, _ := json.Marshal(spec)
		now := time.Now()
		p, err := c.Q.ProposalCreate(ctx, c.DB, dbsqlc.ProposalCreateParams{
			OrgID: inc.OrgID, ID: ids.New(ids.Proposal), IncidentID: inc.ID,
			Title:     "Block runs like the ones behind incident " + inc.ID,
			Rationale: rationale(inc, spec), Rule: rule, RequiredApprovals: settings.ProposalRequiredApprovals,
			RemindAt:  now.Add(time.Duration(settings.ProposalRemindAfterMinutes) * time.Minute),
			ExpiresAt: now.Add(time.Duration(settings.ProposalExpireAfterMinutes) * time.Minute),
		})
		if err != nil {
			return err
		}
		prop := proposalFromCreate(p)
		out = proposalState(prop)
		if !p.Created {
			return nil
		}
		if err := c.Record(ctx, "policy_proposal.create", nil, ProposalView(prop, inc.Fingerprint), events.Event{
			Domain: events.DomainPolicies, Type: "proposal_created", Entity: events.Ref{Type: "proposal", ID: prop.ID},
			Related: []events.Ref{{Type: "incident", ID: inc.ID}}, CorrelationID: correlationOf(inc),
			Summary: "Policy proposed for incident " + inc.ID + ": " + describeSpec(spec),
		}); err != nil {
			return err
		}
		return pendingAlert(ctx, c, prop, inc, "created")
	})
	return out, err
}

func correlationOf(inc dbsqlc.Incident) string {
	if inc.SourceRunID != nil {
		return *inc.SourceRunID
	}
	return inc.ID
}

func describeSpec(s RuleSpec) string {
	var parts []string
	for _, kv := range [][2]string{{"project", s.ProjectID}, {"agent", s.AgentID}, {"model", s.Model}, {"feature", s.Feature}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	for k, v := range s.Tags {
		parts = append(parts, "tag "+k+"="+v)
	}
	if len(parts) == 0 {
		return "block nothing"
	}
	return "block runs of " + strings.Join(parts, ", ")
}

func rationale(inc dbsqlc.Incident, s RuleSpec) string {
	avg := int64(0)
	if inc.RunsAffected > 0 {
		avg = inc.CostMicros / int64(inc.RunsAffected)
	}
	why := fmt.Sprintf("%d runs failed with %s", inc.RunsAffected, inc.ErrorCode)
	if inc.ErrorSignature != "" {
		why += " (" + inc.ErrorSignature + ")"
	}
	if inc.RunsAffected == 0 {
		why = inc.Title
	}
	return fmt.Sprintf("%s since %s, costing %s so far (about %s per run); the incident is %s. "+
		"Until the cause is fixed, %s: each prevented run saves its cost and a repeat of the failure. "+
		"Disable the rule once fixed.",
		why, inc.FirstSeenAt.UTC().Format(time.RFC3339), dollars(inc.CostMicros), dollars(avg), inc.Severity, describeSpec(s))
}

func dollars(micros int64) string { return fmt.Sprintf("$%d.%06d", micros/1_000_000, micros%1_000_000) }

func proposalFromCreate(r dbsqlc.ProposalCreateRow) dbsqlc.PolicyProposal {
	return dbsqlc.PolicyProposal{OrgID: r.OrgID, ID: r.ID, IncidentID: r.IncidentID, Status: r.Status, Title: r.Title,
		Rationale: r.Rationale, Rule: r.Rule, RequiredApprovals: r.RequiredApprovals, Decisions: r.Decisions,
		PolicyRuleID: r.PolicyRuleID, RemindAt: r.RemindAt, RemindedAt: r.RemindedAt, ExpiresAt: r.ExpiresAt,
		DecidedAt: r.DecidedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// ErrUnknownProposal: a decision named a proposal that does not exist.
var ErrUnknownProposal = errors.New("unknown proposal")

// Decide applies one approver's decision. It is idempotent: a decision already recorded
// (same request, or same operator and decision) changes nothing. A rejection closes the
// proposal; approvals from enough distinct approvers approve it and activate its rule.
// Each decision is audited with the approver as the actor, whichever way it arrived.
func Decide(ctx context.Context, pool *pgxpool.Pool, d lifecycle.ProposalDecision, by string) (*ProposalState, error) {
	q := dbsqlc.New()
	p0, err := q.ProposalGetByID(ctx, pool, d.ProposalID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUnknownProposal
	}
	if err != nil {
		return nil, err
	}
	who := actor.Actor{Kind: actor.KindAPIKey, APIKeyID: d.APIKeyID, UserID: d.UserID}
	if d.Operator != "" || d.APIKeyID == "" {
		who = actor.System("operator:" + firstNonEmpty(d.Operator, "temporal") + " via " + by)
	}
	var out *ProposalState
	err = change.Run(ctx, pool, change.Scope{OrgID: p0.OrgID, Actor: who, RequestID: d.RequestID}, func(c *change.Tx) error {
		p, err := c.Q.ProposalGetForUpdate(ctx, c.DB, d.ProposalID)
		if err != nil {
			return err
		}
		out = proposalState(p)
		if p.Status != "pending" || recorded(p, d) {
			return nil
		}
		inc, err := c.Q.IncidentGetByID(ctx, c.DB, p.IncidentID)
		if err != nil {
			return err
		}
		before := ProposalView(p, inc.Fingerprint)
		entry, _ := json.Marshal([]Decision{{Decision: d.Decision, Comment: d.Comment, UserID: d.UserID, APIKeyID: d.APIKeyID,
			Operator: d.Operator, RequestID: d.RequestID, At: time.Now().UTC()}})
		if p, err = c.Q.ProposalRecordDecision(ctx, c.DB, dbsqlc.ProposalRecordDecisionParams{ID: p.ID, Decision: entry}); err != nil {
			return err
		}
		correlation := correlationOf(inc)
		related := []events.Ref{{Type: "incident", ID: inc.ID}}
		switch {
		case d.Decision == "reject":
			if p, err = c.Q.ProposalClose(ctx, c.DB, dbsqlc.ProposalCloseParams{ID: p.ID, Status: "rejected"}); err != nil {
				return err
			}
			out = proposalState(p)
			return c.Record(ctx, "policy_proposal.reject", before, ProposalView(p, inc.Fingerprint), events.Event{
				Domain: events.DomainPolicies, Type: "proposal_rejected", Entity: events.Ref{Type: "proposal", ID: p.ID},
				Related: related, CorrelationID: correlation, Summary: "Policy proposal " + p.ID + " rejected" + comment(d.Comment),
			})
		case approvers(p) < int(p.RequiredApprovals):
			out = proposalState(p)
			return c.Record(ctx, "policy_proposal.approve", before, ProposalView(p, inc.Fingerprint), events.Event{
				Domain: events.DomainPolicies, Type: "proposal_approval_recorded", Entity: events.Ref{Type: "proposal", ID: p.ID},
				Related: related, CorrelationID: correlation,
				Summary: fmt.Sprintf("Approval %d of %d recorded for policy proposal %s%s", approvers(p), p.RequiredApprovals, p.ID, comment(d.Comment)),
			})
		}
		var spec RuleSpec
		_ = json.Unmarshal(p.Rule, &spec)
		tags, _ := json.Marshal(nonNil(spec.Tags))
		rule, err := c.Q.PolicyRuleCreate(ctx, c.DB, dbsqlc.PolicyRuleCreateParams{
			OrgID: p.OrgID, ID: ids.New(ids.Rule), Name: "Prevent " + firstNonEmpty(inc.ErrorCode, inc.Category) + " of incident " + inc.ID,
			Description: p.Rationale, MatchProjectID: spec.ProjectID, MatchAgentID: spec.AgentID, MatchModel: spec.Model,
			MatchFeature: spec.Feature, MatchTags: tags, ErrorSignature: spec.ErrorSignature, Fingerprint: inc.Fingerprint,
			SourceIncidentID: &inc.ID, SourceProposalID: &p.ID, CreatedBy: "proposal " + p.ID,
		})
		if err != nil {
			return err
		}
		if p, err = c.Q.ProposalClose(ctx, c.DB, dbsqlc.ProposalCloseParams{ID: p.ID, Status: "approved", PolicyRuleID: &rule.ID}); err != nil {
			return err
		}
		out = proposalState(p)
		if err := c.Record(ctx, "policy_proposal.approve", before, ProposalView(p, inc.Fingerprint), events.Event{
			Domain: events.DomainPolicies, Type: "proposal_approved", Entity: events.Ref{Type: "proposal", ID: p.ID},
			Related: append(related, events.Ref{Type: "policy_rule", ID: rule.ID}), CorrelationID: correlation,
			Summary: "Policy proposal " + p.ID + " approved" + comment(d.Comment),
		}); err != nil {
			return err
		}
		return c.Record(ctx, "policy_rule.activate", nil, RuleView(rule), events.Event{
			Domain: events.DomainPolicies, Type: "policy_activated", Entity: events.Ref{Type: "policy_rule", ID: rule.ID},
			Related: []events.Ref{{Type: "proposal", ID: p.ID}, {Type: "incident", ID: inc.ID}}, CorrelationID: correlation,
			Summary: "Policy rule " + rule.ID + " active: " + describeSpec(spec),
		})
	})
	return out, err
}

// pendingAlert tells approvers that a proposal waits for them (when created, and once more
// when reminded).
func pendingAlert(ctx context.Context, c *change.Tx, p dbsqlc.PolicyProposal, inc dbsqlc.Incident, transition string) error {
	title := "Policy proposal awaiting approval: " + p.Title
	if transition == "reminder" {
		title = "Reminder: " + title
	}
	_, _, err := alerts.Raise(ctx, c.DB, alerts.Trigger{
		OrgID: p.OrgID, Kind: alerts.KindProposalPending, Severity: "warning",
		DedupeKey: "proposal/" + p.ID + "/" + transition, Title: title,
		Body: p.Rationale + " Approve or reject it with PolicyService.ApproveProposal / RejectProposal (expires " +
			p.ExpiresAt.UTC().Format(time.RFC3339) + ").",
		Entity:  events.Ref{Type: "proposal", ID: p.ID},
		Related: []events.Ref{{Type: "incident", ID: inc.ID}},
		Data:    map[string]any{"incident_id": inc.ID, "expires_at": p.ExpiresAt, "transition": transition},
	})
	if err != nil {
		return fmt.Errorf("raise proposal alert: %w", err)
	}
	return nil
}

func comment(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// recorded reports whether d is already among the proposal's decisions: the same request,
// or the same person (user or operator) making the same decision again.
func recorded(p dbsqlc.PolicyProposal, d lifecycle.ProposalDecision) bool {
	for _, e := range DecisionsOf(p.Decisions) {
		if d.RequestID != "" && e.RequestID == d.RequestID {
			return true
		}
		if e.Decision == d.Decision && e.UserID == d.UserID && e.Operator == d.Operator && (d.UserID != "" || d.Operator != "") {
			return true
		}
	}
	return false
}

// approvers counts distinct approvers (users, or operators acting through Temporal).
func approvers(p dbsqlc.PolicyProposal) int {
	seen := map[string]bool{}
	for _, d := range DecisionsOf(p.Decisions) {
		if d.Decision != "approve" {
			continue
		}
		who := "user:" + d.UserID
		if d.UserID == "" {
			who = "operator:" + d.Operator + d.APIKeyID
		}
		seen[who] = true
	}
	return len(seen)
}

// Remind records that a pending proposal is still waiting (once).
func Remind(ctx context.Context, pool *pgxpool.Pool, proposalID, by string) (*ProposalState, error) {
	return closeOrRemind(ctx, pool, proposalID, by, false)
}

// Expire closes a proposal nobody decided on in time.
func Expire(ctx context.Context, pool *pgxpool.Pool, proposalID, by string) (*ProposalState, error) {
	return closeOrRemind(ctx, pool, proposalID, by, true)
}

func closeOrRemind(ctx context.Context, pool *pgxpool.Pool, proposalID, by string, expire bool) (*ProposalState, error) {
	q := dbsqlc.New()
	p0, err := q.ProposalGetByID(ctx, pool, proposalID)
	if err != nil {
		return nil, err
	}
	var out *ProposalState
	err = change.Run(ctx, pool, change.Scope{OrgID: p0.OrgID, Actor: actor.System(by)}, func(c *change.Tx) error {
		p, err := c.Q.ProposalGetForUpdate(ctx, c.DB, proposalID)
		if err != nil {
			return err
		}
		out = proposalState(p)
		if p.Status != "pending" {
			return nil
		}
		inc, err := c.Q.IncidentGetByID(ctx, c.DB, p.IncidentID)
		if err != nil {
			return err
		}
		ev := events.Event{Domain: events.DomainPolicies, Entity: events.Ref{Type: "proposal", ID: p.ID},
			Related: []events.Ref{{Type: "incident", ID: inc.ID}}, CorrelationID: correlationOf(inc)}
		if !expire {
			n, err := c.Q.ProposalMarkReminded(ctx, c.DB, p.ID)
			if err != nil || n == 0 {
				return err
			}
			out.Reminded = true
			ev.Type = "proposal_reminder"
			ev.Summary = "Policy proposal " + p.ID + " is still waiting for a decision (expires " + p.ExpiresAt.UTC().Format(time.RFC3339) + ")"
			if err = c.Record(ctx, "policy_proposal.remind", nil, map[string]any{"reminded": true, "expires_at": p.ExpiresAt}, ev); err != nil {
				return err
			}
			return pendingAlert(ctx, c, p, inc, "reminder")
		}
		before := ProposalView(p, inc.Fingerprint)
		if p, err = c.Q.ProposalClose(ctx, c.DB, dbsqlc.ProposalCloseParams{ID: p.ID, Status: "expired"}); err != nil {
			return err
		}
		out = proposalState(p)
		ev.Type = "proposal_expired"
		ev.Summary = "Policy proposal " + p.ID + " expired without a decision"
		return c.Record(ctx, "policy_proposal.expire", before, ProposalView(p, inc.Fingerprint), ev)
	})
	return out, err
}
