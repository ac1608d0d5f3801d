package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
)

// bearerAll authenticates unary calls and streams alike.
type bearerAll string

func (b bearerAll) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearerAll) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearerAll) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// recordClients are the clients of the read side's new services, with the key's secret
// (for plain HTTP downloads).
type recordClients struct {
	clients
	logs   governorv1connect.LogServiceClient
	export governorv1connect.ExportServiceClient
	secret string
}

func (s *stack) recordClientsFor(secret string) recordClients {
	o := connect.WithInterceptors(bearerAll(secret))
	return recordClients{clients: s.clientsFor(secret), secret: secret,
		logs: governorv1connect.NewLogServiceClient(s.http, s.baseURL, o), export: governorv1connect.NewExportServiceClient(s.http, s.baseURL, o)}
}

func (tn *tenant) adminRecords() recordClients { return tn.recordClientsFor(tn.org.Secret) }

// agentWithKey is agentKit with its ingest key's secret.
type agentWithKey struct {
	agentKit
	rec recordClients
}

func (tn *tenant) agentWithKey(t *testing.T, name string) agentWithKey {
	t.Helper()
	ctx := context.Background()
	p, err := tn.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "project of " + name}))
	require.NoError(t, err)
	a, err := tn.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: p.Msg.Project.Id, Name: name}))
	require.NoError(t, err)
	k, err := tn.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: name + " ingest", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST, AgentId: a.Msg.Agent.Id}))
	require.NoError(t, err)
	rec := tn.recordClientsFor(k.Msg.Secret)
	return agentWithKey{agentKit: agentKit{projectID: p.Msg.Project.Id, agentID: a.Msg.Agent.Id, keyID: k.Msg.ApiKey.Id, ingest: rec.clients}, rec: rec}
}

func admitFor(t *testing.T, c clients, agentID, model string, estimate int64) *v1.Run {
	t.Helper()
	r, err := c.runs.AdmitRun(context.Background(), connect.NewRequest(&v1.AdmitRunRequest{AgentId: agentID, Model: model,
		Feature: "chat", Estimate: &v1.Estimate{CostMicros: estimate}}))
	require.NoError(t, err)
	return r.Msg.Run
}

func recordCalls(t *testing.T, c clients, runID string, calls ...*v1.LlmCallReport) *v1.RecordLlmCallsResponse {
	t.Helper()
	r, err := c.runs.RecordLlmCalls(context.Background(), connect.NewRequest(&v1.RecordLlmCallsRequest{RunId: runID, Calls: calls}))
	require.NoError(t, err)
	return r.Msg
}

// allCalls pages through ListLlmCalls.
func allCalls(t *testing.T, c recordClients, req *v1.ListLlmCallsRequest) []*v1.LlmCall {
	t.Helper()
	var out []*v1.LlmCall
	for {
		r, err := c.logs.ListLlmCalls(context.Background(), connect.NewRequest(req))
		require.NoError(t, err)
		out = append(out, r.Msg.Calls...)
		if r.Msg.NextPageToken == "" {
			return out
		}
		req = proto.Clone(req).(*v1.ListLlmCallsRequest)
		req.PageToken = r.Msg.NextPageToken
	}
}

func callIDs(calls []*v1.LlmCall) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.CallId)
	}
	return out
}

