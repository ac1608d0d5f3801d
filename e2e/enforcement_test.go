package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// Enforcement through the Connect API for every metric: cost has its own tests (runs,
// alerts, concurrency); these cover tokens, runs and requests, and warn-only limits.

func admitEstimate(t *testing.T, kit agentKit, est *v1.Estimate) (*v1.AdmitRunResponse, error) {
	t.Helper()
	resp, err := kit.ingest.runs.AdmitRun(context.Background(), connect.NewRequest(&v1.AdmitRunRequest{AgentId: kit.agentID, Estimate: est,
		Lease: durationOf(10 * time.Minute)}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func checkOf(t *testing.T, tn *tenant, kit agentKit, limitID string) *v1.LimitCheck {
	t.Helper()
	chk, err := tn.admin.limits.CheckLimits(context.Background(), connect.NewRequest(&v1.CheckLimitsRequest{AgentId: kit.agentID, ApiKeyId: kit.keyID}))
	require.NoError(t, err)
	for _, c := range chk.Msg.Checks {
		if c.LimitId == limitID {
			return c
		}
	}
	require.FailNow(t, "limit not checked", limitID)
	return nil
}

func completeUsage(t *testing.T, tn *tenant, kit agentKit, runID string, status v1.RunStatus, in, out int64) {
	t.Helper()
	zero := int64(0)
	_, err := kit.ingest.runs.CompleteRun(context.Background(), connect.NewRequest(&v1.CompleteRunRequest{RunId: runID, Status: status,
		InputTokens: in, OutputTokens: out, CostMicros: &zero}))
	require.NoError(t, err)
	waitSettled(t, tn.admin, runID)
}

// A token quota reserves input plus output tokens of the estimate, refuses what would go
// past it (the limit named, with its numbers), admits up to exactly the amount, and
// counts what the runs really used once they settle.
func TestTokenQuotaIsEnforced(t *testing.T) {
	t.Parallel()
	awayFromMidnight(t, 5*time.Minute)
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "token eater")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily tokens", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: ag.agentID},
		Metric: v1.LimitMetric_LIMIT_METRIC_TOKENS, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10_000})

	first, err := admitEstimate(t, ag, &v1.Estimate{InputTokens: 4000, OutputTokens: 2000})
	require.NoError(t, err)
	require.Len(t, first.Checks, 1)
	require.Equal(t, lim.Id, first.Checks[0].LimitId)
	require.EqualValues(t, 6000, first.Checks[0].Requested)
	require.Equal(t, v1.CheckVerdict_CHECK_VERDICT_WITHIN, first.Checks[0].Verdict)

	_, err = admitEstimate(t, ag, &v1.Estimate{InputTokens: 3000, OutputTokens: 2000})
	rb := blockedDetail(t, err)
	require.Equal(t, lim.Id, rb.Blocking.LimitId)
	require.Equal(t, v1.LimitMetric_LIMIT_METRIC_TOKENS, rb.Blocking.Metric)
	require.EqualValues(t, 0, rb.Blocking.Used)
	require.EqualValues(t, 6000, rb.Blocking.Reserved)
	require.EqualValues(t, 5000, rb.Blocking.Requested)
	require.EqualValues(t, 4000, rb.Blocking.Remaining)
	require.Equal(t, v1.CheckVerdict_CHECK_VERDICT_BLOCKED, rb.Blocking.Verdict)

	// Settled at 4,000 actual tokens: 6,000 left, and exactly 6,000 more is admitted.
	completeUsage(t, tn, ag, first.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 3000, 1000)
	c := checkOf(t, tn, ag, lim.Id)
	require.EqualValues(t, 4000, c.Used)
	require.EqualValues(t, 0, c.Reserved)
	_, err = admitEstimate(t, ag, &v1.Estimate{InputTokens: 5000, OutputTokens: 1001})
	blockedDetail(t, err)
	exact, err := admitEstimate(t, ag, &v1.Estimate{InputTokens: 5000, OutputTokens: 1000})
	require.NoError(t, err, "up to the amount exactly is within it")
	c = checkOf(t, tn, ag, lim.Id)
	require.EqualValues(t, 4000, c.Used)
	require.EqualValues(t, 6000, c.Reserved)
	require.EqualValues(t, 0, c.Remaining)
	_, err = admitEstimate(t, ag, &v1.Estimate{InputTokens: 1})
	blockedDetail(t, err)
	completeUsage(t, tn, ag, exact.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 100, 100)
	c = checkOf(t, tn, ag, lim.Id)
	require.EqualValues(t, 4200, c.Used)
	require.EqualValues(t, 0, c.Reserved)
}

