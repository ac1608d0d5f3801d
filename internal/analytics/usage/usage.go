// Package usage is the arithmetic of analytics, without I/O: what each raw record adds to
// the rollups (facts), which rollup cubes keep which dimensions, and how grouped rows
// become a response whose groups add up exactly to its total (top-N with an "other"
// bucket).
//
// What counts, and when (the definitions every query and the raw-table baselines share):
//   - A decision (admitted or blocked) counts when the run was admitted: admitted,
//     blocked by reason (limit, policy, rate), warned; a blocked run is also a run that
//     ended, with status blocked.
//   - A settled run counts when its cost record was written: one run of its status, its
//     latency, its charged cost and its LLM calls recorded before it settled. The charged
//     cost is split over its calls' (provider, model, feature) in proportion to the calls'
//     own costs (then their tokens, then their number), exactly in integer micro-dollars,
//     the remainder to the largest share; tokens are the calls' (all five kinds) or, for a
//     run without calls, the run's input and output. The run itself (count, status,
//     latency) goes with its largest share, so every metric adds up in every grouping.
//   - A run whose lease ended unreported counts when it expired: status expired, its calls
//     and their cost (the run was charged nothing). Reported afterwards, the expiry is
//     taken back and the run counts as settled.
//   - An LLM call recorded without a run, or after its run settled, counts when it started,
//     with its own cost and tokens; its run status is "" (it is not part of a settlement).
package usage

import (
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/governor-hq/governor/internal/analytics/sketch"
	"github.com/governor-hq/governor/internal/money"
)

// Dim is a dimension of the rollups.
type Dim int

// The dimensions, in the order they are stored.
const (
	Project Dim = iota
	Agent
	APIKey
	Provider
	Model
	Feature
	RunStatus
	Tag
	NumDims
)

// DimNames are the dimensions' names in the API.
var DimNames = [NumDims]string{"project", "agent", "api_key", "provider", "model", "feature", "run_status", "tag"}

// Dims are a record's value of every dimension ("" = none).
type Dims [NumDims]string

// Measures are the additive metrics of a bucket.
type Measures struct {
	Cost, Input, Output, CacheRead, CacheWrite, Reasoning int64
	Succeeded, Failed, Cancelled, Expired, Blocked        int64
	Admitted, BlockedLimit, BlockedPolicy, BlockedRate    int64
	Warned                                                int64
	Calls, CallErrors, CacheHitCalls                      int64
	RunLatency, CallLatency                               sketch.Sketch
}

// add is a+b clamped to ±money.Ceiling: running totals saturate instead of wrapping.
func add(a, b int64) int64 {
	s := a + b // wraps on overflow, which the checks below catch
	switch {
	case a > 0 && b > 0 && s < 0:
		return money.Ceiling
	case a < 0 && b < 0 && s >= 0:
		return -money.Ceiling
	}
	return min(max(s, -money.Ceiling), money.Ceiling)
}

// counters lists the additive fields, so Add, Negated and IsZero cannot miss one.
func (m *Measures) counters() []*int64 {
	return []*int64{&m.Cost, &m.Input, &m.Output, &m.CacheRead, &m.CacheWrite, &m.Reasoning,
		&m.Succeeded, &m.Failed, &m.Cancelled, &m.Expired, &m.Blocked,
		&m.Admitted, &m.BlockedLimit, &m.BlockedPolicy, &m.BlockedRate, &m.Warned,
		&m.Calls, &m.CallErrors, &m.CacheHitCalls}
}

