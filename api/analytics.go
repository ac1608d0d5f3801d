package api

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/analytics"
	abucket "github.com/governor-hq/governor/internal/analytics/bucket"
	"github.com/governor-hq/governor/internal/analytics/usage"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/runs"
)

type analyticsService struct{ *Server }

var (
	dimFromProto = map[v1.UsageDimension]usage.Dim{
		v1.UsageDimension_USAGE_DIMENSION_PROJECT: usage.Project, v1.UsageDimension_USAGE_DIMENSION_AGENT: usage.Agent,
		v1.UsageDimension_USAGE_DIMENSION_API_KEY: usage.APIKey, v1.UsageDimension_USAGE_DIMENSION_PROVIDER: usage.Provider,
		v1.UsageDimension_USAGE_DIMENSION_MODEL: usage.Model, v1.UsageDimension_USAGE_DIMENSION_FEATURE: usage.Feature,
		v1.UsageDimension_USAGE_DIMENSION_RUN_STATUS: usage.RunStatus, v1.UsageDimension_USAGE_DIMENSION_TAG: usage.Tag,
	}
	dimToProto  = invert(dimFromProto)
	granularity = map[v1.UsageGranularity]abucket.Granularity{
		v1.UsageGranularity_USAGE_GRANULARITY_UNSPECIFIED: abucket.None, v1.UsageGranularity_USAGE_GRANULARITY_NONE: abucket.None,
		v1.UsageGranularity_USAGE_GRANULARITY_HOUR: abucket.Hour, v1.UsageGranularity_USAGE_GRANULARITY_DAY: abucket.Day,
		v1.UsageGranularity_USAGE_GRANULARITY_WEEK: abucket.Week, v1.UsageGranularity_USAGE_GRANULARITY_MONTH: abucket.Month,
	}
	orderFromProto = map[v1.UsageOrder]usage.Metric{
		v1.UsageOrder_USAGE_ORDER_UNSPECIFIED: usage.MetricCost, v1.UsageOrder_USAGE_ORDER_COST: usage.MetricCost,
		v1.UsageOrder_USAGE_ORDER_TOKENS: usage.MetricTokens, v1.UsageOrder_USAGE_ORDER_RUNS: usage.MetricRuns,
		v1.UsageOrder_USAGE_ORDER_CALLS: usage.MetricCalls, v1.UsageOrder_USAGE_ORDER_BLOCKED: usage.MetricBlocked,
		v1.UsageOrder_USAGE_ORDER_ADMITTED: usage.MetricAdmitted, v1.UsageOrder_USAGE_ORDER_CALL_ERRORS: usage.MetricCallErrors,
		v1.UsageOrder_USAGE_ORDER_RUNS_FAILED: usage.MetricFailed,
	}
	runStatusOfWord = map[string]v1.RunStatus{
		"admitted": v1.RunStatus_RUN_STATUS_ADMITTED, "succeeded": v1.RunStatus_RUN_STATUS_SUCCEEDED,
		"failed": v1.RunStatus_RUN_STATUS_FAILED, "cancelled": v1.RunStatus_RUN_STATUS_CANCELLED,
		"expired": v1.RunStatus_RUN_STATUS_EXPIRED, "blocked": v1.RunStatus_RUN_STATUS_BLOCKED,
	}
)

// noneLabel is how a missing value reads in filters and responses.
const noneLabel = "(none)"

