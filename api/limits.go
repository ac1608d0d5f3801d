package api

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/pricing"
	"github.com/governor-hq/governor/internal/runs"
)

type limitService struct{ *Server }

// Enum mappings between the API and the stored words.
var (
	scopeNames = map[v1.LimitScope]string{
		v1.LimitScope_LIMIT_SCOPE_ORGANIZATION: limits.ScopeOrganization, v1.LimitScope_LIMIT_SCOPE_PROJECT: limits.ScopeProject,
		v1.LimitScope_LIMIT_SCOPE_AGENT: limits.ScopeAgent, v1.LimitScope_LIMIT_SCOPE_API_KEY: limits.ScopeAPIKey,
	}
	metricNames = map[v1.LimitMetric]string{
		v1.LimitMetric_LIMIT_METRIC_COST: limits.MetricCost, v1.LimitMetric_LIMIT_METRIC_TOKENS: limits.MetricTokens,
		v1.LimitMetric_LIMIT_METRIC_RUNS: limits.MetricRuns, v1.LimitMetric_LIMIT_METRIC_REQUESTS: limits.MetricRequests,
	}
	windowNames = map[v1.LimitWindow]string{
		v1.LimitWindow_LIMIT_WINDOW_MINUTE: limits.WindowMinute, v1.LimitWindow_LIMIT_WINDOW_HOUR: limits.WindowHour,
		v1.LimitWindow_LIMIT_WINDOW_DAY: limits.WindowDay, v1.LimitWindow_LIMIT_WINDOW_WEEK: limits.WindowWeek,
		v1.LimitWindow_LIMIT_WINDOW_MONTH: limits.WindowMonth,
	}
	enforcementNames = map[v1.LimitEnforcement]string{
		v1.LimitEnforcement_LIMIT_ENFORCEMENT_BLOCK: limits.Block, v1.LimitEnforcement_LIMIT_ENFORCEMENT_WARN: limits.Warn,
	}
	inheritanceNames = map[v1.LimitInheritance]string{
		v1.LimitInheritance_LIMIT_INHERITANCE_INHERIT: limits.Inherit, v1.LimitInheritance_LIMIT_INHERITANCE_OVERRIDE: limits.Override,
		v1.LimitInheritance_LIMIT_INHERITANCE_MERGE: limits.Merge,
	}
	verdictNames = map[string]v1.CheckVerdict{
		limits.Within: v1.CheckVerdict_CHECK_VERDICT_WITHIN, limits.Blocked: v1.CheckVerdict_CHECK_VERDICT_BLOCKED,
		limits.Warned: v1.CheckVerdict_CHECK_VERDICT_WARNED,
	}
)