// Seed 000's llm_run_records: a batch of calls is recorded once per call id, each token
// kind priced at its own rate, and the calls list by run, model, status and time, in
// either order.
func TestLlmCallsAreRecordedOncePricedByKindAndListed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "caller")
	admin := tn.adminRecords()
	_, err := tn.admin.limits.SetModelPrice(ctx, connect.NewRequest(&v1.SetModelPriceRequest{Model: "m-kinds",
		InputMicrosPerMillionTokens: 1_000_000, OutputMicrosPerMillionTokens: 2_000_000,
		CacheReadMicrosPerMillionTokens: proto.Int64(100_000), ReasoningMicrosPerMillionTokens: proto.Int64(3_000_000)}))
	require.NoError(t, err)
	prices, err := tn.admin.limits.ListModelPrices(ctx, connect.NewRequest(&v1.ListModelPricesRequest{}))
	require.NoError(t, err)
	for _, p := range prices.Msg.Prices {
		switch p.Model {
		case "m-kinds":
			require.EqualValues(t, 100_000, p.GetCacheReadMicrosPerMillionTokens())
			require.Nil(t, p.CacheWriteMicrosPerMillionTokens, "not set: falls back to the input price")
		case "claude-sonnet-4":
			require.EqualValues(t, 300_000, p.GetCacheReadMicrosPerMillionTokens(), "default cache prices are listed")
		}
	}

	run := admitFor(t, ag.ingest, ag.agentID, "m-kinds", dollar)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	batch := []*v1.LlmCallReport{
		// $1 input + $1 output + $0.20 cache reads + $1 cache writes (input price) + $0.30 reasoning.
		{CallId: "c1", Model: "m-kinds", Provider: "acme", Operation: "chat", InputTokens: 1_000_000, OutputTokens: 500_000,
			CacheReadTokens: 2_000_000, CacheWriteTokens: 1_000_000, ReasoningTokens: 100_000, LatencyMs: proto.Int64(850),
			StartTime: timestamppb.New(t0), Attributes: map[string]string{"step": "plan"},
			TraceId: "4bf92f3577b34da6a3ce929d0e0e4736", SpanId: "00f067aa0ba902b7"},
		{CallId: "c2", Model: "gpt-4o", Provider: "openai", CostMicros: proto.Int64(1234), Status: v1.LlmCallStatus_LLM_CALL_STATUS_ERROR,
			ErrorType: "rate_limited", StartTime: timestamppb.New(t0.Add(time.Second))},
		{CallId: "c3", Model: "my-unpriced", InputTokens: 10, StartTime: timestamppb.New(t0.Add(2 * time.Second))},
	}
	got := recordCalls(t, ag.ingest, run.Id, batch...)
	require.EqualValues(t, 3, got.Recorded)
	require.EqualValues(t, 0, got.AlreadyRecorded)
	require.EqualValues(t, 0, got.Late)
	require.EqualValues(t, 3_500_000+1234, got.CostMicros)

	// A retried batch (with one new call) records only the new one, and says so.
	c4 := &v1.LlmCallReport{CallId: "c4", Model: "gpt-4o", InputTokens: 1000, CacheReadTokens: 1000, StartTime: timestamppb.New(t0.Add(3 * time.Second))}
	got = recordCalls(t, ag.ingest, run.Id, append(batch, c4)...)
	require.EqualValues(t, 1, got.Recorded)
	require.EqualValues(t, 3, got.AlreadyRecorded)
	require.Equal(t, []string{"c1", "c2", "c3"}, got.AlreadyRecordedCallIds)
	// gpt-4o's default prices: $2.50/M input, $1.25/M cached input.
	require.EqualValues(t, 2500+1250, got.CostMicros)

	calls := allCalls(t, admin, &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{RunId: run.Id}})
	require.Equal(t, []string{"c1", "c2", "c3", "c4"}, callIDs(calls), "oldest first")
	c1 := calls[0]
	require.EqualValues(t, 3_500_000, c1.CostMicros)
	require.Equal(t, v1.LlmCallCostSource_LLM_CALL_COST_SOURCE_PRICED, c1.CostSource)
	require.EqualValues(t, 850, c1.GetLatencyMs())
	require.Equal(t, map[string]string{"step": "plan"}, c1.Attributes)
	require.Equal(t, "acme", c1.Provider)
	require.Equal(t, "chat", c1.Feature, "the run's feature")
	require.Equal(t, ag.keyID, c1.ApiKeyId)
	require.Equal(t, ag.agentID, c1.AgentId)
	require.Equal(t, ag.projectID, c1.ProjectId)
	require.Equal(t, v1.LlmCallSource_LLM_CALL_SOURCE_API, c1.Source)
	require.Equal(t, "00f067aa0ba902b7", c1.SpanId)
	require.True(t, c1.StartTime.AsTime().Equal(t0))
	require.False(t, c1.Late)
	require.Equal(t, v1.LlmCallCostSource_LLM_CALL_COST_SOURCE_REPORTED, calls[1].CostSource)
	require.Equal(t, v1.LlmCallStatus_LLM_CALL_STATUS_ERROR, calls[1].Status)
	require.Equal(t, v1.LlmCallCostSource_LLM_CALL_COST_SOURCE_UNPRICED, calls[2].CostSource)
	require.EqualValues(t, 0, calls[2].CostMicros)
	require.Nil(t, calls[2].LatencyMs)

	// Filters.
	require.Equal(t, []string{"c2", "c4"}, callIDs(allCalls(t, admin, &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{Model: "gpt-4o"}})))
	require.Equal(t, []string{"c2"}, callIDs(allCalls(t, admin, &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{Status: v1.LlmCallStatus_LLM_CALL_STATUS_ERROR}})))
	require.Equal(t, []string{"c1"}, callIDs(allCalls(t, admin, &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{Provider: "acme", AgentId: ag.agentID, ApiKeyId: ag.keyID}})))
	require.Equal(t, []string{"c2", "c3"}, callIDs(allCalls(t, admin, &v1.ListLlmCallsRequest{
		StartTime: timestamppb.New(t0.Add(time.Second)), EndTime: timestamppb.New(t0.Add(3 * time.Second))})))
	// Newest first, one per page; a token of one order is refused in the other.
	desc := allCalls(t, admin, &v1.ListLlmCallsRequest{NewestFirst: true, PageSize: 1})
	require.Equal(t, []string{"c4", "c3", "c2", "c1"}, callIDs(desc))
	page, err := admin.logs.ListLlmCalls(ctx, connect.NewRequest(&v1.ListLlmCallsRequest{PageSize: 1}))
	require.NoError(t, err)
	_, err = admin.logs.ListLlmCalls(ctx, connect.NewRequest(&v1.ListLlmCallsRequest{PageSize: 1, NewestFirst: true, PageToken: page.Msg.NextPageToken}))
	requireCode(t, connect.CodeInvalidArgument, err)
	_, err = admin.logs.ListLlmCalls(ctx, connect.NewRequest(&v1.ListLlmCallsRequest{PageToken: "garbage"}))
	requireCode(t, connect.CodeInvalidArgument, err)

	// Hostile batches are refused with the field named.
	rec := func(calls ...*v1.LlmCallReport) error {
		_, err := ag.ingest.runs.RecordLlmCalls(ctx, connect.NewRequest(&v1.RecordLlmCallsRequest{RunId: run.Id, Calls: calls}))
		return err
	}
	err = rec(&v1.LlmCallReport{CallId: "big", InputTokens: 1_000_000_000_001})
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "input_tokens")
	err = rec(&v1.LlmCallReport{CallId: "d"}, &v1.LlmCallReport{CallId: "d"})
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "calls[1].call_id")
	err = rec(&v1.LlmCallReport{CallId: "future", StartTime: timestamppb.New(time.Now().Add(48 * time.Hour))})
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "start_time")
	many := make([]*v1.LlmCallReport, 1001)
	for i := range many {
		many[i] = &v1.LlmCallReport{CallId: fmt.Sprint("m", i)}
	}
	requireCode(t, connect.CodeInvalidArgument, rec(many...))
	requireCode(t, connect.CodeInvalidArgument, rec(&v1.LlmCallReport{CallId: "cost", CostMicros: proto.Int64(1_000_000_000_000_001)}))

	// Only keys that may act for the run's agent record its calls; another organization
	// does not see the run at all; people without the ingest permission may not.
	other := tn.agentWithKey(t, "someone else")
	_, err = other.ingest.runs.RecordLlmCalls(ctx, connect.NewRequest(&v1.RecordLlmCallsRequest{RunId: run.Id, Calls: []*v1.LlmCallReport{{CallId: "x"}}}))
	requireCode(t, connect.CodePermissionDenied, err)
	stranger := newTenant(t, "UTC")
	_, err = stranger.admin.runs.RecordLlmCalls(ctx, connect.NewRequest(&v1.RecordLlmCallsRequest{RunId: run.Id, Calls: []*v1.LlmCallReport{{CallId: "x"}}}))
	requireCode(t, connect.CodeNotFound, err)
	require.Empty(t, allCalls(t, stranger.adminRecords(), &v1.ListLlmCallsRequest{}))
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err = viewer.runs.RecordLlmCalls(ctx, connect.NewRequest(&v1.RecordLlmCallsRequest{RunId: run.Id, Calls: []*v1.LlmCallReport{{CallId: "x"}}}))
	requireCode(t, connect.CodePermissionDenied, err)
	// An admin may act for any agent: its call is attributed to the run's agent and to the admin's key.
	got = recordCalls(t, tn.admin, run.Id, &v1.LlmCallReport{CallId: "by-admin"})
	require.EqualValues(t, 1, got.Recorded)
	byAdmin := allCalls(t, admin, &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{ApiKeyId: tn.org.APIKey.Id}})
	require.Equal(t, []string{"by-admin"}, callIDs(byAdmin))
	require.Equal(t, ag.agentID, byAdmin[0].AgentId)
}

