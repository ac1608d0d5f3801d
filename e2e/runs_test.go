package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

func admit(t *testing.T, c clients, agentID string, costMicros int64) (*v1.Run, error) {
	t.Helper()
	resp, err := c.runs.AdmitRun(context.Background(), connect.NewRequest(&v1.AdmitRunRequest{
		AgentId: agentID, Model: "gpt-4o", Feature: "chat", Estimate: &v1.Estimate{CostMicros: costMicros},
	}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Run, nil
}

func complete(t *testing.T, c clients, runID string, status v1.RunStatus, costMicros int64) {
	t.Helper()
	_, err := c.runs.CompleteRun(context.Background(), connect.NewRequest(&v1.CompleteRunRequest{
		RunId: runID, Status: status, CostMicros: &costMicros, InputTokens: 1000, OutputTokens: 200, LatencyMs: 1200,
	}))
	require.NoError(t, err)
}

func blockedDetail(t *testing.T, err error) *v1.RunBlocked {
	t.Helper()
	requireCode(t, connect.CodeResourceExhausted, err)
	var ce *connect.Error
	require.True(t, errors.As(err, &ce))
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if rb, ok := v.(*v1.RunBlocked); ok {
				return rb
			}
		}
	}
	t.Fatalf("no RunBlocked detail in %v", err)
	return nil
}

// Seed 000, phase 1: a $10 daily limit; an $8 run is admitted and settled; a $5 run is
// blocked before it starts, with a clear error.
func TestPhase1DailyCostLimitBlocksBeforeExecution(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "Europe/Berlin")
	ag := tn.newAgent(t, "writer")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily spend", Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})

	run, err := admit(t, ag.ingest, ag.agentID, 8*dollar)
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_ADMITTED, run.Status)
	require.Equal(t, "run/"+run.Id, run.WorkflowId)
	complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 8*dollar)
	settled := waitSettled(t, tn.admin, run.Id)
	require.Equal(t, v1.RunStatus_RUN_STATUS_SUCCEEDED, settled.Status)
	require.EqualValues(t, 8*dollar, settled.Actual.CostMicros)

	_, err = admit(t, ag.ingest, ag.agentID, 5*dollar)
	rb := blockedDetail(t, err)
	require.Contains(t, err.Error(), "budget exceeded")
	require.Contains(t, err.Error(), lim.Id)
	require.Equal(t, lim.Id, rb.Blocking.LimitId)
	require.EqualValues(t, 8*dollar, rb.Blocking.Used)
	require.EqualValues(t, 0, rb.Blocking.Reserved)
	require.EqualValues(t, 5*dollar, rb.Blocking.Requested)
	require.EqualValues(t, 2*dollar, rb.Blocking.Remaining)
	require.Equal(t, v1.LimitWindow_LIMIT_WINDOW_DAY, rb.Blocking.Window)
	// The day is Berlin's: it resets at midnight there.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	reset := rb.RetryTime.AsTime().In(berlin)
	require.Equal(t, 0, reset.Hour())
	require.True(t, reset.After(time.Now()))

	// The blocked attempt is on record in Activity, holding nothing.
	blocked, err := tn.admin.runs.GetRun(context.Background(), connect.NewRequest(&v1.GetRunRequest{Id: rb.RunId}))
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_BLOCKED, blocked.Msg.Run.Status)
	require.Equal(t, lim.Id, blocked.Msg.Run.BlockedBy[0].LimitId)
	list, err := tn.admin.runs.ListRuns(context.Background(), connect.NewRequest(&v1.ListRunsRequest{Statuses: []v1.RunStatus{v1.RunStatus_RUN_STATUS_BLOCKED}}))
	require.NoError(t, err)
	require.Len(t, list.Msg.Runs, 1)

	// A dry run agrees, and reserves nothing.
	chk, err := ag.ingest.limits.CheckLimits(context.Background(), connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID, Estimate: &v1.Estimate{CostMicros: 2 * dollar}}))
	require.NoError(t, err)
	require.Equal(t, v1.CheckVerdict_CHECK_VERDICT_WITHIN, chk.Msg.Verdict)
	require.EqualValues(t, 8*dollar, chk.Msg.Checks[0].Used)
	require.EqualValues(t, 0, chk.Msg.Checks[0].Reserved)
}

