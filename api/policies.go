package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"connectrpc.com/connect"
	"go.temporal.io/api/serviceerror"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/idempotency"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
)

type policyService struct{ *Server }

func (s *policyService) proposalView(ctx context.Context, conn dbsqlc.DBTX, p dbsqlc.PolicyProposal) (*v1.PolicyProposal, error) {
	inc, err := q.IncidentGetByID(ctx, conn, p.IncidentID)
	if err != nil {
		return nil, err
	}
	return incidents.ProposalView(p, inc.Fingerprint), nil
}

func (s *policyService) ListProposals(ctx context.Context, req *connect.Request[v1.ListProposalsRequest]) (*connect.Response[v1.ListProposalsResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	statuses := []string{}
	for _, st := range req.Msg.Statuses {
		statuses = append(statuses, incidents.ProposalStatusName(st))
	}
	bt, bid := beforeCursor(cur, req.Msg.PageToken)
	rows, err := q.ProposalList(ctx, s.pool, dbsqlc.ProposalListParams{OrgID: principal(ctx).OrgID, Statuses: statuses, BeforeTime: bt, BeforeID: bid, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListProposalsResponse{}
	for _, p := range rows {
		v, err := s.proposalView(ctx, s.pool, p)
		if err != nil {
			return nil, err
		}
		out.Proposals = append(out.Proposals, v)
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{Time: last.CreatedAt.UnixMicro(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}

func (s *policyService) GetProposal(ctx context.Context, req *connect.Request[v1.GetProposalRequest]) (*connect.Response[v1.GetProposalResponse], error) {
	p, err := q.ProposalGet(ctx, s.pool, dbsqlc.ProposalGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "proposal %s not found", req.Msg.Id)
	}
	v, err := s.proposalView(ctx, s.pool, p)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetProposalResponse{Proposal: v}), nil
}

// decisionWait bounds how long ApproveProposal waits for the workflow to apply a decision.
const decisionWait = 15 * time.Second

// decide sends an approver's decision to the incident's workflow as a signal, exactly as
// an operator would with `temporal workflow signal`, and waits until the workflow has
// applied it (the decision is recorded under this request's id). The API signs the
// decision, so the worker can tell the user it names really decided (anyone who can reach
// Temporal can send an unsigned one, which counts as the operator's). If the workflow no
// longer runs, the decision is applied here, through the same code.
func (s *policyService) decide(ctx context.Context, req connect.AnyRequest, id, decision, comment string) (*v1.PolicyProposal, error) {
	p := principal(ctx)
	if p.UserID == "" {
		return nil, permissionDenied("approving or rejecting a proposal takes a user's key")
	}
	prop, err := q.ProposalGet(ctx, s.pool, dbsqlc.ProposalGetParams{OrgID: p.OrgID, ID: id})
	if err != nil {
		return nil, notFoundOr(err, "proposal %s not found", id)
	}
	inc, err := q.IncidentGetByID(ctx, s.pool, prop.IncidentID)
	if err != nil {
		return nil, err
	}
	if prop.Status != "pending" {
		if already(prop, p.UserID, decision) {
			return incidents.ProposalView(prop, inc.Fingerprint), nil // a retry of a decision that closed it
		}
		return nil, failedPrecondition("proposal %s is %s", id, prop.Status)
	}
	requestID := req.Header().Get(idempotency.Header)
	if requestID == "" {
		requestID = actor.RequestID(ctx)
	}
	d := lifecycle.ProposalDecision{ProposalID: id, Decision: decision, Comment: comment, UserID: p.UserID, APIKeyID: p.APIKeyID, RequestID: requestID}
	if s.opts.Temporal == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("this server has no Temporal connection to carry the decision"))
	}
	if s.opts.SignalKeys.Empty() {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("this server has no signal key (GOVERNOR_SIGNAL_KEY) to sign the decision with"))
	}
	if err := lifecycle.SignDecision(s.opts.SignalKeys, p.OrgID, prop.IncidentID, &d, time.Now()); err != nil {
		return nil, err
	}
	err = s.opts.Temporal.SignalWorkflow(ctx, lifecycle.IncidentWorkflowID(inc.Fingerprint), "", lifecycle.SignalProposalDecision, d)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		scope := incidents.DecisionScope{OrgID: p.OrgID, IncidentID: prop.IncidentID}
		if _, err := incidents.Decide(ctx, s.pool, d, scope, incidents.Decider{UserID: p.UserID, APIKeyID: p.APIKeyID}, "api"); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	deadline := time.Now().Add(decisionWait)
	for {
		cur, err := q.ProposalGet(ctx, s.pool, dbsqlc.ProposalGetParams{OrgID: p.OrgID, ID: id})
		if err != nil {
			return nil, err
		}
		if cur.Status != "pending" || hasRequest(cur, p.UserID, requestID) || already(cur, p.UserID, decision) || time.Now().After(deadline) {
			return incidents.ProposalView(cur, inc.Fingerprint), nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// hasRequest reports whether the user's decision of this request is on record (an
// operator's decision naming the same request id is not theirs).
func hasRequest(p dbsqlc.PolicyProposal, userID, requestID string) bool {
	for _, d := range incidents.DecisionsOf(p.Decisions) {
		if d.RequestID == requestID && d.UserID == userID {
			return true
		}
	}
	return false
}

func already(p dbsqlc.PolicyProposal, userID, decision string) bool {
	for _, d := range incidents.DecisionsOf(p.Decisions) {
		if d.UserID == userID && d.Decision == decision {
			return true
		}
	}
	return false
}

func (s *policyService) ApproveProposal(ctx context.Context, req *connect.Request[v1.ApproveProposalRequest]) (*connect.Response[v1.ApproveProposalResponse], error) {
	v, err := s.decide(ctx, req, req.Msg.Id, "approve", req.Msg.Comment)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.ApproveProposalResponse{Proposal: v}), nil
}

func (s *policyService) RejectProposal(ctx context.Context, req *connect.Request[v1.RejectProposalRequest]) (*connect.Response[v1.RejectProposalResponse], error) {
	v, err := s.decide(ctx, req, req.Msg.Id, "reject", req.Msg.Comment)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RejectProposalResponse{Proposal: v}), nil
}

func (s *policyService) CreatePolicyRule(ctx context.Context, req *connect.Request[v1.CreatePolicyRuleRequest]) (*connect.Response[v1.CreatePolicyRuleResponse], error) {
	m := req.Msg
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreatePolicyRuleResponse, error) {
		if m.Match.ProjectId != "" {
			if _, err := c.Q.ProjectGet(ctx, c.DB, dbsqlc.ProjectGetParams{OrgID: c.OrgID, ID: m.Match.ProjectId}); err != nil {
				return nil, notFoundOr(err, "match.project_id: project %s not found", m.Match.ProjectId)
			}
		}
		if m.Match.AgentId != "" {
			if _, err := c.Q.AgentGet(ctx, c.DB, dbsqlc.AgentGetParams{OrgID: c.OrgID, ID: m.Match.AgentId}); err != nil {
				return nil, notFoundOr(err, "match.agent_id: agent %s not found", m.Match.AgentId)
			}
		}
		tags := m.Match.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		tagJSON, _ := json.Marshal(tags)
		r, err := c.Q.PolicyRuleCreate(ctx, c.DB, dbsqlc.PolicyRuleCreateParams{
			OrgID: c.OrgID, ID: ids.New(ids.Rule), Name: m.Name, Description: m.Description, MatchProjectID: m.Match.ProjectId,
			MatchAgentID: m.Match.AgentId, MatchModel: m.Match.Model, MatchFeature: m.Match.Feature, MatchTags: tagJSON,
			CreatedBy: c.Actor.UserID,
		})
		if err != nil {
			return nil, err
		}
		out := incidents.RuleView(r)
		err = c.Record(ctx, "policy_rule.create", nil, out, events.Event{
			Domain: events.DomainPolicies, Type: "policy_activated", Entity: entity("policy_rule", r.ID),
			Summary: "Policy rule " + r.Name + " created and active",
		})
		return &v1.CreatePolicyRuleResponse{Rule: out}, err
	})
}

