package analytics

import (
	"context"
	"slices"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/analytics/bucket"
	"github.com/governor-hq/governor/internal/analytics/usage"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/runs"
)

// Overview is every panel of seed 000's overview.
type Overview struct {
	AsOf                 *time.Time
	TimeZone             string
	TodayStart           time.Time
	MonthStart           time.Time
	TodayCost, MonthCost int64
	Budgets              []BudgetSpend
	CostByModel          []Share
	CostByFeature        []Share
	DecisionsToday       usage.Measures
	Decisions            []Decision
	AnomalyCounts        map[string]int64 // by severity, last 7 days
	Anomalies            []Anomaly
	Recovery             Recovery
	Feedback             Feedback
	OpenIncidents        map[string]int64 // by severity
	IncidentHighlights   []IncidentHighlight
	BudgetsAtThreshold   []runs.Standing
	DeliveriesPending    int64
	DeliveriesFailing    int64
	DeliveriesDead       int64
	FailingDeliveryIDs   []string
	DeadDeliveryIDs      []string
	DisabledChannels     []DisabledChannel
}

// BudgetSpend is a cost limit beside its scope's spend.
type BudgetSpend struct {
	Standing         runs.Standing
	TodayCost, Month int64
}

// Share is one model's or feature's part of the month.
type Share struct {
	Value    string
	Provider string
	Other    bool
	M        usage.Measures
}

// Decision is one admission or block.
type Decision struct {
	RunID, Status, AgentID, ProjectID, APIKeyID, Model, Feature string
	Settling                                                    bool
	AdmittedAt                                                  time.Time
	LimitID, LimitName, PolicyRuleID                            string
	WarningLimitIDs                                             []string
}

// Anomaly is a detected anomaly, with its links.
type Anomaly struct {
	ID, Type, EntityType, EntityID, Metric, Method, Severity string
	Day                                                      string
	WindowStart, WindowEnd                                   time.Time
	Baseline, Observed, Deviation, Confidence                float64
	Score                                                    int32
	IncidentID, AlertID, LimitID, DetectionRunID             string
	DetectedAt                                               time.Time
}

// Recovery is what retries of failed runs achieved.
type Recovery struct {
	FailedRuns, Retried, Recovered, RetryRuns, RecoveryCost, FailedCost int64
	RecoveredRunIDs                                                     []string
}

// Feedback sums up feedback on runs.
type Feedback struct {
	Count, Positive, Negative int64
	Average                   float64
	Worst                     []FeedbackItem
}

// FeedbackItem is one piece of feedback.
type FeedbackItem struct {
	FeedbackID, RunID, Label, Comment string
	Score                             float64
	CreatedAt                         time.Time
}

// IncidentHighlight is an incident worth a look.
type IncidentHighlight struct {
	ID, Title, Severity, Category, Reason string
	CreatedAt                             time.Time
	CostMicros                            int64
}

// DisabledChannel is an alert channel that stopped delivering.
type DisabledChannel struct {
	ID, Name, Reason string
	DisabledAt       *time.Time
}