func analyticsError(err error) error {
	switch {
	case errors.Is(err, analytics.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, analytics.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	}
	return err
}

func ratio(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func metricsProto(m usage.Measures, latency bool) *v1.UsageMetrics {
	out := &v1.UsageMetrics{
		CostMicros: m.Cost, InputTokens: m.Input, OutputTokens: m.Output, CacheReadTokens: m.CacheRead, CacheWriteTokens: m.CacheWrite,
		ReasoningTokens: m.Reasoning, Tokens: m.Tokens(), Runs: m.Runs(), RunsSucceeded: m.Succeeded, RunsFailed: m.Failed,
		RunsCancelled: m.Cancelled, RunsExpired: m.Expired, RunsBlocked: m.Blocked, Admitted: m.Admitted, Blocked: m.BlockedAdmissions(),
		BlockedByLimit: m.BlockedLimit, BlockedByPolicy: m.BlockedPolicy, BlockedByRate: m.BlockedRate, Warned: m.Warned,
		Calls: m.Calls, CallErrors: m.CallErrors, CallErrorRate: ratio(m.CallErrors, m.Calls),
		RunErrorRate: ratio(m.Failed, m.Succeeded+m.Failed+m.Cancelled+m.Expired),
		TokensSaved:  m.CacheRead, CacheHitCalls: m.CacheHitCalls, CacheHitRate: ratio(m.CacheRead, m.Input+m.CacheRead+m.CacheWrite),
	}
	if latency {
		q := func(s interface{ Quantile(float64) (float64, bool) }, p float64) *float64 {
			if v, ok := s.Quantile(p); ok {
				return &v
			}
			return nil
		}
		out.RunLatencyP50Ms, out.RunLatencyP95Ms, out.RunLatencyP99Ms = q(m.RunLatency, 0.5), q(m.RunLatency, 0.95), q(m.RunLatency, 0.99)
		out.CallLatencyP50Ms, out.CallLatencyP95Ms, out.CallLatencyP99Ms = q(m.CallLatency, 0.5), q(m.CallLatency, 0.95), q(m.CallLatency, 0.99)
	}
	return out
}

func standingProto(s runs.Standing) *v1.LimitStanding {
	l := s.Limit
	return &v1.LimitStanding{
		LimitId: l.ID, LimitName: l.Name, Scope: &v1.LimitScopeRef{Type: scopeEnums[l.ScopeType], Id: l.ScopeID},
		Metric: metricEnums[l.Metric], Window: windowEnums[l.Window], Enforcement: enforcementEnums[l.Enforcement],
		Model: l.Model, Feature: l.Feature, Amount: l.Amount, Used: s.Used, Reserved: s.Reserved, Percent: s.Percent,
		ThresholdsCrossed: s.Crossed, WindowStart: ts(s.WindowStart), WindowEnd: ts(s.WindowEnd), Enabled: s.Enabled,
	}
}

func standingsProto(ss []runs.Standing) []*v1.LimitStanding {
	out := make([]*v1.LimitStanding, 0, len(ss))
	for _, s := range ss {
		out = append(out, standingProto(s))
	}
	return out
}

// usageQuery translates a request; filter values "(none)" mean "no value".
func usageQuery(org string, m *v1.QueryUsageRequest) analytics.Query {
	q := analytics.Query{OrgID: org, Start: m.StartTime.AsTime(), Zone: m.TimeZone, Granularity: granularity[m.Granularity],
		TopN: int(m.TopN), OrderBy: orderFromProto[m.OrderBy], Latency: m.Latency,
		Include: map[usage.Dim][]string{}, Exclude: map[usage.Dim][]string{}}
	if m.EndTime != nil {
		q.End = m.EndTime.AsTime()
	}
	for _, d := range m.GroupBy {
		q.GroupBy = append(q.GroupBy, dimFromProto[d])
	}
	norm := func(vs []string) []string {
		out := make([]string, 0, len(vs))
		for _, v := range vs {
			if v == noneLabel {
				v = ""
			}
			out = append(out, v)
		}
		return out
	}
	for _, f := range m.Filters {
		d := dimFromProto[f.Dimension]
		q.Include[d] = append(q.Include[d], norm(f.Include)...)
		q.Exclude[d] = append(q.Exclude[d], norm(f.Exclude)...)
	}
	return q
}

func keyProto(d usage.Dim, v usage.Value) *v1.UsageKey {
	k := &v1.UsageKey{Dimension: dimToProto[d], Value: v.V}
	switch {
	case v.Other:
		k.Other, k.Value = true, "other"
	case v.V == "":
		k.None, k.Value = true, noneLabel
	}
	return k
}

func answerProto(a analytics.Answer, latency bool) *v1.QueryUsageResponse {
	out := &v1.QueryUsageResponse{StartTime: ts(a.Range.Start), EndTime: ts(a.Range.End), TimeZone: a.Zone,
		Total: metricsProto(a.Result.Total, latency), AsOf: tsp(a.AsOf), Rollup: a.Cube}
	for _, b := range a.Buckets {
		out.Buckets = append(out.Buckets, &v1.UsageBucket{LabelTime: ts(b.Label), StartTime: ts(b.Range.Start), EndTime: ts(b.Range.End)})
	}
	for _, m := range a.Result.Series {
		out.Series = append(out.Series, metricsProto(m, latency))
	}
	limitsOf := map[string][]*v1.LimitStanding{}
	for _, gs := range a.Standing {
		if len(a.GroupBy) == 0 {
			out.Limits = standingsProto(gs.Standing)
			continue
		}
		limitsOf[gs.Value] = standingsProto(gs.Standing)
	}
	for _, g := range a.Result.Groups {
		pg := &v1.UsageGroup{Total: metricsProto(g.Total, latency)}
		for i, v := range g.Values {
			pg.Key = append(pg.Key, keyProto(a.GroupBy[i], v))
		}
		for _, m := range g.Series {
			pg.Series = append(pg.Series, metricsProto(m, latency))
		}
		if len(g.Values) == 1 && !g.Values[0].Other {
			pg.Limits = limitsOf[g.Values[0].V]
		}
		out.Groups = append(out.Groups, pg)
	}
	for _, d := range a.GroupBy {
		if n := a.OtherOf[d]; n > 0 {
			out.Others = append(out.Others, &v1.OtherCount{Dimension: dimToProto[d], Values: int32(n)})
		}
	}
	return out
}

func (s *analyticsService) QueryUsage(ctx context.Context, req *connect.Request[v1.QueryUsageRequest]) (*connect.Response[v1.QueryUsageResponse], error) {
	a, err := s.analytics.QueryUsage(ctx, usageQuery(principal(ctx).OrgID, req.Msg))
	if err != nil {
		return nil, analyticsError(err)
	}
	return connect.NewResponse(answerProto(a, req.Msg.Latency)), nil
}

func shareProto(sh analytics.Share) *v1.CostShare {
	out := &v1.CostShare{Value: sh.Value, Provider: sh.Provider, Other: sh.Other, CostMicros: sh.M.Cost, Runs: sh.M.Runs(),
		Calls: sh.M.Calls, Tokens: sh.M.Tokens()}
	if sh.Other {
		out.Value = "other"
	} else if sh.Value == "" {
		out.None, out.Value = true, noneLabel
	}
	return out
}

var anomalySeverityEnum = map[string]v1.AnomalySeverity{
	"info": v1.AnomalySeverity_ANOMALY_SEVERITY_INFO, "warning": v1.AnomalySeverity_ANOMALY_SEVERITY_WARNING,
	"high": v1.AnomalySeverity_ANOMALY_SEVERITY_HIGH, "critical": v1.AnomalySeverity_ANOMALY_SEVERITY_CRITICAL,
}

func overviewProto(o analytics.Overview) *v1.Overview {
	out := &v1.Overview{AsOf: tsp(o.AsOf), TimeZone: o.TimeZone, TodayStart: ts(o.TodayStart), MonthStart: ts(o.MonthStart),
		CostSummary:    &v1.CostSummary{TodayCostMicros: o.TodayCost, MonthCostMicros: o.MonthCost},
		DecisionsToday: metricsProto(o.DecisionsToday, false),
		Anomalies: &v1.AnomalyPanel{Info: o.AnomalyCounts["info"], Warning: o.AnomalyCounts["warning"], High: o.AnomalyCounts["high"],
			Critical: o.AnomalyCounts["critical"]},
		Recovery: &v1.RecoveryStats{FailedRuns: o.Recovery.FailedRuns, Retried: o.Recovery.Retried, Recovered: o.Recovery.Recovered,
			RetryRuns: o.Recovery.RetryRuns, RecoveryCostMicros: o.Recovery.RecoveryCost, FailedCostMicros: o.Recovery.FailedCost,
			RecoveredRunIds: o.Recovery.RecoveredRunIDs},
		Feedback: &v1.FeedbackSummary{Count: o.Feedback.Count, AverageScore: o.Feedback.Average, Positive: o.Feedback.Positive,
			Negative: o.Feedback.Negative},
		Incidents: &v1.IncidentPanel{OpenLow: o.OpenIncidents["low"], OpenMedium: o.OpenIncidents["medium"],
			OpenHigh: o.OpenIncidents["high"], OpenCritical: o.OpenIncidents["critical"]},
		BudgetsAtThreshold: standingsProto(o.BudgetsAtThreshold),
		AlertHealth: &v1.AlertHealth{Pending: o.DeliveriesPending, Failing: o.DeliveriesFailing, DeadLettered: o.DeliveriesDead,
			FailingDeliveryIds: o.FailingDeliveryIDs, DeadLetteredDeliveryIds: o.DeadDeliveryIDs},
	}
	for _, b := range o.Budgets {
		out.CostSummary.Budgets = append(out.CostSummary.Budgets, &v1.BudgetSpend{Standing: standingProto(b.Standing),
			ScopeTodayCostMicros: b.TodayCost, ScopeMonthCostMicros: b.Month})
	}
	for _, sh := range o.CostByModel {
		out.CostByModel = append(out.CostByModel, shareProto(sh))
	}
	for _, sh := range o.CostByFeature {
		out.CostByFeature = append(out.CostByFeature, shareProto(sh))
	}
	for _, d := range o.Decisions {
		st := runStatusOfWord[d.Status]
		if d.Settling {
			st = v1.RunStatus_RUN_STATUS_SETTLING
		}
		out.Decisions = append(out.Decisions, &v1.Decision{RunId: d.RunID, Status: st, AgentId: d.AgentID, ProjectId: d.ProjectID,
			ApiKeyId: d.APIKeyID, Model: d.Model, Feature: d.Feature, AdmitTime: ts(d.AdmittedAt), LimitId: d.LimitID,
			LimitName: d.LimitName, PolicyRuleId: d.PolicyRuleID, WarningLimitIds: d.WarningLimitIDs})
	}
	for _, a := range o.Anomalies {
		out.Anomalies.Recent = append(out.Anomalies.Recent, &v1.Anomaly{Id: a.ID, Type: v1.AnomalyType(v1.AnomalyType_value["ANOMALY_TYPE_"+a.Type]),
			Entity: &v1.EntityRef{Type: a.EntityType, Id: a.EntityID}, Severity: anomalySeverityEnum[a.Severity], Day: a.Day,
			Metric:      v1.AnomalyMetric(v1.AnomalyMetric_value["ANOMALY_METRIC_"+upper(a.Metric)]),
			Method:      v1.AnomalyMethod(v1.AnomalyMethod_value["ANOMALY_METHOD_"+upper(a.Method)]),
			WindowStart: ts(a.WindowStart), WindowEnd: ts(a.WindowEnd), Baseline: a.Baseline, Observed: a.Observed,
			Deviation: a.Deviation, Score: a.Score, Confidence: a.Confidence, IncidentId: a.IncidentID, AlertId: a.AlertID,
			LimitId: a.LimitID, RunId: a.DetectionRunID, DetectTime: ts(a.DetectedAt)})
	}
	for _, f := range o.Feedback.Worst {
		out.Feedback.Worst = append(out.Feedback.Worst, &v1.FeedbackItem{FeedbackId: f.FeedbackID, RunId: f.RunID, Score: f.Score,
			Label: f.Label, Comment: f.Comment, CreateTime: ts(f.CreatedAt)})
	}
	for _, h := range o.IncidentHighlights {
		out.Incidents.Highlights = append(out.Incidents.Highlights, &v1.IncidentHighlight{IncidentId: h.ID, Title: h.Title,
			Severity: v1.IncidentSeverity(v1.IncidentSeverity_value["INCIDENT_SEVERITY_"+upper(h.Severity)]),
			Category: v1.IncidentCategory(v1.IncidentCategory_value["INCIDENT_CATEGORY_"+h.Category]), Reason: h.Reason,
			CreateTime: ts(h.CreatedAt), CostMicros: h.CostMicros})
	}
	for _, c := range o.DisabledChannels {
		out.AlertHealth.DisabledChannels = append(out.AlertHealth.DisabledChannels, &v1.DisabledChannel{ChannelId: c.ID, Name: c.Name,
			Reason: c.Reason, DisableTime: tsp(c.DisabledAt)})
	}
	return out
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func (s *analyticsService) GetOverview(ctx context.Context, _ *connect.Request[v1.GetOverviewRequest]) (*connect.Response[v1.GetOverviewResponse], error) {
	o, err := s.analytics.GetOverview(ctx, principal(ctx).OrgID)
	if err != nil {
		return nil, analyticsError(err)
	}
	return connect.NewResponse(&v1.GetOverviewResponse{Overview: overviewProto(o)}), nil
}

// Overview watchers: what counts as a change, how long a burst is gathered, and how often
// an overview is sent anyway ("today" moves on even when nothing happens).
const (
	watchDebounce = 300 * time.Millisecond
	watchMaxWait  = time.Second
	watchRefresh  = 30 * time.Second
)

func (s *analyticsService) WatchOverview(ctx context.Context, _ *connect.Request[v1.WatchOverviewRequest], stream *connect.ServerStream[v1.WatchOverviewResponse]) error {
	org := principal(ctx).OrgID
	// Subscribed before the first overview is built, so no change can fall in between.
	sub := s.hub.Subscribe(org)
	defer sub.Close()
	send := func() error {
		o, err := s.analytics.GetOverview(ctx, org)
		if err != nil {
			return analyticsError(err)
		}
		return stream.Send(&v1.WatchOverviewResponse{Overview: overviewProto(o)})
	}
	if err := send(); err != nil {
		return err
	}
	refresh := time.NewTicker(watchRefresh)
	defer refresh.Stop()
	var due <-chan time.Time
	var first time.Time
	var debounce *time.Timer
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return nil
		case e := <-sub.C:
			if !affectsOverview(e.Domain) {
				continue
			}
		case <-sub.Resync:
		case <-refresh.C:
			if err := send(); err != nil {
				return err
			}
			continue
		case <-due:
			// Answer with the change in it: wait (a little) for the rollups to pass it.
			changed := first
			due, first = nil, time.Time{}
			if err := s.waitRolled(ctx, org, changed); err != nil {
				return err
			}
			if err := send(); err != nil {
				return err
			}
			continue
		}
		// A change: send once the burst is over, but never later than watchMaxWait after
		// its first event.
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		wait := min(watchDebounce, watchMaxWait-now.Sub(first))
		if debounce == nil {
			debounce = time.NewTimer(max(wait, 0))
		} else {
			debounce.Reset(max(wait, 0))
		}
		due = debounce.C
	}
}

// waitRolled waits until the organization's rollups hold every record committed before
// t (the background roller gets there within about a second), or until watchMaxWait.
func (s *analyticsService) waitRolled(ctx context.Context, org string, t time.Time) error {
	deadline := time.Now().Add(watchMaxWait)
	for {
		asOf, err := s.analytics.AsOf(ctx, org)
		if err != nil {
			return analyticsError(err)
		}
		if (asOf != nil && !asOf.Before(t)) || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func affectsOverview(domain string) bool {
	switch domain {
	case events.DomainRuns, events.DomainIncidents, events.DomainAlerts, events.DomainAnomalies, events.DomainLimits,
		events.DomainPolicies, "analytics":
		return true
	}
	return false
}

func (s *analyticsService) GetAnalyticsSettings(ctx context.Context, _ *connect.Request[v1.GetAnalyticsSettingsRequest]) (*connect.Response[v1.GetAnalyticsSettingsResponse], error) {
	st, err := s.analytics.GetSettings(ctx, principal(ctx).OrgID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetAnalyticsSettingsResponse{Settings: &v1.AnalyticsSettings{TagKey: st.TagKey, RolledThrough: tsp(st.RolledThrough)}}), nil
}

func (s *analyticsService) UpdateAnalyticsSettings(ctx context.Context, req *connect.Request[v1.UpdateAnalyticsSettingsRequest]) (*connect.Response[v1.UpdateAnalyticsSettingsResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateAnalyticsSettingsResponse, error) {
		st, n, err := s.analytics.SetTagKey(ctx, c, req.Msg.Settings.TagKey)
		if err != nil {
			return nil, err
		}
		return &v1.UpdateAnalyticsSettingsResponse{Settings: &v1.AnalyticsSettings{TagKey: st.TagKey, RolledThrough: tsp(st.RolledThrough)},
			RecordsRequeued: n}, nil
	})
}