// A run quota counts runs that ran: a cancelled run gives its run back, a failed one
// does not.
func TestRunQuotaIsEnforced(t *testing.T) {
	t.Parallel()
	awayFromMidnight(t, 5*time.Minute)
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "busy")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "two runs a day", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_PROJECT, Id: ag.projectID},
		Metric: v1.LimitMetric_LIMIT_METRIC_RUNS, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 2})

	a, err := admitEstimate(t, ag, nil)
	require.NoError(t, err)
	b, err := admitEstimate(t, ag, &v1.Estimate{CostMicros: 50 * dollar})
	require.NoError(t, err)
	_, err = admitEstimate(t, ag, nil)
	rb := blockedDetail(t, err)
	require.Equal(t, lim.Id, rb.Blocking.LimitId)
	require.Equal(t, v1.LimitMetric_LIMIT_METRIC_RUNS, rb.Blocking.Metric)
	require.EqualValues(t, 2, rb.Blocking.Reserved)
	require.EqualValues(t, 1, rb.Blocking.Requested)
	blocked, err := tn.admin.runs.GetRun(context.Background(), connect.NewRequest(&v1.GetRunRequest{Id: rb.RunId}))
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_BLOCKED, blocked.Msg.Run.Status)

	completeUsage(t, tn, ag, a.Run.Id, v1.RunStatus_RUN_STATUS_CANCELLED, 0, 0)
	c, err := admitEstimate(t, ag, nil)
	require.NoError(t, err, "the cancelled run gave its run back")
	completeUsage(t, tn, ag, b.Run.Id, v1.RunStatus_RUN_STATUS_FAILED, 10, 10)
	_, err = admitEstimate(t, ag, nil)
	blockedDetail(t, err) // the failed run ran; the third is held
	completeUsage(t, tn, ag, c.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 10, 10)
	chk := checkOf(t, tn, ag, lim.Id)
	require.EqualValues(t, 2, chk.Used, "one failed and one succeeded run; the cancelled one does not count")
	require.EqualValues(t, 0, chk.Reserved)
	_, err = admitEstimate(t, ag, nil)
	blockedDetail(t, err)
}

// A request rate limit counts admissions granted, and never gives them back, whatever the
// runs did; refused attempts are not counted. It resets when its minute ends.
func TestRequestRateLimitIsEnforcedAndResetsWithItsMinute(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "chatty")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "3 a minute", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_API_KEY, Id: ag.keyID},
		Metric: v1.LimitMetric_LIMIT_METRIC_REQUESTS, Window: v1.LimitWindow_LIMIT_WINDOW_MINUTE, Amount: 3})

	// The scenario happens within one minute: start at the top of the next one when this
	// one has less than 25 s left (a loaded machine may take seconds to settle a run).
	if next := time.Now().Truncate(time.Minute).Add(time.Minute); time.Until(next) < 25*time.Second {
		waitUntilClock(t, next)
	}
	var granted []*v1.AdmitRunResponse
	for range 3 {
		r, err := admitEstimate(t, ag, nil)
		require.NoError(t, err)
		granted = append(granted, r)
	}
	_, err := admitEstimate(t, ag, nil)
	rb := blockedDetail(t, err)
	require.Equal(t, lim.Id, rb.Blocking.LimitId)
	require.Equal(t, v1.LimitMetric_LIMIT_METRIC_REQUESTS, rb.Blocking.Metric)
	require.Equal(t, v1.LimitWindow_LIMIT_WINDOW_MINUTE, rb.Blocking.Window)
	reset := rb.RetryTime.AsTime()
	require.True(t, granted[0].Checks[0].WindowStart.AsTime().Add(time.Minute).Equal(reset), "a retry can succeed when the minute ends: %s", reset)

	// Cancelling a granted run gives nothing back.
	completeUsage(t, tn, ag, granted[0].Run.Id, v1.RunStatus_RUN_STATUS_CANCELLED, 0, 0)
	_, err = admitEstimate(t, ag, nil)
	blockedDetail(t, err)
	c := checkOf(t, tn, ag, lim.Id)
	require.EqualValues(t, 1, c.Used, "the settled admission is spent")
	require.EqualValues(t, 2, c.Reserved, "the two still running hold theirs; the two refused attempts hold nothing")
	require.True(t, time.Now().Before(reset), "all of the above within the minute")

	// The next minute starts afresh.
	waitUntilClock(t, reset)
	for range 3 {
		_, err := admitEstimate(t, ag, nil)
		require.NoError(t, err)
	}
	_, err = admitEstimate(t, ag, nil)
	blockedDetail(t, err)
}