// Seed 000, scenario 1: the cost control loop.
func TestScenario1CostControlLoop(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "support")
	ctx := context.Background()
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily budget", Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 50 * dollar})

	// 1–2: runs totalling $45.
	for _, cost := range []int64{20, 15, 10} {
		run, err := admit(t, ag.ingest, ag.agentID, cost*dollar)
		require.NoError(t, err)
		complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, cost*dollar)
		waitSettled(t, tn.admin, run.Id)
	}
	// 3–4: a $10 run is blocked with "Budget exceeded".
	req := &v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o", Estimate: &v1.Estimate{CostMicros: 10 * dollar}, ClientRunId: "job-42"}
	_, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(req))
	blockedDetail(t, err)
	require.Contains(t, err.Error(), "budget exceeded")

	// 5: the budget goes up to $100 (audited).
	amount := int64(100 * dollar)
	_, err = tn.admin.limits.UpdateLimit(ctx, connect.NewRequest(&v1.UpdateLimitRequest{Id: lim.Id, Amount: &amount}))
	require.NoError(t, err)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: lim.Id, Action: "limit.update"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Contains(t, entries.Msg.Entries[0].BeforeJson, `"amount": "50000000"`)
	require.Contains(t, entries.Msg.Entries[0].AfterJson, `"amount": "100000000"`)

	// 6–7: the retry (same client run id) succeeds.
	resp, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(req))
	require.NoError(t, err)
	require.False(t, resp.Msg.Replayed)
	complete(t, ag.ingest, resp.Msg.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 10*dollar)
	waitSettled(t, tn.admin, resp.Msg.Run.Id)

	// 8: $55 spent.
	costs, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.EqualValues(t, 55*dollar, costs.Msg.TotalCostMicros)
	require.EqualValues(t, 4, costs.Msg.RecordCount)
	chk, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID}))
	require.NoError(t, err)
	require.EqualValues(t, 55*dollar, chk.Msg.Checks[0].Used, "usage equals the cost records")
	// Analytics shows $55 spent today, beside the budget it counts against.
	// The answer says how fresh it is: once as_of passes the settlements, it has them all.
	day := time.Now().UTC().Truncate(24 * time.Hour)
	settledBy := time.Now()
	var usage *connect.Response[v1.QueryUsageResponse]
	eventually(t, patience, func() bool {
		var err error
		usage, err = analyticsClient(tn.stack, tn.org.Secret).QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{StartTime: timestamppb.New(day)}))
		require.NoError(t, err)
		return usage.Msg.AsOf != nil && !usage.Msg.AsOf.AsTime().Before(settledBy)
	}, "the rollups pass the settlements")
	require.EqualValues(t, 55*dollar, usage.Msg.Total.CostMicros)
	require.EqualValues(t, 4, usage.Msg.Total.RunsSucceeded)
	require.EqualValues(t, 1, usage.Msg.Total.BlockedByLimit)
	require.Len(t, usage.Msg.Limits, 1)
	require.Equal(t, lim.Id, usage.Msg.Limits[0].LimitId)
	require.EqualValues(t, 55*dollar, usage.Msg.Limits[0].Used)
	require.EqualValues(t, 55, usage.Msg.Limits[0].Percent)
}