// Counters are the additive fields' values, in a fixed order.
func (m Measures) Counters() []int64 {
	ps := m.counters()
	out := make([]int64, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// Add adds o to m.
func (m *Measures) Add(o Measures) {
	a, b := m.counters(), o.counters()
	for i := range a {
		*a[i] = add(*a[i], *b[i])
	}
	m.RunLatency.Merge(o.RunLatency)
	m.CallLatency.Merge(o.CallLatency)
}

// Negated is what takes m back.
func (m Measures) Negated() Measures {
	var out Measures
	a, b := out.counters(), m.counters()
	for i := range a {
		*a[i] = -*b[i]
	}
	out.RunLatency, out.CallLatency = m.RunLatency.Negated(), m.CallLatency.Negated()
	return out
}

// IsZero reports whether m adds nothing.
func (m Measures) IsZero() bool {
	for _, p := range m.counters() {
		if *p != 0 {
			return false
		}
	}
	return m.RunLatency.Empty() && m.CallLatency.Empty()
}

// Equal reports whether two measures are the same.
func (m Measures) Equal(o Measures) bool {
	return slices.Equal(m.Counters(), o.Counters()) && m.RunLatency.Equal(o.RunLatency) && m.CallLatency.Equal(o.CallLatency)
}

// Runs are the runs that ended, whatever their status.
func (m Measures) Runs() int64 {
	return money.Sum(m.Succeeded, m.Failed, m.Cancelled, m.Expired, m.Blocked)
}

// BlockedAdmissions are the admissions refused, whatever the reason.
func (m Measures) BlockedAdmissions() int64 {
	return money.Sum(m.BlockedLimit, m.BlockedPolicy, m.BlockedRate)
}

// Tokens are all tokens, of every kind.
func (m Measures) Tokens() int64 {
	return money.Sum(m.Input, m.Output, m.CacheRead, m.CacheWrite, m.Reasoning)
}

// Fact is what one record adds to the bucket containing At.
type Fact struct {
	At   time.Time
	Dims Dims
	M    Measures
}

// Run statuses.
const (
	StatusAdmitted  = "admitted"
	StatusBlocked   = "blocked"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
)

// Reasons an admission was refused.
const (
	ReasonLimit  = "limit"
	ReasonPolicy = "policy"
	ReasonRate   = "rate"
)

// Run is what the facts need of a run.
type Run struct {
	ProjectID, AgentID, APIKeyID, Model, Feature string
	// Tag is the run's value of the organization's tag key ("" = none).
	Tag        string
	Status     string
	AdmittedAt time.Time
	Warned     bool
	// BlockReason is set for blocked runs.
	BlockReason string
}

// CostRecord is a run's settlement.
type CostRecord struct {
	Cost, Input, Output int64
	Status              string
	LatencyMs           *int64
	At                  time.Time
}

// Call is one LLM call.
type Call struct {
	ID                                           string
	ProjectID, AgentID, APIKeyID                 string
	Provider, Model, Feature                     string
	Input, Output, CacheRead, CacheWrite, Reason int64
	Cost                                         int64
	LatencyMs                                    *int64
	Error                                        bool
	StartedAt                                    time.Time
	// Tag is the call's value of the tag key (its run's, for a call of a run).
	Tag string
}

func (r Run) dims(status string) Dims {
	return Dims{Project: r.ProjectID, Agent: r.AgentID, APIKey: r.APIKeyID, Model: r.Model, Feature: r.Feature,
		RunStatus: status, Tag: r.Tag}
}

// Admitted is a decision.
func Admitted(r Run) Fact {
	f := Fact{At: r.AdmittedAt}
	if r.Status == StatusBlocked {
		f.Dims = r.dims(StatusBlocked)
		f.M.Blocked = 1
		switch r.BlockReason {
		case ReasonPolicy:
			f.M.BlockedPolicy = 1
		case ReasonRate:
			f.M.BlockedRate = 1
		default:
			f.M.BlockedLimit = 1
		}
	} else {
		f.Dims = r.dims(StatusAdmitted)
		f.M.Admitted = 1
	}
	if r.Warned {
		f.M.Warned = 1
	}
	return f
}

func (c Call) tokens() int64 {
	return money.Sum(c.Input, c.Output, c.CacheRead, c.CacheWrite, c.Reason)
}

// callMeasures are one call's own metrics, its cost included.
func callMeasures(c Call) Measures {
	m := Measures{Input: c.Input, Output: c.Output, CacheRead: c.CacheRead, CacheWrite: c.CacheWrite, Reasoning: c.Reason,
		Cost: c.Cost, Calls: 1}
	if c.Error {
		m.CallErrors = 1
	}
	if c.CacheRead > 0 {
		m.CacheHitCalls = 1
	}
	if c.LatencyMs != nil {
		m.CallLatency.Add(float64(*c.LatencyMs))
	}
	return m
}

type callGroup struct {
	provider, model, feature string
	m                        Measures // the calls' own metrics
	cost, tokens, n          int64
}

// groupCalls sums a run's calls per (provider, model, feature), in a fixed order.
func groupCalls(calls []Call) []*callGroup {
	idx := map[[3]string]*callGroup{}
	var out []*callGroup
	for _, c := range calls {
		k := [3]string{c.Provider, c.Model, c.Feature}
		g := idx[k]
		if g == nil {
			g = &callGroup{provider: c.Provider, model: c.Model, feature: c.Feature}
			idx[k] = g
			out = append(out, g)
		}
		g.m.Add(callMeasures(c))
		g.cost = money.Add(g.cost, c.Cost)
		g.tokens = money.Add(g.tokens, c.tokens())
		g.n++
	}
	slices.SortFunc(out, func(a, b *callGroup) int {
		return strings.Compare(a.provider+"\x00"+a.model+"\x00"+a.feature, b.provider+"\x00"+b.model+"\x00"+b.feature)
	})
	return out
}

// Split divides total over weights exactly: shares proportional to the weights (floored),
// the remainder to the largest weight (the first of equals). With all weights 0, the
// first gets everything. It returns the shares and the index of the largest.
func Split(total int64, weights []int64) ([]int64, int) {
	shares := make([]int64, len(weights))
	if len(weights) == 0 {
		return shares, -1
	}
	var sum uint64
	big := 0
	for i, w := range weights {
		w = max(w, 0)
		sum += uint64(w) // weights are bounded sums (≤ money.Ceiling each, few of them)
		if w > max(weights[big], 0) {
			big = i
		}
	}
	if sum == 0 || total <= 0 {
		shares[big] = total
		return shares, big
	}
	var given int64
	for i, w := range weights {
		hi, lo := bits.Mul64(uint64(total), uint64(max(w, 0)))
		q, _ := bits.Div64(hi, lo, sum) // q ≤ total: w ≤ sum
		shares[i] = int64(q)
		given += int64(q)
	}
	shares[big] += total - given
	return shares, big
}

// attributed spreads a run's totals over its call groups: cost by the split, the run's
// own counts and latency with the largest share.
func attributed(r Run, status string, cost int64, charged bool, runM Measures, calls []Call, at time.Time) []Fact {
	gs := groupCalls(calls)
	if len(gs) == 0 {
		d := r.dims(status)
		m := runM
		m.Cost = cost
		return []Fact{{At: at, Dims: d, M: m}}
	}
	weights := make([]int64, len(gs))
	var costs, toks int64
	for i, g := range gs {
		costs, toks = money.Add(costs, g.cost), money.Add(toks, g.tokens)
		weights[i] = g.cost
	}
	if costs == 0 {
		for i, g := range gs {
			if toks > 0 {
				weights[i] = g.tokens
			} else {
				weights[i] = g.n
			}
		}
	}
	var shares []int64
	big := 0
	if charged {
		shares, big = Split(cost, weights)
	} else {
		_, big = Split(0, weights)
	}
	out := make([]Fact, 0, len(gs))
	for i, g := range gs {
		d := r.dims(status)
		d[Provider], d[Model], d[Feature] = g.provider, g.model, g.feature
		m := g.m
		if charged {
			m.Cost = shares[i]
		}
		if i == big {
			rm := runM
			rm.Input, rm.Output = 0, 0 // the calls' tokens stand for the run's
			m.Add(rm)
		}
		out = append(out, Fact{At: at, Dims: d, M: m})
	}
	return out
}

func statusMeasures(status string, latency *int64) Measures {
	var m Measures
	switch status {
	case StatusSucceeded:
		m.Succeeded = 1
	case StatusFailed:
		m.Failed = 1
	case StatusCancelled:
		m.Cancelled = 1
	case StatusExpired:
		m.Expired = 1
	}
	if latency != nil {
		m.RunLatency.Add(float64(*latency))
	}
	return m
}

// Settled is a run's settlement: calls are the run's calls recorded before it settled.
func Settled(r Run, c CostRecord, calls []Call) []Fact {
	m := statusMeasures(c.Status, c.LatencyMs)
	m.Input, m.Output = c.Input, c.Output
	return attributed(r, c.Status, c.Cost, true, m, calls, c.At)
}

// Expired is a run whose lease ended before it reported; its calls count with their own
// cost, as the run was charged nothing.
func Expired(r Run, at time.Time, calls []Call) []Fact {
	return attributed(r, StatusExpired, 0, false, statusMeasures(StatusExpired, nil), calls, at)
}

// Unexpired takes Expired back (the run was reported after all).
func Unexpired(r Run, at time.Time, calls []Call) []Fact {
	fs := Expired(r, at, calls)
	for i := range fs {
		fs[i].M = fs[i].M.Negated()
	}
	return fs
}

// LoneCall is a call that is not part of a settlement: recorded without a run, or after
// its run settled. run is its run, if any (for the run's project, agent, key and tag).
func LoneCall(c Call, run *Run) Fact {
	d := Dims{Project: c.ProjectID, Agent: c.AgentID, APIKey: c.APIKeyID, Provider: c.Provider, Model: c.Model,
		Feature: c.Feature, Tag: c.Tag}
	if run != nil {
		d[Project], d[Agent], d[APIKey], d[Tag] = run.ProjectID, run.AgentID, run.APIKeyID, run.Tag
	}
	return Fact{At: c.StartedAt, Dims: d, M: callMeasures(c)}
}
