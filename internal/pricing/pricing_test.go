package pricing

import (
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/money"
)

func TestCost(t *testing.T) {
	t.Parallel()
	p := Price{InputPerMTok: 2_500_000, OutputPerMTok: 10_000_000} // $2.50 / $10 per M
	cases := []struct {
		in, out int64
		want    int64
		err     bool
	}{
		{1_000_000, 1_000_000, 2_500_000 + 10_000_000, false},
		{1, 0, 3, false}, // 2.5 micro-dollars round up to 3
		{0, 0, 0, false},
		{1_000, 1_000, 12_500, false},
		// The review's attack: 4e12 input tokens wrapped to about -8.4e12 µ$ in int64.
		{4_000_000_000_000, 0, 10_000_000_000_000, false},
		// 2.5e11 tokens were priced at 41 µ$ by a wrapped product; they cost $625,000.
		{250_000_000_000, 0, 625_000_000_000, false},
		{math.MaxInt64, 0, 0, true},
		{0, math.MaxInt64, 0, true},
		{-1, 0, 0, true},
	}
	for _, c := range cases {
		got, err := p.Cost(c.in, c.out)
		if c.err {
			require.ErrorIs(t, err, ErrCostOutOfRange, "%d/%d", c.in, c.out)
			continue
		}
		require.NoError(t, err, "%d/%d", c.in, c.out)
		require.Equal(t, c.want, got, "%d/%d", c.in, c.out)
	}
	// The most expensive bounded run is still out of range: a cost bound of $1e9 holds.
	_, err := Price{money.MaxPricePerMTok, money.MaxPricePerMTok}.Cost(money.MaxTokens, money.MaxTokens)
	require.ErrorIs(t, err, ErrCostOutOfRange)
}

func TestLookupPrefersTheOrganizationsPrice(t *testing.T) {
	t.Parallel()
	p, ok := Lookup(nil, "gpt-4o")
	require.True(t, ok)
	require.Equal(t, Defaults["gpt-4o"], p)
	p, ok = Lookup(map[string]Price{"gpt-4o": {1, 2}}, "gpt-4o")
	require.True(t, ok)
	require.Equal(t, Price{1, 2}, p)
	_, ok = Lookup(nil, "my-finetune")
	require.False(t, ok)
	require.Contains(t, DefaultModels(), "claude-sonnet-4")
}

// FuzzCost checks the pricing arithmetic against math/big: never a wrapped or negative
// cost, never a cost above the bound, and exactly ceil((in*pi + out*po) / 1e6) otherwise.
func FuzzCost(f *testing.F) {
	f.Add(int64(4_000_000_000_000), int64(0), int64(2_500_000), int64(10_000_000))
	f.Add(int64(250_000_000_000), int64(7), int64(150_000), int64(600_000))
	f.Add(money.MaxTokens, money.MaxTokens, money.MaxPricePerMTok, money.MaxPricePerMTok)
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64))
	f.Add(int64(1), int64(1), int64(1), int64(1))
	f.Fuzz(func(t *testing.T, in, out, pin, pout int64) {
		got, err := Price{InputPerMTok: pin, OutputPerMTok: pout}.Cost(in, out)
		if in < 0 || out < 0 || pin < 0 || pout < 0 {
			if err == nil {
				t.Fatalf("negative input accepted: %d %d %d %d", in, out, pin, pout)
			}
			return
		}
		n := new(big.Int).Add(new(big.Int).Mul(big.NewInt(in), big.NewInt(pin)), new(big.Int).Mul(big.NewInt(out), big.NewInt(pout)))
		q, r := new(big.Int).QuoRem(n, big.NewInt(1_000_000), new(big.Int))
		if r.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		inRange := q.Cmp(big.NewInt(money.MaxCostMicros)) <= 0
		if inRange != (err == nil) {
			t.Fatalf("Cost(%d, %d) at %d/%d: err=%v, exact %s", in, out, pin, pout, err, q)
		}
		if err == nil && (got != q.Int64() || got < 0) {
			t.Fatalf("Cost(%d, %d) at %d/%d = %d, want %s", in, out, pin, pout, got, q)
		}
	})
}
