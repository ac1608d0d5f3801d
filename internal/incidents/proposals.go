package incidents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/money"
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

func dollars(micros int64) string { return money.Dollars(micros) }

func proposalFromCreate(r dbsqlc.ProposalCreateRow) dbsqlc.PolicyProposal {
	return dbsqlc.PolicyProposal{OrgID: r.OrgID, ID: r.ID, IncidentID: r.IncidentID, Status: r.Status, Title: r.Title,
		Rationale: r.Rationale, Rule: r.Rule, RequiredApprovals: r.RequiredApprovals, Decisions: r.Decisions,
		PolicyRuleID: r.PolicyRuleID, RemindAt: r.RemindAt, RemindedAt: r.RemindedAt, ExpiresAt: r.ExpiresAt,
		DecidedAt: r.DecidedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// DecisionScope is the workflow a decision arrived at: its organization and incident, from
// the workflow's own input. A decision about any other proposal changes nothing.
type DecisionScope struct {
	OrgID      string
	IncidentID string
}

// Decider is who a decision is from, as far as whoever applies it can tell.
type Decider struct {
	// UserID and APIKeyID are set only when the API vouched for the user: its signature
	// verified, or the API applying the decision itself.
	UserID   string
	APIKeyID string
	// Operator names whoever sent an unverified decision through Temporal.
	Operator string
	// Unverified says why a user named in the decision was not believed ("" if none was).
	Unverified string
}

// OperatorDecider is the decider of a decision nobody vouched for: the operator who sent
// it, never the user it names. why is the reason a named user was not believed.
func OperatorDecider(d lifecycle.ProposalDecision, why string) Decider {
	return Decider{Operator: clip(firstNonEmpty(d.Operator, "temporal"), 64), Unverified: why}
}

// operatorApprover is how every operator counts towards a quorum: as one approver,
// whatever name each sends, since anyone who can signal a workflow can send any name.
const operatorApprover = "operator"

// Outcome is what became of a decision.
type Outcome struct {
	// State is the proposal after the decision; nil when the decision was not about this
	// workflow's proposal.
	State *ProposalState
	// Refused says why the decision changed nothing ("" when it was applied, or was
	// already on record).
	Refused string
}

// Decide applies one approver's decision to a proposal of the scope's incident. It is
// idempotent: a decision already recorded (same request, or same decider and decision)
// changes nothing. A rejection closes the proposal; approvals from enough distinct
// approvers approve it and activate its rule. Each decision is audited with its decider as
// the actor: the user only when vouched for, else the operator.
//
// A decision changes nothing, and is recorded as a refused decision (an event of the
// scope's organization), when it is about a proposal outside the scope, is neither approve
// nor reject, or comes from a user who may no longer decide: deactivated, no longer an
// approver or admin, or deciding with a key that is revoked, frozen or expired. That is
// checked here, when the decision is applied, not when it was sent.
func Decide(ctx context.Context, pool *pgxpool.Pool, d lifecycle.ProposalDecision, scope DecisionScope, who Decider, by string) (Outcome, error) {
	q := dbsqlc.New()
	d.Comment = clip(d.Comment, 2000)
	if scope.OrgID == "" || scope.IncidentID == "" {
		// Only an activity scheduled by a worker older than scopes has none: refuse rather
		// than guess. The API reports the decision still pending; it can be sent again.
		return Outcome{Refused: "the decision carries no workflow scope"}, nil
	}
	if d.Decision != "approve" && d.Decision != "reject" {
		return refuse(ctx, pool, scope, nil, d, who, by, fmt.Sprintf("decision %q is neither approve nor reject", clip(d.Decision, 32)))
	}
	p0, err := q.ProposalGet(ctx, pool, dbsqlc.ProposalGetParams{OrgID: scope.OrgID, ID: d.ProposalID})
	if errors.Is(err, pgx.ErrNoRows) {
		return refuse(ctx, pool, scope, nil, d, who, by, "the proposal is not one of this organization's")
	}
	if err != nil {
		return Outcome{}, err
	}
	if p0.IncidentID != scope.IncidentID {
		return refuse(ctx, pool, scope, nil, d, who, by, "the proposal is of incident "+p0.IncidentID+", not of this workflow's")
	}
	entry := Decision{Decision: d.Decision, Comment: d.Comment, UserID: who.UserID, APIKeyID: who.APIKeyID,
		Operator: who.Operator, RequestID: d.RequestID, At: time.Now().UTC()}
	if who.UserID == "" && entry.Operator == "" {
		entry.Operator = "temporal"
	}
	actorOf := actor.Actor{Kind: actor.KindAPIKey, APIKeyID: entry.APIKeyID, UserID: entry.UserID}
	if entry.UserID == "" {
		actorOf = actor.System("operator:" + entry.Operator + " via " + by)
	}
	var out Outcome
	err = change.Run(ctx, pool, change.Scope{OrgID: scope.OrgID, Actor: actorOf, RequestID: d.RequestID}, func(c *change.Tx) error {
		p, err := c.Q.ProposalGetForUpdate(ctx, c.DB, d.ProposalID)
		if err != nil {
			return err
		}
		out.State = proposalState(p)
		if p.Status != "pending" || recorded(p, entry) {
			return nil
		}
		if entry.UserID != "" {
			why, err := standing(ctx, c, scope.OrgID, entry)
			if err != nil {
				return err
			}
			if why != "" {
				out.Refused = why
				return emitRefusal(ctx, c, scope, &p, d, who, by, why)
			}
		}
		inc, err := c.Q.IncidentGetByID(ctx, c.DB, p.IncidentID)
		if err != nil {
			return err
		}
		before := ProposalView(p, inc.Fingerprint)
		list, _ := json.Marshal([]Decision{entry})
		if p, err = c.Q.ProposalRecordDecision(ctx, c.DB, dbsqlc.ProposalRecordDecisionParams{ID: p.ID, Decision: list}); err != nil {
			return err
		}
		correlation := correlationOf(inc)
		related := []events.Ref{{Type: "incident", ID: inc.ID}}
		note := comment(d.Comment) + unverifiedNote(d, who)
		switch {
		case d.Decision == "reject":
			if p, err = c.Q.ProposalClose(ctx, c.DB, dbsqlc.ProposalCloseParams{ID: p.ID, Status: "rejected"}); err != nil {
				return err
			}
			out.State = proposalState(p)
			return c.Record(ctx, "policy_proposal.reject", before, ProposalView(p, inc.Fingerprint), events.Event{
				Domain: events.DomainPolicies, Type: "proposal_rejected", Entity: events.Ref{Type: "proposal", ID: p.ID},
				Related: related, CorrelationID: correlation, Summary: "Policy proposal " + p.ID + " rejected" + note,
			})
		case approvers(p) < int(p.RequiredApprovals):
			out.State = proposalState(p)
			return c.Record(ctx, "policy_proposal.approve", before, ProposalView(p, inc.Fingerprint), events.Event{
				Domain: events.DomainPolicies, Type: "proposal_approval_recorded", Entity: events.Ref{Type: "proposal", ID: p.ID},
				Related: related, CorrelationID: correlation,
				Summary: fmt.Sprintf("Approval %d of %d recorded for policy proposal %s%s", approvers(p), p.RequiredApprovals, p.ID, note),
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
		out.State = proposalState(p)
		if err := c.Record(ctx, "policy_proposal.approve", before, ProposalView(p, inc.Fingerprint), events.Event{
			Domain: events.DomainPolicies, Type: "proposal_approved", Entity: events.Ref{Type: "proposal", ID: p.ID},
			Related: append(related, events.Ref{Type: "policy_rule", ID: rule.ID}), CorrelationID: correlation,
			Summary: "Policy proposal " + p.ID + " approved" + note,
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

// standing says why a vouched-for user may not decide now ("" if they may): the user
// must be active and an approver or admin, and decide with an active key of their own.
func standing(ctx context.Context, c *change.Tx, orgID string, e Decision) (string, error) {
	a, err := c.Q.DecisionAuthority(ctx, c.DB, dbsqlc.DecisionAuthorityParams{OrgID: orgID, UserID: e.UserID, ApiKeyID: e.APIKeyID})
	if errors.Is(err, pgx.ErrNoRows) {
		return "user " + e.UserID + " or key " + e.APIKeyID + " is not of this organization", nil
	}
	if err != nil {
		return "", err
	}
	switch {
	case a.KeyUserID == nil || *a.KeyUserID != e.UserID:
		return "key " + e.APIKeyID + " is not user " + e.UserID + "'s", nil
	case a.UserDeactivatedAt != nil:
		return "user " + e.UserID + " is deactivated", nil
	case a.UserRole != authz.RoleApprover && a.UserRole != authz.RoleAdmin:
		return "user " + e.UserID + " is now " + a.UserRole + ", not an approver or admin", nil
	case a.KeyStatus != "active":
		return "key " + e.APIKeyID + " is " + a.KeyStatus, nil
	case a.KeyExpiresAt != nil && !a.KeyExpiresAt.After(time.Now()):
		return "key " + e.APIKeyID + " has expired", nil
	}
	return "", nil
}

// refuse records, in a transaction of its own, that a decision was not applied.
func refuse(ctx context.Context, pool *pgxpool.Pool, scope DecisionScope, p *dbsqlc.PolicyProposal, d lifecycle.ProposalDecision, who Decider, by, why string) (Outcome, error) {
	err := change.Run(ctx, pool, change.Scope{OrgID: scope.OrgID, Actor: actor.System(by), RequestID: clip(d.RequestID, 128)}, func(c *change.Tx) error {
		return emitRefusal(ctx, c, scope, p, d, who, by, why)
	})
	return Outcome{Refused: why}, err
}

// emitRefusal writes the event of a refused decision in the scope's organization: about
// the proposal when it is this workflow's, else about the workflow's incident (a foreign
// proposal is named only in the event's data, never linked).
func emitRefusal(ctx context.Context, c *change.Tx, scope DecisionScope, p *dbsqlc.PolicyProposal, d lifecycle.ProposalDecision, who Decider, by, why string) error {
	ev := events.Event{Domain: events.DomainPolicies, Type: "proposal_decision_refused", Actor: actor.System(by),
		Entity: events.Ref{Type: "incident", ID: scope.IncidentID}, CorrelationID: scope.IncidentID,
		Summary: fmt.Sprintf("A decision (%s) on proposal %s sent to the workflow of incident %s was not applied: %s",
			clip(d.Decision, 32), clip(d.ProposalID, 64), scope.IncidentID, why),
		Data: map[string]any{"proposal_id": clip(d.ProposalID, 64), "decision": clip(d.Decision, 32), "reason": why,
			"user_id": clip(d.UserID, 64), "api_key_id": clip(d.APIKeyID, 64), "operator": clip(d.Operator, 64),
			"request_id": clip(d.RequestID, 128), "verified": who.UserID != "", "unverified_because": who.Unverified},
	}
	if p != nil {
		ev.Entity, ev.Related = events.Ref{Type: "proposal", ID: p.ID}, []events.Ref{{Type: "incident", ID: p.IncidentID}}
	}
	_, err := c.Emit(ctx, ev)
	return err
}

// unverifiedNote tells the ledger's reader that a decision named a user it was not
// recorded as.
func unverifiedNote(d lifecycle.ProposalDecision, who Decider) string {
	if who.UserID != "" || (d.UserID == "" && d.APIKeyID == "") {
		return ""
	}
	return fmt.Sprintf(" (by operator %s; it named user %q, not believed: %s)", who.Operator, clip(d.UserID, 64), firstNonEmpty(who.Unverified, "not signed by the API"))
}

// clip bounds a string that came from a signal (anyone with Temporal access can send any
// size) before it is stored or shown.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
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

// recorded reports whether e is already among the proposal's decisions: the same
// request, or the same decider (user or operator) making the same decision again.
func recorded(p dbsqlc.PolicyProposal, e Decision) bool {
	for _, x := range DecisionsOf(p.Decisions) {
		if e.RequestID != "" && x.RequestID == e.RequestID {
			return true
		}
		if x.Decision == e.Decision && x.UserID == e.UserID && x.Operator == e.Operator && (e.UserID != "" || e.Operator != "") {
			return true
		}
	}
	return false
}

// approvers counts distinct approvers: each user once, and every operator together once.
func approvers(p dbsqlc.PolicyProposal) int {
	seen := map[string]bool{}
	for _, d := range DecisionsOf(p.Decisions) {
		if d.Decision != "approve" {
			continue
		}
		who := operatorApprover
		if d.UserID != "" {
			who = "user:" + d.UserID
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
