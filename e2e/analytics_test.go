package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
)

func analyticsClient(s *stack, secret string) governorv1connect.AnalyticsServiceClient {
	return governorv1connect.NewAnalyticsServiceClient(s.http, s.baseURL, connect.WithInterceptors(connect.UnaryInterceptorFunc(
		func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+secret)
				return next(ctx, req)
			}
		})), connect.WithInterceptors(streamAuth(secret)))
}

type streamAuthInterceptor struct{ secret string }

func streamAuth(secret string) connect.Interceptor { return streamAuthInterceptor{secret} }

func (a streamAuthInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }
func (a streamAuthInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		c := next(ctx, spec)
		c.RequestHeader().Set("Authorization", "Bearer "+a.secret)
		return c
	}
}
func (a streamAuthInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func runWith(t *testing.T, c clients, agentID, model, feature string, costMicros int64, status v1.RunStatus) *v1.Run {
	t.Helper()
	resp, err := c.runs.AdmitRun(context.Background(), connect.NewRequest(&v1.AdmitRunRequest{
		AgentId: agentID, Model: model, Feature: feature, Estimate: &v1.Estimate{CostMicros: costMicros}, Tags: map[string]string{"team": "search"},
	}))
	require.NoError(t, err)
	complete(t, c, resp.Msg.Run.Id, status, costMicros)
	return resp.Msg.Run
}

func sumGroups(gs []*v1.UsageGroup) (cost, runs int64) {
	for _, g := range gs {
		cost += g.Total.CostMicros
		runs += g.Total.Runs
	}
	return cost, runs
}

// QueryUsage through the real stack: groupings add up to the total, top-N folds the rest
// into "other", day buckets follow the zone asked for (a :30 zone here), and another
// organization sees none of it.
func TestAnalyticsQueryUsage(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "Asia/Kolkata")
	ctx := context.Background()
	a := tn.newAgent(t, "writer")
	b := tn.newAgentIn(t, a.projectID, "reviewer")
	var last *v1.Run
	for _, spec := range []struct {
		kit     agentKit
		model   string
		feature string
		cost    int64
		status  v1.RunStatus
	}{
		{a, "gpt-4o", "chat", 3 * dollar, v1.RunStatus_RUN_STATUS_SUCCEEDED},
		{a, "claude-sonnet", "chat", 2 * dollar, v1.RunStatus_RUN_STATUS_FAILED},
		{b, "gpt-4o", "summarize", dollar, v1.RunStatus_RUN_STATUS_SUCCEEDED},
		{b, "gemini", "", dollar / 2, v1.RunStatus_RUN_STATUS_SUCCEEDED},
	} {
		last = runWith(t, spec.kit.ingest, spec.kit.agentID, spec.model, spec.feature, spec.cost, spec.status)
	}
	waitSettled(t, tn.admin, last.Id)
	an := analyticsClient(tn.stack, tn.org.Secret)
	start := timestamppb.New(time.Now().Add(-48 * time.Hour))
	// Every run settles through its own workflow: wait until all four are counted.
	var total *v1.QueryUsageResponse
	eventually(t, patience, func() bool {
		r, err := an.QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: start}))
		require.NoError(t, err)
		total = r.Msg
		return r.Msg.Total.RunsSucceeded+r.Msg.Total.RunsFailed == 4
	})
	require.EqualValues(t, 6_500_000, total.Total.CostMicros)
	require.EqualValues(t, 4, total.Total.Admitted)
	require.EqualValues(t, 1, total.Total.RunsFailed)
	require.NotNil(t, total.AsOf)
	require.Equal(t, "Asia/Kolkata", total.TimeZone)

	byModel, err := an.QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: start,
		GroupBy: []v1.UsageDimension{v1.UsageDimension_USAGE_DIMENSION_MODEL}, TopN: 2}))
	require.NoError(t, err)
	cost, _ := sumGroups(byModel.Msg.Groups)
	require.Equal(t, total.Total.CostMicros, cost, "groups add up to the total")
	require.Len(t, byModel.Msg.Groups, 3)
	require.Equal(t, "gpt-4o", byModel.Msg.Groups[0].Key[0].Value)
	require.EqualValues(t, 4*dollar, byModel.Msg.Groups[0].Total.CostMicros)
	require.True(t, byModel.Msg.Groups[2].Key[0].Other, "the rest is other")
	require.EqualValues(t, dollar/2, byModel.Msg.Groups[2].Total.CostMicros)
	require.Equal(t, []*v1.OtherCount{{Dimension: v1.UsageDimension_USAGE_DIMENSION_MODEL, Values: 1}}, byModel.Msg.Others)

	// Three dimensions, by day in Kolkata: the buckets start at 18:30 UTC.
	three, err := an.QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: start, Granularity: v1.UsageGranularity_USAGE_GRANULARITY_DAY,
		GroupBy: []v1.UsageDimension{v1.UsageDimension_USAGE_DIMENSION_AGENT, v1.UsageDimension_USAGE_DIMENSION_FEATURE, v1.UsageDimension_USAGE_DIMENSION_RUN_STATUS}}))
	require.NoError(t, err)
	cost, runs := sumGroups(three.Msg.Groups)
	require.Equal(t, total.Total.CostMicros, cost)
	require.Equal(t, total.Total.Runs, runs)
	for _, bk := range three.Msg.Buckets[1:] {
		require.Equal(t, 18, bk.StartTime.AsTime().UTC().Hour())
		require.Equal(t, 30, bk.StartTime.AsTime().UTC().Minute())
	}
	var none bool
	for _, g := range three.Msg.Groups {
		var series int64
		for _, m := range g.Series {
			series += m.CostMicros
		}
		require.Equal(t, g.Total.CostMicros, series, "each group's days add up to its total")
		none = none || g.Key[1].None
	}
	require.True(t, none, "the run without a feature is (none)")
	// Kathmandu (:45) by hour: same total.
	np, err := an.QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: start, TimeZone: "Asia/Kathmandu",
		Granularity: v1.UsageGranularity_USAGE_GRANULARITY_HOUR}))
	require.NoError(t, err)
	var hourly int64
	for _, m := range np.Msg.Series {
		hourly += m.CostMicros
	}
	require.Equal(t, total.Total.CostMicros, hourly)
	require.Equal(t, 15, np.Msg.Buckets[1].StartTime.AsTime().UTC().Minute())

	// Filters: exclude a model, include an agent.
	f, err := an.QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: start, Filters: []*v1.DimensionFilter{
		{Dimension: v1.UsageDimension_USAGE_DIMENSION_MODEL, Exclude: []string{"gpt-4o"}},
		{Dimension: v1.UsageDimension_USAGE_DIMENSION_AGENT, Include: []string{b.agentID}}}}))
	require.NoError(t, err)
	require.EqualValues(t, dollar/2, f.Msg.Total.CostMicros)

	// Another organization sees nothing.
	other := newTenant(t, "UTC")
	o, err := analyticsClient(other.stack, other.org.Secret).QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: start}))
	require.NoError(t, err)
	require.Zero(t, o.Msg.Total.CostMicros)
	require.Zero(t, o.Msg.Total.Runs)
	_, err = an.QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: start, TimeZone: "Mars/Olympus"}))
	requireCode(t, connect.CodeInvalidArgument, err)
}