// Seed 000, scenario 5: API key attribution; freezing a key is audited and stops it.
func TestScenario5APIKeyAttribution(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "America/New_York")
	ctx := context.Background()
	a := tn.newAgent(t, "key-a agent")
	b := tn.newAgentIn(t, a.projectID, "key-b agent")

	for _, spend := range []struct {
		kit   agentKit
		costs []int64
	}{{a, []int64{60, 40}}, {b, []int64{30, 20}}} {
		for _, cost := range spend.costs {
			run, err := admit(t, spend.kit.ingest, spend.kit.agentID, cost*dollar)
			require.NoError(t, err)
			complete(t, spend.kit.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, cost*dollar)
			settled := waitSettled(t, tn.admin, run.Id)
			require.Equal(t, spend.kit.keyID, settled.ApiKeyId)
		}
	}
	// Key spend comes from the analytics rollups, which follow settlements within about a
	// second (reads never write, so they do not roll first).
	spend := map[string]int64{}
	eventually(t, patience, func() bool {
		keys, err := tn.admin.keys.ListApiKeys(ctx, connect.NewRequest(&v1.ListApiKeysRequest{Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST}))
		require.NoError(t, err)
		for _, k := range keys.Msg.ApiKeys {
			spend[k.Id] = k.SpendThisMonthMicros
		}
		return spend[a.keyID] == 100*dollar && spend[b.keyID] == 50*dollar
	}, "each key's spend this month")
	require.EqualValues(t, 100*dollar, spend[a.keyID])
	require.EqualValues(t, 50*dollar, spend[b.keyID])
	one, err := tn.admin.keys.GetApiKey(ctx, connect.NewRequest(&v1.GetApiKeyRequest{Id: a.keyID}))
	require.NoError(t, err)
	require.EqualValues(t, 100*dollar, one.Msg.ApiKey.SpendThisMonthMicros)
	byKey, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{ApiKeyId: b.keyID}))
	require.NoError(t, err)
	require.EqualValues(t, 50*dollar, byKey.Msg.TotalCostMicros)
	// The same per-key spend from analytics: this month in the organization's zone.
	ny, _ := time.LoadLocation("America/New_York")
	now := time.Now().In(ny)
	perKey, err := analyticsClient(tn.stack, tn.org.Secret).QueryUsage(ctx, connect.NewRequest(&v1.QueryUsageRequest{
		StartTime: timestamppb.New(time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, ny)),
		GroupBy:   []v1.UsageDimension{v1.UsageDimension_USAGE_DIMENSION_API_KEY}}))
	require.NoError(t, err)
	got := map[string]int64{}
	for _, g := range perKey.Msg.Groups {
		got[g.Key[0].Value] = g.Total.CostMicros
	}
	require.Equal(t, map[string]int64{a.keyID: 100 * dollar, b.keyID: 50 * dollar}, got)

	_, err = tn.admin.keys.FreezeApiKey(ctx, connect.NewRequest(&v1.FreezeApiKeyRequest{Id: a.keyID, Reason: "spend review"}))
	require.NoError(t, err)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityType: "api_key", Action: "api_key.freeze"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Equal(t, a.keyID, entries.Msg.Entries[0].EntityId)
	require.Equal(t, tn.org.Admin.Id, entries.Msg.Entries[0].Actor.UserId)

	_, err = admit(t, a.ingest, a.agentID, dollar)
	requireCode(t, connect.CodePermissionDenied, err)
	require.Contains(t, err.Error(), "frozen")
	_, err = admit(t, b.ingest, b.agentID, dollar)
	require.NoError(t, err, "the other key is unaffected")
	// A key bound to one agent cannot act for another.
	_, err = admit(t, b.ingest, a.agentID, dollar)
	requireCode(t, connect.CodePermissionDenied, err)
}

// Cancelled, failed and expired runs release everything they reserved: no phantom
// "budget exceeded".
func TestLeasesReleaseEverything(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "worker")
	ctx := context.Background()
	tn.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})

	// Each run takes the whole budget; the next can only be admitted once it is released.
	cancelled, err := admit(t, ag.ingest, ag.agentID, 10*dollar)
	require.NoError(t, err)
	_, err = admit(t, ag.ingest, ag.agentID, dollar)
	blockedDetail(t, err)
	complete(t, ag.ingest, cancelled.Id, v1.RunStatus_RUN_STATUS_CANCELLED, 0)
	require.Equal(t, v1.RunStatus_RUN_STATUS_CANCELLED, waitSettled(t, tn.admin, cancelled.Id).Status)

	failed, err := admit(t, ag.ingest, ag.agentID, 10*dollar)
	require.NoError(t, err)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: failed.Id, Status: v1.RunStatus_RUN_STATUS_FAILED,
		CostMicros: ptr(int64(3 * dollar)), ErrorCode: "TOOL_TIMEOUT", ErrorMessage: "search tool timed out after 30s"}))
	require.NoError(t, err)
	f := waitSettled(t, tn.admin, failed.Id)
	require.Equal(t, v1.RunStatus_RUN_STATUS_FAILED, f.Status)
	require.EqualValues(t, 3*dollar, f.Actual.CostMicros, "a failed run's cost is recorded")

	// A run whose client vanished: its lease runs out and it stops counting at once,
	// without waiting for anything to clean up. (Five seconds: long enough for the next
	// admission to be refused within it on a busy machine.)
	vanished, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID,
		Estimate: &v1.Estimate{CostMicros: 7 * dollar}, Lease: durationpb.New(5 * time.Second)}))
	require.NoError(t, err)
	_, err = admit(t, ag.ingest, ag.agentID, 7*dollar)
	blockedDetail(t, err)
	waitUntilClock(t, vanished.Msg.Run.LeaseExpireTime.AsTime())
	next, err := admit(t, ag.ingest, ag.agentID, 7*dollar)
	require.NoError(t, err, "an expired lease no longer holds the budget")
	e := waitSettled(t, tn.admin, vanished.Msg.Run.Id)
	require.Equal(t, v1.RunStatus_RUN_STATUS_EXPIRED, e.Status)
	require.EqualValues(t, 0, e.Actual.CostMicros)

	complete(t, ag.ingest, next.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 7*dollar)
	waitSettled(t, tn.admin, next.Id)
	chk, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID}))
	require.NoError(t, err)
	require.EqualValues(t, 10*dollar, chk.Msg.Checks[0].Used, "$3 failed + $7 succeeded")
	require.EqualValues(t, 0, chk.Msg.Checks[0].Reserved, "nothing left reserved")
}

