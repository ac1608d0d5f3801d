package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// runBlockedOf returns the RunBlocked detail of a refused admission, or nil.
func runBlockedOf(err error) *v1.RunBlocked {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if rb, ok := v.(*v1.RunBlocked); ok {
				return rb
			}
		}
	}
	return nil
}

// awayFromMidnight waits, when the UTC day (and so maybe the month) is about to end, until
// it has: a test that counts on one window per limit must not straddle two.
func awayFromMidnight(t *testing.T, margin time.Duration) {
	t.Helper()
	next := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if time.Until(next) < margin {
		waitUntilClock(t, next.Add(time.Second))
	}
}

// 64 goroutines across two API server processes admit runs of four agents in two
// projects, each run touching five or six counters at once: organization, project and
// agent limits on cost, tokens and runs, over days and months, so concurrent batches in
// both processes lock overlapping sets of counter rows (a wrong lock order deadlocks, and
// PostgreSQL would fail one of them). Every counter ends within its limit, and its
// reserved and used amounts equal, first, the live reservations and what the admitted
// runs asked for and, after settlement, the cost records.
func TestCrossProcessAdmissionsOnManyCountersNeverOverspend(t *testing.T) {
	t.Parallel()
	awayFromMidnight(t, 5*time.Minute)
	tn := newTenant(t, "UTC")
	ctx := context.Background()
	other := startChildAPI(t, false)

	pP, err := tn.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "project p"}))
	require.NoError(t, err)
	pQ, err := tn.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "project q"}))
	require.NoError(t, err)
	p1 := tn.newAgentIn(t, pP.Msg.Project.Id, "p1")
	p2 := tn.newAgentIn(t, pP.Msg.Project.Id, "p2")
	q1 := tn.newAgentIn(t, pQ.Msg.Project.Id, "q1")
	q2 := tn.newAgentIn(t, pQ.Msg.Project.Id, "q2")
	kits := []agentKit{p1, p2, q1, q2}

	type spec struct {
		scope  *v1.LimitScopeRef
		metric v1.LimitMetric
		window v1.LimitWindow
		amount int64
		covers func(agentKit) bool
	}
	all := func(agentKit) bool { return true }
	inProject := func(id string) func(agentKit) bool { return func(k agentKit) bool { return k.projectID == id } }
	isAgent := func(id string) func(agentKit) bool { return func(k agentKit) bool { return k.agentID == id } }
	project := func(id string) *v1.LimitScopeRef {
		return &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_PROJECT, Id: id}
	}
	agent := func(id string) *v1.LimitScopeRef {
		return &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: id}
	}
	const (
		cost   = v1.LimitMetric_LIMIT_METRIC_COST
		tokens = v1.LimitMetric_LIMIT_METRIC_TOKENS
		runsM  = v1.LimitMetric_LIMIT_METRIC_RUNS
		day    = v1.LimitWindow_LIMIT_WINDOW_DAY
		month  = v1.LimitWindow_LIMIT_WINDOW_MONTH
	)
	// Amounts chosen so that several of them run out while the others still bind
	// admissions together (the organization's monthly budget is less than what the agents'
	// own limits would allow in total), each worth many admission batches, so that both
	// processes admit until the end.
	specs := []spec{
		{orgScope(), cost, month, 600 * dollar, all},
		{orgScope(), runsM, day, 280, all},
		{project(pP.Msg.Project.Id), cost, day, 400 * dollar, inProject(pP.Msg.Project.Id)},
		{project(pP.Msg.Project.Id), cost, month, 440 * dollar, inProject(pP.Msg.Project.Id)},
		{project(pQ.Msg.Project.Id), runsM, month, 120, inProject(pQ.Msg.Project.Id)},
		{agent(p1.agentID), cost, day, 100 * dollar, isAgent(p1.agentID)},
		{agent(p1.agentID), cost, month, 110 * dollar, isAgent(p1.agentID)},
		{agent(p2.agentID), tokens, month, 200_000, isAgent(p2.agentID)},
		{agent(q1.agentID), cost, month, 240 * dollar, isAgent(q1.agentID)},
		{agent(q2.agentID), runsM, day, 25, isAgent(q2.agentID)},
	}
	limits := map[string]spec{}
	for _, sp := range specs {
		l := tn.createLimit(t, &v1.CreateLimitRequest{Scope: sp.scope, Metric: sp.metric, Window: sp.window, Amount: sp.amount})
		limits[l.Id] = sp
	}
	childOf := warmClients(t, tn, other, kits)

	type admitted struct {
		run     *v1.Run
		kit     agentKit
		est     *v1.Estimate
		child   bool
		actual  *v1.Usage
		status  v1.RunStatus
		counted bool // succeeded or failed: counts against runs limits
	}
	var mu sync.Mutex
	var runs []*admitted
	blockedBy := map[string]int{} // limit id -> refusals it made
	var wg sync.WaitGroup
	errs := make([]error, 64) // one per goroutine, asserted once all are done
	start := make(chan struct{})
	for g := range 64 {
		wg.Go(func() {
			kit := kits[g%len(kits)]
			c, child := kit.ingest, g%2 == 1
			if child {
				c = childOf[kit.agentID]
			}
			<-start
			for consecutiveBlocks := 0; consecutiveBlocks < 3; {
				est := &v1.Estimate{CostMicros: int64(1+rand.IntN(10)) * dollar,
					InputTokens: int64(500 + rand.IntN(4500)), OutputTokens: int64(500 + rand.IntN(4500))}
				resp, err := c.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: kit.agentID, Estimate: est,
					Lease: durationOf(10 * time.Minute)}))
				if connect.CodeOf(err) == connect.CodeResourceExhausted {
					rb := runBlockedOf(err)
					if rb == nil {
						errs[g] = fmt.Errorf("goroutine %d: refused without a RunBlocked detail: %w", g, err)
						return
					}
					mu.Lock()
					blockedBy[rb.Blocking.LimitId]++
					mu.Unlock()
					consecutiveBlocks++
					continue
				}
				if err != nil {
					errs[g] = fmt.Errorf("goroutine %d: %w", g, err)
					return
				}
				consecutiveBlocks = 0
				mu.Lock()
				runs = append(runs, &admitted{run: resp.Msg.Run, kit: kit, est: est, child: child})
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
	t.Logf("%d runs admitted (%d by the other process); refusals by limit: %v", len(runs), byChild, blockedBy)
	require.Positive(t, byChild, "the other process admitted runs")
	require.Less(t, byChild, len(runs), "this process admitted runs")
	require.GreaterOrEqual(t, len(blockedBy), 3, "several different limits ran out")
	for id := range blockedBy {
		require.Contains(t, limits, id, "a refusal names one of the test's limits")
	}

	// What each limit's counter must hold: the admitted runs' requests, before settlement;
	// their actual usage after.
	sums := func(settled bool) map[string]int64 {
		out := map[string]int64{}
		for id, sp := range limits {
			for _, r := range runs {
				if !sp.covers(r.kit) {
					continue
				}
				switch {
				case sp.metric == cost && !settled:
					out[id] += r.est.CostMicros
				case sp.metric == cost:
					out[id] += r.actual.CostMicros
				case sp.metric == tokens && !settled:
					out[id] += r.est.InputTokens + r.est.OutputTokens
				case sp.metric == tokens:
					out[id] += r.actual.InputTokens + r.actual.OutputTokens
				case !settled || r.counted:
					out[id]++
				}
			}
		}
		return out
	}
	// counters reads every limit's current window through the API (CheckLimits of each
	// agent covers the organization's, its project's and its own limits).
	counters := func() map[string]*v1.LimitCheck {
		out := map[string]*v1.LimitCheck{}
		for _, kit := range kits {
			chk, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: kit.agentID}))
			require.NoError(t, err)
			for _, c := range chk.Msg.Checks {
				out[c.LimitId] = c
			}
		}
		require.Len(t, out, len(limits))
		return out
	}
	// The database agrees: each counter's reserved amount is the sum of its live
	// reservations.
	reservationsMatch := func() {
		rows, err := tn.pool.Query(ctx, `
			SELECT c.limit_id, c.reserved,
			       coalesce((SELECT sum(r.amount) FROM run_reservations r
			                 WHERE r.limit_id = c.limit_id AND r.window_start = c.window_start
			                   AND NOT r.released AND r.expires_at > now()), 0)::bigint
			FROM limit_counters c JOIN limits l ON l.id = c.limit_id
			WHERE l.org_id = $1`, tn.org.Organization.Id)
		require.NoError(t, err)
		defer rows.Close()
		n := 0
		for rows.Next() {
			var id string
			var reserved, live int64
			require.NoError(t, rows.Scan(&id, &reserved, &live))
			require.Equal(t, live, reserved, "counter of %s: reserved equals its live reservations", id)
			n++
		}
		require.NoError(t, rows.Err())
		require.Equal(t, len(limits), n, "one counter per limit (one window each)")
	}

	want := sums(false)
	for id, c := range counters() {
		sp := limits[id]
		require.LessOrEqual(t, want[id], sp.amount, "overspend on %s (%s %s %s)", id, sp.scope.Type, sp.window, sp.metric)
		require.Equal(t, want[id], c.Reserved, "limit %s holds what its admitted runs asked for", id)
		require.Zero(t, c.Used, "limit %s: nothing settled yet", id)
		require.LessOrEqual(t, c.Used+c.Reserved, c.Limit)
	}
	reservationsMatch()

	// Settle everything through both processes: actual usage at most the estimate, and a
	// mix of outcomes (cancelled runs give their run back).
	statuses := []v1.RunStatus{v1.RunStatus_RUN_STATUS_SUCCEEDED, v1.RunStatus_RUN_STATUS_SUCCEEDED, v1.RunStatus_RUN_STATUS_FAILED, v1.RunStatus_RUN_STATUS_CANCELLED}
	for i, r := range runs {
		r.status = statuses[i%len(statuses)]
		r.counted = r.status != v1.RunStatus_RUN_STATUS_CANCELLED
		r.actual = &v1.Usage{CostMicros: rand.Int64N(r.est.CostMicros + 1),
			InputTokens: rand.Int64N(r.est.InputTokens + 1), OutputTokens: rand.Int64N(r.est.OutputTokens + 1)}
	}
	sem := make(chan struct{}, 32)
	errs = make([]error, len(runs))
	for i, r := range runs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c := r.kit.ingest
			if i%2 == 1 {
				c = childOf[r.kit.agentID]
			}
			req := &v1.CompleteRunRequest{RunId: r.run.Id, Status: r.status, CostMicros: &r.actual.CostMicros,
				InputTokens: r.actual.InputTokens, OutputTokens: r.actual.OutputTokens}
			if r.status == v1.RunStatus_RUN_STATUS_FAILED {
				req.ErrorCode, req.ErrorMessage = "HAMMERED", "failed on purpose"
			}
			_, errs[i] = c.runs.CompleteRun(ctx, connect.NewRequest(req))
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, r := range runs {
		waitSettled(t, tn.admin, r.run.Id)
	}

	want = sums(true)
	for id, c := range counters() {
		require.Equal(t, want[id], c.Used, "limit %s: used equals the settled usage of its runs", id)
		require.Zero(t, c.Reserved, "limit %s: nothing stays reserved", id)
		require.LessOrEqual(t, c.Used, c.Limit)
	}
	reservationsMatch()
	// And the cost records are those runs, per agent.
	for _, kit := range kits {
		var spent, in, out, n int64
		for _, r := range runs {
			if r.kit.agentID == kit.agentID {
				spent, in, out, n = spent+r.actual.CostMicros, in+r.actual.InputTokens, out+r.actual.OutputTokens, n+1
			}
		}
		recs, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{AgentId: kit.agentID}))
		require.NoError(t, err)
		require.Equal(t, n, recs.Msg.RecordCount)
		require.Equal(t, spent, recs.Msg.TotalCostMicros)
		require.Equal(t, in, recs.Msg.TotalInputTokens)
		require.Equal(t, out, recs.Msg.TotalOutputTokens)
	}
}