// invert flips an enum mapping.
func invert[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

var (
	scopeEnums       = invert(scopeNames)
	metricEnums      = invert(metricNames)
	windowEnums      = invert(windowNames)
	enforcementEnums = invert(enforcementNames)
	inheritanceEnums = invert(inheritanceNames)
)

func limitProto(l dbsqlc.Limit) *v1.Limit {
	return &v1.Limit{
		Id: l.ID, Name: l.Name, Scope: &v1.LimitScopeRef{Type: scopeEnums[l.ScopeType], Id: l.ScopeID},
		Model: l.Model, Feature: l.Feature, Metric: metricEnums[l.Metric], Window: windowEnums[l.WindowKind],
		Amount: l.Amount, Enforcement: enforcementEnums[l.Enforcement], AlertThresholdsPercent: l.Thresholds,
		Inheritance: inheritanceEnums[l.Inheritance], Priority: l.Priority, Enabled: l.Enabled,
		CreateTime: ts(l.CreatedAt), UpdateTime: ts(l.UpdatedAt),
	}
}

func limitProtoFrom(l limits.Limit) *v1.Limit {
	return &v1.Limit{
		Id: l.ID, Name: l.Name, Scope: &v1.LimitScopeRef{Type: scopeEnums[l.ScopeType], Id: l.ScopeID},
		Model: l.Model, Feature: l.Feature, Metric: metricEnums[l.Metric], Window: windowEnums[l.Window],
		Amount: l.Amount, Enforcement: enforcementEnums[l.Enforcement], AlertThresholdsPercent: l.Thresholds,
		Inheritance: inheritanceEnums[l.Inheritance], Priority: l.Priority, Enabled: true,
	}
}

func checkProto(c runs.CheckRecord) *v1.LimitCheck {
	return &v1.LimitCheck{
		LimitId: c.LimitID, LimitName: c.LimitName, Scope: &v1.LimitScopeRef{Type: scopeEnums[c.ScopeType], Id: c.ScopeID},
		Metric: metricEnums[c.Metric], Window: windowEnums[c.Window], Enforcement: enforcementEnums[c.Enforcement],
		WindowStart: ts(c.WindowStart), ResetTime: ts(c.ResetTime), Limit: c.Limit, Used: c.Used, Reserved: c.Reserved,
		Requested: c.Requested, Remaining: c.Remaining, Verdict: verdictNames[c.Verdict], Model: c.Model, Feature: c.Feature,
	}
}

func checksProto(cs []runs.CheckRecord) []*v1.LimitCheck {
	out := make([]*v1.LimitCheck, 0, len(cs))
	for _, c := range cs {
		out = append(out, checkProto(c))
	}
	return out
}

// scopeTarget checks that a limit's scope names an object of the caller's organization
// and returns its id.
func scopeTarget(ctx context.Context, c *change.Tx, scope *v1.LimitScopeRef) (string, error) {
	switch scope.Type {
	case v1.LimitScope_LIMIT_SCOPE_ORGANIZATION:
		return c.OrgID, nil
	case v1.LimitScope_LIMIT_SCOPE_PROJECT:
		if _, err := c.Q.ProjectGet(ctx, c.DB, dbsqlc.ProjectGetParams{OrgID: c.OrgID, ID: scope.Id}); err != nil {
			return "", notFoundOr(err, "scope.id: project %q not found", scope.Id)
		}
	case v1.LimitScope_LIMIT_SCOPE_AGENT:
		if _, err := c.Q.AgentGet(ctx, c.DB, dbsqlc.AgentGetParams{OrgID: c.OrgID, ID: scope.Id}); err != nil {
			return "", notFoundOr(err, "scope.id: agent %q not found", scope.Id)
		}
	case v1.LimitScope_LIMIT_SCOPE_API_KEY:
		if _, err := c.Q.ApiKeyGet(ctx, c.DB, dbsqlc.ApiKeyGetParams{OrgID: c.OrgID, ID: scope.Id}); err != nil {
			return "", notFoundOr(err, "scope.id: API key %q not found", scope.Id)
		}
	}
	return scope.Id, nil
}

func limitEvent(l dbsqlc.Limit, typ, summary string) events.Event {
	related := []events.Ref{}
	if l.ScopeType != limits.ScopeOrganization {
		related = append(related, entity(l.ScopeType, l.ScopeID))
	}
	return events.Event{Domain: events.DomainLimits, Type: typ, Entity: entity("limit", l.ID), Related: related, Summary: summary}
}

func describeLimit(l dbsqlc.Limit) string {
	amount := formatAmount(l.Metric, l.Amount)
	s := l.WindowKind + " " + l.Metric + " limit of " + amount + " on " + l.ScopeType + " " + l.ScopeID
	if l.Model != "" {
		s += " (model " + l.Model + ")"
	}
	if l.Feature != "" {
		s += " (feature " + l.Feature + ")"
	}
	return s
}

func formatAmount(metric string, amount int64) string { return runs.Amount(metric, amount) }

func (s *limitService) CreateLimit(ctx context.Context, req *connect.Request[v1.CreateLimitRequest]) (*connect.Response[v1.CreateLimitResponse], error) {
	m := req.Msg
	if m.Scope.Type != v1.LimitScope_LIMIT_SCOPE_ORGANIZATION && m.Scope.Id == "" {
		return nil, invalidField("scope.id", "scope.id.required", "required for a %s limit", scopeNames[m.Scope.Type])
	}
	thresholds := m.AlertThresholdsPercent
	if len(thresholds) == 0 {
		thresholds = []int32{80, 90, 100}
	}
	enforcement := enforcementNames[m.Enforcement]
	if enforcement == "" {
		enforcement = limits.Block
	}
	inheritance := inheritanceNames[m.Inheritance]
	if inheritance == "" {
		inheritance = limits.Merge
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreateLimitResponse, error) {
		scopeID, err := scopeTarget(ctx, c, m.Scope)
		if err != nil {
			return nil, err
		}
		l, err := c.Q.LimitCreate(ctx, c.DB, dbsqlc.LimitCreateParams{
			OrgID: c.OrgID, ID: ids.New(ids.Limit), Name: m.Name, ScopeType: scopeNames[m.Scope.Type], ScopeID: scopeID,
			Model: m.Model, Feature: m.Feature, Metric: metricNames[m.Metric], WindowKind: windowNames[m.Window],
			Amount: m.Amount, Enforcement: enforcement, Thresholds: thresholds, Inheritance: inheritance, Priority: m.Priority,
		})
		if err != nil {
			return nil, err
		}
		out := limitProto(l)
		err = c.Record(ctx, "limit.create", nil, out, limitEvent(l, "limit_created", "Limit created: "+describeLimit(l)))
		return &v1.CreateLimitResponse{Limit: out}, err
	})
}

