package anomaly

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzDetect: histories and observations with NaN, ±Inf or huge values never panic and
// never produce a finding whose numbers are not finite (they are stored and sent as JSON).
func FuzzDetect(f *testing.F) {
	f.Add(1.0, 2.0, 3.0, math.NaN(), 10.0, int64(50))
	f.Add(math.Inf(1), 1.0, 1.0, 1.0, 1.0, int64(50))
	f.Add(1.0, 1.0, 1.0, 1.0, math.Inf(1), int64(50))
	f.Add(1e308, -1e308, 1e308, 0.0, 1e308, int64(0))
	f.Add(0.0, 0.0, 0.0, 0.0, 5e18, int64(-1))
	f.Fuzz(func(t *testing.T, a, b, c, d, observed float64, runs int64) {
		cfg := DefaultConfig()
		cfg.MinDataPoints = 3
		history := []float64{a, b, c, d, a, b, c}
		for _, metric := range []string{MetricCost, MetricTokens, MetricErrorRate, MetricLatency} {
			fd, ok := Detect(metric, history, observed, runs, cfg)
			if !ok {
				continue
			}
			for name, v := range map[string]float64{"baseline": fd.Baseline, "observed": fd.Observed, "deviation": fd.Deviation, "confidence": fd.Confidence} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s finding has %s = %v (history %v, observed %v)", metric, name, v, history, observed)
				}
			}
			if fd.Score < 0 || fd.Score > 100 || fd.Confidence < 0 || fd.Confidence > 1 {
				t.Fatalf("score %d confidence %v", fd.Score, fd.Confidence)
			}
			if _, err := json.Marshal(fd.Context); err != nil {
				t.Fatalf("context does not encode: %v", err)
			}
		}
	})
}