func (s *policyService) GetPolicyRule(ctx context.Context, req *connect.Request[v1.GetPolicyRuleRequest]) (*connect.Response[v1.GetPolicyRuleResponse], error) {
	r, err := q.PolicyRuleGet(ctx, s.pool, dbsqlc.PolicyRuleGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "policy rule %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetPolicyRuleResponse{Rule: incidents.RuleView(r)}), nil
}

func (s *policyService) ListPolicyRules(ctx context.Context, req *connect.Request[v1.ListPolicyRulesRequest]) (*connect.Response[v1.ListPolicyRulesResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	rows, err := q.PolicyRuleList(ctx, s.pool, dbsqlc.PolicyRuleListParams{OrgID: principal(ctx).OrgID,
		Status: incidents.RuleStatusName(req.Msg.Status), AfterID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListPolicyRulesResponse{}
	for _, r := range rows {
		out.Rules = append(out.Rules, incidents.RuleView(r))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *policyService) DisablePolicyRule(ctx context.Context, req *connect.Request[v1.DisablePolicyRuleRequest]) (*connect.Response[v1.DisablePolicyRuleResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.DisablePolicyRuleResponse, error) {
		before, err := c.Q.PolicyRuleGetForUpdate(ctx, c.DB, dbsqlc.PolicyRuleGetForUpdateParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, notFoundOr(err, "policy rule %s not found", req.Msg.Id)
		}
		if before.Status == "disabled" {
			return &v1.DisablePolicyRuleResponse{Rule: incidents.RuleView(before)}, nil
		}
		after, err := c.Q.PolicyRuleDisable(ctx, c.DB, dbsqlc.PolicyRuleDisableParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, err
		}
		out := incidents.RuleView(after)
		err = c.Record(ctx, "policy_rule.disable", incidents.RuleView(before), out, events.Event{
			Domain: events.DomainPolicies, Type: "policy_disabled", Entity: entity("policy_rule", after.ID),
			Summary: "Policy rule " + after.Name + " disabled" + reason(req.Msg.Reason),
		})
		return &v1.DisablePolicyRuleResponse{Rule: out}, err
	})
}

func (s *policyService) GetPolicyEffectiveness(ctx context.Context, req *connect.Request[v1.GetPolicyEffectivenessRequest]) (*connect.Response[v1.GetPolicyEffectivenessResponse], error) {
	org := principal(ctx).OrgID
	r, err := q.PolicyRuleGet(ctx, s.pool, dbsqlc.PolicyRuleGetParams{OrgID: org, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "policy rule %s not found", req.Msg.Id)
	}
	e, err := q.PolicyEffectiveness(ctx, s.pool, dbsqlc.PolicyEffectivenessParams{OrgID: org, ID: r.ID})
	if err != nil {
		return nil, err
	}
	saved := e.CostSaved
	if r.SourceIncidentID != nil && e.WithoutEstimate > 0 {
		// Prevented runs without an estimate are valued at what the failures cost on average.
		impact, err := q.IncidentCostImpact(ctx, s.pool, dbsqlc.IncidentCostImpactParams{OrgID: org, ID: *r.SourceIncidentID})
		if err != nil {
			return nil, err
		}
		saved += e.WithoutEstimate * impact.AvgCostMicros
	}
	out := &v1.GetPolicyEffectivenessResponse{
		RuleId: r.ID, RunsPrevented: e.RunsPrevented, EstimatedCostSavedMicros: saved,
		IncidentsSinceActivation: e.IncidentsSince, FailuresSinceActivation: e.FailuresSince, ActivateTime: ts(r.ActivatedAt),
	}
	if e.RunsPrevented > 0 {
		out.LastPreventedTime = ts(e.LastPreventedAt)
	}
	return connect.NewResponse(out), nil
}