func (s *limitService) GetLimit(ctx context.Context, req *connect.Request[v1.GetLimitRequest]) (*connect.Response[v1.GetLimitResponse], error) {
	l, err := q.LimitGet(ctx, s.pool, dbsqlc.LimitGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "limit %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetLimitResponse{Limit: limitProto(l)}), nil
}

func (s *limitService) ListLimits(ctx context.Context, req *connect.Request[v1.ListLimitsRequest]) (*connect.Response[v1.ListLimitsResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	p := dbsqlc.LimitListParams{OrgID: principal(ctx).OrgID, AfterID: cur.ID, Max: size + 1}
	if sc := req.Msg.Scope; sc != nil {
		p.ScopeType = scopeNames[sc.Type]
		p.ScopeID = sc.Id
		if sc.Type == v1.LimitScope_LIMIT_SCOPE_ORGANIZATION {
			p.ScopeID = p.OrgID
		}
	}
	rows, err := q.LimitList(ctx, s.pool, p)
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListLimitsResponse{}
	for _, l := range rows {
		out.Limits = append(out.Limits, limitProto(l))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *limitService) UpdateLimit(ctx context.Context, req *connect.Request[v1.UpdateLimitRequest]) (*connect.Response[v1.UpdateLimitResponse], error) {
	m := req.Msg
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateLimitResponse, error) {
		before, err := c.Q.LimitGetForUpdate(ctx, c.DB, dbsqlc.LimitGetForUpdateParams{OrgID: c.OrgID, ID: m.Id})
		if err != nil {
			return nil, notFoundOr(err, "limit %s not found", m.Id)
		}
		p := dbsqlc.LimitUpdateParams{OrgID: c.OrgID, ID: m.Id, Name: m.Name, Amount: m.Amount, Priority: m.Priority, Enabled: m.Enabled}
		if m.Enforcement != nil {
			e := enforcementNames[m.GetEnforcement()]
			p.Enforcement = &e
		}
		if m.Inheritance != nil {
			i := inheritanceNames[m.GetInheritance()]
			p.Inheritance = &i
		}
		if m.SetAlertThresholds {
			p.Thresholds = m.AlertThresholdsPercent
			if p.Thresholds == nil {
				p.Thresholds = []int32{}
			}
		}
		after, err := c.Q.LimitUpdate(ctx, c.DB, p)
		if err != nil {
			return nil, err
		}
		out := limitProto(after)
		summary := "Limit updated: " + describeLimit(after)
		if before.Amount != after.Amount {
			summary += " (was " + formatAmount(before.Metric, before.Amount) + ")"
		}
		err = c.Record(ctx, "limit.update", limitProto(before), out, limitEvent(after, "limit_updated", summary))
		return &v1.UpdateLimitResponse{Limit: out}, err
	})
}

func (s *limitService) DeleteLimit(ctx context.Context, req *connect.Request[v1.DeleteLimitRequest]) (*connect.Response[v1.DeleteLimitResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.DeleteLimitResponse, error) {
		before, err := c.Q.LimitGetForUpdate(ctx, c.DB, dbsqlc.LimitGetForUpdateParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, notFoundOr(err, "limit %s not found", req.Msg.Id)
		}
		if _, err := c.Q.LimitDelete(ctx, c.DB, dbsqlc.LimitDeleteParams{OrgID: c.OrgID, ID: req.Msg.Id}); err != nil {
			return nil, err
		}
		err = c.Record(ctx, "limit.delete", limitProto(before), nil, limitEvent(before, "limit_deleted", "Limit deleted: "+describeLimit(before)))
		return &v1.DeleteLimitResponse{}, err
	})
}

