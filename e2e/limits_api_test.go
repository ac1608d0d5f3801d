package e2e

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// GetLimit and ListLimits show limits as created (with their defaults), ListLimits narrows
// by scope and pages; DeleteLimit stops a limit from applying at once, on the ledger, and
// it is gone from reads. Another organization sees none of it.
func TestLimitsAreReadListedAndDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "limited")
	org := tn.createLimit(t, &v1.CreateLimitRequest{Name: "org daily", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	prj := tn.createLimit(t, &v1.CreateLimitRequest{Name: "project runs", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_PROJECT, Id: ag.projectID},
		Metric: v1.LimitMetric_LIMIT_METRIC_RUNS, Window: v1.LimitWindow_LIMIT_WINDOW_WEEK, Amount: 100, Priority: 5,
		Enforcement: v1.LimitEnforcement_LIMIT_ENFORCEMENT_WARN, AlertThresholdsPercent: []int32{50}})
	agt := tn.createLimit(t, &v1.CreateLimitRequest{Name: "agent tokens", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: ag.agentID},
		Metric: v1.LimitMetric_LIMIT_METRIC_TOKENS, Window: v1.LimitWindow_LIMIT_WINDOW_MONTH, Amount: 1_000_000, Model: "gpt-4o"})

	got, err := tn.admin.limits.GetLimit(ctx, connect.NewRequest(&v1.GetLimitRequest{Id: org.Id}))
	require.NoError(t, err)
	l := got.Msg.Limit
	require.True(t, proto.Equal(org, l), "GetLimit returns the limit as created: %v", l)
	require.Equal(t, "org daily", l.Name)
	require.Equal(t, v1.LimitScope_LIMIT_SCOPE_ORGANIZATION, l.Scope.Type)
	require.Equal(t, tn.org.Organization.Id, l.Scope.Id)
	require.Equal(t, v1.LimitEnforcement_LIMIT_ENFORCEMENT_BLOCK, l.Enforcement, "block by default")
	require.Equal(t, v1.LimitInheritance_LIMIT_INHERITANCE_MERGE, l.Inheritance, "merge by default")
	require.Equal(t, []int32{80, 90, 100}, l.AlertThresholdsPercent, "80/90/100 by default")
	require.True(t, l.Enabled)
	_, err = ag.ingest.limits.GetLimit(ctx, connect.NewRequest(&v1.GetLimitRequest{Id: prj.Id}))
	requireCode(t, connect.CodePermissionDenied, err) // agents check limits (CheckLimits), they do not read them
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	got, err = viewer.limits.GetLimit(ctx, connect.NewRequest(&v1.GetLimitRequest{Id: prj.Id}))
	require.NoError(t, err, "a viewer reads limits")
	require.Equal(t, v1.LimitEnforcement_LIMIT_ENFORCEMENT_WARN, got.Msg.Limit.Enforcement)
	require.Equal(t, []int32{50}, got.Msg.Limit.AlertThresholdsPercent)
	require.EqualValues(t, 5, got.Msg.Limit.Priority)

	ids := func(req *v1.ListLimitsRequest) []string {
		t.Helper()
		var out []string
		for {
			resp, err := tn.admin.limits.ListLimits(ctx, connect.NewRequest(req))
			require.NoError(t, err)
			for _, l := range resp.Msg.Limits {
				out = append(out, l.Id)
			}
			if resp.Msg.NextPageToken == "" {
				return out
			}
			req.PageToken = resp.Msg.NextPageToken
		}
	}
	require.Equal(t, []string{org.Id, prj.Id, agt.Id}, ids(&v1.ListLimitsRequest{PageSize: 2}), "every limit, in id order, over two pages")
	require.Equal(t, []string{org.Id}, ids(&v1.ListLimitsRequest{Scope: orgScope()}))
	require.Equal(t, []string{prj.Id}, ids(&v1.ListLimitsRequest{Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_PROJECT, Id: ag.projectID}}))
	require.Equal(t, []string{agt.Id}, ids(&v1.ListLimitsRequest{Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: ag.agentID}}))
	require.Empty(t, ids(&v1.ListLimitsRequest{Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_API_KEY, Id: ag.keyID}}))

	other := newTenant(t, "UTC")
	_, err = other.admin.limits.GetLimit(ctx, connect.NewRequest(&v1.GetLimitRequest{Id: org.Id}))
	requireCode(t, connect.CodeNotFound, err)
	theirs, err := other.admin.limits.ListLimits(ctx, connect.NewRequest(&v1.ListLimitsRequest{}))
	require.NoError(t, err)
	require.Empty(t, theirs.Msg.Limits)
	_, err = other.admin.limits.DeleteLimit(ctx, connect.NewRequest(&v1.DeleteLimitRequest{Id: org.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = tn.admin.limits.GetLimit(ctx, connect.NewRequest(&v1.GetLimitRequest{Id: "lim_nope"}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "id")

	// The $10 daily budget refuses a $15 run until it is deleted.
	_, err = admit(t, ag.ingest, ag.agentID, 15*dollar)
	rb := blockedDetail(t, err)
	require.Equal(t, org.Id, rb.Blocking.LimitId)
	_, err = ag.ingest.limits.DeleteLimit(ctx, connect.NewRequest(&v1.DeleteLimitRequest{Id: org.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = tn.admin.limits.DeleteLimit(ctx, connect.NewRequest(&v1.DeleteLimitRequest{Id: org.Id}))
	require.NoError(t, err)
	run, err := admit(t, ag.ingest, ag.agentID, 15*dollar)
	require.NoError(t, err, "a deleted limit no longer applies")
	require.Equal(t, v1.RunStatus_RUN_STATUS_ADMITTED, run.Status)
	_, err = tn.admin.limits.GetLimit(ctx, connect.NewRequest(&v1.GetLimitRequest{Id: org.Id}))
	requireCode(t, connect.CodeNotFound, err)
	require.Equal(t, []string{prj.Id, agt.Id}, ids(&v1.ListLimitsRequest{}))
	_, err = tn.admin.limits.DeleteLimit(ctx, connect.NewRequest(&v1.DeleteLimitRequest{Id: org.Id}))
	requireCode(t, connect.CodeNotFound, err)

	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: org.Id, Action: "limit.delete"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1, "one deletion on the ledger")
	require.Contains(t, entries.Msg.Entries[0].BeforeJson, `"name": "org daily"`)
	require.Equal(t, tn.org.Admin.Id, entries.Msg.Entries[0].Actor.UserId)
	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{
		Types: []string{"limit_deleted"}, Entity: &v1.EntityRef{Type: "limit", Id: org.Id}}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 1)
}

// ListModelPrices shows Governor's defaults and the organization's own prices (marked
// custom, one entry per model); DeleteModelPrice returns a model to its default, which
// admission uses from then on.
func TestModelPricesAreListedAndDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "priced")
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	prices := func() map[string]*v1.ModelPrice {
		t.Helper()
		resp, err := viewer.limits.ListModelPrices(ctx, connect.NewRequest(&v1.ListModelPricesRequest{}))
		require.NoError(t, err)
		out := map[string]*v1.ModelPrice{}
		for _, p := range resp.Msg.Prices {
			require.NotContains(t, out, p.Model, "one entry per model")
			out[p.Model] = p
		}
		return out
	}
	estimate := func() int64 {
		t.Helper()
		chk, err := ag.ingest.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID, Model: "gpt-4o",
			Estimate: &v1.Estimate{InputTokens: 1_000_000, OutputTokens: 1_000_000}}))
		require.NoError(t, err)
		return chk.Msg.Checks[0].Requested
	}
	tn.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 1000 * dollar})

	def := prices()
	require.Contains(t, def, "gpt-4o")
	require.False(t, def["gpt-4o"].Custom)
	require.EqualValues(t, 2_500_000, def["gpt-4o"].InputMicrosPerMillionTokens, "$2.50 per million input tokens")
	require.EqualValues(t, 10_000_000, def["gpt-4o"].OutputMicrosPerMillionTokens, "$10 per million output tokens")
	require.EqualValues(t, 12_500_000, estimate())

	_, err := tn.admin.limits.SetModelPrice(ctx, connect.NewRequest(&v1.SetModelPriceRequest{Model: "gpt-4o",
		InputMicrosPerMillionTokens: 1_000_000, OutputMicrosPerMillionTokens: 2_000_000}))
	require.NoError(t, err)
	_, err = tn.admin.limits.SetModelPrice(ctx, connect.NewRequest(&v1.SetModelPriceRequest{Model: "in-house-7b",
		InputMicrosPerMillionTokens: 100_000, OutputMicrosPerMillionTokens: 100_000}))
	require.NoError(t, err)
	custom := prices()
	require.Len(t, custom, len(def)+1, "the new model is added; gpt-4o is replaced, not listed twice")
	require.True(t, custom["gpt-4o"].Custom)
	require.EqualValues(t, 1_000_000, custom["gpt-4o"].InputMicrosPerMillionTokens)
	require.EqualValues(t, 2_000_000, custom["gpt-4o"].OutputMicrosPerMillionTokens)
	require.NotNil(t, custom["gpt-4o"].UpdateTime)
	require.True(t, custom["in-house-7b"].Custom)
	require.EqualValues(t, 3_000_000, estimate(), "admission prices at the organization's price")
	other := newTenant(t, "UTC")
	theirs, err := other.admin.limits.ListModelPrices(ctx, connect.NewRequest(&v1.ListModelPricesRequest{}))
	require.NoError(t, err)
	for _, p := range theirs.Msg.Prices {
		require.False(t, p.Custom, "another organization's prices are its own: %s", p.Model)
	}

	_, err = viewer.limits.DeleteModelPrice(ctx, connect.NewRequest(&v1.DeleteModelPriceRequest{Model: "gpt-4o"}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = tn.admin.limits.DeleteModelPrice(ctx, connect.NewRequest(&v1.DeleteModelPriceRequest{Model: "gpt-4o"}))
	require.NoError(t, err)
	back := prices()
	require.False(t, back["gpt-4o"].Custom, "back to the default")
	require.EqualValues(t, 2_500_000, back["gpt-4o"].InputMicrosPerMillionTokens)
	require.True(t, back["in-house-7b"].Custom, "only the model named is deleted")
	require.EqualValues(t, 12_500_000, estimate(), "admission prices at the default again")
	_, err = tn.admin.limits.DeleteModelPrice(ctx, connect.NewRequest(&v1.DeleteModelPriceRequest{Model: "gpt-4o"}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = tn.admin.limits.DeleteModelPrice(ctx, connect.NewRequest(&v1.DeleteModelPriceRequest{Model: "in-house-7b"}))
	require.NoError(t, err)
	_, gone := prices()["in-house-7b"]
	require.False(t, gone, "a model without a default has no price once its own is deleted")

	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "model_price.delete"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 2)
	require.Contains(t, entries.Msg.Entries[0].BeforeJson, "gpt-4o")
	require.Contains(t, entries.Msg.Entries[1].BeforeJson, "in-house-7b")
}