// GetOverview builds every panel for org.
func (s *Service) GetOverview(ctx context.Context, org string) (Overview, error) {
	var o Overview
	loc, zone, err := s.location(ctx, org, "")
	if err != nil {
		return o, err
	}
	now := s.now()
	o.TimeZone = zone
	day, _ := limits.WindowStart(limits.WindowDay, now, loc)
	month, _ := limits.WindowStart(limits.WindowMonth, now, loc)
	o.TodayStart, o.MonthStart = day.UTC(), month.UTC()
	// From the rollups as they stand (a read writes nothing); AsOf says how fresh.
	if o.AsOf, err = s.catchUp(ctx, org, true); err != nil {
		return o, err
	}
	end := now.Add(bucket.Quarter) // everything recorded so far
	query := func(start time.Time, by []usage.Dim, in map[usage.Dim][]string) (Answer, error) {
		return s.QueryUsage(ctx, Query{OrgID: org, Start: start, End: end, GroupBy: by, Include: in, TopN: 10})
	}
	today, err := query(day, nil, nil)
	if err != nil {
		return o, err
	}
	monthAns, err := query(month, nil, nil)
	if err != nil {
		return o, err
	}
	o.TodayCost, o.MonthCost, o.DecisionsToday = today.Result.Total.Cost, monthAns.Result.Total.Cost, today.Result.Total

	// Budgets of the organization and its projects, beside their scopes' spend.
	var standings []runs.Standing
	for _, scope := range []string{limits.ScopeOrganization, limits.ScopeProject, limits.ScopeAgent, limits.ScopeAPIKey} {
		st, err := runs.Standings(ctx, s.pool, org, scope, nil, loc, now)
		if err != nil {
			return o, err
		}
		standings = append(standings, st...)
	}
	var projects []string
	for _, st := range standings {
		if st.Limit.Metric != limits.MetricCost {
			continue
		}
		if len(st.Crossed) > 0 && st.Enabled {
			o.BudgetsAtThreshold = append(o.BudgetsAtThreshold, st)
		}
		switch st.Limit.ScopeType {
		case limits.ScopeOrganization:
			o.Budgets = append(o.Budgets, BudgetSpend{Standing: st, TodayCost: o.TodayCost, Month: o.MonthCost})
		case limits.ScopeProject:
			o.Budgets = append(o.Budgets, BudgetSpend{Standing: st})
			projects = append(projects, st.Limit.ScopeID)
		}
	}
	if len(projects) > 0 {
		in := map[usage.Dim][]string{usage.Project: projects}
		pt, err := s.QueryUsage(ctx, Query{OrgID: org, Start: day, End: end, GroupBy: []usage.Dim{usage.Project}, Include: in, TopN: MaxTopN})
		if err != nil {
			return o, err
		}
		pm, err := s.QueryUsage(ctx, Query{OrgID: org, Start: month, End: end, GroupBy: []usage.Dim{usage.Project}, Include: in, TopN: MaxTopN})
		if err != nil {
			return o, err
		}
		spend := func(a Answer) map[string]int64 {
			m := map[string]int64{}
			for _, g := range a.Result.Groups {
				m[g.Values[0].V] = g.Total.Cost
			}
			return m
		}
		td, mo := spend(pt), spend(pm)
		for i := range o.Budgets {
			if o.Budgets[i].Standing.Limit.ScopeType == limits.ScopeProject {
				o.Budgets[i].TodayCost, o.Budgets[i].Month = td[o.Budgets[i].Standing.Limit.ScopeID], mo[o.Budgets[i].Standing.Limit.ScopeID]
			}
		}
	}

	byModel, err := query(month, []usage.Dim{usage.Model, usage.Provider}, nil)
	if err != nil {
		return o, err
	}
	for _, g := range byModel.Result.Groups {
		o.CostByModel = append(o.CostByModel, Share{Value: g.Values[0].V, Provider: g.Values[1].V, Other: g.Values[0].Other || g.Values[1].Other, M: g.Total})
	}
	byFeature, err := query(month, []usage.Dim{usage.Feature}, nil)
	if err != nil {
		return o, err
	}
	for _, g := range byFeature.Result.Groups {
		o.CostByFeature = append(o.CostByFeature, Share{Value: g.Values[0].V, Other: g.Values[0].Other, M: g.Total})
	}
	if err := s.overviewLists(ctx, org, now, month, &o); err != nil {
		return o, err
	}
	return o, nil
}