// A warn-only limit admits past its amount; the run carries the warning, and its
// run_admitted event says so. A blocking limit beside it still blocks.
func TestWarnLimitAdmitsPastItsAmountWithAWarning(t *testing.T) {
	t.Parallel()
	awayFromMidnight(t, 5*time.Minute)
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "warned")
	warn := tn.createLimit(t, &v1.CreateLimitRequest{Name: "soft daily budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar, Enforcement: v1.LimitEnforcement_LIMIT_ENFORCEMENT_WARN})
	hard := tn.createLimit(t, &v1.CreateLimitRequest{Name: "hard daily budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 20 * dollar})
	require.Equal(t, v1.LimitEnforcement_LIMIT_ENFORCEMENT_WARN, warn.Enforcement)

	first, err := admitEstimate(t, ag, &v1.Estimate{CostMicros: 8 * dollar})
	require.NoError(t, err)
	require.Empty(t, first.Run.Warnings)

	past, err := admitEstimate(t, ag, &v1.Estimate{CostMicros: 5 * dollar})
	require.NoError(t, err, "a warn-only limit never refuses")
	require.Equal(t, v1.RunStatus_RUN_STATUS_ADMITTED, past.Run.Status)
	require.Len(t, past.Run.Warnings, 1)
	w := past.Run.Warnings[0]
	require.Equal(t, warn.Id, w.LimitId)
	require.Equal(t, v1.CheckVerdict_CHECK_VERDICT_WARNED, w.Verdict)
	require.Equal(t, v1.LimitEnforcement_LIMIT_ENFORCEMENT_WARN, w.Enforcement)
	require.EqualValues(t, 8*dollar, w.Reserved)
	require.EqualValues(t, 5*dollar, w.Requested)
	require.EqualValues(t, 10*dollar, w.Limit)
	got, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: past.Run.Id}))
	require.NoError(t, err)
	require.Len(t, got.Msg.Run.Warnings, 1, "the warning is kept with the run")
	require.Equal(t, warn.Id, got.Msg.Run.Warnings[0].LimitId)

	// The timeline says so.
	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{
		Types: []string{"run_admitted"}, Entity: &v1.EntityRef{Type: "run", Id: past.Run.Id}}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 1)
	var data struct {
		Warnings []struct {
			LimitID     string `json:"limit_id"`
			Enforcement string `json:"enforcement"`
			Verdict     string `json:"verdict"`
		} `json:"warnings"`
	}
	require.NoError(t, json.Unmarshal([]byte(evs.Msg.Events[0].DataJson), &data))
	require.Len(t, data.Warnings, 1, evs.Msg.Events[0].DataJson)
	require.Equal(t, warn.Id, data.Warnings[0].LimitID)
	require.Equal(t, "warn", data.Warnings[0].Enforcement)
	require.Equal(t, "warned", data.Warnings[0].Verdict)

	// Past its amount, and counted: $13 of $10 held.
	c := checkOf(t, tn, ag, warn.Id)
	require.EqualValues(t, 13*dollar, c.Reserved)
	require.EqualValues(t, 0, c.Remaining)
	// The blocking limit still decides: $13 + $8 > $20.
	_, err = admitEstimate(t, ag, &v1.Estimate{CostMicros: 8 * dollar})
	rb := blockedDetail(t, err)
	require.Equal(t, hard.Id, rb.Blocking.LimitId)

	// Settled past the warn limit: used goes over its amount.
	complete(t, ag.ingest, first.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 8*dollar)
	complete(t, ag.ingest, past.Run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 5*dollar)
	waitSettled(t, tn.admin, first.Run.Id)
	waitSettled(t, tn.admin, past.Run.Id)
	c = checkOf(t, tn, ag, warn.Id)
	require.EqualValues(t, 13*dollar, c.Used)
	require.EqualValues(t, 0, c.Reserved)
}
