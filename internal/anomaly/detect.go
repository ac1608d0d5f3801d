// Package anomaly is Governor's daily anomaly detection: per organization and per entity
// (agent, API key, model), the daily series of cost, tokens, error rate and latency are
// compared with their own recent history by z-score and IQR, and budgets whose window
// went over become BUDGET_EXCEEDED anomalies. This file is the pure statistics; batch.go
// reads the series from PostgreSQL and writes what it finds.
package anomaly

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Metrics.
const (
	MetricCost      = "cost"
	MetricTokens    = "tokens"
	MetricErrorRate = "error_rate"
	MetricLatency   = "latency"
)

// Methods.
const (
	MethodZScore = "zscore"
	MethodIQR    = "iqr"
	MethodBudget = "budget"
)

// Severities, in increasing order.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Types.
const (
	TypeMetricSpike    = "METRIC_SPIKE"
	TypeBudgetExceeded = "BUDGET_EXCEEDED"
)

// AllMetrics and AllMethods are the defaults.
var (
	AllMetrics = []string{MetricCost, MetricTokens, MetricErrorRate, MetricLatency}
	AllMethods = []string{MethodZScore, MethodIQR}
	severities = []string{SeverityInfo, SeverityWarning, SeverityHigh, SeverityCritical}
)

// SeverityRank orders severities ("" is below info).
func SeverityRank(s string) int { return slices.Index(severities, s) }

// Thresholds are the deviations (in standard deviations, or their robust equivalent for
// IQR) at which an observation becomes an anomaly of each severity.
type Thresholds struct {
	Info, Warning, High, Critical float64
}

// Severity is the severity of a deviation, or "" below Info.
func (t Thresholds) Severity(dev float64) string {
	switch {
	case dev >= t.Critical:
		return SeverityCritical
	case dev >= t.High:
		return SeverityHigh
	case dev >= t.Warning:
		return SeverityWarning
	case dev >= t.Info:
		return SeverityInfo
	}
	return ""
}

// Valid reports whether the thresholds are positive and ascending.
func (t Thresholds) Valid() error {
	if !(t.Info > 0 && t.Info <= t.Warning && t.Warning <= t.High && t.High <= t.Critical) {
		return fmt.Errorf("thresholds must be positive and ascending: info %g <= warning %g <= high %g <= critical %g",
			t.Info, t.Warning, t.High, t.Critical)
	}
	return nil
}

// Config is an organization's detection settings.
type Config struct {
	Enabled    bool
	Metrics    []string
	Methods    []string
	Thresholds Thresholds
	// LookbackDays of history each day is compared with.
	LookbackDays int
	// MinDataPoints of history an entity needs before it is evaluated.
	MinDataPoints int
	// MinDailyRuns an entity needs in a day for that day's error rate and latency to count.
	MinDailyRuns int
}

// DefaultConfig is the configuration of an organization that set none: seed 001's
// thresholds (info 2σ, warning 3σ, critical 5σ) with high at 4σ between them.
func DefaultConfig() Config {
	return Config{
		Enabled: true, Metrics: slices.Clone(AllMetrics), Methods: slices.Clone(AllMethods),
		Thresholds:   Thresholds{Info: 2, Warning: 3, High: 4, Critical: 5},
		LookbackDays: 28, MinDataPoints: 7, MinDailyRuns: 20,
	}
}

// Stats describe a history.
type Stats struct {
	N              int
	Mean, Std      float64
	Median, Q1, Q3 float64
}

// Describe computes a history's statistics (sample standard deviation; quartiles by
// linear interpolation between closest ranks).
func Describe(xs []float64) Stats {
	s := Stats{N: len(xs)}
	if len(xs) == 0 {
		return s
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	s.Mean = sum / float64(len(xs))
	if len(xs) > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.Std = math.Sqrt(ss / float64(len(xs)-1))
	}
	sorted := slices.Clone(xs)
	sort.Float64s(sorted)
	s.Q1, s.Median, s.Q3 = quantile(sorted, 0.25), quantile(sorted, 0.5), quantile(sorted, 0.75)
	return s
}