// The overview's panels from seeded data with known answers, and WatchOverview pushing a
// fresh one within 2 seconds of a settlement.
func TestAnalyticsOverviewAndWatch(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "Europe/Berlin")
	ctx := context.Background()
	ag := tn.newAgent(t, "support")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	ok := runWith(t, ag.ingest, ag.agentID, "gpt-4o", "chat", 8*dollar, v1.RunStatus_RUN_STATUS_SUCCEEDED)
	waitSettled(t, tn.admin, ok.Id)
	_, err := admit(t, ag.ingest, ag.agentID, 5*dollar)
	rb := blockedDetail(t, err)
	failed := runWith(t, ag.ingest, ag.agentID, "gpt-4o", "chat", dollar/2, v1.RunStatus_RUN_STATUS_FAILED)
	waitSettled(t, tn.admin, failed.Id)
	// The retry names the run it retries (AdmitRun retry_of); feedback through the API.
	rr, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o",
		Feature: "chat", Estimate: &v1.Estimate{CostMicros: dollar / 4}, RetryOf: failed.Id, Tags: map[string]string{"team": "search"}}))
	require.NoError(t, err)
	retry := rr.Msg.Run
	require.Equal(t, failed.Id, retry.RetryOf)
	complete(t, ag.ingest, retry.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, dollar/4)
	waitSettled(t, tn.admin, retry.Id)
	for _, fb := range []*v1.RecordFeedbackRequest{
		{FeedbackId: "f1", RunId: ok.Id, Score: 1, Comment: "great"},
		{FeedbackId: "f2", RunId: failed.Id, Score: 0, Comment: "wrong answer"},
	} {
		_, err = tn.admin.runs.RecordFeedback(ctx, connect.NewRequest(fb))
		require.NoError(t, err)
	}

	an := analyticsClient(tn.stack, tn.org.Secret)
	var ov *v1.Overview
	eventually(t, patience, func() bool {
		r, err := an.GetOverview(ctx, connect.NewRequest(&v1.GetOverviewRequest{}))
		require.NoError(t, err)
		ov = r.Msg.Overview
		return ov.CostSummary.TodayCostMicros == 8_750_000
	})
	require.EqualValues(t, 8_750_000, ov.CostSummary.MonthCostMicros)
	require.Len(t, ov.CostSummary.Budgets, 1)
	require.Equal(t, lim.Id, ov.CostSummary.Budgets[0].Standing.LimitId)
	require.EqualValues(t, 87, ov.CostSummary.Budgets[0].Standing.Percent)
	require.Equal(t, []int32{80}, ov.CostSummary.Budgets[0].Standing.ThresholdsCrossed)
	require.Len(t, ov.BudgetsAtThreshold, 1)
	require.Equal(t, "gpt-4o", ov.CostByModel[0].Value)
	require.EqualValues(t, 8_750_000, ov.CostByModel[0].CostMicros)
	require.Equal(t, "chat", ov.CostByFeature[0].Value)
	require.EqualValues(t, 3, ov.DecisionsToday.Admitted)
	require.EqualValues(t, 1, ov.DecisionsToday.BlockedByLimit)
	require.Equal(t, rb.RunId, ov.Decisions[2].RunId, "the block is the third newest decision")
	require.Equal(t, lim.Id, ov.Decisions[2].LimitId)
	require.EqualValues(t, 1, ov.Recovery.FailedRuns)
	require.EqualValues(t, 1, ov.Recovery.Recovered)
	require.EqualValues(t, dollar/4, ov.Recovery.RecoveryCostMicros)
	require.Equal(t, []string{failed.Id}, ov.Recovery.RecoveredRunIds)
	require.EqualValues(t, 2, ov.Feedback.Count)
	require.InDelta(t, 0.5, ov.Feedback.AverageScore, 1e-9)
	require.Equal(t, "wrong answer", ov.Feedback.Worst[0].Comment)
	require.EqualValues(t, 1, ov.Incidents.OpenLow+ov.Incidents.OpenMedium+ov.Incidents.OpenHigh+ov.Incidents.OpenCritical, "the failure opened an incident")
	require.NotNil(t, ov.AlertHealth)
	require.NotNil(t, ov.AsOf)

	// WatchOverview: the first overview at once, then one within 2 s of a settlement.
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	stream, err := an.WatchOverview(wctx, connect.NewRequest(&v1.WatchOverviewRequest{}))
	require.NoError(t, err)
	require.True(t, stream.Receive(), "%v", stream.Err())
	require.EqualValues(t, 8_750_000, stream.Msg().Overview.CostSummary.TodayCostMicros)
	more := runWith(t, ag.ingest, ag.agentID, "claude-sonnet", "chat", dollar/10, v1.RunStatus_RUN_STATUS_SUCCEEDED)
	for stream.Receive() {
		o := stream.Msg().Overview
		if o.CostSummary.TodayCostMicros == 8_850_000 {
			settled := waitSettled(t, tn.admin, more.Id)
			lag := time.Since(settled.SettleTime.AsTime())
			require.Less(t, lag, 2*time.Second, "pushed within 2 s of the settlement")
			break
		}
	}
	require.NoError(t, stream.Err())
	cancel()
}