func ptr[T any](v T) *T { return &v }

func TestHeartbeatKeepsTheLeaseAndLateReportsAreSettled(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "long runner")
	ctx := context.Background()
	tn.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})

	// A lease long enough that a heartbeat slowed down by a busy machine still lands in
	// time; heartbeats go out whenever a fifth of it has passed since the last one, until
	// the clock is well past the end of the first lease.
	const lease = 5 * time.Second
	long, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID,
		Estimate: &v1.Estimate{CostMicros: 6 * dollar}, Lease: durationpb.New(lease)}))
	require.NoError(t, err)
	firstLeaseEnd := long.Msg.Run.LeaseExpireTime.AsTime()
	leaseEnd, beats := firstLeaseEnd, 0
	for !time.Now().After(firstLeaseEnd.Add(time.Second)) {
		waitUntilClock(t, leaseEnd.Add(-lease*4/5))
		hb, err := ag.ingest.runs.HeartbeatRun(ctx, connect.NewRequest(&v1.HeartbeatRunRequest{RunId: long.Msg.Run.Id, Lease: durationpb.New(lease)}))
		require.NoError(t, err)
		require.True(t, hb.Msg.LeaseExpireTime.AsTime().After(time.Now()))
		require.True(t, hb.Msg.LeaseExpireTime.AsTime().After(leaseEnd), "each heartbeat extends the lease")
		leaseEnd = hb.Msg.LeaseExpireTime.AsTime()
		beats++
	}
	require.GreaterOrEqual(t, beats, 2, "the lease was renewed more than once")
	// Past the end of the first lease, the reservation still holds.
	require.True(t, time.Now().After(firstLeaseEnd))
	chk, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID}))
	require.NoError(t, err)
	require.EqualValues(t, 6*dollar, chk.Msg.Checks[0].Reserved)
	complete(t, ag.ingest, long.Msg.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 5*dollar)
	require.Equal(t, v1.RunStatus_RUN_STATUS_SUCCEEDED, waitSettled(t, tn.admin, long.Msg.Run.Id).Status)
	// Completing twice with the same result is a no-op; with another, refused.
	complete(t, ag.ingest, long.Msg.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 5*dollar)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: long.Msg.Run.Id, Status: v1.RunStatus_RUN_STATUS_FAILED}))
	requireCode(t, connect.CodeAlreadyExists, err)
	_, err = ag.ingest.runs.HeartbeatRun(ctx, connect.NewRequest(&v1.HeartbeatRunRequest{RunId: long.Msg.Run.Id}))
	requireCode(t, connect.CodeFailedPrecondition, err)

	// A run reported after its lease ran out: it was released and marked expired, but
	// what it really cost is still recorded, in full.
	late, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID,
		Estimate: &v1.Estimate{CostMicros: 2 * dollar}, Lease: durationpb.New(500 * time.Millisecond)}))
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_EXPIRED, waitSettled(t, tn.admin, late.Msg.Run.Id).Status)
	_, err = ag.ingest.runs.HeartbeatRun(ctx, connect.NewRequest(&v1.HeartbeatRunRequest{RunId: late.Msg.Run.Id}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	complete(t, ag.ingest, late.Msg.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 3*dollar)
	eventually(t, patience, func() bool {
		r, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: late.Msg.Run.Id}))
		require.NoError(t, err)
		return r.Msg.Run.Status == v1.RunStatus_RUN_STATUS_SUCCEEDED
	})
	costs, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.EqualValues(t, 8*dollar, costs.Msg.TotalCostMicros)
	chk, err = tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID}))
	require.NoError(t, err)
	require.EqualValues(t, 8*dollar, chk.Msg.Checks[0].Used)
	require.EqualValues(t, 0, chk.Msg.Checks[0].Reserved)
}

