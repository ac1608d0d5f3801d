package sketch

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// exact is the nearest-rank quantile of sorted values.
func exact(sorted []float64, q float64) float64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestQuantilesWithinTwoPercentOfExact(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() float64
		n    int
	}{
		{"uniform ms", func() float64 { return float64(rng.IntN(5000)) }, 10_000},
		{"log-normal", func() float64 { return math.Round(math.Exp(rng.NormFloat64()*1.5 + 6)) }, 50_000},
		{"small integers", func() float64 { return float64(rng.IntN(20)) }, 1_000},
		{"heavy tail", func() float64 { return math.Round(100 / math.Pow(rng.Float64()+1e-9, 0.8)) }, 20_000},
		{"one value", func() float64 { return 1234 }, 10},
		{"31 days", func() float64 { return float64(2_678_400_000 - rng.IntN(1000)) }, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Sketch
			vals := make([]float64, tc.n)
			for i := range vals {
				vals[i] = tc.gen()
				s.Add(vals[i])
			}
			slices.Sort(vals)
			require.EqualValues(t, tc.n, s.Count())
			for _, q := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				got, ok := s.Quantile(q)
				require.True(t, ok)
				want := exact(vals, q)
				if want == 0 {
					require.Zero(t, got, "q=%v", q)
					continue
				}
				require.InDelta(t, 0, math.Abs(got-want)/want, 0.02, "q=%v got %v want %v", q, got, want)
				require.LessOrEqual(t, math.Abs(got-want)/want, RelativeAccuracy+1e-9, "q=%v got %v want %v", q, got, want)
			}
		})
	}
}

// Merging per-bucket sketches gives exactly the sketch of all values, so percentiles of
// any grouping of rollups are those of the raw values.
func TestMergeIsExactAndNegationTakesBack(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var all Sketch
	parts := make([]Sketch, 7)
	for range 5000 {
		v := float64(rng.IntN(100000))
		all.Add(v)
		parts[rng.IntN(len(parts))].Add(v)
	}
	var merged Sketch
	for _, p := range parts {
		merged.Merge(p)
	}
	require.True(t, merged.Equal(all))
	merged.Merge(parts[3].Negated())
	merged.Merge(parts[3])
	require.True(t, merged.Equal(all))
	for _, p := range parts {
		merged.Merge(p.Negated())
	}
	require.True(t, merged.Empty())
	_, ok := merged.Quantile(0.5)
	require.False(t, ok)
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	var s Sketch
	for _, v := range []float64{0, 0, 1, 2, 3, 1000, 1e6} {
		s.Add(v)
	}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var back Sketch
	require.NoError(t, json.Unmarshal(b, &back))
	require.True(t, back.Equal(s))
	require.Error(t, json.Unmarshal([]byte(`{"x":1}`), &back))
	var empty Sketch
	b, _ = json.Marshal(empty)
	require.Equal(t, "{}", string(b))
}

func TestKeysAreMonotonic(t *testing.T) {
	t.Parallel()
	prev := Key(0)
	for v := 0.0; v < 1e7; v = v*1.003 + 1 {
		k := Key(v)
		require.GreaterOrEqual(t, k, prev)
		if v > 0 {
			require.LessOrEqual(t, math.Abs(Value(k)-v)/v, RelativeAccuracy+1e-9, "v=%v", v)
		}
		prev = k
	}
}

func FuzzSketchMerge(f *testing.F) {
	f.Add(uint64(1), 10, 3)
	f.Add(uint64(99), 1000, 1)
	f.Fuzz(func(t *testing.T, seed uint64, n, parts int) {
		n, parts = min(max(n, 1), 5000), min(max(parts, 1), 20)
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b9))
		var all Sketch
		ps := make([]Sketch, parts)
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = float64(rng.Int64N(3_000_000_000))
			all.Add(vals[i])
			ps[rng.IntN(parts)].Add(vals[i])
		}
		var m Sketch
		for _, p := range ps {
			m.Merge(p)
		}
		if !m.Equal(all) {
			t.Fatal("merge differs from the sketch of all values")
		}
		slices.Sort(vals)
		for _, q := range []float64{0.5, 0.95, 0.99} {
			got, _ := m.Quantile(q)
			want := exact(vals, q)
			if want > 0 && math.Abs(got-want)/want > RelativeAccuracy+1e-9 {
				t.Fatalf("q=%v got %v want %v", q, got, want)
			}
		}
	})
}