// overviewLists fills the panels read from the domains' own tables.
func (s *Service) overviewLists(ctx context.Context, org string, now, month time.Time, o *Overview) error {
	q := dbsqlc.New()
	ds, err := q.OverviewDecisions(ctx, s.pool, dbsqlc.OverviewDecisionsParams{OrgID: org, Max: 10})
	if err != nil {
		return err
	}
	for _, d := range ds {
		o.Decisions = append(o.Decisions, Decision{RunID: d.ID, Status: d.Status, Settling: d.Status == "admitted" && d.ReportedAt != nil,
			AgentID: d.AgentID, ProjectID: d.ProjectID, APIKeyID: d.ApiKeyID, Model: d.Model, Feature: d.Feature, AdmittedAt: d.AdmittedAt,
			LimitID: d.LimitID, LimitName: d.LimitName, PolicyRuleID: d.PolicyRuleID, WarningLimitIDs: d.WarningLimitIds})
	}
	week := now.Add(-7 * 24 * time.Hour)
	ac, err := q.OverviewAnomalyCounts(ctx, s.pool, dbsqlc.OverviewAnomalyCountsParams{OrgID: org, Since: week})
	if err != nil {
		return err
	}
	o.AnomalyCounts = map[string]int64{}
	for _, c := range ac {
		o.AnomalyCounts[c.Severity] = c.N
	}
	as, err := q.OverviewAnomalies(ctx, s.pool, dbsqlc.OverviewAnomaliesParams{OrgID: org, Since: week, Max: 10})
	if err != nil {
		return err
	}
	for _, a := range as {
		day := ""
		if a.Day.Valid {
			day = a.Day.Time.Format("2006-01-02")
		}
		o.Anomalies = append(o.Anomalies, Anomaly{ID: a.ID, Type: a.Type, EntityType: a.EntityType, EntityID: a.EntityID, Metric: a.Metric,
			Method: a.Method, Severity: a.Severity, Day: day, WindowStart: a.WindowStart, WindowEnd: a.WindowEnd, Baseline: a.Baseline,
			Observed: a.Observed, Deviation: a.Deviation, Confidence: a.Confidence, Score: a.Score, IncidentID: a.IncidentID,
			AlertID: a.AlertID, LimitID: a.LimitID, DetectionRunID: a.DetectionRunID, DetectedAt: a.DetectedAt})
	}
	rec, err := q.OverviewRecovery(ctx, s.pool, dbsqlc.OverviewRecoveryParams{OrgID: org, Since: month})
	if err != nil {
		return err
	}
	o.Recovery = Recovery{FailedRuns: rec.FailedRuns, Retried: rec.Retried, Recovered: rec.Recovered, RetryRuns: rec.RetryRuns,
		RecoveryCost: rec.RecoveryCostMicros, FailedCost: rec.FailedCostMicros, RecoveredRunIDs: rec.RecoveredRunIds}
	since := now.Add(-30 * 24 * time.Hour)
	fb, err := q.OverviewFeedback(ctx, s.pool, dbsqlc.OverviewFeedbackParams{OrgID: org, Since: since})
	if err != nil {
		return err
	}
	o.Feedback = Feedback{Count: fb.N, Average: fb.AverageScore, Positive: fb.Positive, Negative: fb.Negative}
	worst, err := q.OverviewWorstFeedback(ctx, s.pool, dbsqlc.OverviewWorstFeedbackParams{OrgID: org, Since: since, Max: 5})
	if err != nil {
		return err
	}
	for _, w := range worst {
		o.Feedback.Worst = append(o.Feedback.Worst, FeedbackItem{FeedbackID: w.FeedbackID, RunID: w.RunID, Label: w.Label, Comment: w.Comment,
			Score: w.Score, CreatedAt: w.CreatedAt})
	}
	ic, err := q.OverviewIncidentCounts(ctx, s.pool, org)
	if err != nil {
		return err
	}
	o.OpenIncidents = map[string]int64{}
	for _, c := range ic {
		o.OpenIncidents[c.Severity] = c.N
	}
	hs, err := q.OverviewIncidentHighlights(ctx, s.pool, org)
	if err != nil {
		return err
	}
	for _, h := range hs {
		o.IncidentHighlights = append(o.IncidentHighlights, IncidentHighlight{ID: h.ID, Title: h.Title, Severity: h.Severity,
			Category: h.Category, Reason: h.Reason, CreatedAt: h.CreatedAt, CostMicros: h.CostMicros})
	}
	dc, err := q.OverviewDeliveryCounts(ctx, s.pool, org)
	if err != nil {
		return err
	}
	o.DeliveriesPending, o.DeliveriesFailing, o.DeliveriesDead = dc.Pending, dc.Failing, dc.DeadLettered
	tr, err := q.OverviewTroubledDeliveries(ctx, s.pool, dbsqlc.OverviewTroubledDeliveriesParams{OrgID: org, Max: 20})
	if err != nil {
		return err
	}
	for _, d := range tr {
		if d.Status == "failed" {
			o.DeadDeliveryIDs = append(o.DeadDeliveryIDs, d.ID)
		} else {
			o.FailingDeliveryIDs = append(o.FailingDeliveryIDs, d.ID)
		}
	}
	chs, err := q.OverviewDisabledChannels(ctx, s.pool, org)
	if err != nil {
		return err
	}
	for _, c := range chs {
		o.DisabledChannels = append(o.DisabledChannels, DisabledChannel{ID: c.ID, Name: c.Name, Reason: c.DisabledReason, DisabledAt: c.DisabledAt})
	}
	slices.SortStableFunc(o.IncidentHighlights, func(a, b IncidentHighlight) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return nil
}