func runCompletedData(t *testing.T, tn *tenant, runID string) string {
	t.Helper()
	evs, err := tn.admin.timeline.ListEvents(context.Background(), connect.NewRequest(&v1.ListEventsRequest{
		Filter: &v1.EventFilter{Types: []string{"run_completed"}, CorrelationId: runID}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 1)
	return evs.Msg.Events[0].DataJson
}

func costUsed(t *testing.T, tn *tenant, ag agentWithKey) int64 {
	t.Helper()
	chk, err := tn.admin.limits.CheckLimits(context.Background(), connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID, ApiKeyId: ag.keyID,
		Estimate: &v1.Estimate{CostMicros: 1}}))
	require.NoError(t, err)
	require.Len(t, chk.Msg.Checks, 1)
	return chk.Msg.Checks[0].Used
}

// How a run's cost relates to its calls, both ways: a run that reports no cost and no
// tokens is charged the sum of its calls at settlement (and its limits with it); a run
// that reports a cost keeps it. Calls recorded after settlement are late and charge
// nothing; under a cost limit an unpriced call of a run charged by its calls is refused.
func TestRunCostFollowsItsCallsOnlyWhenItReportsNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "worker")
	tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 100 * dollar})

	// Charged its calls: no cost, no tokens reported.
	a := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", 5*dollar)
	recordCalls(t, ag.ingest, a.Id,
		&v1.LlmCallReport{CallId: "a1", Model: "gpt-4o", CostMicros: proto.Int64(1_250_000), InputTokens: 100, OutputTokens: 50, CacheReadTokens: 10, ReasoningTokens: 5},
		&v1.LlmCallReport{CallId: "a2", Model: "claude-sonnet-4", CostMicros: proto.Int64(750_000), InputTokens: 100, OutputTokens: 50, CacheWriteTokens: 10, ReasoningTokens: 5})
	_, err := ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: a.Id, Status: v1.RunStatus_RUN_STATUS_SUCCEEDED}))
	require.NoError(t, err)
	settled := waitSettled(t, tn.admin, a.Id)
	require.EqualValues(t, 2_000_000, settled.Actual.CostMicros)
	require.EqualValues(t, 220, settled.Actual.InputTokens, "input with cache reads and writes")
	require.EqualValues(t, 110, settled.Actual.OutputTokens, "output with reasoning")
	cost, err := tn.admin.runs.GetRunCost(ctx, connect.NewRequest(&v1.GetRunCostRequest{RunId: a.Id}))
	require.NoError(t, err)
	require.EqualValues(t, 2_000_000, cost.Msg.Cost.CostMicros)
	require.Contains(t, runCompletedData(t, tn, a.Id), `"cost_source": "calls"`)
	require.EqualValues(t, 2_000_000, costUsed(t, tn, ag), "the budget is charged the calls")

	// A late call is recorded and marked, and changes no charge.
	late := recordCalls(t, ag.ingest, a.Id, &v1.LlmCallReport{CallId: "a3", CostMicros: proto.Int64(9 * dollar)})
	require.EqualValues(t, 1, late.Recorded)
	require.EqualValues(t, 1, late.Late)
	require.EqualValues(t, 2_000_000, waitSettled(t, tn.admin, a.Id).Actual.CostMicros)
	require.EqualValues(t, 2_000_000, costUsed(t, tn, ag))
	calls := allCalls(t, tn.adminRecords(), &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{RunId: a.Id}})
	require.Len(t, calls, 3)
	require.True(t, calls[2].Late)
	require.False(t, calls[0].Late)

	// Keeps its reported cost: the calls are informational.
	b := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", 5*dollar)
	recordCalls(t, ag.ingest, b.Id, &v1.LlmCallReport{CallId: "b1", CostMicros: proto.Int64(dollar)}, &v1.LlmCallReport{CallId: "b2", CostMicros: proto.Int64(dollar)})
	complete(t, ag.ingest, b.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 400_000)
	require.EqualValues(t, 400_000, waitSettled(t, tn.admin, b.Id).Actual.CostMicros)
	require.Contains(t, runCompletedData(t, tn, b.Id), `"cost_source": "reported"`)
	require.EqualValues(t, 2_400_000, costUsed(t, tn, ag))

	// A run charged by its calls, under a cost limit, cannot have free calls.
	c := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", dollar)
	_, err = ag.ingest.runs.RecordLlmCalls(ctx, connect.NewRequest(&v1.RecordLlmCallsRequest{RunId: c.Id, Calls: []*v1.LlmCallReport{
		{CallId: "c1", Model: "gpt-4o", InputTokens: 10}, {CallId: "c2", Model: "no-price", InputTokens: 1000}}}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	require.Equal(t, "MODEL_UNPRICED", errorInfo(t, err).Reason)
	require.Contains(t, err.Error(), "calls[1].cost_micros")
	recordCalls(t, ag.ingest, c.Id, &v1.LlmCallReport{CallId: "c2", Model: "no-price", InputTokens: 1000, CostMicros: proto.Int64(300)})
	require.Empty(t, allCalls(t, tn.adminRecords(), &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{Model: "gpt-4o", RunId: c.Id}}),
		"the refused batch recorded nothing")
}