// The tag dimension is chosen per organization (UpdateAnalyticsSettings, admins only,
// audited); changing it regroups what was already rolled up, and untagged runs are
// "(none)".
func TestAnalyticsTagDimensionFollowsTheSettings(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	ag := tn.newAgent(t, "tagged")
	runWith(t, ag.ingest, ag.agentID, "gpt-4o", "chat", 2*dollar, v1.RunStatus_RUN_STATUS_SUCCEEDED) // team=search
	resp, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o",
		Estimate: &v1.Estimate{CostMicros: dollar}}))
	require.NoError(t, err)
	complete(t, ag.ingest, resp.Msg.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, dollar) // untagged
	an := analyticsClient(tn.stack, tn.org.Secret)

	got, err := an.GetAnalyticsSettings(ctx, connect.NewRequest(&v1.GetAnalyticsSettingsRequest{}))
	require.NoError(t, err)
	require.Empty(t, got.Msg.Settings.TagKey)
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err = viewer.analytics.UpdateAnalyticsSettings(ctx, connect.NewRequest(&v1.UpdateAnalyticsSettingsRequest{
		Settings: &v1.AnalyticsSettings{TagKey: "team"}}))
	requireCode(t, connect.CodePermissionDenied, err)
	up, err := an.UpdateAnalyticsSettings(ctx, connect.NewRequest(&v1.UpdateAnalyticsSettingsRequest{Settings: &v1.AnalyticsSettings{TagKey: "team"}}))
	require.NoError(t, err)
	require.Equal(t, "team", up.Msg.Settings.TagKey)
	_, err = an.UpdateAnalyticsSettings(ctx, connect.NewRequest(&v1.UpdateAnalyticsSettingsRequest{Settings: &v1.AnalyticsSettings{TagKey: "bad key!"}}))
	requireInvalidField(t, err, "settings.tag_key")
	got, err = an.GetAnalyticsSettings(ctx, connect.NewRequest(&v1.GetAnalyticsSettingsRequest{}))
	require.NoError(t, err)
	require.Equal(t, "team", got.Msg.Settings.TagKey)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityType: "analytics_settings"}))
	require.NoError(t, err)
	require.NotEmpty(t, entries.Msg.Entries, "the change is on the ledger")

	byTag := map[string]int64{}
	eventually(t, patience, func() bool {
		r, err := an.QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: timestamppb.New(time.Now().Add(-time.Hour)),
			GroupBy: []v1.UsageDimension{v1.UsageDimension_USAGE_DIMENSION_TAG}}))
		require.NoError(t, err)
		clear(byTag)
		for _, g := range r.Msg.Groups {
			k := g.Key[0].Value
			if g.Key[0].None {
				k = "(none)"
			}
			byTag[k] += g.Total.CostMicros
		}
		return byTag["search"] == 2*dollar && byTag["(none)"] == dollar
	}, "runs group by the team tag, untagged ones as (none)")
}
