// Package sketch is a mergeable latency histogram with bounded relative error: values fall
// into logarithmic buckets of ratio γ = (1+α)/(1-α) (as in DDSketch), so any quantile it
// answers is within α = 1 % of the exact value of the same rank. Sketches of rollup buckets
// add up exactly (counts per bucket), and can be taken away again, which is what lets
// latency percentiles come from rollups of any grouping.
package sketch

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// RelativeAccuracy is α: a quantile is within this fraction of the exact value.
const RelativeAccuracy = 0.01

var (
	gamma    = (1 + RelativeAccuracy) / (1 - RelativeAccuracy)
	logGamma = math.Log(gamma)
)

// Sketch counts values per bucket key. Key 0 holds exact zeros; key k ≥ 1 holds values
// in (γ^(k-2), γ^(k-1)]. The zero value is an empty sketch ready to use.
type Sketch struct {
	counts map[int32]int64
}

// Key is the bucket of a non-negative value (negative values count as 0).
func Key(v float64) int32 {
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return int32(math.Ceil(math.Log(v)/logGamma)) + 1
}

// Value is the representative of a bucket: the point whose relative distance to both of
// the bucket's ends is α.
func Value(key int32) float64 {
	if key <= 0 {
		return 0
	}
	return 2 * math.Pow(gamma, float64(key-1)) / (gamma + 1)
}

// Add counts one value.
func (s *Sketch) Add(v float64) { s.AddN(Key(v), 1) }

// AddN adds n (which may be negative, to take values back) to a bucket.
func (s *Sketch) AddN(key int32, n int64) {
	if n == 0 {
		return
	}
	if s.counts == nil {
		s.counts = map[int32]int64{}
	}
	if c := s.counts[key] + n; c == 0 {
		delete(s.counts, key)
	} else {
		s.counts[key] = c
	}
}

// Merge adds every count of o.
func (s *Sketch) Merge(o Sketch) {
	for k, n := range o.counts {
		s.AddN(k, n)
	}
}

// Negated is o with every count's sign flipped (adding it takes o back).
func (s Sketch) Negated() Sketch {
	out := Sketch{}
	for k, n := range s.counts {
		out.AddN(k, -n)
	}
	return out
}

// Count is the number of values.
func (s Sketch) Count() int64 {
	var n int64
	for _, c := range s.counts {
		n += c
	}
	return n
}

// Empty reports whether the sketch holds nothing.
func (s Sketch) Empty() bool { return len(s.counts) == 0 }

// Equal reports whether two sketches hold the same counts.
func (s Sketch) Equal(o Sketch) bool {
	if len(s.counts) != len(o.counts) {
		return false
	}
	for k, n := range s.counts {
		if o.counts[k] != n {
			return false
		}
	}
	return true
}

// Quantile is the value of rank ceil(q·n) (the nearest-rank definition, q in [0, 1]),
// within α of the exact value of that rank; ok is false for an empty sketch (or one whose
// counts do not add up to a positive number).
func (s Sketch) Quantile(q float64) (float64, bool) {
	n := s.Count()
	if n <= 0 {
		return 0, false
	}
	rank := int64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	keys := make([]int32, 0, len(s.counts))
	for k := range s.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var cum int64
	for _, k := range keys {
		cum += s.counts[k]
		if cum >= rank {
			return Value(k), true
		}
	}
	return Value(keys[len(keys)-1]), true
}

// MarshalJSON writes the sketch as the rollups store it: {"key": count}.
func (s Sketch) MarshalJSON() ([]byte, error) {
	m := make(map[string]int64, len(s.counts))
	for k, n := range s.counts {
		m[strconv.Itoa(int(k))] = n
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads {"key": count}; it adds to what the sketch holds.
func (s *Sketch) UnmarshalJSON(b []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for ks, n := range m {
		k, err := strconv.ParseInt(ks, 10, 32)
		if err != nil {
			return fmt.Errorf("sketch key %q: %w", ks, err)
		}
		s.AddN(int32(k), n)
	}
	return nil
}