func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// iqrToSigma converts an interquartile range to the standard deviation it corresponds to
// for normally distributed data (the quartiles are ±0.6745σ from the mean).
const iqrToSigma = 1.349

// Deviation is how far observed is above the history's baseline with one method, in
// standard deviations (or their robust equivalent), never dividing by less than floor.
// Only increases count: a quiet day is not an incident.
func Deviation(method string, s Stats, observed, floor float64) (baseline, dev float64) {
	switch method {
	case MethodZScore:
		return s.Mean, (observed - s.Mean) / math.Max(s.Std, floor)
	case MethodIQR:
		return s.Median, (observed - s.Median) / math.Max((s.Q3-s.Q1)/iqrToSigma, floor)
	}
	return 0, 0
}

// Floor is the smallest spread a metric's history is assumed to have, so that a perfectly
// flat history does not turn a tiny change into a critical anomaly: 5 % of the baseline,
// and at least one cent, 100 tokens, 10 ms or the binomial spread of the day's error rate
// (at least 2 points).
func Floor(metric string, baseline float64, runs int64) float64 {
	rel := 0.05 * math.Abs(baseline)
	switch metric {
	case MetricCost:
		return math.Max(rel, 10_000)
	case MetricTokens:
		return math.Max(rel, 100)
	case MetricLatency:
		return math.Max(rel, 10)
	case MetricErrorRate:
		p := math.Min(math.Max(baseline, 0.01), 0.99)
		n := math.Max(float64(runs), 1)
		return math.Max(0.02, math.Sqrt(p*(1-p)/n))
	}
	return math.Max(rel, 1e-9)
}

// Finding is one anomalous observation.
type Finding struct {
	Metric   string
	Method   string
	Severity string
	Baseline float64
	Observed float64
	// Deviation in standard deviations (or robust equivalents).
	Deviation  float64
	Score      int
	Confidence float64
	Context    map[string]any
}

// Score maps a deviation to 0-100, saturating: 2σ ≈ 49, 3σ ≈ 63, 5σ ≈ 81, 10σ ≈ 96.
func Score(dev float64) int {
	if dev <= 0 {
		return 0
	}
	return int(math.Round(100 * (1 - math.Exp(-dev/3))))
}

// MethodResult is one method's verdict on an observation.
type MethodResult struct {
	Method    string
	Baseline  float64
	Deviation float64
	Severity  string
}

// Evaluate judges one observation against its history with one method.
func Evaluate(method string, s Stats, observed float64, metric string, runs int64, t Thresholds) MethodResult {
	floor := Floor(metric, baselineFor(method, s), runs)
	base, dev := Deviation(method, s, observed, floor)
	return MethodResult{Method: method, Baseline: base, Deviation: dev, Severity: t.Severity(dev)}
}

func baselineFor(method string, s Stats) float64 {
	if method == MethodIQR {
		return s.Median
	}
	return s.Mean
}

