package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// 64 goroutines across two API server processes hammer one budget with random estimates
// and actual costs. Zero overspend: what is admitted never exceeds the limit; after
// settlement, usage equals the sum of the cost records and nothing stays reserved. The
// budget holds many admission batches' worth of runs, so both processes admit until the
// end and race for the last of it.
func TestConcurrentAdmissionsAcrossTwoProcessesNeverOverspend(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	other := startChildAPI(t, false)
	const budget = 1000 * dollar
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "shared budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: budget})
	// A few agents and keys, so the org budget is the only thing they share.
	var kits []agentKit
	for i := range 4 {
		kits = append(kits, tn.newAgent(t, "hammer-"+string(rune('a'+i))))
	}

	// The other process's clients, made here: the goroutines below only call the API.
	childOf := warmClients(t, tn, other, kits)

	type admitted struct {
		run      *v1.Run
		kit      agentKit
		estimate int64
		child    bool // admitted by the other process
	}
	var mu sync.Mutex
	var runs []admitted
	var blocked atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 64) // one per goroutine, asserted once all are done
	start := make(chan struct{})
	for g := range 64 {
		wg.Go(func() {
			kit := kits[g%len(kits)]
			c, child := kit.ingest, g%2 == 1
			if child {
				c = childOf[kit.agentID] // the other process
			}
			<-start
			for consecutiveBlocks := 0; consecutiveBlocks < 3; {
				est := int64(1+rand.IntN(10)) * dollar
				resp, err := c.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: kit.agentID, Estimate: &v1.Estimate{CostMicros: est},
					Lease: durationOf(10 * time.Minute)}))
				if connect.CodeOf(err) == connect.CodeResourceExhausted {
					blocked.Add(1)
					consecutiveBlocks++
					continue
				}
				if err != nil {
					errs[g] = fmt.Errorf("goroutine %d: %w", g, err)
					return
				}
				consecutiveBlocks = 0
				mu.Lock()
				runs = append(runs, admitted{resp.Msg.Run, kit, est, child})
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	byChild := 0
	for _, r := range runs {
		if r.child {
			byChild++
		}
	}
	t.Logf("%d of %d runs admitted by the other process", byChild, len(runs))
	require.Positive(t, byChild, "the other process admitted runs")
	require.Less(t, byChild, len(runs), "this process admitted runs")

	// Nothing has settled yet: every admitted estimate is held at once.
	var held int64
	for _, r := range runs {
		held += r.estimate
	}
	t.Logf("%d runs admitted holding $%d of $%d, %d admissions blocked", len(runs), held/dollar, budget/dollar, blocked.Load())
	require.LessOrEqual(t, held, int64(budget), "overspend: admitted estimates exceed the budget")
	require.Greater(t, held, int64(budget-20*dollar), "the budget was used up before admissions stopped")

	// Settle everything, concurrently, through both processes: random actual costs up to
	// the estimate, and a mix of outcomes.
	var want int64
	statuses := []v1.RunStatus{v1.RunStatus_RUN_STATUS_SUCCEEDED, v1.RunStatus_RUN_STATUS_SUCCEEDED, v1.RunStatus_RUN_STATUS_FAILED, v1.RunStatus_RUN_STATUS_CANCELLED}
	sem := make(chan struct{}, 32)
	errs = make([]error, len(runs))
	for i, r := range runs {
		actual := rand.Int64N(r.estimate + 1)
		want += actual
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c := r.kit.ingest
			if i%2 == 1 {
				c = childOf[r.kit.agentID]
			}
			_, errs[i] = c.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: r.run.Id, Status: statuses[i%len(statuses)], CostMicros: &actual}))
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, r := range runs {
		waitSettled(t, tn.admin, r.run.Id)
	}
	costs, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.Equal(t, want, costs.Msg.TotalCostMicros)
	require.EqualValues(t, len(runs), costs.Msg.RecordCount)
	chk, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: kits[0].agentID}))
	require.NoError(t, err)
	require.Equal(t, lim.Id, chk.Msg.Checks[0].LimitId)
	require.Equal(t, want, chk.Msg.Checks[0].Used, "usage equals the sum of the cost records")
	require.Zero(t, chk.Msg.Checks[0].Reserved, "nothing stays reserved")
	require.LessOrEqual(t, chk.Msg.Checks[0].Used, int64(budget))
}

