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

// Tokens are the token counts of one LLM call, by kind. The kinds are disjoint: Input
// excludes cache reads and writes, Output excludes reasoning tokens (a provider that
// reports cached or reasoning tokens inside its totals has them subtracted by whoever
// maps its usage, so no token is priced twice).
type Tokens struct {
	Input      int64
	Output     int64
	CacheRead  int64
	CacheWrite int64
	Reasoning  int64
}

// Total is every token of the call, saturating at money.Ceiling.
func (t Tokens) Total() int64 {
	return money.Sum(t.Input, t.Output, t.CacheRead, t.CacheWrite, t.Reasoning)
}

// Extra is what a model charges for the token kinds beyond input and output, in
// micro-dollars per million tokens. A nil price falls back: cache reads and writes cost
// the input price, reasoning tokens the output price (how most providers bill them when
// they publish nothing else).
type Extra struct {
	CacheReadPerMTok  *int64
	CacheWritePerMTok *int64
	ReasoningPerMTok  *int64
}

// ModelPrice is a model's whole price: input and output, and the other kinds.
type ModelPrice struct {
	Price
	Extra
}

func perMTok(p *int64, fallback int64) int64 {
	if p == nil {
		return fallback
	}
	return *p
}

// Rates are the five per-million-token prices the kinds of Tokens are charged at, with
// the fallbacks applied.
func (p ModelPrice) Rates() Tokens {
	return Tokens{
		Input: p.InputPerMTok, Output: p.OutputPerMTok,
		CacheRead:  perMTok(p.CacheReadPerMTok, p.InputPerMTok),
		CacheWrite: perMTok(p.CacheWritePerMTok, p.InputPerMTok),
		Reasoning:  perMTok(p.ReasoningPerMTok, p.OutputPerMTok),
	}
}

// CallCost is the price of one call's tokens, every kind at its own rate, rounded up to
// the next micro-dollar. Like Cost it is exact: the five products are summed in 128 bits
// and a result above money.MaxCostMicros (or any negative count or price) is
// ErrCostOutOfRange, never a wrapped number.
func (p ModelPrice) CallCost(t Tokens) (int64, error) {
	r := p.Rates()
	counts := [5]int64{t.Input, t.Output, t.CacheRead, t.CacheWrite, t.Reasoning}
	rates := [5]int64{r.Input, r.Output, r.CacheRead, r.CacheWrite, r.Reasoning}
	const perMillion = 1_000_000
	var hi, lo uint64
	for i := range counts {
		if counts[i] < 0 || rates[i] < 0 {
			return 0, ErrCostOutOfRange
		}
		h, l := bits.Mul64(uint64(counts[i]), uint64(rates[i]))
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi, _ = bits.Add64(hi, h, carry)
		// hi stays below 2^20 before each addition and a product's high word is below
		// 2^62, so the addition above cannot overflow; past 1e6 the quotient no longer
		// fits in 64 bits, far beyond the bound.
		if hi >= perMillion {
			return 0, ErrCostOutOfRange
		}
	}
	q, rem := bits.Div64(hi, lo, perMillion)
	if rem != 0 {
		q++
	}
	if q > uint64(money.MaxCostMicros) {
		return 0, ErrCostOutOfRange
	}
	return int64(q), nil
}

func ptr(v int64) *int64 { return &v }

// DefaultExtras are list prices of cached (and cache-write) tokens of common models; the
// models without an entry here, and the kinds left nil, fall back as Extra says.
var DefaultExtras = map[string]Extra{
	"gpt-4o":           {CacheReadPerMTok: ptr(1_250_000)},
	"gpt-4o-mini":      {CacheReadPerMTok: ptr(75_000)},
	"gpt-4.1":          {CacheReadPerMTok: ptr(500_000)},
	"gpt-4.1-mini":     {CacheReadPerMTok: ptr(100_000)},
	"o3":               {CacheReadPerMTok: ptr(500_000)},
	"o4-mini":          {CacheReadPerMTok: ptr(275_000)},
	"claude-opus-4":    {CacheReadPerMTok: ptr(1_500_000), CacheWritePerMTok: ptr(18_750_000)},
	"claude-sonnet-4":  {CacheReadPerMTok: ptr(300_000), CacheWritePerMTok: ptr(3_750_000)},
	"claude-3-5-haiku": {CacheReadPerMTok: ptr(80_000), CacheWritePerMTok: ptr(1_000_000)},
}

// LookupModel returns the organization's whole price for model if it set one (its
// extras as it set them), else Governor's default with the default extras.
func LookupModel(custom map[string]ModelPrice, model string) (ModelPrice, bool) {
	if p, ok := custom[model]; ok {
		return p, true
	}
	p, ok := Defaults[model]
	if !ok {
		return ModelPrice{}, false
	}
	return ModelPrice{Price: p, Extra: DefaultExtras[model]}, true
}
