package usage

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTop(t *testing.T) {
	t.Parallel()
	ms := []Marginal{{"a", Measures{Cost: 5}}, {"b", Measures{Cost: 9}}, {"c", Measures{Cost: 5}}, {"", Measures{Cost: 1}}}
	keep, folded := Top(ms, 2, MetricCost)
	require.Equal(t, []string{"b", "a"}, keep)
	require.Equal(t, 2, folded)
	keep, folded = Top(ms, 0, MetricCost)
	require.Equal(t, []string{"b", "a", "c", ""}, keep)
	require.Zero(t, folded)
	keep, _ = Top([]Marginal{{"x", Measures{Calls: 1}}, {"y", Measures{Calls: 3}}}, 1, MetricCalls)
	require.Equal(t, []string{"y"}, keep)
}

// checkAddsUp is the invariant every response keeps: groups add up to the total, overall
// and in every bucket, and each group's series adds up to its total.
func checkAddsUp(t testing.TB, res Result) {
	t.Helper()
	var total Measures
	series := make([]Measures, len(res.Series))
	for _, g := range res.Groups {
		var gt Measures
		for i, m := range g.Series {
			gt.Add(m)
			series[i].Add(m)
		}
		if !gt.Equal(g.Total) {
			t.Fatalf("group %v: series add up to %v, total is %v", g.Values, gt.Counters(), g.Total.Counters())
		}
		total.Add(g.Total)
	}
	if !total.Equal(res.Total) {
		t.Fatalf("groups add up to %v, total is %v", total.Counters(), res.Total.Counters())
	}
	for i := range series {
		if !series[i].Equal(res.Series[i]) {
			t.Fatalf("bucket %d: groups add up to %v, total is %v", i, series[i].Counters(), res.Series[i].Counters())
		}
	}
}

func randomRows(rng *rand.Rand, n, buckets, dims, card int) []Row {
	rows := make([]Row, n)
	for i := range rows {
		vs := make([]Value, dims)
		for d := range vs {
			if v := rng.IntN(card + 1); v < card {
				vs[d] = Value{V: fmt.Sprintf("v%d", v)}
			} // else "" (none)
		}
		m := Measures{Cost: rng.Int64N(1e12), Calls: rng.Int64N(100), Failed: rng.Int64N(3)}
		m.CallLatency.Add(float64(rng.IntN(1e6)))
		rows[i] = Row{Bucket: rng.IntN(buckets), Values: vs, M: m}
	}
	return rows
}

// Folding into top-N + other never changes the totals, and groups always add up.
func TestAssembleGroupsAddUpToTotal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	for range 50 {
		dims, buckets, card := 1+rng.IntN(3), 1+rng.IntN(30), 1+rng.IntN(20)
		rows := randomRows(rng, rng.IntN(500), buckets, dims, card)
		full := Assemble(rows, buckets, MetricCost)
		checkAddsUp(t, full)
		// Fold every dimension to its top n, as a query does.
		n := rng.IntN(card + 1)
		folded := make([]Row, len(rows))
		for d := range dims {
			margs := map[string]Measures{}
			for _, r := range rows {
				m := margs[r.Values[d].V]
				m.Add(r.M)
				margs[r.Values[d].V] = m
			}
			var ms []Marginal
			for v, m := range margs {
				ms = append(ms, Marginal{v, m})
			}
			keep, _ := Top(ms, n, MetricCost)
			set := map[string]bool{}
			for _, k := range keep {
				set[k] = true
			}
			for i, r := range rows {
				if d == 0 {
					folded[i] = Row{Bucket: r.Bucket, Values: make([]Value, dims), M: r.M}
				}
				folded[i].Values[d] = Fold(r.Values[d].V, set)
			}
		}
		res := Assemble(folded, buckets, MetricCost)
		checkAddsUp(t, res)
		require.True(t, res.Total.Equal(full.Total), "folding keeps the total")
		for i := range res.Series {
			require.True(t, res.Series[i].Equal(full.Series[i]))
		}
		seenOther := false
		for _, g := range res.Groups {
			other := false
			for _, v := range g.Values {
				other = other || v.Other
			}
			require.False(t, seenOther && !other, "groups with other come last")
			seenOther = seenOther || other
		}
	}
}

func FuzzAssembleAddsUp(f *testing.F) {
	f.Add(uint64(1), 100, 2, 5, 3)
	f.Fuzz(func(t *testing.T, seed uint64, n, dims, card, keep int) {
		rng := rand.New(rand.NewPCG(seed, 11))
		n, dims, card = min(max(n, 0), 2000), 1+min(max(dims, 0), 2), 1+min(max(card, 0), 50)
		buckets := 1 + rng.IntN(10)
		rows := randomRows(rng, n, buckets, dims, card)
		set := map[string]bool{}
		for i := range min(max(keep, 0), card) {
			set[fmt.Sprintf("v%d", i)] = true
		}
		for i := range rows {
			for d := range rows[i].Values {
				rows[i].Values[d] = Fold(rows[i].Values[d].V, set)
			}
		}
		checkAddsUp(t, Assemble(rows, buckets, MetricCalls))
	})
}