// Detect judges one observation (the day's value of a metric, with the day's runs for
// rates) against its history with the configured methods. It returns one finding when
// any method flags it: the stronger method's, with the other's verdict in its context and
// a confidence that grows with the history's length and when both methods agree.
func Detect(metric string, history []float64, observed float64, runs int64, cfg Config) (Finding, bool) {
	// Values that are not finite carry no information (and cannot be stored or sent):
	// such points are left out of the history, and such an observation is not judged.
	if !finite(observed) {
		return Finding{}, false
	}
	if slices.ContainsFunc(history, func(x float64) bool { return !finite(x) }) {
		history = slices.DeleteFunc(slices.Clone(history), func(x float64) bool { return !finite(x) })
	}
	if len(history) < cfg.MinDataPoints || len(history) < 2 {
		return Finding{}, false
	}
	s := Describe(history)
	var results []MethodResult
	for _, m := range cfg.Methods {
		if m == MethodZScore || m == MethodIQR {
			results = append(results, Evaluate(m, s, observed, metric, runs, cfg.Thresholds))
		}
	}
	best := -1
	flagged := 0
	for i, r := range results {
		if r.Severity == "" {
			continue
		}
		flagged++
		if best < 0 || r.Deviation > results[best].Deviation {
			best = i
		}
	}
	if best < 0 {
		return Finding{}, false
	}
	r := results[best]
	if !finite(r.Deviation) || !finite(r.Baseline) {
		// Finite inputs near ±1.8e308 can still overflow the statistics.
		return Finding{}, false
	}
	agreement := 1.0
	if len(results) > 1 && flagged < len(results) {
		agreement = 0.75
	}
	n := float64(s.N)
	confidence := math.Round(n/(n+5)*agreement*100) / 100
	ctx := map[string]any{
		"points": s.N, "mean": round(s.Mean), "std": round(s.Std), "median": round(s.Median),
		"q1": round(s.Q1), "q3": round(s.Q3), "floor": round(Floor(metric, r.Baseline, runs)),
	}
	for _, m := range results {
		ctx[m.Method+"_deviation"] = round(m.Deviation)
		ctx[m.Method+"_severity"] = m.Severity
	}
	if metric == MetricErrorRate || metric == MetricLatency {
		ctx["runs"] = runs
	}
	return Finding{
		Metric: metric, Method: r.Method, Severity: r.Severity, Baseline: r.Baseline, Observed: observed,
		Deviation: r.Deviation, Score: Score(r.Deviation), Confidence: confidence, Context: ctx,
	}, true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func round(x float64) float64 {
	if !finite(x) {
		return 0
	}
	if r := math.Round(x*1000) / 1000; finite(r) {
		return r
	}
	return x // too large to carry decimals anyway
}

// Day is one day of an entity's usage.
type Day struct {
	CostMicros   int64
	Tokens       int64
	Runs         int64
	Failed       int64
	LatencySumMs int64
	LatencyCount int64
}

// Value is the day's value of a metric, and whether the day counts for it: cost and
// tokens always do (a day without usage is a zero); error rate and latency only with
// enough runs to mean something.
func (d Day) Value(metric string, minRuns int) (float64, bool) {
	switch metric {
	case MetricCost:
		return float64(d.CostMicros), true
	case MetricTokens:
		return float64(d.Tokens), true
	case MetricErrorRate:
		if d.Runs < int64(minRuns) || d.Runs == 0 {
			return 0, false
		}
		return float64(d.Failed) / float64(d.Runs), true
	case MetricLatency:
		if d.LatencyCount < int64(minRuns) || d.LatencyCount == 0 {
			return 0, false
		}
		return float64(d.LatencySumMs) / float64(d.LatencyCount), true
	}
	return 0, false
}

// Series is an entity's usage by day: index 0 is the oldest day of the lookback window,
// the last index the day evaluated. Present says which days had usage at all.
type Series struct {
	Days    []Day
	Present []bool
}

// DetectSeries evaluates the last day of a series for every configured metric. Cost and
// token histories start at the entity's first day with usage (a new agent is not compared
// with the days before it existed); days without usage after that count as zero.
func DetectSeries(s Series, cfg Config) []Finding {
	last := len(s.Days) - 1
	if last < 1 || !s.Present[last] {
		return nil
	}
	first := slices.Index(s.Present, true)
	var out []Finding
	for _, metric := range cfg.Metrics {
		observed, ok := s.Days[last].Value(metric, cfg.MinDailyRuns)
		if !ok {
			continue
		}
		var history []float64
		for i := first; i < last; i++ {
			if !s.Present[i] && (metric == MetricErrorRate || metric == MetricLatency) {
				continue
			}
			if v, ok := s.Days[i].Value(metric, cfg.MinDailyRuns); ok {
				history = append(history, v)
			}
		}
		if f, ok := Detect(metric, history, observed, s.Days[last].Runs, cfg); ok {
			out = append(out, f)
		}
	}
	return out
}
