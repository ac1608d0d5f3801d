// Package pricing turns tokens into micro-dollars: a catalog of per-model prices (each
// organization may set its own; Governor ships defaults for common models) and the
// arithmetic, in integers.
package pricing

import (
	"errors"
	"math/bits"
	"sort"

	"github.com/governor-hq/governor/internal/money"
)

// Price is a model's price in micro-dollars per million tokens.
type Price struct {
	InputPerMTok  int64
	OutputPerMTok int64
}

// Defaults are list prices of common models (USD per million tokens, as micro-dollars).
// Organizations override them with SetModelPrice; a model with no price costs what the
// client reports (tokens alone cost nothing).
var Defaults = map[string]Price{
	"gpt-4o":                 {2_500_000, 10_000_000},
	"gpt-4o-mini":            {150_000, 600_000},
	"gpt-4.1":                {2_000_000, 8_000_000},
	"gpt-4.1-mini":           {400_000, 1_600_000},
	"o3":                     {2_000_000, 8_000_000},
	"o4-mini":                {1_100_000, 4_400_000},
	"claude-opus-4":          {15_000_000, 75_000_000},
	"claude-sonnet-4":        {3_000_000, 15_000_000},
	"claude-3-5-haiku":       {800_000, 4_000_000},
	"gemini-2.5-pro":         {1_250_000, 10_000_000},
	"gemini-2.5-flash":       {300_000, 2_500_000},
	"mistral-large":          {2_000_000, 6_000_000},
	"llama-3.1-70b":          {880_000, 880_000},
	"text-embedding-3-small": {20_000, 0},
}

// DefaultModels lists the models with a default price, sorted.
func DefaultModels() []string {
	out := make([]string, 0, len(Defaults))
	for m := range Defaults {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// ErrCostOutOfRange: the tokens at this price cost more than money.MaxCostMicros.
var ErrCostOutOfRange = errors.New("cost out of range")

// Cost is the price of the given tokens, rounded up to the next micro-dollar so many
// small runs never add up to less than they cost. The arithmetic is exact in 128 bits; a
// result above money.MaxCostMicros (or negative tokens) is ErrCostOutOfRange, never a
// wrapped number.
func (p Price) Cost(inputTokens, outputTokens int64) (int64, error) {
	if inputTokens < 0 || outputTokens < 0 || p.InputPerMTok < 0 || p.OutputPerMTok < 0 {
		return 0, ErrCostOutOfRange
	}
	// ceil((in*pIn + out*pOut) / 1e6) in 128 bits: each product fits in 126 bits
	// (both factors are below 2^63), so their sum fits in 127.
	h1, l1 := bits.Mul64(uint64(inputTokens), uint64(p.InputPerMTok))
	h2, l2 := bits.Mul64(uint64(outputTokens), uint64(p.OutputPerMTok))
	lo, carry := bits.Add64(l1, l2, 0)
	hi, _ := bits.Add64(h1, h2, carry)
	const perMillion = 1_000_000
	if hi >= perMillion {
		return 0, ErrCostOutOfRange // the quotient would not fit in 64 bits
	}
	q, r := bits.Div64(hi, lo, perMillion)
	if r != 0 {
		q++
	}
	if q > uint64(money.MaxCostMicros) {
		return 0, ErrCostOutOfRange
	}
	return int64(q), nil
}

// Lookup returns the organization's price for model if it set one, else the default.
func Lookup(custom map[string]Price, model string) (Price, bool) {
	if p, ok := custom[model]; ok {
		return p, true
	}
	p, ok := Defaults[model]
	return p, ok
}