func TestClientRunIDMakesAdmissionIdempotent(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "retrier")
	ctx := context.Background()
	tn.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_RUNS,
		Window: v1.LimitWindow_LIMIT_WINDOW_HOUR, Amount: 2})
	req := &v1.AdmitRunRequest{AgentId: ag.agentID, ClientRunId: "attempt-1", Estimate: &v1.Estimate{CostMicros: dollar}}
	first, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(req))
	require.NoError(t, err)
	for range 3 {
		again, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(req))
		require.NoError(t, err)
		require.True(t, again.Msg.Replayed)
		require.Equal(t, first.Msg.Run.Id, again.Msg.Run.Id)
	}
	chk, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID}))
	require.NoError(t, err)
	require.EqualValues(t, 1, chk.Msg.Checks[0].Reserved, "retries reserve nothing more")
	req.Estimate.CostMicros = 2 * dollar
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(req))
	requireCode(t, connect.CodeAlreadyExists, err)
}

func TestEffectiveLimitsExplainTheHierarchy(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "explained")
	ctx := context.Background()
	org := tn.createLimit(t, &v1.CreateLimitRequest{Name: "org daily", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 100 * dollar})
	prj := tn.createLimit(t, &v1.CreateLimitRequest{Name: "project daily", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_PROJECT, Id: ag.projectID},
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 20 * dollar})
	agt := tn.createLimit(t, &v1.CreateLimitRequest{Name: "agent daily override", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: ag.agentID},
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 50 * dollar,
		Inheritance: v1.LimitInheritance_LIMIT_INHERITANCE_OVERRIDE})
	key := tn.createLimit(t, &v1.CreateLimitRequest{Name: "key rate", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_API_KEY, Id: ag.keyID},
		Metric: v1.LimitMetric_LIMIT_METRIC_REQUESTS, Window: v1.LimitWindow_LIMIT_WINDOW_MINUTE, Amount: 100})

	eff, err := tn.admin.limits.GetEffectiveLimits(ctx, connect.NewRequest(&v1.GetEffectiveLimitsRequest{AgentId: ag.agentID, ApiKeyId: ag.keyID}))
	require.NoError(t, err)
	var got []string
	for _, l := range eff.Msg.Effective {
		got = append(got, l.Id)
	}
	require.ElementsMatch(t, []string{agt.Id, key.Id}, got, "the agent's override replaces the org and project daily budgets")
	reasons := map[string]string{}
	for _, r := range eff.Msg.Resolutions {
		reasons[r.Limit.Id] = r.Reason
	}
	require.Contains(t, reasons[org.Id], "overridden by "+agt.Id)
	require.Contains(t, reasons[prj.Id], "overridden by "+agt.Id)

	// Bad scopes are refused clearly.
	_, err = tn.admin.limits.CreateLimit(ctx, connect.NewRequest(&v1.CreateLimitRequest{Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: "agt_00000000000000000000000000"},
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 1}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = tn.admin.limits.CreateLimit(ctx, connect.NewRequest(&v1.CreateLimitRequest{Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 0}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "amount")
	// An ingest key cannot change limits.
	_, err = ag.ingest.limits.CreateLimit(ctx, connect.NewRequest(&v1.CreateLimitRequest{Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 1}))
	requireCode(t, connect.CodePermissionDenied, err)
}

// Cost from tokens: the organization's price wins over the default one.
func TestTokenEstimatesArePriced(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "priced")
	ctx := context.Background()
	resp, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o",
		Estimate: &v1.Estimate{InputTokens: 1_000_000, OutputTokens: 100_000}}))
	require.NoError(t, err)
	require.EqualValues(t, 2_500_000+1_000_000, resp.Msg.Run.Estimate.CostMicros, "$2.50/M in, $10/M out")
	_, err = tn.admin.limits.SetModelPrice(ctx, connect.NewRequest(&v1.SetModelPriceRequest{Model: "gpt-4o",
		InputMicrosPerMillionTokens: 1_000_000, OutputMicrosPerMillionTokens: 2_000_000}))
	require.NoError(t, err)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: resp.Msg.Run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, InputTokens: 500_000, OutputTokens: 500_000}))
	require.NoError(t, err)
	settled := waitSettled(t, tn.admin, resp.Msg.Run.Id)
	require.EqualValues(t, 500_000+1_000_000, settled.Actual.CostMicros, "settled at the organization's price")
	cost, err := tn.admin.runs.GetRunCost(ctx, connect.NewRequest(&v1.GetRunCostRequest{RunId: resp.Msg.Run.Id}))
	require.NoError(t, err)
	require.True(t, cost.Msg.Settled)
	require.Equal(t, ag.keyID, cost.Msg.Cost.ApiKeyId)
	require.Equal(t, ag.projectID, cost.Msg.Cost.ProjectId)
	require.Equal(t, "gpt-4o", cost.Msg.Cost.Model)
}

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
