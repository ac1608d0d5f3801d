package pricing

import (
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/money"
)

func TestCallCostPricesEachKindAtItsRate(t *testing.T) {
	t.Parallel()
	base := Price{InputPerMTok: 3_000_000, OutputPerMTok: 15_000_000} // $3 / $15 per M
	withExtras := ModelPrice{Price: base, Extra: Extra{CacheReadPerMTok: ptr(300_000), CacheWritePerMTok: ptr(3_750_000), ReasoningPerMTok: ptr(20_000_000)}}
	noExtras := ModelPrice{Price: base}
	cases := []struct {
		name  string
		price ModelPrice
		t     Tokens
		want  int64
		err   bool
	}{
		{"input and output only", withExtras, Tokens{Input: 1_000_000, Output: 1_000_000}, 18_000_000, false},
		{"a million cache reads at their own price", withExtras, Tokens{CacheRead: 1_000_000}, 300_000, false},
		{"cache writes at their own price", withExtras, Tokens{CacheWrite: 1_000_000}, 3_750_000, false},
		{"reasoning at its own price", withExtras, Tokens{Reasoning: 1_000_000}, 20_000_000, false},
		{"cache reads fall back to the input price", noExtras, Tokens{CacheRead: 1_000_000}, 3_000_000, false},
		{"cache writes fall back to the input price", noExtras, Tokens{CacheWrite: 1_000_000}, 3_000_000, false},
		{"reasoning falls back to the output price", noExtras, Tokens{Reasoning: 1_000_000}, 15_000_000, false},
		{"every kind, summed before rounding", withExtras, Tokens{Input: 1, Output: 1, CacheRead: 1, CacheWrite: 1, Reasoning: 1},
			// (3 + 15 + 0.3 + 3.75 + 20) µ$ = 42.05 µ$, rounded up once.
			43, false},
		{"nothing costs nothing", withExtras, Tokens{}, 0, false},
		{"a zero price is free", ModelPrice{Price: base, Extra: Extra{CacheReadPerMTok: ptr(0)}}, Tokens{CacheRead: 5_000_000}, 0, false},
		{"bounded tokens above the cost bound", ModelPrice{Price: Price{money.MaxPricePerMTok, money.MaxPricePerMTok}},
			Tokens{Input: money.MaxTokens, Output: money.MaxTokens, CacheRead: money.MaxTokens, CacheWrite: money.MaxTokens, Reasoning: money.MaxTokens}, 0, true},
		{"the largest int64s do not wrap", ModelPrice{Price: Price{math.MaxInt64, math.MaxInt64}},
			Tokens{Input: math.MaxInt64, Output: math.MaxInt64, CacheRead: math.MaxInt64, CacheWrite: math.MaxInt64, Reasoning: math.MaxInt64}, 0, true},
		{"negative tokens", withExtras, Tokens{CacheRead: -1}, 0, true},
		{"negative extra price", ModelPrice{Price: base, Extra: Extra{ReasoningPerMTok: ptr(-1)}}, Tokens{Reasoning: 1}, 0, true},
		{"exactly the bound is allowed", ModelPrice{Price: Price{InputPerMTok: 1_000_000}}, Tokens{Input: money.MaxCostMicros}, money.MaxCostMicros, false},
		{"one micro-dollar past the bound", ModelPrice{Price: Price{InputPerMTok: 1_000_000}}, Tokens{Input: money.MaxCostMicros, CacheRead: 1}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.price.CallCost(c.t)
			if c.err {
				require.ErrorIs(t, err, ErrCostOutOfRange)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}

func TestCallCostAgreesWithCostForInputAndOutput(t *testing.T) {
	t.Parallel()
	for _, m := range DefaultModels() {
		p, ok := LookupModel(nil, m)
		require.True(t, ok, m)
		want, err := Defaults[m].Cost(123_456, 7_890)
		require.NoError(t, err)
		got, err := p.CallCost(Tokens{Input: 123_456, Output: 7_890})
		require.NoError(t, err)
		require.Equal(t, want, got, m)
	}
}

func TestLookupModelPrefersTheOrganizationsWholePrice(t *testing.T) {
	t.Parallel()
	p, ok := LookupModel(nil, "claude-sonnet-4")
	require.True(t, ok)
	require.EqualValues(t, 300_000, *p.CacheReadPerMTok)
	require.Nil(t, p.ReasoningPerMTok)
	// An organization's price replaces the default extras too: what it did not set falls back.
	p, ok = LookupModel(map[string]ModelPrice{"claude-sonnet-4": {Price: Price{1, 2}}}, "claude-sonnet-4")
	require.True(t, ok)
	require.Equal(t, ModelPrice{Price: Price{1, 2}}, p)
	require.Equal(t, Tokens{Input: 1, Output: 2, CacheRead: 1, CacheWrite: 1, Reasoning: 2}, p.Rates())
	_, ok = LookupModel(nil, "my-finetune")
	require.False(t, ok)
	for m := range DefaultExtras {
		_, ok := Defaults[m]
		require.True(t, ok, "extras of %s have no base price", m)
	}
}

// FuzzCallCost checks the five-kind arithmetic against math/big: never a wrapped or
// negative cost, never one above the bound, exactly ceil(Σ tokens·rate / 1e6) otherwise.
func FuzzCallCost(f *testing.F) {
	f.Add(int64(1), int64(1), int64(1), int64(1), int64(1), int64(3_000_000), int64(15_000_000), int64(300_000), int64(3_750_000), int64(-1))
	f.Add(money.MaxTokens, money.MaxTokens, money.MaxTokens, money.MaxTokens, money.MaxTokens,
		money.MaxPricePerMTok, money.MaxPricePerMTok, money.MaxPricePerMTok, money.MaxPricePerMTok, money.MaxPricePerMTok)
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64),
		int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64))
	f.Add(money.MaxCostMicros, int64(0), int64(0), int64(0), int64(0), int64(1_000_000), int64(0), int64(-1), int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, in, out, cr, cw, rs, pin, pout, pcr, pcw, prs int64) {
		// A negative extra price stands for "not set" (nil) half the time, so the
		// fallbacks are fuzzed too; -1 exactly means nil.
		opt := func(v int64) *int64 {
			if v == -1 {
				return nil
			}
			return &v
		}
		p := ModelPrice{Price: Price{InputPerMTok: pin, OutputPerMTok: pout}, Extra: Extra{CacheReadPerMTok: opt(pcr), CacheWritePerMTok: opt(pcw), ReasoningPerMTok: opt(prs)}}
		r := p.Rates()
		counts := []int64{in, out, cr, cw, rs}
		rates := []int64{r.Input, r.Output, r.CacheRead, r.CacheWrite, r.Reasoning}
		got, err := p.CallCost(Tokens{Input: in, Output: out, CacheRead: cr, CacheWrite: cw, Reasoning: rs})
		negative := false
		sum := new(big.Int)
		for i := range counts {
			if counts[i] < 0 || rates[i] < 0 {
				negative = true
			}
			sum.Add(sum, new(big.Int).Mul(big.NewInt(counts[i]), big.NewInt(rates[i])))
		}
		if negative {
			if err == nil {
				t.Fatalf("negative input accepted: %v %v", counts, rates)
			}
			return
		}
		q, rem := new(big.Int).QuoRem(sum, big.NewInt(1_000_000), new(big.Int))
		if rem.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		inRange := q.Cmp(big.NewInt(money.MaxCostMicros)) <= 0
		if inRange != (err == nil) {
			t.Fatalf("CallCost(%v) at %v: err=%v, exact %s", counts, rates, err, q)
		}
		if err == nil && (got != q.Int64() || got < 0) {
			t.Fatalf("CallCost(%v) at %v = %d, want %s", counts, rates, got, q)
		}
	})
}
