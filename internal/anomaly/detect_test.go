package anomaly

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDescribeAndDeviation(t *testing.T) {
	t.Parallel()
	s := Describe([]float64{1, 2, 3, 4, 5, 6, 7, 8})
	require.InDelta(t, 4.5, s.Mean, 1e-9)
	require.InDelta(t, 2.449, s.Std, 1e-3)
	require.InDelta(t, 4.5, s.Median, 1e-9)
	require.InDelta(t, 2.75, s.Q1, 1e-9)
	require.InDelta(t, 6.25, s.Q3, 1e-9)
	base, dev := Deviation(MethodZScore, s, 14.5, 0)
	require.InDelta(t, 4.5, base, 1e-9)
	require.InDelta(t, 10/2.449, dev, 1e-3)
	base, dev = Deviation(MethodIQR, s, 14.5, 0)
	require.InDelta(t, 4.5, base, 1e-9)
	require.InDelta(t, 10/(3.5/1.349), dev, 1e-3)
}

func TestThresholdsAndScore(t *testing.T) {
	t.Parallel()
	th := DefaultConfig().Thresholds
	for dev, want := range map[float64]string{1.9: "", 2: SeverityInfo, 3.2: SeverityWarning, 4: SeverityHigh, 5: SeverityCritical, 50: SeverityCritical} {
		require.Equal(t, want, th.Severity(dev), "%g", dev)
	}
	require.NoError(t, th.Valid())
	require.Error(t, Thresholds{Info: 3, Warning: 2, High: 4, Critical: 5}.Valid())
	require.Equal(t, 0, Score(-1))
	require.Equal(t, 49, Score(2))
	require.Equal(t, 63, Score(3))
	require.Equal(t, 81, Score(5))
	require.Equal(t, 100, Score(100))
}

// A perfectly flat history has no spread: the floor keeps a cent's change from being a
// critical anomaly, while a real jump still is one.
func TestFlatHistoryUsesTheFloor(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	flat := make([]float64, 20)
	for i := range flat {
		flat[i] = 10_000_000 // $10 every day
	}
	_, ok := Detect(MetricCost, flat, 10_010_000, 0, cfg) // +1 cent
	require.False(t, ok)
	f, ok := Detect(MetricCost, flat, 20_000_000, 0, cfg) // doubled
	require.True(t, ok)
	require.Equal(t, SeverityCritical, f.Severity)
	// Decreases are not anomalies.
	_, ok = Detect(MetricCost, flat, 0, 0, cfg)
	require.False(t, ok)
}

func TestShortHistoriesAreNotEvaluated(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	_, ok := Detect(MetricCost, []float64{1, 2, 3}, 1e9, 0, cfg)
	require.False(t, ok, "fewer than min_data_points")
	// A new agent: five days of usage in a 28-day window is too short a history.
	s := Series{Days: make([]Day, 29), Present: make([]bool, 29)}
	for i := 23; i < 29; i++ {
		s.Days[i], s.Present[i] = Day{CostMicros: 1_000_000, Runs: 1}, true
	}
	s.Days[28].CostMicros = 100_000_000
	require.Empty(t, DetectSeries(s, cfg))
}

// Error rate and latency only count on days with enough runs, and the error rate's floor
// follows the binomial spread of the day.
func TestRatesNeedEnoughRuns(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	s := Series{Days: make([]Day, 29), Present: make([]bool, 29)}
	for i := range 28 {
		s.Days[i], s.Present[i] = Day{CostMicros: 1_000_000, Runs: 50, Failed: 1, LatencySumMs: 50 * 900, LatencyCount: 50}, true
	}
	s.Days[28], s.Present[28] = Day{CostMicros: 1_000_000, Runs: 5, Failed: 3, LatencySumMs: 5 * 9000, LatencyCount: 5}, true
	require.Empty(t, DetectSeries(s, cfg), "5 runs are too few to judge a rate")
	s.Days[28] = Day{CostMicros: 1_000_000, Runs: 50, Failed: 20, LatencySumMs: 50 * 2000, LatencyCount: 50}
	fs := DetectSeries(s, cfg)
	metrics := map[string]string{}
	for _, f := range fs {
		metrics[f.Metric] = f.Severity
	}
	require.Equal(t, SeverityCritical, metrics[MetricErrorRate])
	require.Equal(t, SeverityCritical, metrics[MetricLatency])
	require.NotContains(t, metrics, MetricCost)
}

