package usage

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/money"
)

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2026, 6, 1, 10, 7, 0, 0, time.UTC)

func TestSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		total   int64
		weights []int64
		want    []int64
		big     int
	}{
		{100, []int64{1, 1, 1}, []int64{34, 33, 33}, 0},
		{100, []int64{1, 2, 1}, []int64{25, 50, 25}, 1},
		{10, []int64{3, 3, 4}, []int64{3, 3, 4}, 2},
		{7, []int64{0, 0}, []int64{7, 0}, 0},
		{0, []int64{5, 9}, []int64{0, 0}, 1},
		{money.MaxCostMicros, []int64{money.Ceiling, 1}, []int64{money.MaxCostMicros, 0}, 0},
		{1, []int64{1, 1, 1, 1}, []int64{1, 0, 0, 0}, 0},
	} {
		got, big := Split(tc.total, tc.weights)
		require.Equal(t, tc.want, got, "%d over %v", tc.total, tc.weights)
		require.Equal(t, tc.big, big)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add(int64(1000), int64(3), int64(5), int64(0))
	f.Fuzz(func(t *testing.T, total, a, b, c int64) {
		total = max(total, 0) % (money.MaxCostMicros + 1)
		ws := []int64{max(a, 0) % money.Ceiling, max(b, 0) % money.Ceiling, max(c, 0) % money.Ceiling}
		shares, big := Split(total, ws)
		var sum int64
		for i, s := range shares {
			if s < 0 {
				t.Fatalf("negative share %d", s)
			}
			sum += s
			if i != big && ws[i] > ws[big] {
				t.Fatalf("largest weight is %d, not %d", i, big)
			}
		}
		if sum != total {
			t.Fatalf("shares %v sum to %d, not %d", shares, sum, total)
		}
	})
}

func run() Run {
	return Run{ProjectID: "prj_1", AgentID: "agt_1", APIKeyID: "key_1", Model: "gpt-4o", Feature: "chat", Tag: "team-a",
		Status: StatusSucceeded, AdmittedAt: t0.Add(-time.Minute)}
}

func sum(fs []Fact) Measures {
	var m Measures
	for _, f := range fs {
		m.Add(f.M)
	}
	return m
}

// A multi-model run charged the sum of its calls: cost by model is each model's calls.
func TestSettledSplitsCostOverCallModels(t *testing.T) {
	t.Parallel()
	calls := []Call{
		{ID: "c1", Provider: "openai", Model: "gpt-4o", Feature: "chat", Input: 100, Output: 10, Cost: 3000, LatencyMs: ptr[int64](400)},
		{ID: "c2", Provider: "anthropic", Model: "claude-sonnet", Feature: "chat", Input: 50, CacheRead: 200, Output: 5, Reason: 7, Cost: 6000, LatencyMs: ptr[int64](900), Error: true},
		{ID: "c3", Provider: "openai", Model: "gpt-4o", Feature: "chat", Input: 10, Output: 1, Cost: 1000},
	}
	fs := Settled(run(), CostRecord{Cost: 10000, Input: 160, Output: 23, Status: StatusSucceeded, LatencyMs: ptr[int64](2000), At: t0}, calls)
	require.Len(t, fs, 2)
	byModel := map[string]Fact{}
	for _, f := range fs {
		byModel[f.Dims[Model]] = f
		require.Equal(t, t0, f.At)
		require.Equal(t, "prj_1", f.Dims[Project])
		require.Equal(t, "team-a", f.Dims[Tag])
		require.Equal(t, StatusSucceeded, f.Dims[RunStatus])
	}
	require.EqualValues(t, 4000, byModel["gpt-4o"].M.Cost)
	require.EqualValues(t, 6000, byModel["claude-sonnet"].M.Cost)
	require.Equal(t, "anthropic", byModel["claude-sonnet"].Dims[Provider])
	// The run goes with its largest share; its tokens are the calls'.
	require.EqualValues(t, 1, byModel["claude-sonnet"].M.Succeeded)
	require.EqualValues(t, 0, byModel["gpt-4o"].M.Succeeded)
	m := sum(fs)
	require.EqualValues(t, 10000, m.Cost)
	require.EqualValues(t, 160, m.Input)
	require.EqualValues(t, 16, m.Output)
	require.EqualValues(t, 200, m.CacheRead)
	require.EqualValues(t, 7, m.Reasoning)
	require.EqualValues(t, 3, m.Calls)
	require.EqualValues(t, 1, m.CallErrors)
	require.EqualValues(t, 1, m.CacheHitCalls)
	require.EqualValues(t, 2, m.CallLatency.Count())
	require.EqualValues(t, 1, m.RunLatency.Count())
	require.EqualValues(t, 1, m.Runs())
}