// Calls recorded while their run settles are either in its charge or marked late, never
// lost between the two: the run's cost equals the sum of its calls that are not late.
func TestCallsRacingASettlementAreChargedOrLate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "racer")
	run := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", dollar)

	var settled atomic.Bool
	var mu sync.Mutex
	var errs []error
	var recorded atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			after := 0
			for i := 0; after < 5; i++ {
				if settled.Load() {
					after++
				}
				var batch []*v1.LlmCallReport
				for j := range 20 {
					batch = append(batch, &v1.LlmCallReport{CallId: fmt.Sprintf("w%d-b%d-c%d", w, i, j), CostMicros: proto.Int64(1000 + int64(j))})
				}
				r, err := ag.ingest.runs.RecordLlmCalls(ctx, connect.NewRequest(&v1.RecordLlmCallsRequest{RunId: run.Id, Calls: batch}))
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				recorded.Add(int64(r.Msg.Recorded))
			}
		})
	}
	eventually(t, patience, func() bool { return recorded.Load() >= 200 }, 60*time.Second, 10*time.Millisecond)
	_, err := ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Id, Status: v1.RunStatus_RUN_STATUS_SUCCEEDED}))
	require.NoError(t, err)
	final := waitSettled(t, tn.admin, run.Id)
	settled.Store(true)
	wg.Wait()
	require.Empty(t, errs)

	calls := allCalls(t, tn.adminRecords(), &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{RunId: run.Id}, PageSize: 500})
	require.EqualValues(t, recorded.Load(), len(calls))
	var charged, late int64
	for _, c := range calls {
		if c.Late {
			late++
		} else {
			charged += c.CostMicros
		}
	}
	require.Positive(t, late, "calls kept coming after the settlement")
	require.EqualValues(t, charged, final.Actual.CostMicros, "the charge is exactly the calls that are not late")
}