// Synthetic series with planted anomalies: precision and recall of each method (and of
// both together, as the batch runs them), reported and held above floors. Each series is
// 28 days of history and one evaluated day. The population mixes what real usage looks
// like: different levels and noise (5-25 % of the level), weekly seasonality, and in a
// third of the series one or two past spikes in the history (which inflate the standard
// deviation: that is where IQR earns its keep). One series in ten gets a planted spike on
// the evaluated day: 1.8-4x its usual level.
func TestDetectionPrecisionAndRecallOnPlantedAnomalies(t *testing.T) {
	t.Parallel()
	const n = 4000
	rng := rand.New(rand.NewPCG(42, 2024))
	type sample struct {
		history  []float64
		observed float64
		planted  bool
	}
	samples := make([]sample, n)
	for i := range samples {
		level := 5e6 + rng.Float64()*95e6 // $5-100 a day
		cv := 0.05 + rng.Float64()*0.20
		weekly := rng.Float64() * 0.15
		value := func(day int) float64 {
			v := level * (1 + weekly*math.Sin(2*math.Pi*float64(day)/7)) * (1 + cv*rng.NormFloat64())
			return math.Max(v, 0)
		}
		h := make([]float64, 28)
		for d := range h {
			h[d] = value(d)
		}
		if rng.IntN(3) == 0 {
			for range 1 + rng.IntN(2) {
				h[rng.IntN(28)] *= 2.5 + rng.Float64()*2.5
			}
		}
		s := sample{history: h, observed: value(28)}
		if rng.IntN(10) == 0 {
			s.planted = true
			s.observed = level * (1.8 + rng.Float64()*2.2)
		}
		samples[i] = s
	}

	type result struct{ precision, recall float64 }
	measure := func(methods []string, minSeverity string) result {
		cfg := DefaultConfig()
		cfg.Methods = methods
		var tp, fp, fn int
		for _, s := range samples {
			f, ok := Detect(MetricCost, s.history, s.observed, 0, cfg)
			flagged := ok && SeverityRank(f.Severity) >= SeverityRank(minSeverity)
			switch {
			case flagged && s.planted:
				tp++
			case flagged:
				fp++
			case s.planted:
				fn++
			}
		}
		return result{float64(tp) / float64(max(tp+fp, 1)), float64(tp) / float64(max(tp+fn, 1))}
	}
	floors := map[string]result{
		// At warning (3σ) and above: what raises an alert.
		"zscore/warning": {0.93, 0.75}, "iqr/warning": {0.90, 0.95}, "both/warning": {0.90, 0.95},
		// At info (2σ) and above: everything recorded.
		"zscore/info": {0.80, 0.85}, "iqr/info": {0.70, 0.97}, "both/info": {0.70, 0.97},
	}
	t.Logf("%d synthetic series, %d%% with a planted spike", n, 10)
	t.Logf("%-16s %9s %7s", "method/severity", "precision", "recall")
	for _, sev := range []string{SeverityWarning, SeverityInfo} {
		for _, m := range []struct {
			name    string
			methods []string
		}{{"zscore", []string{MethodZScore}}, {"iqr", []string{MethodIQR}}, {"both", AllMethods}} {
			r := measure(m.methods, sev)
			key := m.name + "/" + sev
			line := fmt.Sprintf("%-16s %9.3f %7.3f", key, r.precision, r.recall)
			t.Log(line)
			require.GreaterOrEqual(t, r.precision, floors[key].precision, key)
			require.GreaterOrEqual(t, r.recall, floors[key].recall, key)
		}
	}
}
