package money

import (
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAddSaturatesAtTheCeiling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b, want int64
	}{
		{0, 0, 0},
		{1, 2, 3},
		{Ceiling - 1, 1, Ceiling},
		{Ceiling - 1, 2, Ceiling},
		{Ceiling, MaxCostMicros, Ceiling},
		{math.MaxInt64, math.MaxInt64, Ceiling},
		{-5, 7, 7},
		{7, -5, 7},
		{math.MinInt64, math.MinInt64, 0},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Add(c.a, c.b), "%d + %d", c.a, c.b)
	}
	require.Equal(t, Ceiling, Sum(Ceiling/2, Ceiling/2, 1))
	require.Equal(t, int64(6), Sum(1, 2, 3))
}

func TestMulDivCeilIsExactIn128Bits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b, d int64
		want    int64
		ok      bool
	}{
		{0, 5, 1_000_000, 0, true},
		{1, 2_500_000, 1_000_000, 3, true}, // 2.5 rounds up
		{1_000_000, 2_500_000, 1_000_000, 2_500_000, true},
		{MaxTokens, MaxPricePerMTok, 1_000_000, 1_000_000_000_000_000_000, true}, // 1e24/1e6
		{math.MaxInt64, math.MaxInt64, 1, 0, false},
		{math.MaxInt64, 2, 2, math.MaxInt64, true},
		{4_000_000_000_000, 2_500_000, 1_000_000, 10_000_000_000_000, true}, // wrapped to -8.4e12 in int64
		{-1, 5, 1, 0, false},
		{5, 5, 0, 0, false},
	}
	for _, c := range cases {
		got, ok := MulDivCeil(c.a, c.b, c.d)
		require.Equal(t, c.ok, ok, "%d*%d/%d", c.a, c.b, c.d)
		if ok {
			require.Equal(t, c.want, got, "%d*%d/%d", c.a, c.b, c.d)
		}
	}
}

func TestReachedPercentAndPercentDoNotOverflow(t *testing.T) {
	t.Parallel()
	require.True(t, ReachedPercent(80, 100, 80))
	require.False(t, ReachedPercent(79, 100, 80))
	require.True(t, ReachedPercent(Ceiling, MaxAmount, 1000))
	require.False(t, ReachedPercent(MaxAmount/2, MaxAmount, 51))
	require.True(t, ReachedPercent(0, 0, 80), "no amount: reached")
	require.Equal(t, int64(50), Percent(50, 100))
	require.Equal(t, int64(1_000_000), Percent(Ceiling, 1))
	require.Equal(t, int64(400), Percent(Ceiling, Ceiling/4))
	require.Equal(t, int64(0), Percent(10, 0))
}

func TestCheckRange(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckRange("x", 0, 10))
	require.NoError(t, CheckRange("x", 10, 10))
	err := CheckRange("estimate.input_tokens", 11, 10)
	var re *RangeError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "estimate.input_tokens", re.Field)
	require.Error(t, CheckRange("x", -1, 10))
}

// FuzzMulDivCeil compares the 128-bit arithmetic with math/big on every input.
func FuzzMulDivCeil(f *testing.F) {
	f.Add(int64(1), int64(2_500_000), int64(1_000_000))
	f.Add(MaxTokens, MaxPricePerMTok, int64(1_000_000))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(1))
	f.Add(int64(-3), int64(7), int64(2))
	f.Fuzz(func(t *testing.T, a, b, d int64) {
		got, ok := MulDivCeil(a, b, d)
		if a < 0 || b < 0 || d <= 0 {
			if ok {
				t.Fatalf("MulDivCeil(%d, %d, %d) accepted a negative or zero input", a, b, d)
			}
			return
		}
		n := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
		q, r := new(big.Int).QuoRem(n, big.NewInt(d), new(big.Int))
		if r.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		fits := q.IsInt64()
		if ok != fits {
			t.Fatalf("MulDivCeil(%d, %d, %d) ok=%v, want %v (%s)", a, b, d, ok, fits, q)
		}
		if ok && got != q.Int64() {
			t.Fatalf("MulDivCeil(%d, %d, %d) = %d, want %s", a, b, d, got, q)
		}
	})
}

// FuzzAdd checks saturation against math/big.
func FuzzAdd(f *testing.F) {
	f.Add(int64(1), int64(2))
	f.Add(Ceiling, int64(1))
	f.Add(int64(math.MaxInt64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, a, b int64) {
		got := Add(a, b)
		want := new(big.Int).Add(big.NewInt(max(a, 0)), big.NewInt(max(b, 0)))
		if want.Cmp(big.NewInt(Ceiling)) > 0 {
			want = big.NewInt(Ceiling)
		}
		if got != want.Int64() || got < 0 || got > Ceiling {
			t.Fatalf("Add(%d, %d) = %d, want %s", a, b, got, want)
		}
	})
}

func TestDollars(t *testing.T) {
	t.Parallel()
	cases := map[int64]string{
		0: "$0.00", 5_000: "$0.005", 10_000: "$0.01", 1_050_000_000: "$1,050.00", 82_000_000: "$82.00",
		1_234_567_890_000: "$1,234,567.89", 12_345_678: "$12.345678", 10_000_000: "$10.00", -3_500_000: "-$3.50",
		MaxCostMicros: "$1,000,000,000.00", math.MinInt64: "-$9,223,372,036,854.775808",
	}
	for micros, want := range cases {
		require.Equal(t, want, Dollars(micros), "%d", micros)
	}
}