// Seed 000 2.1: one run's logs, its events, calls and system records, in time order.
func TestGetRunLogsMergesEventsCallsAndSystemRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "logged")
	admin := tn.adminRecords()
	run := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", dollar)
	eventually(t, patience, func() bool {
		r, err := admin.logs.ListSystemRecords(ctx, connect.NewRequest(&v1.ListSystemRecordsRequest{RunId: run.Id, Kinds: []string{"workflow_started"}}))
		require.NoError(t, err)
		return len(r.Msg.Records) == 1
	}, "the relay records the workflow it started")
	recordCalls(t, ag.ingest, run.Id, &v1.LlmCallReport{CallId: "l1", CostMicros: proto.Int64(10)}, &v1.LlmCallReport{CallId: "l2", CostMicros: proto.Int64(20)})
	_, err := ag.ingest.runs.RecordFeedback(ctx, connect.NewRequest(&v1.RecordFeedbackRequest{FeedbackId: "f1", RunId: run.Id, Score: 1}))
	require.NoError(t, err)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Id, Status: v1.RunStatus_RUN_STATUS_SUCCEEDED}))
	require.NoError(t, err)
	waitSettled(t, tn.admin, run.Id)

	type line struct{ kind, what string }
	describe := func(e *v1.RunLogEntry) line {
		switch x := e.Entry.(type) {
		case *v1.RunLogEntry_Event:
			return line{"event", x.Event.Type}
		case *v1.RunLogEntry_LlmCall:
			return line{"call", x.LlmCall.CallId}
		case *v1.RunLogEntry_SystemRecord:
			return line{"system", x.SystemRecord.Kind}
		}
		return line{}
	}
	whole, err := admin.runs.GetRunLogs(ctx, connect.NewRequest(&v1.GetRunLogsRequest{RunId: run.Id, PageSize: 500}))
	require.NoError(t, err)
	require.Empty(t, whole.Msg.NextPageToken)
	var lines []line
	for i, e := range whole.Msg.Entries {
		lines = append(lines, describe(e))
		if i > 0 {
			require.False(t, e.Time.AsTime().Before(whole.Msg.Entries[i-1].Time.AsTime()), "time order")
		}
	}
	for _, want := range []line{{"event", "run_admitted"}, {"system", "workflow_started"}, {"call", "l1"}, {"call", "l2"},
		{"event", "run_feedback_recorded"}, {"event", "run_completed"}} {
		require.Contains(t, lines, want)
	}
	require.Equal(t, line{"event", "run_admitted"}, lines[0])
	require.Less(t, slices.Index(lines, line{"call", "l2"}), slices.Index(lines, line{"event", "run_completed"}))

	// Pages of two add up to the whole, in the same order.
	var paged []line
	token := ""
	for {
		r, err := admin.runs.GetRunLogs(ctx, connect.NewRequest(&v1.GetRunLogsRequest{RunId: run.Id, PageSize: 2, PageToken: token}))
		require.NoError(t, err)
		require.LessOrEqual(t, len(r.Msg.Entries), 2)
		for _, e := range r.Msg.Entries {
			paged = append(paged, describe(e))
		}
		if token = r.Msg.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, lines, paged)

	other := newTenant(t, "UTC")
	_, err = other.adminRecords().runs.GetRunLogs(ctx, connect.NewRequest(&v1.GetRunLogsRequest{RunId: run.Id}))
	requireCode(t, connect.CodeNotFound, err)
	calls, err := admin.logs.ListLlmCalls(ctx, connect.NewRequest(&v1.ListLlmCallsRequest{PageSize: 1}))
	require.NoError(t, err)
	_, err = admin.runs.GetRunLogs(ctx, connect.NewRequest(&v1.GetRunLogsRequest{RunId: run.Id, PageToken: calls.Msg.NextPageToken}))
	requireCode(t, connect.CodeInvalidArgument, err)
	_, err = ag.ingest.runs.GetRunLogs(ctx, connect.NewRequest(&v1.GetRunLogsRequest{RunId: run.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
}

// Feedback on runs: once per feedback id, by people of any role and by the run's own
// agent, on the timeline and not on the audit ledger.
func TestRecordFeedbackIsIdempotentAndScoped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "rated")
	run := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", dollar)
	req := &v1.RecordFeedbackRequest{FeedbackId: "thumbs-1", RunId: run.Id, Score: 0, Label: "thumbs_down", Comment: "wrong answer"}
	first, err := ag.ingest.runs.RecordFeedback(ctx, connect.NewRequest(req))
	require.NoError(t, err)
	require.False(t, first.Msg.Replayed)
	require.Equal(t, ag.keyID, first.Msg.Feedback.ApiKeyId)
	again, err := ag.ingest.runs.RecordFeedback(ctx, connect.NewRequest(req))
	require.NoError(t, err)
	require.True(t, again.Msg.Replayed)
	require.Equal(t, first.Msg.Feedback.Id, again.Msg.Feedback.Id)
	changed := proto.Clone(req).(*v1.RecordFeedbackRequest)
	changed.Score = 1
	_, err = ag.ingest.runs.RecordFeedback(ctx, connect.NewRequest(changed))
	requireCode(t, connect.CodeAlreadyExists, err)

	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	v, err := viewer.runs.RecordFeedback(ctx, connect.NewRequest(&v1.RecordFeedbackRequest{FeedbackId: "stars-1", RunId: run.Id, Score: 0.75}))
	require.NoError(t, err)
	require.Equal(t, viewer.userID, v.Msg.Feedback.UserId)
	other := tn.agentWithKey(t, "not its agent")
	_, err = other.ingest.runs.RecordFeedback(ctx, connect.NewRequest(&v1.RecordFeedbackRequest{FeedbackId: "x", RunId: run.Id, Score: 1}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = viewer.runs.RecordFeedback(ctx, connect.NewRequest(&v1.RecordFeedbackRequest{FeedbackId: "y", RunId: run.Id, Score: 1.5}))
	requireCode(t, connect.CodeInvalidArgument, err)
	stranger := newTenant(t, "UTC")
	_, err = stranger.admin.runs.RecordFeedback(ctx, connect.NewRequest(&v1.RecordFeedbackRequest{FeedbackId: "z", RunId: run.Id, Score: 1}))
	requireCode(t, connect.CodeNotFound, err)

	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{Types: []string{"run_feedback_recorded"}}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 2, "one event per feedback, none for the replay")
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: run.Id}))
	require.NoError(t, err)
	require.Empty(t, entries.Msg.Entries, "feedback is not a governance change")
}