func runsError(err error) error {
	var fe *runs.FieldError
	var ue *runs.UnpricedModelError
	switch {
	case errors.As(err, &fe):
		return invalidField(fe.Field, "governor.bounds", "%s", fe.Msg)
	case errors.As(err, &ue):
		cerr := connect.NewError(connect.CodeFailedPrecondition, ue)
		if d, derr := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: "MODEL_UNPRICED", Domain: "governor",
			Metadata: map[string]string{"model": ue.Model, "limit_id": ue.LimitID, "field": ue.Field}}); derr == nil {
			cerr.AddDetail(d)
		}
		return cerr
	case errors.Is(err, runs.ErrAgentNotFound):
		return notFound("agent_id: agent not found")
	case errors.Is(err, runs.ErrNotPermitted):
		return permissionDenied("%v", err)
	case errors.Is(err, runs.ErrRunNotFound):
		return notFound("run not found")
	case errors.Is(err, runs.ErrClientRunIDReused):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, runs.ErrConflictingReport):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, runs.ErrCountersBusy):
		cerr := connect.NewError(connect.CodeUnavailable, err)
		if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)}); derr == nil {
			cerr.AddDetail(d)
		}
		cerr.Meta().Set("Retry-After", "1")
		return cerr
	case errors.Is(err, runs.ErrRunNotActive), errors.Is(err, runs.ErrNotDeadLettered):
		return failedPrecondition("%v", err)
	}
	return err
}

func (s *limitService) prospect(ctx context.Context, agentID, keyID, model, feature string, e *v1.Estimate) runs.Prospect {
	p := principal(ctx)
	if keyID == "" {
		keyID = p.APIKeyID
	}
	return runs.Prospect{OrgID: p.OrgID, AgentID: agentID, APIKeyID: keyID, Model: model, Feature: feature,
		Estimate: runs.Estimate{CostMicros: e.GetCostMicros(), InputTokens: e.GetInputTokens(), OutputTokens: e.GetOutputTokens()}}
}

// boundTo keeps an ingest key to what it may act for. A key bound to a project (or an
// agent) reads the limits and usage of that project's (agent's) runs only, and any ingest
// key reads them as itself, never as another key: another project's budgets and spend, or
// another key's, are not its business. Refusals are PermissionDenied, as AdmitRun's are
// for the same agent (the agent is the organization's, so its existence is no secret from
// the organization's keys); an agent of no project of the organization is NotFound. User
// keys read everything of their organization anyway.
func (s *limitService) boundTo(ctx context.Context, agentID, keyID string) error {
	p := principal(ctx)
	if p.Role != authz.RoleIngest {
		return nil
	}
	if keyID != "" && keyID != p.APIKeyID {
		return permissionDenied("api_key_id: an ingest key reads limits as itself, not as key %s", keyID)
	}
	ag, err := q.AgentGet(ctx, s.pool, dbsqlc.AgentGetParams{OrgID: p.OrgID, ID: agentID})
	if err != nil {
		return notFoundOr(err, "agent_id: agent %s not found", agentID)
	}
	if !p.MayActForAgent(ag.ProjectID, ag.ID) {
		return permissionDenied("agent_id: %v (it is bound to %s)", runs.ErrNotPermitted, binding(p))
	}
	return nil
}

func binding(p authz.Principal) string {
	if p.AgentID != "" {
		return "agent " + p.AgentID
	}
	return "project " + p.ProjectID
}

func (s *limitService) GetEffectiveLimits(ctx context.Context, req *connect.Request[v1.GetEffectiveLimitsRequest]) (*connect.Response[v1.GetEffectiveLimitsResponse], error) {
	m := req.Msg
	if err := s.boundTo(ctx, m.AgentId, m.ApiKeyId); err != nil {
		return nil, err
	}
	eff, res, err := runs.Effective(ctx, s.pool, s.prospect(ctx, m.AgentId, m.ApiKeyId, m.Model, m.Feature, nil))
	if err != nil {
		return nil, runsError(err)
	}
	out := &v1.GetEffectiveLimitsResponse{}
	for _, l := range eff {
		out.Effective = append(out.Effective, limitProtoFrom(l))
	}
	for _, r := range res {
		out.Resolutions = append(out.Resolutions, &v1.LimitResolution{Limit: limitProtoFrom(r.Limit), Effective: r.Effective, Reason: r.Reason})
	}
	return connect.NewResponse(out), nil
}

func (s *limitService) CheckLimits(ctx context.Context, req *connect.Request[v1.CheckLimitsRequest]) (*connect.Response[v1.CheckLimitsResponse], error) {
	m := req.Msg
	if err := s.boundTo(ctx, m.AgentId, m.ApiKeyId); err != nil {
		return nil, err
	}
	d, err := runs.Check(ctx, s.pool, s.prospect(ctx, m.AgentId, m.ApiKeyId, m.Model, m.Feature, m.Estimate))
	if err != nil {
		return nil, runsError(err)
	}
	out := &v1.CheckLimitsResponse{Verdict: v1.CheckVerdict_CHECK_VERDICT_WITHIN, Checks: checksProto(runs.Records(d.Checks))}
	if !d.Admitted() {
		out.Verdict = v1.CheckVerdict_CHECK_VERDICT_BLOCKED
	} else if len(d.Warnings) > 0 {
		out.Verdict = v1.CheckVerdict_CHECK_VERDICT_WARNED
	}
	return connect.NewResponse(out), nil
}