// A run that reported its own cost, different from its calls', is split in proportion.
func TestSettledReportedCostIsSplitInProportion(t *testing.T) {
	t.Parallel()
	calls := []Call{{Model: "a", Cost: 1}, {Model: "b", Cost: 2}}
	fs := Settled(run(), CostRecord{Cost: 1000, Status: StatusFailed, At: t0}, calls)
	require.EqualValues(t, 1000, sum(fs).Cost)
	require.EqualValues(t, 333, fs[0].M.Cost) // floor(1000/3); the remainder goes to "b", the larger
	require.EqualValues(t, 667, fs[1].M.Cost)
	require.EqualValues(t, 1, fs[1].M.Failed)
	// Calls that cost nothing split by tokens, then by count.
	fs = Settled(run(), CostRecord{Cost: 90, Status: StatusSucceeded, At: t0}, []Call{{Model: "a", Input: 1}, {Model: "b", Input: 2}})
	require.EqualValues(t, []int64{30, 60}, []int64{fs[0].M.Cost, fs[1].M.Cost})
	fs = Settled(run(), CostRecord{Cost: 9, Status: StatusSucceeded, At: t0}, []Call{{Model: "a"}, {Model: "b"}, {Model: "b"}})
	require.EqualValues(t, []int64{3, 6}, []int64{fs[0].M.Cost, fs[1].M.Cost})
}

func TestSettledWithoutCalls(t *testing.T) {
	t.Parallel()
	fs := Settled(run(), CostRecord{Cost: 55, Input: 10, Output: 20, Status: StatusCancelled, LatencyMs: ptr[int64](5), At: t0}, nil)
	require.Len(t, fs, 1)
	require.Equal(t, Dims{"prj_1", "agt_1", "key_1", "", "gpt-4o", "chat", StatusCancelled, "team-a"}, fs[0].Dims)
	require.EqualValues(t, 55, fs[0].M.Cost)
	require.EqualValues(t, 10, fs[0].M.Input)
	require.EqualValues(t, 20, fs[0].M.Output)
	require.EqualValues(t, 1, fs[0].M.Cancelled)
}

func TestExpiredAndUnexpiredCancel(t *testing.T) {
	t.Parallel()
	calls := []Call{{Model: "a", Cost: 5, LatencyMs: ptr[int64](10)}, {Model: "b", Cost: 7}}
	exp := Expired(run(), t0, calls)
	m := sum(exp)
	require.EqualValues(t, 12, m.Cost, "calls of an expired run count with their own cost")
	require.EqualValues(t, 1, m.Expired)
	require.EqualValues(t, 2, m.Calls)
	var total Measures
	total.Add(m)
	total.Add(sum(Unexpired(run(), t0, calls)))
	require.True(t, total.IsZero())
}

func TestAdmittedDecisions(t *testing.T) {
	t.Parallel()
	r := run()
	r.Status, r.Warned = StatusAdmitted, true
	f := Admitted(r)
	require.EqualValues(t, 1, f.M.Admitted)
	require.EqualValues(t, 1, f.M.Warned)
	require.Equal(t, StatusAdmitted, f.Dims[RunStatus])
	require.Equal(t, r.AdmittedAt, f.At)
	for reason, get := range map[string]func(Measures) int64{
		ReasonLimit:  func(m Measures) int64 { return m.BlockedLimit },
		ReasonPolicy: func(m Measures) int64 { return m.BlockedPolicy },
		ReasonRate:   func(m Measures) int64 { return m.BlockedRate },
	} {
		r := run()
		r.Status, r.BlockReason = StatusBlocked, reason
		f := Admitted(r)
		require.EqualValues(t, 1, get(f.M), reason)
		require.EqualValues(t, 1, f.M.BlockedAdmissions())
		require.EqualValues(t, 1, f.M.Blocked)
		require.EqualValues(t, 0, f.M.Admitted)
	}
}