// AdmitRun's retry_of links a run to the one it retries, within the organization.
func TestRetryOfLinksARunToTheRunItRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "retrier")
	first := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", dollar)
	complete(t, ag.ingest, first.Id, v1.RunStatus_RUN_STATUS_FAILED, 1000)
	retry, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o",
		Estimate: &v1.Estimate{CostMicros: dollar}, RetryOf: first.Id}))
	require.NoError(t, err)
	require.Equal(t, first.Id, retry.Msg.Run.RetryOf)
	got, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: retry.Msg.Run.Id}))
	require.NoError(t, err)
	require.Equal(t, first.Id, got.Msg.Run.RetryOf)

	stranger := newTenant(t, "UTC")
	sag := stranger.agentWithKey(t, "elsewhere")
	_, err = sag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: sag.agentID, RetryOf: first.Id}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "retry_of")
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, RetryOf: "run_nope"}))
	requireCode(t, connect.CodeInvalidArgument, err)
}

// The calls of an incident's runs.
func TestIncidentListsTheCallsOfItsRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "failing")
	run := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", dollar)
	recordCalls(t, ag.ingest, run.Id, &v1.LlmCallReport{CallId: "i1", CostMicros: proto.Int64(5)},
		&v1.LlmCallReport{CallId: "i2", CostMicros: proto.Int64(7), Status: v1.LlmCallStatus_LLM_CALL_STATUS_ERROR, ErrorType: "timeout"})
	_, err := ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Id, Status: v1.RunStatus_RUN_STATUS_FAILED,
		ErrorCode: "TIMEOUT", ErrorMessage: "model timed out"}))
	require.NoError(t, err)
	var incidentID string
	eventually(t, patience, func() bool {
		r, err := tn.admin.runs.ListRunIncidents(ctx, connect.NewRequest(&v1.ListRunIncidentsRequest{RunId: run.Id}))
		require.NoError(t, err)
		if len(r.Msg.Incidents) == 0 {
			return false
		}
		incidentID = r.Msg.Incidents[0].Id
		return true
	})
	r, err := tn.admin.incidents.ListIncidentLlmCalls(ctx, connect.NewRequest(&v1.ListIncidentLlmCallsRequest{Id: incidentID}))
	require.NoError(t, err)
	require.Equal(t, []string{"i1", "i2"}, callIDs(r.Msg.Calls))
	r, err = tn.admin.incidents.ListIncidentLlmCalls(ctx, connect.NewRequest(&v1.ListIncidentLlmCallsRequest{Id: incidentID, NewestFirst: true, PageSize: 1}))
	require.NoError(t, err)
	require.Equal(t, []string{"i2"}, callIDs(r.Msg.Calls))
	r, err = tn.admin.incidents.ListIncidentLlmCalls(ctx, connect.NewRequest(&v1.ListIncidentLlmCallsRequest{Id: incidentID, NewestFirst: true, PageSize: 1,
		PageToken: r.Msg.NextPageToken}))
	require.NoError(t, err)
	require.Equal(t, []string{"i1"}, callIDs(r.Msg.Calls))
	require.Empty(t, r.Msg.NextPageToken)
	stranger := newTenant(t, "UTC")
	_, err = stranger.admin.incidents.ListIncidentLlmCalls(ctx, connect.NewRequest(&v1.ListIncidentLlmCallsRequest{Id: incidentID}))
	requireCode(t, connect.CodeNotFound, err)
}