var secrets sync.Map // agent id -> ingest secret, for clients of the child process

// warmClients returns clients of the other process for each agent, each having made a
// call already (connection up, key looked up), so that both processes start admitting
// together.
func warmClients(t *testing.T, tn *tenant, other *child, kits []agentKit) map[string]clients {
	t.Helper()
	out := map[string]clients{}
	for _, kit := range kits {
		c := tn.clientsAt(other.baseURL, secretOf(t, tn, kit))
		for _, cl := range []clients{c, kit.ingest} {
			_, err := cl.limits.CheckLimits(context.Background(), connect.NewRequest(&v1.CheckLimitsRequest{AgentId: kit.agentID}))
			require.NoError(t, err)
		}
		out[kit.agentID] = c
	}
	return out
}

func secretOf(t *testing.T, tn *tenant, kit agentKit) string {
	t.Helper()
	if s, ok := secrets.Load(kit.agentID); ok {
		return s.(string)
	}
	// Each agent's kit keeps its secret in its clients only; mint a second key for the
	// child process's clients.
	k, err := tn.admin.keys.CreateApiKey(context.Background(), connect.NewRequest(&v1.CreateApiKeyRequest{
		Name: "child " + kit.agentID, Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST, AgentId: kit.agentID}))
	require.NoError(t, err)
	s, _ := secrets.LoadOrStore(kit.agentID, k.Msg.Secret)
	return s.(string)
}

// The API process dies right after committing an admission, before it can start the
// run's workflow. The outbox row committed with the decision makes another process (here,
// the worker) start it, and the run expires and releases its reservation.
func TestCrashBetweenDecisionAndWorkflowStart(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	ag := tn.newAgent(t, "crash victim")
	tn.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	doomed := startChildAPI(t, true)
	c := tn.clientsAt(doomed.baseURL, secretOf(t, tn, ag))

	_, err := c.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID,
		Estimate: &v1.Estimate{CostMicros: 9 * dollar}, ClientRunId: "crash-1", Lease: durationOf(2 * time.Second)}))
	require.Error(t, err, "the process died before answering")
	select {
	case <-doomed.exited:
		var exit interface{ ExitCode() int }
		require.True(t, errors.As(doomed.err, &exit))
		require.Equal(t, 3, exit.ExitCode())
	case <-time.After(patience):
		t.Fatal("the API process did not exit")
	}

	// The decision committed: the client's retry (on a healthy server) finds the same run.
	healthy := tn.clientsFor(secretOf(t, tn, ag))
	resp, err := healthy.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID,
		Estimate: &v1.Estimate{CostMicros: 9 * dollar}, ClientRunId: "crash-1", Lease: durationOf(2 * time.Second)}))
	require.NoError(t, err)
	require.True(t, resp.Msg.Replayed)
	run := resp.Msg.Run

	// Its workflow runs (started from the outbox by the worker) and expires the run.
	expired := waitSettled(t, tn.admin, run.Id)
	require.Equal(t, v1.RunStatus_RUN_STATUS_EXPIRED, expired.Status)
	desc, err := tn.temporal.DescribeWorkflowExecution(ctx, lifecycle.RunWorkflowID(run.Id), "")
	require.NoError(t, err)
	require.Equal(t, lifecycle.RunWorkflowType, desc.WorkflowExecutionInfo.Type.Name)
	_, err = admit(t, ag.ingest, ag.agentID, 10*dollar)
	require.NoError(t, err, "the crashed run's reservation was released")
	var notFound *serviceerror.NotFound
	require.False(t, errors.As(err, &notFound))
}
