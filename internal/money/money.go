// Package money holds the bounds of every amount Governor accepts and the arithmetic that
// cannot wrap. Costs are integer micro-dollars (1 USD = 1,000,000); tokens are counts.
//
// The bounds are far above any real run, and far enough below int64's range that sums of
// bounded values stay exact for a long time; where a sum could still grow without bound
// (a counter charged by settlements, a day's total), it saturates at Ceiling instead of
// wrapping. No I/O here: table-driven tests cover it.
package money

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

const (
	// MaxTokens bounds one token count a client sends (input, output, cache, reasoning):
	// one trillion tokens.
	MaxTokens int64 = 1_000_000_000_000
	// MaxCostMicros bounds one cost a client sends or Governor computes for one run or
	// call: one billion dollars.
	MaxCostMicros int64 = 1_000_000_000_000_000
	// MaxAmount bounds a limit's amount, whatever its metric (micro-dollars, tokens, runs or
	// requests), and the cost thresholds of incident rules.
	MaxAmount int64 = 1_000_000_000_000_000
	// MaxPricePerMTok bounds a model's price: one million dollars per million tokens.
	MaxPricePerMTok int64 = 1_000_000_000_000
	// Ceiling is where running totals (limit counters, incident costs, rollups) stop
	// growing. It is 4.3 million times MaxCostMicros and still 2.3 times below int64's
	// maximum, so adding one bounded value to a total at the ceiling cannot overflow.
	Ceiling int64 = 4_000_000_000_000_000_000
)

// Add returns a+b for non-negative a and b, saturating at Ceiling. Negative inputs count
// as zero: a total never shrinks by adding.
func Add(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a >= Ceiling || b >= Ceiling || a > Ceiling-b {
		return Ceiling
	}
	return a + b
}

// Sum adds values with Add.
func Sum(vs ...int64) int64 {
	var t int64
	for _, v := range vs {
		t = Add(t, v)
	}
	return t
}

// MulDivCeil returns ceil(a*b/d) computed in 128 bits, and false when the result does not
// fit in an int64 (or d is 0, or a or b is negative).
func MulDivCeil(a, b, d int64) (int64, bool) {
	if a < 0 || b < 0 || d <= 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(d) {
		return 0, false // the quotient would not fit in 64 bits
	}
	q, r := bits.Div64(hi, lo, uint64(d))
	if r != 0 {
		q++
		if q == 0 {
			return 0, false
		}
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	return int64(q), true
}

// ReachedPercent reports whether used is at least pct percent of amount
// (used*100 >= pct*amount), without overflow. A non-positive amount is always reached.
func ReachedPercent(used, amount int64, pct int32) bool {
	if amount <= 0 {
		return true
	}
	if used <= 0 || pct <= 0 {
		return pct <= 0
	}
	uh, ul := bits.Mul64(uint64(used), 100)
	ah, al := bits.Mul64(uint64(amount), uint64(pct))
	return uh > ah || (uh == ah && ul >= al)
}

// Percent is used as a whole percentage of amount, rounded down, capped at 1,000,000 so
// it prints sensibly; 0 for a non-positive amount.
func Percent(used, amount int64) int64 {
	if amount <= 0 || used <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(used), 100)
	if hi >= uint64(amount) {
		return 1_000_000
	}
	q, _ := bits.Div64(hi, lo, uint64(amount))
	return int64(min(q, 1_000_000))
}

// CheckRange returns an error naming field when v is outside [0, max].
func CheckRange(field string, v, maxV int64) error {
	if v < 0 || v > maxV {
		return &RangeError{Field: field, Value: v, Max: maxV}
	}
	return nil
}

// RangeError is a value outside its bounds; Field names the request field.
type RangeError struct {
	Field string
	Value int64
	Max   int64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s must be between 0 and %d, got %d", e.Field, e.Max, e.Value)
}

// Dollars renders micro-dollars for people, the one way Governor writes money in messages,
// titles and summaries: dollars with thousands separators and cents ("$1,050.00"), and the
// micro-dollar digits only when there are any beyond the cents ("$0.005", "$12.345678").
func Dollars(micros int64) string {
	sign := ""
	u := uint64(micros)
	if micros < 0 {
		sign, u = "-", uint64(-(micros+1))+1 // MinInt64 has no positive twin
	}
	whole, frac := u/1_000_000, u%1_000_000
	digits := fmt.Sprintf("%06d", frac)
	if frac%10_000 == 0 {
		digits = digits[:2]
	} else {
		digits = strings.TrimRight(digits, "0")
	}
	s := strconv.FormatUint(whole, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + "$" + b.String() + "." + digits
}
