package usage

import (
	"cmp"
	"slices"
	"strings"
)

// Metric names a measure a query can order its top-N by.
type Metric string

// Metrics to order by.
const (
	MetricCost       Metric = "cost"
	MetricTokens     Metric = "tokens"
	MetricRuns       Metric = "runs"
	MetricCalls      Metric = "calls"
	MetricBlocked    Metric = "blocked"
	MetricAdmitted   Metric = "admitted"
	MetricCallErrors Metric = "call_errors"
	MetricFailed     Metric = "runs_failed"
)

// OrderValue is the value of m that a top-N ranks by.
func OrderValue(m Measures, by Metric) int64 {
	switch by {
	case MetricTokens:
		return m.Tokens()
	case MetricRuns:
		return m.Runs()
	case MetricCalls:
		return m.Calls
	case MetricBlocked:
		return m.BlockedAdmissions()
	case MetricAdmitted:
		return m.Admitted
	case MetricCallErrors:
		return m.CallErrors
	case MetricFailed:
		return m.Failed
	}
	return m.Cost
}

// Marginal is one value of a dimension with its total over the whole query.
type Marginal struct {
	Value string
	M     Measures
}

// Top keeps the n values with the largest totals (ties: the smaller value first); n ≤ 0
// keeps all. It returns the kept values and how many were folded into "other".
func Top(ms []Marginal, n int, by Metric) ([]string, int) {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b Marginal) int {
		if c := cmp.Compare(OrderValue(b.M, by), OrderValue(a.M, by)); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	if n <= 0 || n >= len(s) {
		n = len(s)
	}
	keep := make([]string, 0, n)
	for _, m := range s[:n] {
		keep = append(keep, m.Value)
	}
	return keep, len(s) - n
}

// Value is one grouped dimension's value in a row: a value ("" = none), or "other" (the
// values a top-N folded together).
type Value struct {
	V     string
	Other bool
}

// Fold is v as a top-N with the kept values leaves it: itself if kept, else other. A nil
// keep keeps everything.
func Fold(v string, keep map[string]bool) Value {
	if keep == nil || keep[v] {
		return Value{V: v}
	}
	return Value{Other: true}
}

// Row is one grouped row: a bucket, the grouped dimensions' values, its measures.
type Row struct {
	Bucket int
	Values []Value
	M      Measures
}

// Group is one combination of the grouped dimensions' values.
type Group struct {
	Values []Value
	Total  Measures
	Series []Measures // per bucket
}

// Result is a query's answer: totals overall and per bucket, and the groups.
type Result struct {
	Total  Measures
	Series []Measures
	Groups []Group
}

func valuesKey(vs []Value) string {
	var b strings.Builder
	for _, v := range vs {
		if v.Other {
			b.WriteString("\x01")
		} else {
			b.WriteString("\x02" + v.V)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// Assemble sums rows into groups and totals: every group's total is the sum of its
// series, and the response's total (overall and per bucket) is the sum of its groups, so
// the groups add up exactly to the total. Groups are ordered by their total of `by`,
// largest first, with groups holding "other" last.
func Assemble(rows []Row, buckets int, by Metric) Result {
	res := Result{Series: make([]Measures, buckets)}
	idx := map[string]int{}
	for _, r := range rows {
		if r.Bucket < 0 || r.Bucket >= buckets {
			continue
		}
		k := valuesKey(r.Values)
		i, ok := idx[k]
		if !ok {
			i = len(res.Groups)
			idx[k] = i
			res.Groups = append(res.Groups, Group{Values: slices.Clone(r.Values), Series: make([]Measures, buckets)})
		}
		g := &res.Groups[i]
		g.Series[r.Bucket].Add(r.M)
		g.Total.Add(r.M)
		res.Series[r.Bucket].Add(r.M)
		res.Total.Add(r.M)
	}
	hasOther := func(g Group) bool {
		for _, v := range g.Values {
			if v.Other {
				return true
			}
		}
		return false
	}
	slices.SortStableFunc(res.Groups, func(a, b Group) int {
		if ao, bo := hasOther(a), hasOther(b); ao != bo {
			if ao {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(OrderValue(b.Total, by), OrderValue(a.Total, by)); c != 0 {
			return c
		}
		return strings.Compare(valuesKey(a.Values), valuesKey(b.Values))
	})
	return res
}