func systemRecords(t *testing.T, c recordClients, req *v1.ListSystemRecordsRequest) []*v1.SystemRecord {
	t.Helper()
	r, err := c.logs.ListSystemRecords(context.Background(), connect.NewRequest(req))
	require.NoError(t, err)
	return r.Msg.Records
}

// What the machinery did is recorded by the code that did it, linked to its run, alert
// or workflow: an anomaly batch, failed delivery attempts and a channel disabled, a
// dead-lettered settlement and its retry. Each organization sees only its own.
func TestSystemRecordsAreWrittenByTheMachinery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	admin := tn.adminRecords()

	det, err := tn.admin.anomalies.RunAnomalyDetection(ctx, connect.NewRequest(&v1.RunAnomalyDetectionRequest{}))
	require.NoError(t, err)
	eventually(t, patience, func() bool {
		return len(systemRecords(t, admin, &v1.ListSystemRecordsRequest{Kinds: []string{"anomaly_batch_ran"}})) == 1
	}, "the batch records that it ran")
	ran := systemRecords(t, admin, &v1.ListSystemRecordsRequest{Kinds: []string{"anomaly_batch_ran"}})[0]
	require.Equal(t, det.Msg.Run.WorkflowId, ran.WorkflowId)
	require.Contains(t, ran.DataJson, det.Msg.Run.Id)

	hook := newReceiver(t)
	hook.respond(500, "")
	ch := tn.webhookChannel(t, hook, "failing", func(r *v1.CreateChannelRequest) { r.DisableAfter = durationpb.New(2 * time.Second) })
	alertID := raise(t, tn, incidentTrigger(1))
	eventually(t, patience, func() bool {
		return len(systemRecords(t, admin, &v1.ListSystemRecordsRequest{Kinds: []string{"channel_disabled"}})) == 1
	})
	failed := systemRecords(t, admin, &v1.ListSystemRecordsRequest{Kinds: []string{"delivery_attempt_failed"}, AlertId: alertID})
	require.NotEmpty(t, failed)
	for _, r := range failed {
		require.Equal(t, alertID, r.AlertId)
		require.Equal(t, "alert/"+alertID+"/"+ch.Id, r.WorkflowId)
		require.Contains(t, r.Message, "http_5xx")
	}
	require.Equal(t, v1.SystemRecordSeverity_SYSTEM_RECORD_SEVERITY_ERROR, failed[len(failed)-1].Severity, "the last attempt gave up")
	require.Contains(t, systemRecords(t, admin, &v1.ListSystemRecordsRequest{Kinds: []string{"channel_disabled"}})[0].DataJson, ch.Id)

	// A settlement that cannot succeed, then an operator's retry.
	ag := tn.agentWithKey(t, "doomed")
	run := admitFor(t, ag.ingest, ag.agentID, "gpt-4o", dollar)
	fn := "fail_cost_record_" + strings.ToLower(run.Id)
	_, err = tn.pool.Exec(ctx, fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.run_id = '%s' THEN RAISE EXCEPTION 'injected: bigint out of range' USING ERRCODE = '22003'; END IF; RETURN NEW; END $$`, fn, run.Id))
	require.NoError(t, err)
	_, err = tn.pool.Exec(ctx, fmt.Sprintf(`CREATE TRIGGER %s BEFORE INSERT ON cost_records FOR EACH ROW EXECUTE FUNCTION %s()`, fn, fn))
	require.NoError(t, err)
	dropFault := sync.OnceFunc(func() {
		_, err := tn.pool.Exec(context.Background(), fmt.Sprintf(`DROP TRIGGER %s ON cost_records; DROP FUNCTION %s()`, fn, fn))
		require.NoError(t, err)
	})
	t.Cleanup(dropFault)
	complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 1000)
	eventually(t, patience, func() bool {
		return len(systemRecords(t, admin, &v1.ListSystemRecordsRequest{RunId: run.Id, Kinds: []string{"settlement_dead_lettered"}})) == 1
	})
	dl := systemRecords(t, admin, &v1.ListSystemRecordsRequest{RunId: run.Id, Kinds: []string{"settlement_dead_lettered"}})[0]
	require.Equal(t, v1.SystemRecordSeverity_SYSTEM_RECORD_SEVERITY_ERROR, dl.Severity)
	require.Contains(t, dl.Message, "bigint out of range")
	dropFault()
	_, err = tn.admin.runs.RetrySettlement(ctx, connect.NewRequest(&v1.RetrySettlementRequest{RunId: run.Id}))
	require.NoError(t, err)
	waitSettled(t, tn.admin, run.Id)
	retried := systemRecords(t, admin, &v1.ListSystemRecordsRequest{RunId: run.Id, Kinds: []string{"settlement_retried"}})
	require.Len(t, retried, 1)
	require.Contains(t, retried[0].Message, tn.org.APIKey.Id)

	// Severity filter, newest first, and tenancy.
	errs := systemRecords(t, admin, &v1.ListSystemRecordsRequest{Severities: []v1.SystemRecordSeverity{v1.SystemRecordSeverity_SYSTEM_RECORD_SEVERITY_ERROR}, NewestFirst: true})
	require.NotEmpty(t, errs)
	for i, r := range errs {
		require.Equal(t, v1.SystemRecordSeverity_SYSTEM_RECORD_SEVERITY_ERROR, r.Severity)
		if i > 0 {
			require.Less(t, r.Sequence, errs[i-1].Sequence)
		}
	}
	stranger := newTenant(t, "UTC")
	require.Empty(t, systemRecords(t, stranger.adminRecords(), &v1.ListSystemRecordsRequest{}))
	require.Empty(t, systemRecords(t, stranger.adminRecords(), &v1.ListSystemRecordsRequest{RunId: run.Id}))
}