func (s *limitService) ListModelPrices(ctx context.Context, _ *connect.Request[v1.ListModelPricesRequest]) (*connect.Response[v1.ListModelPricesResponse], error) {
	rows, err := q.ModelPriceList(ctx, s.pool, principal(ctx).OrgID)
	if err != nil {
		return nil, err
	}
	out := &v1.ListModelPricesResponse{}
	custom := map[string]bool{}
	for _, r := range rows {
		custom[r.Model] = true
		out.Prices = append(out.Prices, priceProto(r))
	}
	for _, m := range pricing.DefaultModels() {
		if custom[m] {
			continue
		}
		p := pricing.Defaults[m]
		x := pricing.DefaultExtras[m]
		out.Prices = append(out.Prices, &v1.ModelPrice{Model: m, InputMicrosPerMillionTokens: p.InputPerMTok, OutputMicrosPerMillionTokens: p.OutputPerMTok,
			CacheReadMicrosPerMillionTokens: x.CacheReadPerMTok, CacheWriteMicrosPerMillionTokens: x.CacheWritePerMTok,
			ReasoningMicrosPerMillionTokens: x.ReasoningPerMTok})
	}
	return connect.NewResponse(out), nil
}

func priceProto(r dbsqlc.ModelPrice) *v1.ModelPrice {
	return &v1.ModelPrice{Model: r.Model, InputMicrosPerMillionTokens: r.InputMicrosPerMtok,
		OutputMicrosPerMillionTokens: r.OutputMicrosPerMtok, Custom: true, UpdateTime: ts(r.UpdatedAt),
		CacheReadMicrosPerMillionTokens: r.CacheReadMicrosPerMtok, CacheWriteMicrosPerMillionTokens: r.CacheWriteMicrosPerMtok,
		ReasoningMicrosPerMillionTokens: r.ReasoningMicrosPerMtok}
}

func (s *limitService) SetModelPrice(ctx context.Context, req *connect.Request[v1.SetModelPriceRequest]) (*connect.Response[v1.SetModelPriceResponse], error) {
	m := req.Msg
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.SetModelPriceResponse, error) {
		var before any
		if old, err := c.Q.ModelPriceGet(ctx, c.DB, dbsqlc.ModelPriceGetParams{OrgID: c.OrgID, Model: m.Model}); err == nil {
			before = priceProto(old)
		}
		r, err := c.Q.ModelPriceUpsert(ctx, c.DB, dbsqlc.ModelPriceUpsertParams{
			OrgID: c.OrgID, Model: m.Model, InputMicrosPerMtok: m.InputMicrosPerMillionTokens, OutputMicrosPerMtok: m.OutputMicrosPerMillionTokens,
			CacheReadMicrosPerMtok: m.CacheReadMicrosPerMillionTokens, CacheWriteMicrosPerMtok: m.CacheWriteMicrosPerMillionTokens,
			ReasoningMicrosPerMtok: m.ReasoningMicrosPerMillionTokens,
		})
		if err != nil {
			return nil, err
		}
		out := priceProto(r)
		err = c.Record(ctx, "model_price.set", before, out, events.Event{
			Domain: events.DomainLimits, Type: "model_price_set", Entity: entity("model_price", m.Model),
			Summary: "Price of " + m.Model + " set to " + runs.Dollars(m.InputMicrosPerMillionTokens) + " / " +
				runs.Dollars(m.OutputMicrosPerMillionTokens) + " per million input / output tokens",
		})
		return &v1.SetModelPriceResponse{Price: out}, err
	})
}

func (s *limitService) DeleteModelPrice(ctx context.Context, req *connect.Request[v1.DeleteModelPriceRequest]) (*connect.Response[v1.DeleteModelPriceResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.DeleteModelPriceResponse, error) {
		old, err := c.Q.ModelPriceDelete(ctx, c.DB, dbsqlc.ModelPriceDeleteParams{OrgID: c.OrgID, Model: req.Msg.Model})
		if err != nil {
			return nil, notFoundOr(err, "model %q has no price of the organization's", req.Msg.Model)
		}
		err = c.Record(ctx, "model_price.delete", priceProto(old), nil, events.Event{
			Domain: events.DomainLimits, Type: "model_price_deleted", Entity: entity("model_price", old.Model),
			Summary: "Custom price of " + old.Model + " removed",
		})
		return &v1.DeleteModelPriceResponse{}, err
	})
}