func TestLoneCallTakesItsRunsAttribution(t *testing.T) {
	t.Parallel()
	c := Call{ProjectID: "p", AgentID: "a", APIKeyID: "k2", Model: "m", Provider: "x", Cost: 9, Input: 3, StartedAt: t0}
	f := LoneCall(c, nil)
	require.Equal(t, Dims{"p", "a", "k2", "x", "m", "", "", ""}, f.Dims)
	r := run()
	f = LoneCall(c, &r)
	require.Equal(t, "key_1", f.Dims[APIKey])
	require.Equal(t, "team-a", f.Dims[Tag])
	require.Equal(t, "", f.Dims[RunStatus])
	require.EqualValues(t, 9, f.M.Cost)
	require.EqualValues(t, 1, f.M.Calls)
}

func randomFacts(rng *rand.Rand, n int) []Fact {
	pick := func(p string, k int) string {
		if rng.IntN(10) == 0 {
			return ""
		}
		return fmt.Sprintf("%s%d", p, rng.IntN(k))
	}
	fs := make([]Fact, n)
	for i := range fs {
		m := Measures{Cost: rng.Int64N(1e9), Input: rng.Int64N(1e5), Calls: rng.Int64N(3), Succeeded: rng.Int64N(2), BlockedRate: rng.Int64N(2)}
		m.RunLatency.Add(float64(rng.IntN(10000)))
		fs[i] = Fact{
			At:   t0.Add(time.Duration(rng.Int64N(int64(72 * time.Hour)))),
			Dims: Dims{pick("p", 3), pick("a", 10), pick("k", 5), pick("v", 2), pick("m", 4), pick("f", 6), pick("s", 3), pick("t", 3)},
			M:    m,
		}
	}
	return fs
}

// Every cube at every grain holds all of every fact: its rows add up to the facts' sum.
func TestRollupEveryCubeAddsUp(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	fs := randomFacts(rng, 2000)
	rows := map[Key]*Measures{}
	// In two batches, as the roller would.
	Rollup(fs[:700], rows)
	Rollup(fs[700:], rows)
	want := sum(fs)
	for _, c := range Cubes {
		for _, g := range c.Grains {
			var got Measures
			for k, m := range rows {
				if k.Cube == c.ID && k.Grain == int16(g/time.Minute) {
					require.True(t, k.Bucket.Equal(k.Bucket.Truncate(g)))
					require.Equal(t, c.Project(k.Dims), k.Dims)
					got.Add(*m)
				}
			}
			require.True(t, want.Equal(got), "cube %s grain %s", c.Name, g)
		}
	}
	// Taking every fact back leaves nothing.
	neg := make([]Fact, len(fs))
	for i, f := range fs {
		neg[i] = Fact{At: f.At, Dims: f.Dims, M: f.M.Negated()}
	}
	Rollup(neg, rows)
	require.Empty(t, rows)
}

func TestPick(t *testing.T) {
	t.Parallel()
	require.Equal(t, "total", Pick(nil).Name)
	require.Equal(t, "model", Pick([]Dim{Model}).Name)
	require.Equal(t, "model", Pick([]Dim{Provider, Model}).Name)
	require.Equal(t, "agent", Pick([]Dim{Agent}).Name)
	require.Equal(t, "agent", Pick([]Dim{Project, Agent}).Name)
	require.Equal(t, "all", Pick([]Dim{Agent, Model}).Name)
	require.Equal(t, "all", Pick([]Dim{APIKey, RunStatus, Tag}).Name)
}

func TestSaturatingAdd(t *testing.T) {
	t.Parallel()
	m := Measures{Cost: money.Ceiling - 1}
	m.Add(Measures{Cost: money.Ceiling})
	require.Equal(t, money.Ceiling, m.Cost)
	require.Equal(t, -money.Ceiling, add(-money.Ceiling, -5))
	require.Equal(t, money.Ceiling, add(1<<62, 1<<62))
	require.EqualValues(t, 3, add(5, -2))
}
